/*!
 * Supportbot chat widget. Plain JavaScript, no dependencies; scripts/build_widget.sh makes the
 * minified copy that sites embed (supportbot.min.js), this file stays the readable source.
 *
 * Embed with one tag:
 *   <script src="https://support.example.com/widget/supportbot.js"
 *           data-server="https://support.example.com" defer></script>
 *
 * Options (data- attributes on the script tag):
 *   data-server  base URL of the Supportbot service (default: the origin this script came from)
 *   data-title   panel title (default "Support")
 *   data-color   accent colour, any CSS colour (default #2563eb)
 *   data-open    "true" opens the panel on page load
 *   data-locale  language of the widget and the bot's texts: en, de, fr, es (default: the
 *                page's <html lang>, else the browser's language)
 *
 * The page's API is window.Supportbot (open, close, ask, identify, logout, setLocale, on);
 * see docs/widget.md.
 *
 * Everything renders inside one <supportbot-widget> element with a Shadow DOM, so the host
 * page's CSS cannot reach in and ours cannot leak out. Untrusted text reaches the DOM only
 * through textContent or through renderMarkdown(), which escapes HTML before it adds the few
 * tags it allows. The WebSocket protocol is described in docs/protocol.md.
 */
(function () {
  "use strict";

  var TAG = "supportbot-widget";
  if (typeof window === "undefined" || !window.customElements || customElements.get(TAG)) {
    return;
  }

  var STORAGE_VERSION = "v1";
  var ACK_TIMEOUT_MS = 12000;
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  var CLOSE_GOING_AWAY = 1001;
  var CLOSE_SERVICE_RESTART = 1012;
  var TYPING_SEND_EVERY_MS = 3000;
  var TYPING_SHOW_MS = 8000;
  var MAX_STORED_MESSAGES = 200;
  var MAX_TEXT_CHARS = 2000;
  var COUNT_FROM = 0.8; // show the character count from 80% of the limit

  // ---------------------------------------------------------------------------------------
  // Message catalogues. Every text the widget shows comes from a catalogue, so a page in German
  // gets a German widget. English lives here (the fallback, key by key); German, French and
  // Spanish are small separate scripts (widget/locale.<tag>.js) fetched only by pages that need
  // them, so English pages do not download three languages they never show (the size budget).
  // Chosen from data-locale, then the page's <html lang>, then the browser's language.
  // ---------------------------------------------------------------------------------------

  var CATALOGUES = {
    en: {
      open: "Open chat: {title}", closeT: "Close chat: {title}", close: "Close chat",
      connecting: "Connecting…", reconnecting: "Reconnecting…", log: "Conversation",
      hi: "Hi there!",
      intro: "Ask us anything — we answer from our help center, and a person can take over any time.",
      human: "Talk to a person", soon: "A person will be with you soon",
      talking: "You're talking to a person", placeholder: "Type your question…",
      yourMsg: "Your message", send: "Send message", powered: "Powered by Supportbot",
      notSent: "Not sent.", retry: "Retry", notSentSay: "Your message was not sent.",
      sending: "Sending…", offlineHuman: "You're offline — we'll connect you to a person once you're back online.",
      agent: "Support agent", you: "You", notice: "Notice", said: "{who} said",
      pick: "Suggested articles: pick the one closest to your question",
      pickOffline: "You're offline. Pick again once you're back online.",
      noneSay: "None of these. Connecting you with a person.", picked: "You picked {title}.",
      none: "None of these", sources: "Sources:", article: "Article",
      thanks: "Thanks for your feedback!", sorry: "Thanks — sorry about that. You can ask again, or talk to a person.",
      helpful: "Was this helpful?", yes: "Yes", no: "No", yesL: "Yes, this was helpful",
      noL: "No, this was not helpful", rate: "How would you rate this conversation?",
      rateL: "Rate from 1 (poor) to 5 (great)", poor: "Poor", great: "Great",
      outOf: "{n} out of {max}", ces: "How easy was it to get help?",
      cesL: "From 1 (very hard) to 7 (very easy)", hard: "Very hard", easy: "Very easy",
      thankYou: "Thank you!", thankFb: "Thank you for your feedback!", thankRate: "Thank you for your rating!",
      waitSay: "Waiting for a person to join.", joinedSay: "A person joined the conversation.",
      resolvedSay: "The conversation is resolved.", asap: "as soon as possible", today: "today",
      tomorrow: "tomorrow", onDay: "on {day}", dayAt: "{day} at {time}",
      chatting: "You're chatting with {name}", team: "our team", people: "People available",
      botOnly: "Bot only — a person replies {when}", onlineHuman: "Online — a person will reply here",
      onlineBot: "Online — we usually reply in seconds", lost: "Connection lost. Reconnecting…",
      retryNow: "Retry now", waitBanner: "Waiting for a person to join — we'll reply right here.",
      joined: "{name} joined the conversation.", aPerson: "A person",
      resolved: "This conversation is resolved.", newConv: "New conversation",
      typing: "{name} is typing…", anAgent: "An agent", tooLong: "Too long to send.",
      fast: "You're going a bit fast — please wait a moment and try again.",
      wrong: "Sorry, something went wrong. Please try again.",
      hiName: "Hi {name}!", earlier: "Earlier conversations", mailAsk: "Get the reply by e-mail too:",
      mailOk: "Save", mailTo: "We'll also e-mail the reply to {email}.",
      count: "{n} of {max} characters", over: "{n} characters over the limit of {max}: shorten your message to send it.",
    },
  };

  var LOCALES = ["en", "de", "fr", "es"];

  function catalogue(locale) {
    return locale === "en" ? CATALOGUES.en : (window.SupportbotLocales || {})[locale];
  }

  /** The first supported catalogue among BCP 47 tags, by their language (de-AT -> de). */
  function pickLocale(tags) {
    for (var i = 0; i < tags.length; i++) {
      var tag = String(tags[i] || "").toLowerCase().replace(/_/g, "-");
      if (!tag) continue;
      var lang = tag.split("-")[0];
      if (LOCALES.indexOf(lang) >= 0) return lang;
    }
    return "en";
  }

  /** A catalogue text with {name} placeholders filled; English when the key is missing. */
  function translate(locale, key, params) {
    var text = (catalogue(locale) || {})[key];
    if (text == null) text = CATALOGUES.en[key];
    if (text == null) return key;
    return String(text).replace(/\{(\w+)\}/g, function (m, name) {
      return params && params[name] != null ? String(params[name]) : m;
    });
  }

  // ---------------------------------------------------------------------------------------
  // Safe Markdown: escape everything first, then add back only <p>, <br>, <strong>, <em>, <ul>,
  // <ol>, <li> (one level of nesting), <table> (<thead>, <tbody>, <tr>, <th>, <td>) and
  // <a href="http(s)://..."> built from the escaped text: a table cell is escaped text like any
  // other.
  // ---------------------------------------------------------------------------------------

  var ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; });
  }

  function isHttpUrl(url) {
    return typeof url === "string" && /^https?:\/\/[^\s]+$/i.test(url);
  }

  // Inline formatting over text that is ALREADY escaped: links, bare URLs, **bold**, *italic*.
  function renderInline(escaped) {
    var links = [];
    var LINK_TOKEN = "\u0000L";
    // [label](http(s)://url) — quotes are already &quot; so the href cannot break out.
    var out = escaped.replace(
      /\[([^\]\n]{1,300})\]\((https?:\/\/(?:(?!&quot;|&#39;|&lt;|&gt;)[^\s()<>]){1,2000})\)/gi,
      function (_m, label, href) {
        links.push(
          '<a href="' + href + '" target="_blank" rel="noopener noreferrer nofollow">' +
            label + "</a>"
        );
        return LINK_TOKEN + (links.length - 1) + "\u0000";
      }
    );
    // Bare http(s) URLs (trailing punctuation stays outside the link).
    out = out.replace(/\bhttps?:\/\/(?:(?!&quot;|&#39;|&lt;|&gt;)[^\s\u0000])+/gi, function (url) {
      var href = url.replace(/(?:[.,;:!?)]|&amp;)+$/, "");
      var rest = url.slice(href.length);
      if (!/^https?:\/\/[^/?#.]/i.test(href)) return url;
      links.push(
        '<a href="' + href + '" target="_blank" rel="noopener noreferrer nofollow">' +
          href + "</a>"
      );
      return LINK_TOKEN + (links.length - 1) + "\u0000" + rest;
    });
    out = out.replace(/\*\*([^*\n][^*]*?)\*\*/g, "<strong>$1</strong>");
    out = out.replace(/__([^_\n][^_]*?)__/g, "<strong>$1</strong>");
    // *italic*: opened before a non-space, closed after one, not inside a word ("2*3*4").
    out = out.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g, "$1<em>$2</em>");
    return out.replace(/\u0000L(\d+)\u0000/g, function (_m, i) {
      return links[Number(i)];
    });
  }

  // A Markdown table's header rule: | --- | :---: | ---: |
  var TABLE_RULE = /^\s{0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function tableCells(line) {
    // An escaped pipe (\|) is text inside a cell, not a cell border.
    var row = line.trim().replace(/\\\|/g, "\u0000P").replace(/^\|/, "").replace(/\|$/, "");
    return row.split("|").map(function (cell) { return cell.replace(/\u0000P/g, "|").trim(); });
  }

  // Rows from line ``start`` (the header, then its rule) while lines look like rows; the HTML
  // and the index of the first line after the table.
  function renderTable(lines, start) {
    var header = tableCells(lines[start]);
    var align = tableCells(lines[start + 1]).map(function (rule) {
      var left = rule.charAt(0) === ":", right = rule.charAt(rule.length - 1) === ":";
      return left && right ? "center" : right ? "right" : "";
    });
    function cell(tag, text, i) {
      var style = align[i] ? ' style="text-align:' + align[i] + '"' : "";
      return "<" + tag + style + ">" + renderInline(text) + "</" + tag + ">";
    }
    var head = header.map(function (text, i) { return cell("th", text, i); }).join("");
    var body = [];
    var i = start + 2;
    for (; i < lines.length && /^\s{0,3}\|/.test(lines[i]); i++) {
      var cells = tableCells(lines[i]);
      var row = header.map(function (_h, j) { return cell("td", cells[j] || "", j); });
      body.push("<tr>" + row.join("") + "</tr>");
    }
    var html = "<table><thead><tr>" + head + "</tr></thead>" +
      (body.length ? "<tbody>" + body.join("") + "</tbody>" : "") + "</table>";
    return { html: html, next: i };
  }

  function renderMarkdown(text) {
    var lines = escapeHtml(String(text == null ? "" : text).replace(/\r\n?/g, "\n")).split("\n");
    var html = [];
    var paragraph = [];
    var list = null; // {tag: "ul"|"ol", items: [{text, sub: {tag, items: [text]} | null}]}

    function flushParagraph() {
      if (paragraph.length) {
        html.push("<p>" + paragraph.map(renderInline).join("<br>") + "</p>");
        paragraph = [];
      }
    }
    function listHtml(tag, items) {
      return "<" + tag + ">" + items.map(function (item) {
        var sub = item.sub ? listHtml(item.sub.tag, item.sub.items) : "";
        return "<li>" + renderInline(item.text) + sub + "</li>";
      }).join("") + "</" + tag + ">";
    }
    function flushList() {
      if (list) {
        html.push(listHtml(list.tag, list.items));
        list = null;
      }
    }

    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (/^\s{0,3}\|.*\|/.test(line) && i + 1 < lines.length &&
          TABLE_RULE.test(lines[i + 1]) && /\|/.test(lines[i + 1])) {
        flushParagraph();
        flushList();
        var table = renderTable(lines, i);
        html.push(table.html);
        i = table.next - 1;
        continue;
      }
      // An item indented under an open list's item is a sub-item (one level deep).
      var nested = list && /^\s{2,}(?:([-*+])|\d{1,3}[.)])\s+(.*)$/.exec(line);
      var bullet = /^\s{0,3}[-*+]\s+(.*)$/.exec(line);
      var numbered = /^\s{0,3}\d{1,3}[.)]\s+(.*)$/.exec(line);
      var heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (nested) {
        var parent = list.items[list.items.length - 1];
        if (!parent.sub) parent.sub = { tag: nested[1] ? "ul" : "ol", items: [] };
        parent.sub.items.push({ text: nested[2], sub: null });
      } else if (bullet || numbered) {
        flushParagraph();
        var tag = bullet ? "ul" : "ol";
        if (list && list.tag !== tag) flushList();
        if (!list) list = { tag: tag, items: [] };
        list.items.push({ text: (bullet || numbered)[1], sub: null });
      } else if (/^\s*$/.test(line)) {
        flushParagraph();
        flushList();
      } else if (heading) {
        flushParagraph();
        flushList();
        html.push("<p><strong>" + renderInline(heading[1]) + "</strong></p>");
      } else if (list && /^\s{2,}\S/.test(line)) {
        // A continuation line of the last list item (or of its last sub-item).
        var last = list.items[list.items.length - 1];
        if (last.sub) last = last.sub.items[last.sub.items.length - 1];
        last.text += " " + line.trim();
      } else {
        flushList();
        paragraph.push(line.trim());
      }
    }
    flushParagraph();
    flushList();
    return html.join("");
  }

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value == null || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function svgIcon(paths, size) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 20));
    svg.setAttribute("height", String(size || 20));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  var ICONS = {
    chat: ["M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"],
    close: ["M6 6l12 12M18 6L6 18"],
    send: ["M3 11.5L21 3l-8.5 18-2.2-7.3L3 11.5z"],
    person: ["M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M4 21a8 8 0 0 1 16 0"],
    retry: ["M20 11a8 8 0 1 0-2.3 5.7", "M20 4v7h-7"],
  };

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes); // randomUUID needs a secure context; this does not
    return Array.prototype.map
      .call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); })
      .join("");
  }

  function authorName(author) {
    if (!author) return "";
    if (typeof author === "string") return author;
    return String(author.name || author.display_name || author.email || "");
  }

  function findOwnScript() {
    if (document.currentScript && document.currentScript.src) return document.currentScript;
    var scripts = document.querySelectorAll("script[src]");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (/supportbot(\.min)?\.js(\?|#|$)/.test(scripts[i].src)) return scripts[i];
    }
    return null;
  }

  /** ws(s)://host[/prefix]/ws/chat from an http(s) base URL. */
  function chatSocketUrl(server) {
    var url = new URL(server, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = url.pathname.replace(/\/+$/, "") + "/ws/chat";
    url.search = "";
    url.hash = "";
    return url.toString();
  }

  function safeStorage() {
    try {
      var probe = "__supportbot_probe__";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (_e) {
      return null; // storage disabled (privacy mode): the chat still works, it just won't resume
    }
  }

  // ---------------------------------------------------------------------------------------
  // Styles (inside the shadow root only)
  // ---------------------------------------------------------------------------------------

  var STYLES = [
    ":host{all:initial;position:fixed;z-index:2147483000;right:0;bottom:0;width:0;height:0;",
    "--sb-accent:#2563eb;--sb-on-accent:#fff;--sb-bg:#fff;--sb-text:#1f2937;--sb-muted:#6b7280;",
    "--sb-border:#e5e7eb;--sb-bubble:#f3f4f6;--sb-radius:16px;--sb-danger:#b91c1c;",
    "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;",
    "font-size:15px;line-height:1.45;color:var(--sb-text);}",
    "*,*::before,*::after{box-sizing:border-box;}",
    "[hidden]{display:none!important;}",
    "button{font:inherit;color:inherit;cursor:pointer;border:0;background:none;margin:0;padding:0;}",
    "button:disabled{cursor:not-allowed;opacity:.55;}",
    ":focus-visible{outline:3px solid var(--sb-accent);outline-offset:2px;}",
    ".sr-only{position:absolute!important;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;",
    "clip:rect(0 0 0 0);white-space:nowrap;border:0;}",
    "svg{fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round;}",

    /* launcher */
    ".launcher{position:fixed;right:20px;bottom:20px;width:60px;height:60px;border-radius:50%;",
    "background:var(--sb-accent);color:var(--sb-on-accent);display:flex;align-items:center;",
    "justify-content:center;box-shadow:0 6px 20px rgba(0,0,0,.22);transition:transform .15s ease;}",
    ".launcher:hover{transform:scale(1.06);}",
    ".launcher:focus-visible{outline-color:var(--sb-text);outline-offset:3px;}",
    ".launcher svg{width:28px;height:28px;}",
    ".badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 5px;",
    "border-radius:10px;background:#dc2626;color:#fff;font-size:12px;font-weight:700;",
    "display:flex;align-items:center;justify-content:center;border:2px solid #fff;}",

    /* panel */
    ".panel{position:fixed;right:20px;bottom:92px;width:380px;height:min(640px,calc(100vh - 120px));",
    "background:var(--sb-bg);border-radius:var(--sb-radius);display:flex;flex-direction:column;",
    "overflow:hidden;box-shadow:0 12px 48px rgba(0,0,0,.22),0 2px 6px rgba(0,0,0,.08);",
    "animation:sb-in .18s ease-out;}",
    "@keyframes sb-in{from{opacity:0;transform:translateY(12px) scale(.98);}to{opacity:1;transform:none;}}",
    ".header{background:var(--sb-accent);color:var(--sb-on-accent);padding:14px 12px 14px 18px;",
    "display:flex;align-items:center;gap:10px;flex:none;}",
    ".header-text{flex:1;min-width:0;}",
    ".title{margin:0;font-size:16px;font-weight:650;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;}",
    ".subtitle{margin:2px 0 0;font-size:12.5px;opacity:.85;display:flex;align-items:center;gap:6px;}",
    ".dot{width:8px;height:8px;border-radius:50%;background:#9ca3af;flex:none;}",
    ".dot.online{background:#22c55e;box-shadow:0 0 0 2px rgba(255,255,255,.5);}",
    ".dot.away{background:#f59e0b;box-shadow:0 0 0 2px rgba(255,255,255,.5);}",
    ".icon-btn{width:36px;height:36px;border-radius:10px;display:flex;align-items:center;justify-content:center;}",
    ".icon-btn:hover{background:rgba(255,255,255,.16);}",
    ".header .icon-btn:focus-visible{outline-color:var(--sb-on-accent);}",

    /* banners */
    ".banner{flex:none;padding:9px 16px;font-size:13px;background:#fef3c7;color:#78350f;",
    "border-bottom:1px solid #fde68a;display:flex;align-items:center;gap:8px;}",
    ".banner.human{background:#dcfce7;color:#14532d;border-color:#bbf7d0;}",
    ".banner.resolved{background:#f3f4f6;color:#374151;border-color:var(--sb-border);}",
    ".banner.offline{background:#fee2e2;color:#7f1d1d;border-color:#fecaca;}",
    ".banner button{margin-left:auto;text-decoration:underline;font-weight:600;font-size:13px;}",

    /* transcript */
    ".log{flex:1;overflow-y:auto;padding:16px 14px 8px;display:flex;flex-direction:column;gap:10px;",
    "overscroll-behavior:contain;background:var(--sb-bg);}",
    ".empty{margin:auto 8px;text-align:center;color:var(--sb-muted);font-size:14px;}",
    ".empty strong{display:block;color:var(--sb-text);font-size:16px;margin-bottom:4px;}",
    ".msg{display:flex;flex-direction:column;max-width:86%;}",
    ".msg.customer{align-self:flex-end;align-items:flex-end;}",
    ".msg.bot,.msg.agent{align-self:flex-start;align-items:flex-start;}",
    ".msg.system{align-self:center;max-width:92%;text-align:center;}",
    ".author{font-size:12px;color:var(--sb-muted);margin:0 0 3px 4px;font-weight:600;}",
    ".bubble{padding:9px 13px;border-radius:16px;background:var(--sb-bubble);",
    "overflow-wrap:anywhere;word-break:break-word;}",
    ".customer .bubble{background:var(--sb-accent);color:var(--sb-on-accent);border-bottom-right-radius:5px;",
    "white-space:pre-wrap;}",
    ".bot .bubble,.agent .bubble{border-bottom-left-radius:5px;}",
    ".agent .bubble{background:#ecfdf5;border:1px solid #d1fae5;}",
    ".system .bubble{background:transparent;color:var(--sb-muted);font-size:13px;padding:2px 8px;}",
    ".bubble p{margin:0 0 .55em;}.bubble p:last-child{margin-bottom:0;}",
    ".bubble ul,.bubble ol{margin:.2em 0 .55em;padding-left:1.3em;}",
    ".bubble ul:last-child,.bubble ol:last-child{margin-bottom:0;}",
    ".bubble li{margin:.15em 0;}",
    ".bubble table{display:block;max-width:100%;overflow-x:auto;border-collapse:collapse;",
    "margin:.2em 0 .55em;font-size:13.5px;line-height:1.35;}",
    ".bubble table:last-child{margin-bottom:0;}",
    ".bubble th,.bubble td{border:1px solid var(--sb-border);padding:4px 8px;text-align:left;",
    "vertical-align:top;}",
    ".bubble th{background:rgba(0,0,0,.04);font-weight:600;}",
    ".bubble a{color:var(--sb-accent);text-decoration:underline;text-underline-offset:2px;}",
    ".customer .bubble a{color:inherit;}",
    ".streaming .bubble>p:last-child::after,.streaming .bubble>ul:last-child>li:last-child::after,",
    ".streaming .bubble>ol:last-child>li:last-child::after{content:'';display:inline-block;width:7px;height:1em;margin-left:2px;",
    "vertical-align:text-bottom;background:currentColor;opacity:.5;animation:sb-blink 1s steps(2) infinite;}",
    "@keyframes sb-blink{50%{opacity:0;}}",
    ".pending .bubble{opacity:.7;}",
    ".failed .bubble{background:#fee2e2;color:#7f1d1d;border:1px solid #fecaca;}",
    ".meta{font-size:11.5px;color:var(--sb-muted);margin:3px 4px 0;display:flex;align-items:center;gap:6px;}",
    ".failed .meta{color:var(--sb-danger);}",
    ".retry{color:var(--sb-danger);font-weight:600;text-decoration:underline;font-size:11.5px;",
    "display:inline-flex;align-items:center;gap:3px;}",
    ".sources{margin:6px 2px 0;font-size:12.5px;color:var(--sb-muted);display:flex;flex-wrap:wrap;gap:5px;",
    "align-items:center;}",
    ".sources a,.sources span.src{display:inline-block;padding:2px 9px;border:1px solid var(--sb-border);",
    "border-radius:999px;color:var(--sb-text);text-decoration:none;background:#fff;max-width:100%;",
    "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;}",
    ".sources a:hover{border-color:var(--sb-accent);color:var(--sb-accent);}",
    ".feedback{margin:5px 2px 0;font-size:12.5px;color:var(--sb-muted);display:flex;align-items:center;gap:6px;}",
    ".feedback button{padding:2px 10px;border:1px solid var(--sb-border);border-radius:999px;background:#fff;",
    "font-size:12.5px;color:var(--sb-text);}",
    ".feedback button:hover{border-color:var(--sb-accent);color:var(--sb-accent);}",
    /* "which of these?": the articles the bot offers, as buttons under its message */
    ".suggestions{margin:7px 0 0;display:flex;flex-direction:column;align-items:stretch;gap:6px;",
    "max-width:100%;}",
    ".suggestions .choice{text-align:left;padding:7px 12px;border:1px solid var(--sb-accent);",
    "border-radius:12px;background:#fff;color:var(--sb-accent);font-size:14px;font-weight:550;}",
    ".suggestions .choice:hover:not(:disabled){background:var(--sb-accent);color:var(--sb-on-accent);}",
    ".suggestions .choice.none{border-color:var(--sb-border);color:var(--sb-muted);font-weight:500;}",
    ".suggestions .choice:disabled{opacity:.5;}",
    ".suggestions .choice.chosen{opacity:1;background:var(--sb-accent);color:var(--sb-on-accent);}",
    ".typing{align-self:flex-start;display:flex;align-items:center;gap:8px;color:var(--sb-muted);font-size:12.5px;}",
    ".typing .dots{background:var(--sb-bubble);border-radius:16px;padding:10px 13px;display:flex;gap:4px;}",
    ".typing .dots i{width:7px;height:7px;border-radius:50%;background:#9ca3af;display:block;",
    "animation:sb-bounce 1.2s infinite ease-in-out;}",
    ".typing .dots i:nth-child(2){animation-delay:.15s;}.typing .dots i:nth-child(3){animation-delay:.3s;}",
    "@keyframes sb-bounce{0%,60%,100%{transform:translateY(0);opacity:.6;}30%{transform:translateY(-4px);opacity:1;}}",

    /* footer / composer */
    ".actions{flex:none;display:flex;justify-content:center;padding:6px 12px 0;}",
    ".handoff{display:inline-flex;align-items:center;gap:6px;font-size:13px;color:var(--sb-muted);",
    "padding:5px 12px;border-radius:999px;border:1px solid var(--sb-border);background:#fff;}",
    ".handoff:hover:not(:disabled){color:var(--sb-accent);border-color:var(--sb-accent);}",
    ".handoff svg{width:15px;height:15px;}",
    ".composer{flex:none;display:flex;align-items:flex-end;gap:8px;padding:10px 12px 12px;",
    "border-top:1px solid var(--sb-border);margin-top:8px;background:var(--sb-bg);}",
    ".composer textarea{flex:1;resize:none;border:1px solid var(--sb-border);border-radius:12px;",
    "padding:9px 12px;font:inherit;font-size:15px;color:var(--sb-text);background:#fff;",
    "max-height:120px;min-height:40px;line-height:1.4;outline:none;}",
    ".composer textarea:focus{border-color:var(--sb-accent);box-shadow:0 0 0 3px rgba(0,0,0,.06);}",
    ".send{width:40px;height:40px;border-radius:12px;background:var(--sb-accent);color:var(--sb-on-accent);",
    "display:flex;align-items:center;justify-content:center;flex:none;}",
    ".send svg{width:19px;height:19px;}",
    ".count{flex:none;padding:0 14px 4px;font-size:12px;color:var(--sb-muted);text-align:right;}",
    ".count.over{color:var(--sb-danger);font-weight:600;text-align:left;}",
    ".composer textarea[aria-invalid]{border-color:var(--sb-danger);}",
    ".powered{flex:none;text-align:center;font-size:11px;color:var(--sb-muted);padding:0 0 8px;}",

    /* phones: the panel takes the whole screen */
    "@media (max-width:480px){",
    ".panel{inset:0;right:0;bottom:0;width:100%;height:100%;max-height:none;border-radius:0;}",
    "@supports (height:100dvh){.panel{height:100dvh;}}",
    ".launcher{right:16px;bottom:16px;}",
    ".composer{padding-bottom:max(12px,env(safe-area-inset-bottom));}",
    ".msg{max-width:90%;}",
    "}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important;",
    "scroll-behavior:auto!important;}}",
  ].join("");

  // ---------------------------------------------------------------------------------------
  // The element
  // ---------------------------------------------------------------------------------------

  var SupportbotWidget = class extends HTMLElement {};
  var proto = SupportbotWidget.prototype;

  proto.connectedCallback = function () {
    if (this._started) return;
    this._started = true;
    var self = this;
    this.server = (this.getAttribute("server") || window.location.origin).replace(/\/+$/, "");
    this.locale = pickLocale([this.getAttribute("locale"), document.documentElement.lang,
      navigator.language].concat(navigator.languages || []));
    // A German page should not flash English first: build once its catalogue is here.
    this._script("locale." + this.locale, catalogue(this.locale), function () { self._init(); });
  };

  proto.t = function (key, params) {
    return translate(this.locale, key, params);
  };

  /** Load widget/<name>.js (a script from our own server, so a page's CSP that allows the
   * widget allows it too: a language's texts, or extras.js), then ``done``; at once when
   * ``have`` says it is here already, and after 4 s without it. */
  proto._script = function (name, have, done) {
    if (have) { done(); return; }
    var finished = false;
    var node = document.createElement("script");
    function finish() {
      if (finished) return;
      finished = true;
      node.remove();
      done();
    }
    node.src = this.server + "/widget/" + name + ".js";
    node.onload = node.onerror = finish;
    window.setTimeout(finish, 4000);
    this.appendChild(node); // light DOM of our element: nothing is added to the page's <head>
  };

  proto.disconnectedCallback = function () {
    // Removed from the page: stop reconnecting.
    this._stopped = true;
    clearTimeout(this._reconnectTimer);
    if (this._ws) {
      try { this._ws.close(1000); } catch (_e) { /* already closed */ }
    }
  };

  proto._init = function () {
    this.titleText = (this.getAttribute("title-text") || "Support").slice(0, 80);
    this.storage = safeStorage();
    this.storageKey = "supportbot:" + STORAGE_VERSION + ":" + this.server;
    this._ws = null;
    this.connected = false;
    this.everConnected = false;
    this.attempt = 0;
    this.state = "bot";
    this.lastTypingSent = 0;
    this.streams = {}; // reply_to -> {node, text}
    this.nodesBySeq = {};
    this.nodesByClientId = {};
    this.unread = 0;
    this.data = this._load();
    this._checkUser();
    this.state = this.data.state || "bot";

    var root = this.attachShadow({ mode: "open" });
    this.root = root;
    this._applyStyles(root);
    this._build(root);
    this._applyColor(this.getAttribute("color"));
    this._restoreTranscript();

    var self = this;
    window.addEventListener("online", function () { self._reconnectSoon(0); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !self.connected) self._reconnectSoon(0);
    });

    if (window.matchMedia) {
      var phone = window.matchMedia("(max-width: 480px)");
      var onResize = function () { if (!self.panel.hidden) self.launcher.hidden = phone.matches; };
      if (phone.addEventListener) phone.addEventListener("change", onResize);
      else if (phone.addListener) phone.addListener(onResize);
    }

    // Phones: the on-screen keyboard shrinks the visual viewport, not the layout viewport, so
    // a full-screen panel would keep its input under the keyboard; follow the visual one.
    if (window.visualViewport) {
      var fit = function () { self._fitViewport(); };
      window.visualViewport.addEventListener("resize", fit);
      window.visualViewport.addEventListener("scroll", fit);
    }

    var wasOpen = false;
    try { wasOpen = window.sessionStorage.getItem(this.storageKey + ":open") === "1"; } catch (_e) { /* */ }
    if (this.getAttribute("open") === "true" || wasOpen) {
      this.open(false);
    } else if (this.data.conversation_id) {
      // A conversation is under way: connect now so replies (an agent's, say) show as unread.
      this._connect();
    }
    this._ready = true;
    widgetReady(this);
  };

  proto._fitViewport = function () {
    var vv = window.visualViewport;
    var style = this.panel.style;
    if (!vv || this.panel.hidden || !this._isFullScreen()) {
      style.height = style.top = "";
      return;
    }
    style.top = vv.offsetTop + "px";
    style.height = vv.height + "px";
    this._scrollToEnd(true);
  };

  /** Switch the widget's language: load the catalogue, then draw the panel again in it. */
  proto.setLocale = function (tag) {
    var self = this;
    var locale = pickLocale([tag]);
    this._script("locale." + locale, catalogue(locale), function () {
      self.locale = locale;
      if (!self.panel) return;
      var wasOpen = !self.panel.hidden;
      var focused = self.root.activeElement === self.input;
      var draft = self.input.value;
      self._abandonStreams(); // the stored answer still arrives
      self.panel.remove();
      self.launcher.remove();
      self.nodesBySeq = {};
      self.nodesByClientId = {};
      self.csatNode = null;
      self._build(self.root);
      self._restoreTranscript();
      self.input.value = draft;
      self._onInput();
      if (wasOpen) self.open(focused);
    });
  };

  proto._applyStyles = function (root) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
      root.adoptedStyleSheets = [sheet]; // also works under a strict style-src CSP
    } catch (_e) {
      root.appendChild(el("style", { text: STYLES }));
    }
  };

  proto._applyColor = function (color) {
    if (!color || !window.CSS || !window.CSS.supports("color", color)) return;
    this.style.setProperty("--sb-accent", color);
    // Pick readable text on the accent: white unless the colour is light.
    var probe = el("span");
    probe.style.color = color;
    this.root.appendChild(probe);
    var rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || []).map(Number);
    probe.remove();
    if (rgb.length >= 3) {
      var lum = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
      this.style.setProperty("--sb-on-accent", lum > 0.62 ? "#111827" : "#ffffff");
    }
  };

  proto._build = function (root) {
    var self = this;
    var panelId = "supportbot-panel";

    this.launcher = el("button", {
      className: "launcher",
      type: "button",
      "aria-label": this.t("open", { title: this.titleText }),
      "aria-expanded": "false",
      "aria-controls": panelId,
      part: "launcher",
    }, [svgIcon(ICONS.chat, 28)]);
    this.badge = el("span", { className: "badge", hidden: true, "aria-hidden": "true" });
    this.launcher.appendChild(this.badge);
    this.launcher.addEventListener("click", function () { self.toggle(); });

    this.statusDot = el("span", { className: "dot", "aria-hidden": "true" });
    this.statusText = el("span", { text: this.t("connecting") });
    this.subtitle = el("p", { className: "subtitle" }, [this.statusDot, this.statusText]);
    this.closeBtn = el("button", {
      className: "icon-btn", type: "button", "aria-label": this.t("close"),
    }, [svgIcon(ICONS.close, 20)]);
    this.closeBtn.addEventListener("click", function () { self.close(); });

    var header = el("div", { className: "header" }, [
      el("div", { className: "header-text" }, [
        el("h2", { className: "title", id: "supportbot-title", text: this.titleText }),
        this.subtitle,
      ]),
      this.closeBtn,
    ]);

    this.banner = el("div", { className: "banner", role: "status", hidden: true });
    this.bannerText = el("span");
    this.bannerAction = el("button", { type: "button", hidden: true });
    this.banner.appendChild(this.bannerText);
    this.banner.appendChild(this.bannerAction);
    this.bannerAction.addEventListener("click", function () {
      if (self._bannerHandler) self._bannerHandler();
    });

    this.log = el("div", {
      className: "log", role: "region", "aria-label": this.t("log"), tabindex: "0",
    });
    this.emptyState = el("div", { className: "empty" }, [
      el("strong", { text: this._hi() }),
      el("span", { text: this.t("intro") }),
    ]);
    this.log.appendChild(this.emptyState);
    this.typingNode = el("div", { className: "typing", hidden: true }, [
      el("span", { className: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]),
      el("span", { className: "typing-label" }),
    ]);
    this.log.appendChild(this.typingNode);

    // Screen readers hear each new incoming message once, not every streamed fragment.
    this.live = el("div", { className: "sr-only", "aria-live": "polite", "aria-atomic": "true" });

    this.handoffBtn = el("button", { className: "handoff", type: "button" }, [
      svgIcon(ICONS.person, 15), el("span", { text: this.t("human") }),
    ]);
    this.handoffBtn.addEventListener("click", function () { self.requestHandoff(); });

    this.input = el("textarea", {
      id: "supportbot-input", rows: "1", placeholder: this.t("placeholder"),
      autocomplete: "off", enterkeyhint: "send", "aria-describedby": "supportbot-count",
    });
    // No maxlength: the browser would silently cut a long paste. The count says what is too
    // much, and a message over the limit is refused until it is shortened.
    this.counter = el("div", { className: "count", id: "supportbot-count", hidden: true });
    this.sendBtn = el("button", {
      className: "send", type: "submit", "aria-label": this.t("send"),
    }, [svgIcon(ICONS.send, 19)]);
    var form = el("form", { className: "composer" }, [
      el("label", { className: "sr-only", for: "supportbot-input", text: this.t("yourMsg") }),
      this.input,
      this.sendBtn,
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self._submit();
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        self._submit();
      }
    });
    this.input.addEventListener("input", function () {
      self._onInput();
      self._sendTyping();
    });

    // extras.js (lazily loaded) draws here: the e-mail follow-up, earlier conversations.
    this.spot = el("div");

    this.panel = el("div", {
      className: "panel", id: panelId, role: "dialog", "aria-labelledby": "supportbot-title",
      hidden: true, part: "panel",
    }, [
      header,
      this.banner,
      this.spot,
      this.log,
      this.live,
      el("div", { className: "actions" }, [this.handoffBtn]),
      form,
      this.counter,
      el("div", { className: "powered", text: this.t("powered") }),
    ]);
    this.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.stopPropagation();
        self.close();
      } else if (event.key === "Tab" && self._isFullScreen()) {
        self._trapFocus(event);
      }
    });

    root.appendChild(this.panel);
    root.appendChild(this.launcher);
    this._renderState();
  };

  // ----- open / close / focus ------------------------------------------------------------

  proto._isFullScreen = function () {
    return window.matchMedia && window.matchMedia("(max-width: 480px)").matches;
  };

  proto.open = function (moveFocus) {
    var opening = this.panel.hidden;
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", this.t("closeT", { title: this.titleText }));
    // On a phone the panel covers the page; hide the launcher under it.
    this.launcher.hidden = this._isFullScreen();
    this.unread = 0;
    this._renderBadge();
    try { window.sessionStorage.setItem(this.storageKey + ":open", "1"); } catch (_e) { /* */ }
    if (!this._ws) this._connect();
    this._fitViewport();
    this._scrollToEnd(true);
    if (moveFocus !== false) this.input.focus();
    if (opening) emit("open", {});
  };

  proto.close = function () {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.launcher.hidden = false;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", this.t("open", { title: this.titleText }));
    try { window.sessionStorage.removeItem(this.storageKey + ":open"); } catch (_e) { /* */ }
    this.launcher.focus();
    emit("close", {});
  };

  proto.toggle = function () {
    if (this.panel.hidden) this.open(true);
    else this.close();
  };

  proto._trapFocus = function (event) {
    var focusable = Array.prototype.filter.call(
      this.panel.querySelectorAll("button, a[href], textarea, [tabindex='0']"),
      function (node) { return !node.disabled && !node.hidden && node.offsetParent !== null; }
    );
    if (!focusable.length) return;
    var first = focusable[0];
    var last = focusable[focusable.length - 1];
    var active = this.root.activeElement;
    if (event.shiftKey && active === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && active === last) {
      event.preventDefault();
      first.focus();
    }
  };

  /** The character count near and over the limit; over it, the message cannot be sent. */
  proto._onInput = function () {
    this._autosize();
    var n = this.input.value.replace(/^\s+|\s+$/g, "").length;
    var over = n > MAX_TEXT_CHARS;
    this.counter.hidden = n < MAX_TEXT_CHARS * COUNT_FROM;
    this.counter.classList.toggle("over", over);
    this.counter.textContent = over
      ? this.t("over", { n: n - MAX_TEXT_CHARS, max: MAX_TEXT_CHARS })
      : this.t("count", { n: n, max: MAX_TEXT_CHARS });
    if (over) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
    this.sendBtn.disabled = over;
    return !over;
  };

  proto._autosize = function () {
    var follow = this._atEnd(); // a taller composer must not hide the latest message
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight + 2, 120) + "px";
    if (follow) this.log.scrollTop = this.log.scrollHeight;
  };

  /** Is the reader at (or near) the end of the transcript? Ask before adding content. */
  proto._atEnd = function () {
    var log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  };

  /** Follow new content only if the reader was at the end (or when forced). */
  proto._scrollToEnd = function (follow) {
    var log = this.log;
    if (follow) {
      window.requestAnimationFrame(function () { log.scrollTop = log.scrollHeight; });
    }
  };

  proto._renderBadge = function () {
    this.badge.hidden = this.unread === 0;
    this.badge.textContent = this.unread > 9 ? "9+" : String(this.unread);
  };

  proto.say = function (text) {
    var live = this.live;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  };

  // ----- persistence -----------------------------------------------------------------------

  /** A conversation record with nothing in it yet. */
  function emptyData(outbox) {
    return { conversation_id: null, resume_token: null, last_seq: 0, messages: [],
      outbox: outbox || [], feedback: {}, choices: {}, csat_done: false, state: "bot" };
  }

  proto._load = function () {
    var empty = emptyData();
    if (!this.storage) return empty;
    try {
      var parsed = JSON.parse(this.storage.getItem(this.storageKey) || "null");
      if (!parsed || typeof parsed !== "object") return empty;
      Object.keys(empty).forEach(function (key) {
        if (parsed[key] === undefined) parsed[key] = empty[key];
      });
      return parsed;
    } catch (_e) {
      return empty;
    }
  };

  proto.save = function () {
    if (!this.storage) return;
    var data = this.data;
    if (data.messages.length > MAX_STORED_MESSAGES) {
      data.messages = data.messages.slice(-MAX_STORED_MESSAGES);
    }
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(data));
    } catch (_e) { /* quota: keep going without persistence */ }
  };

  proto._resetConversation = function () {
    this.data = emptyData(this.data.outbox);
    this.nodesBySeq = {};
    this.streams = {};
    this.csatNode = null;
    this.agentName = "";
    this.state = "bot";
    var log = this.log;
    Array.prototype.slice.call(log.children).forEach(function (node) {
      if (node.classList.contains("msg") && !node.classList.contains("customer-local")) node.remove();
      if (node.classList.contains("csat")) node.remove();
    });
    this.emptyState.hidden = log.querySelector(".msg") !== null;
  };

  proto._restoreTranscript = function () {
    var self = this;
    this.data.messages.forEach(function (m) { self._renderMessage(m, true); });
    this.data.outbox.forEach(function (o) { self._renderPending(o); });
    if (this.state === "resolved" && !this.data.csat_done) this._showCsat();
    this._renderState();
  };

  // ----- connection ------------------------------------------------------------------------

  proto._connect = function () {
    if (this._stopped || this._ws) return;
    var self = this;
    var ws;
    this._setStatus(this.everConnected ? "reconnecting" : "connecting");
    try {
      ws = new WebSocket(chatSocketUrl(this.server));
    } catch (_e) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = function () { self._sendHello(ws); };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (_e) { return; }
      if (frame && typeof frame.type === "string") self._onFrame(frame);
    };
    ws.onclose = function (event) {
      if (self._ws !== ws) return;
      self._ws = null;
      self.connected = false;
      self._hideTyping();
      self._abandonStreams();
      if (!self.everConnected && self.attempt >= 2 && !self._warned) {
        // A refused origin looks like any failed handshake to a page: say what to check.
        self._warned = true;
        console.warn("Supportbot: cannot connect to " + chatSocketUrl(self.server) + ". If the " +
          "server is up, check that this page's origin (" + window.location.origin + ") is in " +
          "SUPPORTBOT_ALLOWED_ORIGINS.");
      }
      if (!self._stopped) {
        // Every close reconnects and resumes. 1012 (service restart) is what the server sends
        // when it shuts down or restarts, 1001 (going away) what a proxy in front of it may
        // send: the restarted server replays what was missed, including an answer in flight.
        if (event.code === CLOSE_SERVICE_RESTART || event.code === CLOSE_GOING_AWAY) {
          self.attempt = 0; // the backoff's jitter spreads a fleet of widgets; no penalty here
        }
        self._setStatus(self.everConnected ? "reconnecting" : "connecting", event.code);
        self._scheduleReconnect();
      }
    };
    ws.onerror = function () { /* onclose follows and schedules the retry */ };
  };

  proto._sendHello = function (ws) {
    var hello = { type: "hello", visitor: {
      page: (window.location.origin + window.location.pathname).slice(0, 500),
      title: document.title.slice(0, 200),
      language: navigator.language || "",
    }, locale: this.locale };
    if (this.data.conversation_id && this.data.resume_token) {
      hello.conversation_id = this.data.conversation_id;
      hello.resume_token = this.data.resume_token;
      hello.last_seq = this.data.last_seq || 0;
    }
    if (currentUser) hello.user = currentUser; // the site vouches for this customer
    ws.send(JSON.stringify(hello));
  };

  proto._scheduleReconnect = function () {
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
    delay = delay / 2 + Math.random() * (delay / 2); // jitter, so a restart doesn't stampede
    this.attempt += 1;
    this._reconnectSoon(delay);
  };

  proto._reconnectSoon = function (delay) {
    var self = this;
    if (this._stopped || this._ws) return;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = window.setTimeout(function () { self._connect(); }, delay);
  };

  proto.send = function (frame) {
    if (this._ws && this.connected && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  };

  proto._setStatus = function (status) {
    this.connStatus = status;
    this._renderState();
  };

  // ----- incoming frames -------------------------------------------------------------------

  proto._onFrame = function (frame) {
    var on = { welcome: this._onWelcome, ack: this._onAck, delta: this._onDelta,
      message: this._onMessage, state: this._onState, typing: this._onTyping,
      error: this._onError }[frame.type]; // newer server, older widget: ignore what we don't know
    if (on) on.call(this, frame);
    if (this.ext) this.ext(frame); // extras.js hears every frame (its own: conversations)
  };

  /** "Hi there!", or the verified customer's name. */
  proto._hi = function () {
    var c = this.customer;
    return c && c.name ? this.t("hiName", c) : this.t("hi");
  };

  proto._onWelcome = function (frame) {
    if (this.data.conversation_id && frame.conversation_id !== this.data.conversation_id) {
      // Our conversation could not be resumed (expired, or the token was refused): start clean,
      // but keep what the customer typed and has not seen confirmed.
      this._resetConversation();
    }
    this.data.conversation_id = frame.conversation_id;
    this.data.user_id = currentUserId(); // whose conversation this is, for _checkUser
    if (frame.resume_token) this.data.resume_token = frame.resume_token;
    this.connected = true;
    this.everConnected = true;
    this.attempt = 0;
    this._setAvailability(frame);
    // Known customers (the site's hash proved the id) are greeted by name; they and anyone the
    // server can e-mail replies to get extras.js: earlier conversations, the e-mail option.
    var c = frame.customer;
    var self = this;
    this.customer = c && c.verified ? { name: c.name, email: currentUser && currentUser.email } : null;
    this.mail = frame.email_replies === true;
    this.emptyState.firstChild.textContent = this._hi();
    if (this.customer || this.mail) {
      this._extras(function (x) {
        self.ext = self.ext || x.customer(self, el);
        self._renderState();
      });
    }
    if (frame.state) this._setState(frame.state, null, true);
    this.save();
    this._setStatus("online");
    // Resend what was never acknowledged, with the same client_msg_id: the server acks a resend
    // with the seq it already gave and does not store or answer it twice.
    this.data.outbox.forEach(function (item) {
      self._markPending(item.client_msg_id);
      self.send({ type: "message", client_msg_id: item.client_msg_id, text: item.text });
      self._armAckTimer(item.client_msg_id);
    });
  };

  proto._onAck = function (frame) {
    var id = frame.client_msg_id;
    if (!id) return;
    var item = null;
    this.data.outbox = this.data.outbox.filter(function (o) {
      if (o.client_msg_id === id) { item = o; return false; }
      return true;
    });
    var node = this.nodesByClientId[id];
    clearTimeout(node && node._ackTimer);
    if (typeof frame.seq === "number") {
      if (this.nodesBySeq[frame.seq] && this.nodesBySeq[frame.seq] !== node) {
        if (node) node.remove(); // the server already echoed it as a message
      } else if (node) {
        node.classList.remove("pending", "failed", "customer-local");
        node._meta.hidden = true;
        node._meta.textContent = "";
        node.dataset.seq = String(frame.seq);
        this.nodesBySeq[frame.seq] = node;
        if (item) {
          this._remember({ seq: frame.seq, role: "customer", text: item.text });
          if (!frame.duplicate) emit("message", { seq: frame.seq, role: "customer", text: item.text });
        }
      }
      if (frame.seq === (this.data.last_seq || 0) + 1) this.data.last_seq = frame.seq;
    }
    delete this.nodesByClientId[id];
    this.save();
  };

  proto._onDelta = function (frame) {
    if (typeof frame.text !== "string") return;
    this._hideTyping();
    var key = String(frame.reply_to != null ? frame.reply_to : "_");
    var stream = this.streams[key];
    if (!stream) {
      var node = this._messageNode({ role: "bot", text: "" });
      node.classList.add("streaming");
      node.setAttribute("aria-busy", "true");
      this.add(node);
      stream = this.streams[key] = { node: node, text: "", frame: 0 };
    }
    var first = !stream.text;
    stream.text += frame.text;
    if (first) {
      stream.node._bubble.innerHTML = renderMarkdown(stream.text); // sanitized; shown at once
    } else if (!stream.frame) {
      var self = this;
      stream.frame = window.requestAnimationFrame(function () {
        stream.frame = 0;
        var follow = self._atEnd();
        stream.node._bubble.innerHTML = renderMarkdown(stream.text); // sanitized
        self._scrollToEnd(follow);
      });
    }
  };

  proto._abandonStreams = function () {
    // A half-streamed answer is dropped on disconnect; the stored final message is replayed.
    var self = this;
    Object.keys(this.streams).forEach(function (key) {
      var s = self.streams[key];
      if (s.frame) window.cancelAnimationFrame(s.frame);
      s.node.remove();
    });
    this.streams = {};
  };

  proto._takeStream = function (frame) {
    var keys = Object.keys(this.streams);
    if (!keys.length) return null;
    var key = frame.reply_to != null && this.streams[String(frame.reply_to)]
      ? String(frame.reply_to) : keys[0];
    var stream = this.streams[key];
    delete this.streams[key];
    if (stream.frame) window.cancelAnimationFrame(stream.frame);
    return stream.node;
  };

  proto._onMessage = function (frame) {
    if (typeof frame.seq !== "number") return;
    var msg = {
      seq: frame.seq,
      role: ["customer", "bot", "agent", "system"].indexOf(frame.role) >= 0 ? frame.role : "system",
      text: typeof frame.text === "string" ? frame.text : "",
      sources: Array.isArray(frame.sources) ? frame.sources.slice(0, 10) : [],
      author: authorName(frame.author),
    };
    if (Array.isArray(frame.suggestions) && frame.suggestions.length) {
      msg.suggestions = frame.suggestions.slice(0, 3);
    }
    if (frame.seq > (this.data.last_seq || 0)) this.data.last_seq = frame.seq;
    if (this.nodesBySeq[msg.seq]) { this.save(); return; } // replayed after a resume: seen it

    if (msg.role === "customer" && frame.client_msg_id && this.nodesByClientId[frame.client_msg_id]) {
      this._onAck({ client_msg_id: frame.client_msg_id, seq: frame.seq });
      return;
    }
    if (msg.role !== "customer") this._hideTyping();
    var streamed = msg.role === "bot" ? this._takeStream(frame) : null;
    this._remember(msg);
    var node = this._renderMessage(msg, false, streamed);
    this.save();
    emit("message", { seq: msg.seq, role: msg.role, text: msg.text, author: msg.author || null,
      sources: msg.sources, suggestions: msg.suggestions || [] });
    if (msg.role !== "customer") {
      var who = msg.role === "agent" ? (msg.author || this.t("agent")) : msg.role === "bot" ? this.titleText : "";
      this.say((who ? who + ": " : "") + msg.text.slice(0, 500));
      if (this.panel.hidden) {
        this.unread += 1;
        this._renderBadge();
      }
    }
    return node;
  };

  proto._remember = function (msg) {
    var list = this.data.messages;
    for (var i = list.length - 1; i >= 0; i--) {
      if (list[i].seq === msg.seq) return;
      if (list[i].seq < msg.seq) break;
    }
    list.push(msg);
    list.sort(function (a, b) { return a.seq - b.seq; });
  };

  proto._onState = function (frame) {
    this._setAvailability(frame);
    this._setState(frame.state, frame.reason, false);
    this.save();
  };

  proto._setState = function (state, reason, quiet) {
    if (["bot", "awaiting_human", "human", "resolved"].indexOf(state) < 0) return;
    var previous = this.state;
    this.state = state;
    this.data.state = state;
    if (state === "resolved" && previous !== "resolved" && !this.data.csat_done) this._showCsat();
    if (state !== "resolved" && this.csatNode) { this.csatNode.remove(); this.csatNode = null; }
    if (!quiet && previous !== state) {
      var spoken = { awaiting_human: "waitSay", human: "joinedSay", resolved: "resolvedSay" }[state];
      if (spoken) this.say(this.t(spoken));
      if (state === "awaiting_human") emit("handoff", { reason: reason || null });
      if (state === "resolved") emit("resolved", { reason: reason || null });
    }
    this._renderState();
  };

  // Whether people answer now (business hours), from the welcome/state frames' `available`:
  // the header must not say "Online" at night while the notice says "a person replies tomorrow".
  proto._setAvailability = function (frame) {
    if (typeof frame.available !== "boolean") return; // an older server: keep what we know
    this.available = frame.available;
    this.nextOpening = frame.available ? null : frame.next_opening || null;
    if (this._openingTimer) { clearTimeout(this._openingTimer); this._openingTimer = null; }
    var wait = this.nextOpening ? Date.parse(this.nextOpening) - Date.now() : NaN;
    if (wait > 0 && wait < 2147483647) { // a tab left open overnight: switch at the opening
      var self = this;
      this._openingTimer = setTimeout(function () {
        self._openingTimer = null;
        self._renderState();
      }, wait + 1000);
    }
  };

  proto._peopleAvailable = function () {
    if (typeof this.available !== "boolean") return null;
    if (this.available) return true;
    var opens = this.nextOpening ? Date.parse(this.nextOpening) : NaN;
    return !isNaN(opens) && Date.now() >= opens; // the opening has passed while the tab was open
  };

  proto._describeOpening = function () {
    var when = this.nextOpening ? new Date(this.nextOpening) : null;
    if (!when || isNaN(when.getTime())) return this.t("asap");
    var day = function (d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); };
    var days = Math.round((day(when) - day(new Date())) / 86400000);
    var time = when.toLocaleTimeString(this.locale, { hour: "2-digit", minute: "2-digit" });
    var date = days <= 0 ? this.t("today") : days === 1 ? this.t("tomorrow")
      : this.t("onDay", { day: when.toLocaleDateString(this.locale, { weekday: "long" }) });
    return this.t("dayAt", { day: date, time: time });
  };

  proto._renderState = function () {
    if (!this.banner) return;
    var state = this.state;
    var online = this.connStatus === "online";
    var people = this._peopleAvailable();
    this.statusDot.classList.toggle("online", online && people !== false);
    this.statusDot.classList.toggle("away", online && people === false);
    this.subtitle.setAttribute("data-connection", online ? "online" : "connecting");
    this.statusText.textContent = !online
      ? this.t(this.connStatus === "reconnecting" ? "reconnecting" : "connecting")
      : state === "human" ? this.t("chatting", { name: this.agentName || this.t("team") })
      : people === true ? this.t("people")
      : people === false ? this.t("botOnly", { when: this._describeOpening() })
      : this.t(state === "awaiting_human" ? "onlineHuman" : "onlineBot");
    var text = "";
    var kind = "";
    var action = null;
    var self = this;
    if (this.connStatus === "reconnecting") {
      kind = "offline";
      text = this.t("lost");
      action = { label: this.t("retryNow"), run: function () { self.attempt = 0; self._reconnectSoon(0); } };
    } else if (state === "awaiting_human") {
      text = this.t("waitBanner");
    } else if (state === "human") {
      kind = "human";
      text = this.t("joined", { name: this.agentName || this.t("aPerson") });
    } else if (state === "resolved") {
      kind = "resolved";
      text = this.t("resolved");
      action = { label: this.t("newConv"), run: function () { self.newConversation(); } };
    }
    this.banner.hidden = !text;
    this.banner.className = "banner" + (kind ? " " + kind : "");
    this.bannerText.textContent = text;
    this.bannerAction.hidden = !action;
    this.bannerAction.textContent = action ? action.label : "";
    this._bannerHandler = action ? action.run : null;
    var handedOff = state === "awaiting_human" || state === "human";
    this.handoffBtn.disabled = handedOff || state === "resolved";
    this.handoffBtn.lastChild.textContent = this.t(
      state === "awaiting_human" ? "soon" : state === "human" ? "talking" : "human");
    if (this.ext) this.ext(null, people);
  };

  proto._onTyping = function (frame) {
    if (frame.role === "customer") return;
    var label = this.t("typing", {
      name: frame.role === "agent" ? this.agentName || this.t("anAgent") : this.titleText });
    this.typingNode.lastChild.textContent = label;
    var follow = this._atEnd();
    this.typingNode.hidden = false;
    this.log.appendChild(this.typingNode); // keep it last
    this._scrollToEnd(follow);
    var self = this;
    clearTimeout(this._typingTimer);
    this._typingTimer = window.setTimeout(function () { self._hideTyping(); }, TYPING_SHOW_MS);
  };

  proto._hideTyping = function () {
    clearTimeout(this._typingTimer);
    if (this.typingNode) this.typingNode.hidden = true;
  };

  proto._onError = function (frame) {
    var self = this;
    var code = frame.code;
    var id = frame.client_msg_id;
    if (code === "resume_failed" && this._ws && !this.connected) {
      // Expired or unknown conversation: start a new one on the same socket, keeping (and then
      // resending) what the customer typed but never saw confirmed.
      this._resetConversation();
      this.save();
      this._sendHello(this._ws);
      return;
    }
    if (id && this.nodesByClientId[id]) {
      if (code === "rate_limited" || code === "internal_error") {
        var wait = Math.max(500, Math.min(Number(frame.retry_after_ms) || 1000, 60000));
        var node = this.nodesByClientId[id];
        clearTimeout(node._ackTimer);
        node._ackTimer = window.setTimeout(function () { self.retry(id); }, wait);
        return;
      }
      this._markFailed(id, this.t(code === "message_too_long" ? "tooLong" : "notSent"));
      return;
    }
    if (code === "unknown_message" || code === "already_open") return;
    var text = this.t(code === "rate_limited" ? "fast" : "wrong");
    this._renderMessage({ seq: null, role: "system", text: text }, false);
  };

  // ----- outgoing ----------------------------------------------------------------------------

  proto._submit = function () {
    var text = this.input.value.replace(/\s+$/, "").replace(/^\s+/, "");
    if (!text) return false;
    if (!this._onInput()) { // over the limit: refused as it stands, never cut
      this.say(this.counter.textContent);
      this.input.focus();
      return false;
    }
    this.input.value = "";
    this._onInput();
    this.sendMessage(text);
    this.input.focus();
    return true;
  };

  /** Send ``text`` as if the customer typed it (Supportbot.ask); refused over the limit. */
  proto.ask = function (text) {
    this.open(false);
    this.input.value = String(text == null ? "" : text);
    return this._submit();
  };

  proto.sendMessage = function (text) {
    var item = { client_msg_id: newId(), text: text };
    this.data.outbox.push(item);
    this.save();
    this._renderPending(item);
    if (!this._ws) this._connect();
    if (this.send({ type: "message", client_msg_id: item.client_msg_id, text: text })) {
      this._armAckTimer(item.client_msg_id);
    } else {
      this._armAckTimer(item.client_msg_id); // still not confirmed after a while: say so
    }
  };

  proto._armAckTimer = function (clientMsgId) {
    var node = this.nodesByClientId[clientMsgId];
    if (!node) return;
    var self = this;
    clearTimeout(node._ackTimer);
    node._ackTimer = window.setTimeout(function () {
      self._markFailed(clientMsgId, self.t("notSent"));
    }, ACK_TIMEOUT_MS);
  };

  proto._markPending = function (clientMsgId) {
    var node = this.nodesByClientId[clientMsgId];
    if (!node) return;
    node.classList.remove("failed");
    node.classList.add("pending");
    node._meta.hidden = false;
    node._meta.textContent = this.t("sending");
  };

  proto._markFailed = function (clientMsgId, reason) {
    var node = this.nodesByClientId[clientMsgId];
    if (!node) return;
    var self = this;
    clearTimeout(node._ackTimer);
    node.classList.remove("pending");
    node.classList.add("failed");
    var meta = node._meta;
    meta.hidden = false;
    meta.textContent = "";
    meta.appendChild(el("span", { text: reason || this.t("notSent") }));
    var retry = el("button", { className: "retry", type: "button" }, [
      svgIcon(ICONS.retry, 12), el("span", { text: this.t("retry") }),
    ]);
    retry.addEventListener("click", function () { self.retry(clientMsgId); });
    meta.appendChild(retry);
    this.say(this.t("notSentSay") + " " + (reason || ""));
  };

  proto.retry = function (clientMsgId) {
    var item = this.data.outbox.filter(function (o) { return o.client_msg_id === clientMsgId; })[0];
    if (!item) return;
    this._markPending(clientMsgId);
    if (this.send({ type: "message", client_msg_id: item.client_msg_id, text: item.text })) {
      this._armAckTimer(clientMsgId);
    } else {
      // Offline: reconnect right away; the outbox is resent on welcome.
      this.attempt = 0;
      this._armAckTimer(clientMsgId);
      if (!this._ws) this._reconnectSoon(0);
    }
  };

  proto.requestHandoff = function () {
    if (!this.send({ type: "handoff_request" })) {
      this._renderMessage({ seq: null, role: "system", text: this.t("offlineHuman") }, false);
      return;
    }
    this.handoffBtn.disabled = true;
  };

  proto._sendTyping = function () {
    var now = Date.now();
    if (now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    if (this.send({ type: "typing" })) this.lastTypingSent = now;
  };

  /** A new conversation, or (extras.js) the earlier one ``id`` with its token ``token``. */
  proto.newConversation = function (id, token) {
    this.data.outbox = [];
    this._resetConversation();
    if (id) {
      this.data.conversation_id = id;
      this.data.resume_token = token;
    }
    this.save();
    this.state = "bot";
    this._renderState();
    if (this._ws) {
      var ws = this._ws;
      this._ws = null;
      this.connected = false;
      try { ws.close(1000); } catch (_e) { /* */ }
    }
    this.attempt = 0;
    this._connect();
    this.input.focus();
  };

  // ----- rendering ---------------------------------------------------------------------------

  proto.add = function (node) {
    var follow = this._atEnd() || node.classList.contains("customer");
    this.emptyState.hidden = true;
    this.log.insertBefore(node, this.typingNode.hidden ? null : this.typingNode);
    this._scrollToEnd(follow);
  };

  proto._messageNode = function (msg) {
    var node = el("div", { className: "msg " + msg.role, role: "article" });
    if (msg.role === "agent") {
      node.appendChild(el("div", { className: "author", text: msg.author || this.t("agent") }));
    }
    var bubble = el("div", { className: "bubble" });
    node.appendChild(bubble);
    node._bubble = bubble;
    var label = { customer: this.t("you"), bot: this.titleText,
      agent: msg.author || this.t("agent"), system: this.t("notice") }[msg.role];
    node.setAttribute("aria-label", this.t("said", { who: label }));
    return node;
  };

  proto._fillBubble = function (bubble, msg) {
    if (msg.role === "customer") {
      bubble.textContent = msg.text; // the customer's own words: always plain text
    } else {
      bubble.innerHTML = renderMarkdown(msg.text); // sanitized: escape first, then few tags
    }
  };

  proto._renderMessage = function (msg, restoring, streamedNode) {
    var node = streamedNode || this._messageNode(msg);
    var follow = this._atEnd();
    node.classList.remove("streaming");
    node.removeAttribute("aria-busy");
    var offers = msg.role === "bot" && msg.seq != null && msg.suggestions && msg.suggestions.length;
    // The text lists the offered articles too, for clients without buttons; here the buttons
    // below replace that list, so only the question above it is shown.
    this._fillBubble(node._bubble, offers
      ? { role: msg.role, text: String(msg.text).split(/\n\s*\n/)[0] } : msg);
    if (msg.seq != null) {
      node.dataset.seq = String(msg.seq);
      this.nodesBySeq[msg.seq] = node;
    }
    if (msg.role === "agent" && msg.author && msg.author !== this.agentName) {
      this.agentName = msg.author; // named in the banner, header and typing indicator
      this._renderState();
    }
    if (msg.sources && msg.sources.length) node.appendChild(this._sourcesNode(msg.sources));
    if (offers) node.appendChild(this._suggestionsNode(msg.seq, msg.suggestions));
    else if (msg.role === "bot" && msg.seq != null) node.appendChild(this._feedbackNode(msg.seq));
    if (!streamedNode) this.add(node);
    else this._scrollToEnd(follow);
    if (restoring) this._scrollToEnd(true);
    return node;
  };

  // "Which of these?": one button per offered article plus "None of these". A pick sends a
  // choose frame (the answer, or a person for "none"), is remembered, and disables the buttons.
  proto._suggestionsNode = function (seq, suggestions) {
    var self = this;
    var wrap = el("div", { className: "suggestions", role: "group",
      "aria-label": self.t("pick") });
    var buttons = [];
    function settle(chosen) {
      buttons.forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-pressed", button === chosen ? "true" : "false");
      });
      if (chosen) chosen.classList.add("chosen");
    }
    function choose(articleId, button) {
      if (!self.send({ type: "choose", seq: seq, article_id: articleId })) {
        self.say(self.t("pickOffline"));
        return;
      }
      self.data.choices[seq] = articleId;
      self.save();
      settle(button);
      self.say(articleId === null
        ? self.t("noneSay") : self.t("picked", { title: button.textContent }));
      self.input.focus();
    }
    suggestions.forEach(function (suggestion) {
      if (!suggestion || typeof suggestion.article_id !== "string") return;
      var title = String(suggestion.title || suggestion.article_id).slice(0, 120);
      var button = el("button", { type: "button", className: "choice", text: title });
      button._articleId = suggestion.article_id;
      button.addEventListener("click", function () { choose(suggestion.article_id, button); });
      buttons.push(button);
      wrap.appendChild(button);
    });
    var none = el("button", { type: "button", className: "choice none", text: this.t("none") });
    none._articleId = null;
    none.addEventListener("click", function () { choose(null, none); });
    buttons.push(none);
    wrap.appendChild(none);
    var choices = this.data.choices || (this.data.choices = {});
    if (Object.prototype.hasOwnProperty.call(choices, seq)) {
      settle(buttons.filter(function (b) { return b._articleId === choices[seq]; })[0] || null);
    }
    return wrap;
  };

  proto._sourcesNode = function (sources) {
    var wrap = el("div", { className: "sources" }, [el("span", { text: this.t("sources") })]);
    var self = this;
    var seen = {};
    sources.forEach(function (source) {
      if (!source || typeof source !== "object") return;
      var title = String(source.title || source.article_id || self.t("article")).slice(0, 120);
      var key = source.url || title;
      if (seen[key]) return;
      seen[key] = true;
      if (isHttpUrl(source.url)) {
        wrap.appendChild(el("a", {
          href: source.url, target: "_blank", rel: "noopener noreferrer", text: title, title: title,
        }));
      } else {
        wrap.appendChild(el("span", { className: "src", text: title, title: title }));
      }
    });
    return wrap;
  };

  proto._feedbackNode = function (seq) {
    var self = this;
    var wrap = el("div", { className: "feedback" });
    var given = this.data.feedback[seq];
    if (given !== undefined) {
      wrap.appendChild(el("span", { text: this.t("thanks") }));
      return wrap;
    }
    var yes = el("button", { type: "button", text: this.t("yes"), "aria-label": this.t("yesL") });
    var no = el("button", { type: "button", text: this.t("no"), "aria-label": this.t("noL") });
    function answer(helpful) {
      if (!self.send({ type: "feedback", seq: seq, helpful: helpful })) return;
      self.data.feedback[seq] = helpful;
      self.save();
      wrap.textContent = "";
      var thanks = self.t(helpful ? "thanks" : "sorry");
      wrap.appendChild(el("span", { text: thanks }));
      self.say(thanks);
      self.input.focus();
    }
    yes.addEventListener("click", function () { answer(true); });
    no.addEventListener("click", function () { answer(false); });
    wrap.appendChild(el("span", { text: this.t("helpful") }));
    wrap.appendChild(yes);
    wrap.appendChild(no);
    return wrap;
  };

  proto._renderPending = function (item) {
    var node = this._messageNode({ role: "customer", text: item.text });
    node.classList.add("pending", "customer-local");
    this._fillBubble(node._bubble, { role: "customer", text: item.text });
    var meta = el("div", { className: "meta", text: this.t("sending") });
    node.appendChild(meta);
    node._meta = meta;
    this.nodesByClientId[item.client_msg_id] = node;
    this.add(node);
    return node;
  };

  // The end-of-chat survey (rating, then customer effort) lives in extras.js, loaded only when
  // a conversation is resolved: most conversations never show it, and the build has a budget.
  proto._showCsat = function () {
    if (this.csatNode || this.data.csat_done) return;
    var self = this;
    this.csatNode = el("div", { className: "csat" });
    this.add(this.csatNode);
    this._extras(function (x) { if (self.csatNode) x.survey(self, self.csatNode, el); });
  };

  /** Load widget/extras.js unless it is here already, then ``use`` it (not at all if it cannot
   * be loaded: no survey, no extras, the chat goes on). */
  proto._extras = function (use) {
    this._script("extras", window.SupportbotExtras, function () {
      if (window.SupportbotExtras) use(window.SupportbotExtras);
    });
  };

  // Expose the sanitizer for tests and for hosts that want to reuse it.
  SupportbotWidget.renderMarkdown = renderMarkdown;
  SupportbotWidget.chatSocketUrl = chatSocketUrl;
  // The same sanitizer as DOM nodes, for pages that preview what customers will see (the admin
  // page loads this script with data-mount="false"): one renderer, so previews cannot drift.
  window.SupportbotMarkdown = {
    render: function (text) {
      var template = document.createElement("template");
      template.innerHTML = renderMarkdown(text); // sanitized: escape first, then few tags
      return template.content;
    },
  };
  // ----- known customers (docs/widget.md, "Known customers") --------------------------------
  // The site's page names its signed-in customer with data-user-id, -name, -email and -hash
  // (hex HMAC-SHA256 of the id with the site's secret, computed on its server); the widget only
  // passes them on in hello.user, the server checks the hash. The stored conversation belongs
  // to one user id: when the page names someone else (or nobody), it is dropped, so two people
  // sharing a browser never see each other's conversation.

  var currentUser = null;

  function cleanUser(user) {
    if (!user || user.id === undefined || user.id === null || String(user.id) === "") return null;
    var clean = { id: String(user.id).slice(0, 255) };
    if (user.name) clean.name = String(user.name).slice(0, 200);
    if (user.email) clean.email = String(user.email).slice(0, 320);
    if (user.hash) clean.hash = String(user.hash).slice(0, 128);
    return clean;
  }

  function userFromScript(tag) {
    if (!tag) return null;
    return cleanUser({
      id: tag.getAttribute("data-user-id"),
      name: tag.getAttribute("data-user-name"),
      email: tag.getAttribute("data-user-email"),
      hash: tag.getAttribute("data-user-hash"),
    });
  }

  function currentUserId() {
    return currentUser ? currentUser.id : null;
  }

  /** On load: a stored conversation of another user id (or of nobody) is dropped. */
  proto._checkUser = function () {
    if ((this.data.user_id || null) === currentUserId()) return false;
    var had = Boolean(this.data.conversation_id || this.data.messages.length);
    if (this.storage) {
      try { this.storage.removeItem(this.storageKey); } catch (_e) { /* */ }
    }
    this.data = this._load();
    this.data.outbox = [];
    this.data.user_id = currentUserId();
    this.save();
    return had;
  };

  /** While running: the page named another customer; start over as them. */
  proto._userChanged = function () {
    if ((this.data.user_id || null) === currentUserId()) return;
    this.data.outbox = []; // the previous person's unsent messages are not the new person's
    this._resetConversation();
    this.data.user_id = currentUserId();
    this.save();
    this._renderState();
    if (this._ws) {
      var ws = this._ws;
      this._ws = null;
      this.connected = false;
      try { ws.close(1000); } catch (_e) { /* */ }
      this.attempt = 0;
      this._connect();
    }
  };

  function eachWidget(fn) {
    Array.prototype.forEach.call(document.querySelectorAll(TAG), function (widget) {
      if (widget._started && widget.data) fn(widget);
    });
  }

  /** Internal: the page's customer is now ``user`` ({id, name?, email?, hash}). */
  function identifyUser(user) {
    currentUser = cleanUser(user);
    eachWidget(function (widget) { widget._userChanged(); });
  }

  /** Internal: the page's customer signed out; their conversation leaves this browser. */
  function logoutUser() {
    currentUser = null;
    eachWidget(function (widget) { widget._userChanged(); });
  }

  SupportbotWidget.internal = { identifyUser: identifyUser, logoutUser: logoutUser };
  var script = findOwnScript();
  currentUser = userFromScript(script);

  customElements.define(TAG, SupportbotWidget);

  // ---------------------------------------------------------------------------------------
  // The page's JavaScript API: window.Supportbot. A page may call it before this script has
  // loaded through the stub in docs/widget.md ({q: [[name, args], ...]}): the queued calls run
  // here in order, and the stub object itself becomes the API, so references to it stay good.
  // ---------------------------------------------------------------------------------------

  var listeners = {};
  var EVENTS = ["ready", "open", "close", "message", "handoff", "resolved"];

  /** Tell the page's listeners; one that throws does not stop the others or the widget. */
  function emit(name, detail) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(detail); } catch (error) { console.error("Supportbot " + name + " listener:", error); }
    });
  }

  function currentWidget() {
    var widget = document.querySelector(TAG);
    return widget && widget._ready ? widget : null;
  }

  var waiting = []; // calls that need the widget, until it is ready

  function withWidget(fn) {
    var widget = currentWidget();
    if (widget) return fn(widget);
    waiting.push(fn);
    return undefined;
  }

  /** The widget is ready: the page hears "ready" first, then its earlier calls run. */
  function widgetReady(widget) {
    emit("ready", { locale: widget.locale });
    waiting.splice(0).forEach(function (fn) { fn(widget); });
  }

  var api = {
    open: function () { withWidget(function (w) { w.open(true); }); },
    close: function () { withWidget(function (w) { w.close(); }); },
    toggle: function () { withWidget(function (w) { w.toggle(); }); },
    /** Send a question as the customer; false when refused (empty, or over the limit). */
    ask: function (text) { return withWidget(function (w) { return w.ask(text); }); },
    // identifyUser/logoutUser carry the signed identity into the hello frame (docs/widget.md).
    identify: function (user) { identifyUser(user || {}); },
    logout: function () { logoutUser(); },
    setLocale: function (tag) { withWidget(function (w) { w.setLocale(tag); }); },
    /** Listen to ``ready``, ``open``, ``close``, ``message``, ``handoff`` or ``resolved``. */
    on: function (name, fn) {
      if (EVENTS.indexOf(name) < 0 || typeof fn !== "function") return;
      (listeners[name] = listeners[name] || []).push(fn);
      if (name === "ready" && currentWidget()) fn({ locale: currentWidget().locale });
    },
    off: function (name, fn) {
      listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; });
    },
  };

  var stub = window.Supportbot && typeof window.Supportbot === "object" ? window.Supportbot : {};
  var queued = Array.isArray(stub.q) ? stub.q : [];
  Object.keys(api).forEach(function (name) { stub[name] = api[name]; });
  stub.q = { push: function (call) { run(call); } }; // late pushes to the old queue still run
  window.Supportbot = stub;

  function run(call) {
    var name = call && call[0];
    if (typeof api[name] === "function") api[name].apply(null, call[1] || []);
  }
  queued.forEach(run);

  // ---------------------------------------------------------------------------------------
  // Auto-mount from the script tag
  // ---------------------------------------------------------------------------------------

  if (!script || script.getAttribute("data-mount") === "false") return;

  function mount() {
    if (document.querySelector(TAG)) return;
    var widget = document.createElement(TAG);
    var server = script.getAttribute("data-server");
    if (!server) {
      try { server = new URL(script.src, window.location.href).origin; } catch (_e) { server = ""; }
    }
    widget.setAttribute("server", server || window.location.origin);
    ["title", "color", "open", "locale"].forEach(function (name) {
      var value = script.getAttribute("data-" + name);
      if (value) widget.setAttribute(name === "title" ? "title-text" : name, value);
    });
    document.body.appendChild(widget);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
