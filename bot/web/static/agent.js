// Supportbot agent console: the queue, one conversation, live over /ws/agent.
// Plain JS, no build step. Everything the server sends is rendered with textContent, except
// bot and agent message text: Markdown through the widget's sanitizer (escaped, then a few tags).
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const state = { queue: [], current: null, seqs: new Set(), ws: null, retry: 0, lastTyping: 0 };

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.href = "/login?next=/agent";
      throw new Error("signed out");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || response.statusText);
    return data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // A source link is article metadata, which the console does not control: only http(s) URLs
  // become links (a "javascript:" or "data:" URL would run in the agent's signed-in page).
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_e) {
      return null;
    }
  }

  function waited(iso) {
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m";
    return Math.floor(seconds / 3600) + "h " + Math.floor((seconds % 3600) / 60) + "m";
  }

  function showError(message) {
    const box = $("action-error");
    box.textContent = message;
    box.hidden = !message;
  }

  // --- message text -------------------------------------------------------------------------
  // Answers are Markdown (steps, tables, links). They are rendered by the widget's own
  // sanitizer (window.SupportbotMarkdown, from /widget/supportbot.js loaded with
  // data-mount="false"): the agent reads an answer as the customer saw it, and there is one
  // renderer to keep safe (it escapes everything, then adds a few tags back). The customer's
  // words stay plain text. Until the sanitizer has loaded, text shows plain, then re-renders.
  const markdownSource = new WeakMap();

  function fillMarkdown(node, text) {
    if (!window.SupportbotMarkdown) {
      node.textContent = text;
      return;
    }
    node.classList.add("md");
    node.replaceChildren(window.SupportbotMarkdown.render(text));
  }

  function messageText(frame) {
    const node = el("div", "text");
    const text = String(frame.text == null ? "" : frame.text);
    if (frame.role === "bot" || frame.role === "agent") {
      markdownSource.set(node, text);
      node.dataset.markdown = "";
      fillMarkdown(node, text);
    } else {
      node.textContent = text;
    }
    return node;
  }

  (function loadMarkdown() {
    const style = document.createElement("style");
    style.textContent =
      ".msg .text.md { white-space: normal; }" +
      ".msg .text.md p { margin: 0 0 .5em; } .msg .text.md > :last-child { margin-bottom: 0; }" +
      ".msg .text.md ul, .msg .text.md ol { margin: .2em 0 .5em; padding-left: 1.3em; }" +
      ".msg .text.md table { border-collapse: collapse; margin: .2em 0 .5em; display: block;" +
      " max-width: 100%; overflow-x: auto; }" +
      ".msg .text.md th, .msg .text.md td { border: 1px solid #c9d1dd; padding: 3px 8px;" +
      " text-align: left; vertical-align: top; }" +
      ".msg .text.md th { background: #e9edf3; }";
    document.head.append(style);
    if (window.SupportbotMarkdown) return;
    const script = document.createElement("script");
    script.src = "/widget/supportbot.js";
    script.dataset.mount = "false";
    script.addEventListener("load", () => {
      for (const node of document.querySelectorAll(".msg .text[data-markdown]")) {
        if (markdownSource.has(node)) fillMarkdown(node, markdownSource.get(node));
      }
    });
    document.head.append(script);
  })();

  // --- queue --------------------------------------------------------------------------------

  function renderQueue() {
    const list = $("queue-list");
    list.replaceChildren();
    for (const item of state.queue) {
      const li = el("li", "queue-item" + (state.current === item.conversation_id ? " active" : ""));
      li.dataset.conversationId = item.conversation_id;
      li.tabIndex = 0;
      const top = el("div", "row");
      top.append(el("span", "reason", item.reason.replace(/_/g, " ")));
      const wait = el("span", "waiting", waited(item.created_at));
      wait.dataset.since = item.created_at;
      top.append(wait);
      li.append(top);
      li.append(el("div", "last", item.last_message || "(no message)"));
      const meta = el("div", "meta", item.claimed_by ? "claimed by " + item.claimed_by : "waiting");
      li.append(meta);
      li.addEventListener("click", () => openConversation(item.conversation_id));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") openConversation(item.conversation_id); });
      list.append(li);
    }
    $("queue-count").textContent = String(state.queue.length);
    $("queue-empty").hidden = state.queue.length > 0;
  }

  async function loadQueue() {
    const data = await api("GET", "/api/agent/queue");
    state.queue = data.items;
    $("hours").textContent = data.open_now ? "" : "Outside business hours: customers were told when to expect a reply.";
    renderQueue();
  }

  setInterval(() => {
    for (const node of document.querySelectorAll(".waiting[data-since]")) {
      node.textContent = waited(node.dataset.since);
    }
  }, 1000);

  // --- one conversation ---------------------------------------------------------------------

  function appendMessage(frame) {
    if (state.seqs.has(frame.seq)) return;
    state.seqs.add(frame.seq);
    const li = el("li", "msg " + frame.role);
    li.dataset.seq = frame.seq;
    const who = frame.role === "agent" ? (frame.author || "Agent") : frame.role;
    li.append(el("span", "who", who));
    li.append(messageText(frame));
    if (frame.sources && frame.sources.length) {
      const cites = el("ul", "cites");
      for (const s of frame.sources) {
        const c = el("li");
        const href = safeUrl(s.url);
        if (href) {
          const a = el("a", "", s.title || s.article_id);
          a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
          c.append(a);
        } else {
          c.textContent = s.title || s.article_id;
        }
        cites.append(c);
      }
      li.append(cites);
    }
    if (frame.suggestions && frame.suggestions.length) {
      // "Which of these?": the articles the bot offered; the customer's pick follows as the
      // bot's next answer (its source), "none of these" as the hand-over (reason no_match).
      li.append(el("div", "offered-label", "Offered as choices:"));
      const offered = el("ul", "cites offered");
      for (const s of frame.suggestions) {
        const c = el("li");
        const href = safeUrl(s.url);
        if (href) {
          const a = el("a", "", s.title || s.article_id);
          a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
          c.append(a);
        } else {
          c.textContent = s.title || s.article_id;
        }
        offered.append(c);
      }
      li.append(offered);
    }
    const list = $("transcript");
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  function renderState(conversationState, reason) {
    $("conv-state").textContent = conversationState.replace(/_/g, " ");
    $("conv-state").dataset.state = conversationState;
    $("conv-reason").textContent = reason ? "· " + reason.replace(/_/g, " ") : "";
    $("claim-btn").hidden = conversationState !== "awaiting_human";
    $("resolve-btn").hidden = conversationState === "resolved" || conversationState === "bot";
    $("handback-btn").hidden = conversationState === "resolved" || conversationState === "bot";
    $("reply-form").hidden = !(conversationState === "human" || conversationState === "awaiting_human");
  }

  function renderConversation(data) {
    $("conversation-empty").hidden = true;
    $("conversation").hidden = false;
    $("conv-title").textContent = "Conversation " + data.id.slice(0, 8);
    $("conv-contact").textContent = data.contact_email ? "· contact: " + data.contact_email : "";
    renderState(data.state, data.state_reason);
    state.seqs = new Set();
    $("transcript").replaceChildren();
    for (const m of data.messages) appendMessage(m);
    const sources = $("sources-list");
    sources.replaceChildren();
    for (const s of data.sources) {
      const li = el("li");
      const href = safeUrl(s.url);
      if (href) {
        const a = el("a", "", s.title || s.article_id);
        a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
        li.append(a);
      } else {
        li.textContent = s.title || s.article_id;
      }
      li.append(el("span", "score", " " + Math.round((s.score || 0) * 100) + "%"));
      if (!$("resolve-btn").hidden) {
        const answers = el("button", "link-button", "Answers it: resolve");
        answers.type = "button";
        answers.setAttribute("aria-label", "Resolve with “" + (s.title || s.article_id) + "” as the answer");
        answers.addEventListener("click", () => act("resolve", { article_id: s.article_id }));
        li.append(" ", answers);
      }
      sources.append(li);
    }
    if (!data.sources.length) sources.append(el("li", "hint", "none"));
    renderCustomer(data);
    const esc = data.escalation;
    $("escalation-detail").textContent = esc
      ? (esc.reason || "").replace(/_/g, " ") + (esc.queue_detail ? " — " + esc.queue_detail : "")
      : "Not escalated.";
  }

  // Who the customer is (from their site's page; "verified" when its hash proved it) and,
  // for a verified customer, their earlier conversations: each opens here.
  function renderCustomer(data) {
    const box = $("customer-info");
    if (!box) return;
    box.replaceChildren();
    const c = data.customer;
    if (!c) {
      box.append(el("p", "", "Anonymous visitor."));
      return;
    }
    const who = el("p", "customer-name", (c.name || c.id) + (c.verified ? " ✓ verified" : " (not verified)"));
    box.append(who);
    if (c.email) box.append(el("p", "customer-email", c.email));
    if (c.site) box.append(el("p", "customer-site", c.site));
    const earlier = data.earlier_conversations || [];
    if (!earlier.length) return;
    box.append(el("p", "", "Earlier conversations:"));
    const list = el("ul", "earlier-conversations");
    for (const other of earlier) {
      const li = el("li");
      const button = el("button", "link", new Date(other.created_at).toLocaleDateString() + " · " +
        other.state + (other.last_message ? " · " + other.last_message.slice(0, 60) : ""));
      button.type = "button";
      button.dataset.conversationId = other.id;
      button.addEventListener("click", () => openConversation(other.id));
      li.append(button);
      list.append(li);
    }
    box.append(list);
  }

  async function openConversation(id) {
    showError("");
    if (state.current && state.current !== id) send({ type: "unwatch", conversation_id: state.current });
    state.current = id;
    send({ type: "watch", conversation_id: id });
    renderQueue();
    renderConversation(await api("GET", "/api/agent/conversations/" + encodeURIComponent(id)));
  }

  async function act(action, body) {
    if (!state.current) return;
    showError("");
    try {
      const data = await api("POST", "/api/agent/conversations/" + encodeURIComponent(state.current) + "/" + action, body);
      renderConversation(data);
      await loadQueue();
    } catch (err) {
      showError(err.message);
    }
  }

  $("claim-btn").addEventListener("click", () => act("claim"));
  // Resolve, optionally naming the article that answers the question (docs/agents.md): the
  // question becomes a candidate learned question of it for an admin to approve.
  $("resolve-btn").addEventListener("click", () => {
    const articleId = $("resolve-article").value.trim();
    act("resolve", articleId ? { article_id: articleId } : undefined);
  });
  $("handback-btn").addEventListener("click", () => act("handback"));

  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("reply-text");
    const text = box.value.trim();
    if (!text || !state.current) return;
    $("send-btn").disabled = true;
    showError("");
    try {
      const data = await api("POST", "/api/agent/conversations/" + encodeURIComponent(state.current) + "/messages", { text });
      box.value = "";
      appendMessage(data.message);
    } catch (err) {
      showError(err.message);
    } finally {
      $("send-btn").disabled = false;
    }
  });

  $("reply-text").addEventListener("input", () => {
    const now = Date.now();
    if (state.current && now - state.lastTyping > 2000) {
      state.lastTyping = now;
      send({ type: "typing", conversation_id: state.current });
    }
  });

  // --- live updates -------------------------------------------------------------------------

  let typingTimer = null;

  function send(frame) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
  }

  function onFrame(frame) {
    if (frame.type === "hello") {
      state.queue = frame.queue;
      renderQueue();
      return;
    }
    if (frame.type === "queue" || frame.type === "conversation") {
      loadQueue().catch(() => {});
    }
    if (!frame.conversation_id || frame.conversation_id !== state.current) return;
    if (frame.type === "message") {
      appendMessage(frame);
      if (frame.role === "customer") $("customer-typing").hidden = true;
    } else if (frame.type === "state") {
      renderState(frame.state, frame.reason);
    } else if (frame.type === "typing" && frame.role === "customer") {
      $("customer-typing").hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { $("customer-typing").hidden = true; }, 4000);
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + window.location.host + "/ws/agent");
    state.ws = ws;
    ws.onopen = () => {
      state.retry = 0;
      $("connection").textContent = "Live";
      document.body.dataset.live = "1";
      if (state.current) {
        send({ type: "watch", conversation_id: state.current });
        openConversation(state.current).catch(() => {});
      }
    };
    ws.onmessage = (event) => {
      try { onFrame(JSON.parse(event.data)); } catch (err) { console.error(err); }
    };
    ws.onclose = () => {
      document.body.dataset.live = "0";
      $("connection").textContent = "Reconnecting…";
      const delay = Math.min(10000, 500 * 2 ** state.retry++);
      setTimeout(connect, delay);
    };
  }

  loadQueue().catch((err) => showError(err.message));
  connect();
})();
