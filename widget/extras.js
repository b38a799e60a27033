/*!
 * Supportbot widget extras, loaded by supportbot.js from its own server only when needed, so
 * that most page views do not pay for them (the main script has a size budget):
 *   - customer(): for a verified customer, their earlier conversations (the `conversations`
 *     frame; a click resumes one); when the server can e-mail replies (`welcome.email_replies`)
 *     and a person is away, the "leave your e-mail" option, or for a verified customer with an
 *     e-mail, where the reply will go;
 *   - survey(): the end-of-chat rating (CSAT 1-5), then customer effort (CES 1-7).
 * Texts come from the widget's catalogues (widget.t). Untrusted text reaches the DOM only
 * through textContent. See docs/widget.md.
 */
(function () {
  "use strict";

  var STYLES = [
    /* the slot between banner and transcript */
    ".slot{flex:none;font-size:13px;color:var(--sb-muted);}",
    ".slot>*{margin:0;padding:8px 16px;border-bottom:1px solid var(--sb-border);}",
    ".mail{display:flex;flex-wrap:wrap;align-items:center;gap:6px;}",
    ".mail label{flex-basis:100%;}",
    ".mail input{flex:1;min-width:0;font:inherit;color:var(--sb-text);padding:5px 9px;",
    "border:1px solid var(--sb-border);border-radius:8px;}",
    ".mail button,.earlier li button{border:1px solid var(--sb-border);border-radius:8px;",
    "padding:5px 10px;background:#fff;color:var(--sb-text);}",
    ".mail button:hover,.earlier li button:hover{border-color:var(--sb-accent);color:var(--sb-accent);}",
    ".earlier summary{cursor:pointer;font-weight:600;color:var(--sb-text);}",
    ".earlier ul{list-style:none;margin:6px 0 0;padding:0;max-height:150px;overflow-y:auto;",
    "display:flex;flex-direction:column;gap:4px;}",
    ".earlier li button{width:100%;text-align:left;white-space:nowrap;overflow:hidden;",
    "text-overflow:ellipsis;}",
    /* CSAT */
    ".csat{align-self:stretch;border:1px solid var(--sb-border);border-radius:14px;padding:12px;",
    "text-align:center;background:#fafafa;}",
    ".csat p{margin:0 0 8px;font-weight:600;font-size:14px;}",
    ".csat .scores{display:flex;justify-content:center;gap:6px;}",
    ".csat .scores button{width:40px;height:40px;border-radius:10px;border:1px solid var(--sb-border);",
    "background:#fff;font-weight:650;}",
    ".csat .scores button:hover{background:var(--sb-accent);color:var(--sb-on-accent);",
    "border-color:var(--sb-accent);}",
    ".csat .scale{display:flex;justify-content:space-between;font-size:11.5px;color:var(--sb-muted);",
    "margin:6px auto 0;max-width:232px;}",
    /* CES: seven answers in the width of five */
    ".csat .scores.ces{gap:5px;}.csat .scores.ces button{width:34px;height:38px;}",
    ".csat .scale.ces{max-width:268px;}",
  ].join("");

  /** Add our styles to the widget's shadow root, once. */
  function style(w) {
    if (w.extrasStyled) return;
    w.extrasStyled = true;
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
      w.root.adoptedStyleSheets = w.root.adoptedStyleSheets.concat([sheet]);
    } catch (_e) {
      var node = document.createElement("style");
      node.textContent = STYLES;
      w.root.appendChild(node);
    }
  }

  /** The known-customer parts: returns the hook the widget calls with every frame it gets
   * (``frame``) and after every redraw of its state (``null``, with ``people``: whether people
   * answer now, false out of hours). Draws into ``w.spot``. */
  function customer(w, el) {
    style(w);
    var list = null; // the customer's conversations, once the server has sent them
    var people = null;
    var shown = "";
    var slot = null;
    var asked = null; // the conversation open when the list was asked for

    function request() {
      if (!w.customer || asked === w.data.conversation_id) return;
      asked = w.send({ type: "conversations" }) ? w.data.conversation_id : null;
    }

    function draw() {
      var current = w.data.conversation_id;
      var email = w.customer && w.customer.email;
      var mode = w.mail && w.state === "awaiting_human" && people !== true && !w.data.mail_left
        ? (email ? "to" : "ask") : "";
      var earlier = w.customer && list ? list.filter(function (c) {
        return c && typeof c.conversation_id === "string" && c.conversation_id !== current;
      }) : [];
      var key = JSON.stringify([w.locale, mode, email, current, earlier]);
      if (key === shown && slot === w.spot) return; // keep focus and what is typed
      shown = key;
      slot = w.spot;
      slot.className = "slot";
      slot.textContent = "";
      if (mode === "to") {
        slot.appendChild(el("p", { className: "mail", text: w.t("mailTo", { email: email }) }));
      } else if (mode === "ask") {
        var input = el("input", { id: "supportbot-mail", type: "email", required: true,
          autocomplete: "email", maxlength: "320" });
        var form = el("form", { className: "mail" }, [
          el("label", { for: "supportbot-mail", text: w.t("mailAsk") }),
          input,
          el("button", { type: "submit", text: w.t("mailOk") }),
        ]);
        form.addEventListener("submit", function (event) {
          event.preventDefault();
          var address = input.value.trim();
          if (!address || !input.checkValidity()) return;
          // Sent as the customer's message: the server keeps the address it finds in a message
          // while the conversation waits for a person, and confirms it in the chat.
          w.data.mail_left = true;
          w.sendMessage(address);
          draw();
          w.input.focus();
        });
        slot.appendChild(form);
      }
      if (earlier.length) {
        var title = w.t("earlier");
        var items = el("ul", { "aria-label": title });
        earlier.forEach(function (c) {
          var when = new Date(c.updated_at || c.created_at);
          var date = isNaN(when.getTime()) ? ""
            : when.toLocaleDateString(w.locale, { day: "numeric", month: "short" });
          var text = String(c.last_message || "").replace(/\s+/g, " ").slice(0, 120);
          var button = el("button", { type: "button", "data-conversation-id": c.conversation_id,
            text: date + (date && text ? " — " : "") + text, title: text || null });
          button.addEventListener("click", function () {
            w.newConversation(c.conversation_id, String(c.resume_token || ""));
          });
          items.appendChild(el("li", null, [button]));
        });
        slot.appendChild(el("details", { className: "earlier" }, [
          el("summary", { text: title + " (" + earlier.length + ")" }),
          items,
        ]));
      }
    }

    if (w.connected) request();
    return function (frame, available) {
      if (!frame) people = available;
      else if (frame.type === "welcome") request(); // another conversation: list it anew
      else if (frame.type === "conversations") {
        list = Array.isArray(frame.conversations) ? frame.conversations : [];
      } else return;
      draw();
    };
  }

  /** The end-of-chat survey in ``node``: the rating, then one optional question, customer
   * effort (CES, 1-7). The score is sent again with the effort answer: every csat frame is
   * stored and reports use the latest, so skipping the second question loses nothing. */
  function survey(w, node, el) {
    style(w);
    if (node.firstChild) return;
    var scores = el("div", { className: "scores", role: "group", "aria-label": w.t("rateL") });
    node.appendChild(el("p", { text: w.t("rate") }));
    node.appendChild(scores);
    node.appendChild(el("div", { className: "scale", "aria-hidden": "true" }, [
      el("span", { text: w.t("poor") }), el("span", { text: w.t("great") }),
    ]));
    [1, 2, 3, 4, 5].forEach(function (score) {
      var btn = el("button", { type: "button", text: String(score),
        "aria-label": w.t("outOf", { n: score, max: 5 }) });
      btn.addEventListener("click", function () {
        if (!w.send({ type: "csat", score: score })) return;
        w.data.csat_done = true; // the score is stored: the survey is not asked again
        w.save();
        effort(w, node, el, score);
      });
      scores.appendChild(btn);
    });
  }

  function effort(w, node, el, score) {
    var question = w.t("ces");
    var answers = el("div", { className: "scores ces", role: "group",
      "aria-label": question + " " + w.t("cesL") });
    node.textContent = "";
    node.appendChild(el("p", { text: w.t("thankYou") + " " + question }));
    node.appendChild(answers);
    node.appendChild(el("div", { className: "scale ces", "aria-hidden": "true" }, [
      el("span", { text: w.t("hard") }), el("span", { text: w.t("easy") }),
    ]));
    [1, 2, 3, 4, 5, 6, 7].forEach(function (ces) {
      var btn = el("button", { type: "button", text: String(ces),
        "aria-label": w.t("outOf", { n: ces, max: 7 }) });
      btn.addEventListener("click", function () {
        if (!w.send({ type: "csat", score: score, ces: ces })) return;
        node.textContent = "";
        node.appendChild(el("p", { text: w.t("thankFb") }));
        w.say(w.t("thankFb"));
      });
      answers.appendChild(btn);
    });
    w.say(w.t("thankRate") + " " + question);
    answers.firstChild.focus(); // keyboard users go on where the buttons they used were
  }

  window.SupportbotExtras = { customer: customer, survey: survey };
})();
