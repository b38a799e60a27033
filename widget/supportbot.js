/*!
 * Supportbot chat widget. Plain JavaScript, no build step, no dependencies.
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

  // ---------------------------------------------------------------------------------------
  // Safe Markdown: escape everything first, then add back only <p>, <br>, <strong>, <ul>,
  // <ol>, <li>, <table> (<thead>, <tbody>, <tr>, <th>, <td>) and <a href="http(s)://...">
  // built from the escaped text: a table cell is escaped text like any other.
  // ---------------------------------------------------------------------------------------

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  function isHttpUrl(url) {
    return typeof url === "string" && /^https?:\/\/[^\s]+$/i.test(url);
  }

  // Inline formatting over text that is ALREADY escaped: links, bare URLs, **bold**.
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
    var list = null; // {tag: "ul"|"ol", items: []}

    function flushParagraph() {
      if (paragraph.length) {
        html.push("<p>" + paragraph.map(renderInline).join("<br>") + "</p>");
        paragraph = [];
      }
    }
    function flushList() {
      if (list) {
        html.push(
          "<" + list.tag + ">" +
            list.items.map(function (item) { return "<li>" + renderInline(item) + "</li>"; }).join("") +
            "</" + list.tag + ">"
        );
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
      var bullet = /^\s{0,3}[-*+]\s+(.*)$/.exec(line);
      var numbered = /^\s{0,3}\d{1,3}[.)]\s+(.*)$/.exec(line);
      var heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (bullet || numbered) {
        flushParagraph();
        var tag = bullet ? "ul" : "ol";
        if (list && list.tag !== tag) flushList();
        if (!list) list = { tag: tag, items: [] };
        list.items.push((bullet || numbered)[1]);
      } else if (/^\s*$/.test(line)) {
        flushParagraph();
        flushList();
      } else if (heading) {
        flushParagraph();
        flushList();
        html.push("<p><strong>" + renderInline(heading[1]) + "</strong></p>");
      } else if (list && /^\s{2,}\S/.test(line)) {
        // A continuation line of the last list item.
        list.items[list.items.length - 1] += " " + line.trim();
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
    (window.crypto || window.msCrypto).getRandomValues(bytes);
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

    /* CSAT */
    ".csat{align-self:stretch;border:1px solid var(--sb-border);border-radius:14px;padding:12px;text-align:center;",
    "background:#fafafa;}",
    ".csat p{margin:0 0 8px;font-weight:600;font-size:14px;}",
    ".csat .scores{display:flex;justify-content:center;gap:6px;}",
    ".csat .scores button{width:40px;height:40px;border-radius:10px;border:1px solid var(--sb-border);",
    "background:#fff;font-weight:650;}",
    ".csat .scores button:hover{background:var(--sb-accent);color:var(--sb-on-accent);border-color:var(--sb-accent);}",
    ".csat .scale{display:flex;justify-content:space-between;font-size:11.5px;color:var(--sb-muted);",
    "margin:6px auto 0;max-width:232px;}",
    /* CES: seven answers in the width of five */
    ".csat .scores.ces{gap:5px;}.csat .scores.ces button{width:34px;height:38px;}",
    ".csat .scale.ces{max-width:268px;}",

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
    ".powered{flex:none;text-align:center;font-size:11px;color:#9ca3af;padding:0 0 8px;}",

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
    this._init();
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
    var server = this.getAttribute("server") || window.location.origin;
    this.server = server.replace(/\/+$/, "");
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

    var wasOpen = false;
    try { wasOpen = window.sessionStorage.getItem(this.storageKey + ":open") === "1"; } catch (_e) { /* */ }
    if (this.getAttribute("open") === "true" || wasOpen) {
      this.open(false);
    } else if (this.data.conversation_id) {
      // A conversation is under way: connect now so replies (an agent's, say) show as unread.
      this._connect();
    }
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
      "aria-label": "Open chat: " + this.titleText,
      "aria-expanded": "false",
      "aria-controls": panelId,
      part: "launcher",
    }, [svgIcon(ICONS.chat, 28)]);
    this.badge = el("span", { className: "badge", hidden: true, "aria-hidden": "true" });
    this.launcher.appendChild(this.badge);
    this.launcher.addEventListener("click", function () { self.toggle(); });

    this.statusDot = el("span", { className: "dot", "aria-hidden": "true" });
    this.statusText = el("span", { text: "Connecting…" });
    this.subtitle = el("p", { className: "subtitle" }, [this.statusDot, this.statusText]);
    this.closeBtn = el("button", {
      className: "icon-btn", type: "button", "aria-label": "Close chat",
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
      className: "log", role: "region", "aria-label": "Conversation", tabindex: "0",
    });
    this.emptyState = el("div", { className: "empty" }, [
      el("strong", { text: "Hi there!" }),
      el("span", { text: "Ask us anything — we answer from our help center, and a person can take over any time." }),
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
      svgIcon(ICONS.person, 15), el("span", { text: "Talk to a person" }),
    ]);
    this.handoffBtn.addEventListener("click", function () { self.requestHandoff(); });

    this.input = el("textarea", {
      id: "supportbot-input", rows: "1", placeholder: "Type your question…",
      maxlength: String(MAX_TEXT_CHARS), autocomplete: "off", enterkeyhint: "send",
    });
    this.sendBtn = el("button", {
      className: "send", type: "submit", "aria-label": "Send message",
    }, [svgIcon(ICONS.send, 19)]);
    var form = el("form", { className: "composer" }, [
      el("label", { className: "sr-only", for: "supportbot-input", text: "Your message" }),
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
      self._autosize();
      self._sendTyping();
    });

    this.panel = el("div", {
      className: "panel", id: panelId, role: "dialog", "aria-labelledby": "supportbot-title",
      hidden: true, part: "panel",
    }, [
      header,
      this.banner,
      this.log,
      this.live,
      el("div", { className: "actions" }, [this.handoffBtn]),
      form,
      el("div", { className: "powered", text: "Powered by Supportbot" }),
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
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", "Close chat: " + this.titleText);
    // On a phone the panel covers the page; hide the launcher under it.
    this.launcher.hidden = this._isFullScreen();
    this.unread = 0;
    this._renderBadge();
    try { window.sessionStorage.setItem(this.storageKey + ":open", "1"); } catch (_e) { /* */ }
    if (!this._ws) this._connect();
    this._scrollToEnd(true);
    if (moveFocus !== false) this.input.focus();
  };

  proto.close = function () {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.launcher.hidden = false;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", "Open chat: " + this.titleText);
    try { window.sessionStorage.removeItem(this.storageKey + ":open"); } catch (_e) { /* */ }
    this.launcher.focus();
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

  proto._announce = function (text) {
    var live = this.live;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  };

  // ----- persistence -----------------------------------------------------------------------

  proto._load = function () {
    var empty = { conversation_id: null, resume_token: null, last_seq: 0, messages: [],
      outbox: [], feedback: {}, choices: {}, csat_done: false, state: "bot" };
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

  proto._save = function () {
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
    var outbox = this.data.outbox;
    this.data = { conversation_id: null, resume_token: null, last_seq: 0, messages: [],
      outbox: outbox, feedback: {}, choices: {}, csat_done: false, state: "bot" };
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
    } };
    if (this.data.conversation_id && this.data.resume_token) {
      hello.conversation_id = this.data.conversation_id;
      hello.resume_token = this.data.resume_token;
      hello.last_seq = this.data.last_seq || 0;
    }
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

  proto._send = function (frame) {
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
    switch (frame.type) {
      case "welcome": return this._onWelcome(frame);
      case "ack": return this._onAck(frame);
      case "delta": return this._onDelta(frame);
      case "message": return this._onMessage(frame);
      case "state": return this._onState(frame);
      case "typing": return this._onTyping(frame);
      case "error": return this._onError(frame);
      default: return undefined; // newer server, older widget: ignore what we don't know
    }
  };

  proto._onWelcome = function (frame) {
    if (this.data.conversation_id && frame.conversation_id !== this.data.conversation_id) {
      // Our conversation could not be resumed (expired, or the token was refused): start clean,
      // but keep what the customer typed and has not seen confirmed.
      this._resetConversation();
    }
    this.data.conversation_id = frame.conversation_id;
    if (frame.resume_token) this.data.resume_token = frame.resume_token;
    this.connected = true;
    this.everConnected = true;
    this.attempt = 0;
    this._setAvailability(frame);
    if (frame.state) this._setState(frame.state, null, true);
    this._save();
    this._setStatus("online");
    // Resend what was never acknowledged, with the same client_msg_id: the server acks a resend
    // with the seq it already gave and does not store or answer it twice.
    var self = this;
    this.data.outbox.forEach(function (item) {
      self._markPending(item.client_msg_id);
      self._send({ type: "message", client_msg_id: item.client_msg_id, text: item.text });
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
        }
      }
      if (frame.seq === (this.data.last_seq || 0) + 1) this.data.last_seq = frame.seq;
    }
    delete this.nodesByClientId[id];
    this._save();
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
      this._append(node);
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
    if (this.nodesBySeq[msg.seq]) { this._save(); return; } // replayed after a resume: seen it

    if (msg.role === "customer" && frame.client_msg_id && this.nodesByClientId[frame.client_msg_id]) {
      this._onAck({ client_msg_id: frame.client_msg_id, seq: frame.seq });
      return;
    }
    if (msg.role !== "customer") this._hideTyping();
    var streamed = msg.role === "bot" ? this._takeStream(frame) : null;
    this._remember(msg);
    var node = this._renderMessage(msg, false, streamed);
    this._save();
    if (msg.role !== "customer") {
      var who = msg.role === "agent" ? (msg.author || "Agent") : msg.role === "bot" ? this.titleText : "";
      this._announce((who ? who + ": " : "") + msg.text.slice(0, 500));
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
    this._save();
  };

  proto._setState = function (state, _reason, quiet) {
    if (["bot", "awaiting_human", "human", "resolved"].indexOf(state) < 0) return;
    var previous = this.state;
    this.state = state;
    this.data.state = state;
    if (state === "resolved" && previous !== "resolved" && !this.data.csat_done) this._showCsat();
    if (state !== "resolved" && this.csatNode) { this.csatNode.remove(); this.csatNode = null; }
    if (!quiet && previous !== state) {
      var spoken = { awaiting_human: "Waiting for a person to join.",
        human: "A person joined the conversation.", resolved: "The conversation is resolved." }[state];
      if (spoken) this._announce(spoken);
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
    if (!when || isNaN(when.getTime())) return "as soon as possible";
    var day = function (d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); };
    var days = Math.round((day(when) - day(new Date())) / 86400000);
    var time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    var date = days <= 0 ? "today" : days === 1 ? "tomorrow"
      : "on " + when.toLocaleDateString([], { weekday: "long" });
    return date + " at " + time;
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
      ? (this.connStatus === "reconnecting" ? "Reconnecting…" : "Connecting…")
      : state === "human" ? "You're chatting with " + (this.agentName || "our team")
      : people === true ? "People available"
      : people === false ? "Bot only — a person replies " + this._describeOpening()
      : state === "awaiting_human" ? "Online — a person will reply here"
      : "Online — we usually reply in seconds";
    var text = "";
    var kind = "";
    var action = null;
    var self = this;
    if (this.connStatus === "reconnecting") {
      kind = "offline";
      text = "Connection lost. Reconnecting…";
      action = { label: "Retry now", run: function () { self.attempt = 0; self._reconnectSoon(0); } };
    } else if (state === "awaiting_human") {
      text = "Waiting for a person to join — we'll reply right here.";
    } else if (state === "human") {
      kind = "human";
      text = (this.agentName ? this.agentName : "A person") + " joined the conversation.";
    } else if (state === "resolved") {
      kind = "resolved";
      text = "This conversation is resolved.";
      action = { label: "New conversation", run: function () { self.newConversation(); } };
    }
    this.banner.hidden = !text;
    this.banner.className = "banner" + (kind ? " " + kind : "");
    this.bannerText.textContent = text;
    this.bannerAction.hidden = !action;
    this.bannerAction.textContent = action ? action.label : "";
    this._bannerHandler = action ? action.run : null;
    var handedOff = state === "awaiting_human" || state === "human";
    this.handoffBtn.disabled = handedOff || state === "resolved";
    this.handoffBtn.lastChild.textContent =
      state === "awaiting_human" ? "A person will be with you soon"
      : state === "human" ? "You're talking to a person" : "Talk to a person";
  };

  proto._onTyping = function (frame) {
    if (frame.role === "customer") return;
    var label = frame.role === "agent"
      ? (this.agentName || "An agent") + " is typing…"
      : this.titleText + " is typing…";
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
      this._save();
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
      this._markFailed(id, code === "message_too_long" ? "Too long to send." : "Not sent.");
      return;
    }
    if (code === "unknown_message" || code === "already_open") return;
    var text = code === "rate_limited"
      ? "You're going a bit fast — please wait a moment and try again."
      : "Sorry, something went wrong. Please try again.";
    this._renderMessage({ seq: null, role: "system", text: text }, false);
  };

  // ----- outgoing ----------------------------------------------------------------------------

  proto._submit = function () {
    var text = this.input.value.replace(/\s+$/, "").replace(/^\s+/, "");
    if (!text) return;
    this.input.value = "";
    this._autosize();
    this.sendMessage(text.slice(0, MAX_TEXT_CHARS));
    this.input.focus();
  };

  proto.sendMessage = function (text) {
    var item = { client_msg_id: newId(), text: text };
    this.data.outbox.push(item);
    this._save();
    this._renderPending(item);
    if (!this._ws) this._connect();
    if (this._send({ type: "message", client_msg_id: item.client_msg_id, text: text })) {
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
      self._markFailed(clientMsgId, "Not sent.");
    }, ACK_TIMEOUT_MS);
  };

  proto._markPending = function (clientMsgId) {
    var node = this.nodesByClientId[clientMsgId];
    if (!node) return;
    node.classList.remove("failed");
    node.classList.add("pending");
    node._meta.hidden = false;
    node._meta.textContent = "Sending…";
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
    meta.appendChild(el("span", { text: reason || "Not sent." }));
    var retry = el("button", { className: "retry", type: "button" }, [
      svgIcon(ICONS.retry, 12), el("span", { text: "Retry" }),
    ]);
    retry.addEventListener("click", function () { self.retry(clientMsgId); });
    meta.appendChild(retry);
    this._announce("Your message was not sent. " + (reason || ""));
  };

  proto.retry = function (clientMsgId) {
    var item = this.data.outbox.filter(function (o) { return o.client_msg_id === clientMsgId; })[0];
    if (!item) return;
    this._markPending(clientMsgId);
    if (this._send({ type: "message", client_msg_id: item.client_msg_id, text: item.text })) {
      this._armAckTimer(clientMsgId);
    } else {
      // Offline: reconnect right away; the outbox is resent on welcome.
      this.attempt = 0;
      this._armAckTimer(clientMsgId);
      if (!this._ws) this._reconnectSoon(0);
    }
  };

  proto.requestHandoff = function () {
    if (!this._send({ type: "handoff_request" })) {
      this._renderMessage({ seq: null, role: "system",
        text: "You're offline — we'll connect you to a person once you're back online." }, false);
      return;
    }
    this.handoffBtn.disabled = true;
  };

  proto._sendTyping = function () {
    var now = Date.now();
    if (now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    if (this._send({ type: "typing" })) this.lastTypingSent = now;
  };

  proto.newConversation = function () {
    this.data.outbox = [];
    this._resetConversation();
    this._save();
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

  proto._append = function (node) {
    var follow = this._atEnd() || node.classList.contains("customer");
    this.emptyState.hidden = true;
    this.log.insertBefore(node, this.typingNode.hidden ? null : this.typingNode);
    this._scrollToEnd(follow);
  };

  proto._messageNode = function (msg) {
    var node = el("div", { className: "msg " + msg.role, role: "article" });
    if (msg.role === "agent") {
      node.appendChild(el("div", { className: "author", text: msg.author || "Support agent" }));
    }
    var bubble = el("div", { className: "bubble" });
    node.appendChild(bubble);
    node._bubble = bubble;
    var label = { customer: "You", bot: this.titleText, agent: msg.author || "Support agent",
      system: "Notice" }[msg.role];
    node.setAttribute("aria-label", label + " said");
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
    if (!streamedNode) this._append(node);
    else this._scrollToEnd(follow);
    if (restoring) this._scrollToEnd(true);
    return node;
  };

  // "Which of these?": one button per offered article plus "None of these". A pick sends a
  // choose frame (the answer, or a person for "none"), is remembered, and disables the buttons.
  proto._suggestionsNode = function (seq, suggestions) {
    var self = this;
    var wrap = el("div", { className: "suggestions", role: "group",
      "aria-label": "Suggested articles: pick the one closest to your question" });
    var buttons = [];
    function settle(chosen) {
      buttons.forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-pressed", button === chosen ? "true" : "false");
      });
      if (chosen) chosen.classList.add("chosen");
    }
    function choose(articleId, button) {
      if (!self._send({ type: "choose", seq: seq, article_id: articleId })) {
        self._announce("You're offline. Pick again once you're back online.");
        return;
      }
      self.data.choices[seq] = articleId;
      self._save();
      settle(button);
      self._announce(articleId === null
        ? "None of these. Connecting you with a person."
        : "You picked " + button.textContent + ".");
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
    var none = el("button", { type: "button", className: "choice none", text: "None of these" });
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
    var wrap = el("div", { className: "sources" }, [el("span", { text: "Sources:" })]);
    var seen = {};
    sources.forEach(function (source) {
      if (!source || typeof source !== "object") return;
      var title = String(source.title || source.article_id || "Article").slice(0, 120);
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
      wrap.appendChild(el("span", { text: "Thanks for your feedback!" }));
      return wrap;
    }
    var yes = el("button", { type: "button", text: "Yes", "aria-label": "Yes, this was helpful" });
    var no = el("button", { type: "button", text: "No", "aria-label": "No, this was not helpful" });
    function answer(helpful) {
      if (!self._send({ type: "feedback", seq: seq, helpful: helpful })) return;
      self.data.feedback[seq] = helpful;
      self._save();
      wrap.textContent = "";
      var thanks = helpful ? "Thanks for your feedback!"
        : "Thanks — sorry about that. You can ask again, or talk to a person.";
      wrap.appendChild(el("span", { text: thanks }));
      self._announce(thanks);
      self.input.focus();
    }
    yes.addEventListener("click", function () { answer(true); });
    no.addEventListener("click", function () { answer(false); });
    wrap.appendChild(el("span", { text: "Was this helpful?" }));
    wrap.appendChild(yes);
    wrap.appendChild(no);
    return wrap;
  };

  proto._renderPending = function (item) {
    var node = this._messageNode({ role: "customer", text: item.text });
    node.classList.add("pending", "customer-local");
    this._fillBubble(node._bubble, { role: "customer", text: item.text });
    var meta = el("div", { className: "meta", text: "Sending…" });
    node.appendChild(meta);
    node._meta = meta;
    this.nodesByClientId[item.client_msg_id] = node;
    this._append(node);
    return node;
  };

  proto._showCsat = function () {
    if (this.csatNode || this.data.csat_done) return;
    var self = this;
    var scores = el("div", { className: "scores", role: "group", "aria-label": "Rate from 1 (poor) to 5 (great)" });
    var node = el("div", { className: "csat" }, [
      el("p", { text: "How would you rate this conversation?" }),
      scores,
      el("div", { className: "scale", "aria-hidden": "true" }, [
        el("span", { text: "Poor" }), el("span", { text: "Great" }),
      ]),
    ]);
    [1, 2, 3, 4, 5].forEach(function (score) {
      var btn = el("button", { type: "button", text: String(score),
        "aria-label": score + " out of 5" });
      btn.addEventListener("click", function () {
        if (!self._send({ type: "csat", score: score })) return;
        self.data.csat_done = true; // the score is stored: the survey is not asked again
        self._save();
        self._askEffort(node, score);
      });
      scores.appendChild(btn);
    });
    this.csatNode = node;
    this._append(node);
  };

  // The survey's second question, customer effort (CES, 1-7). The score is sent again with the
  // answer: every csat frame is stored and reports use the latest, so skipping this question
  // loses nothing.
  proto._askEffort = function (node, score) {
    var self = this;
    var question = "How easy was it to get help?";
    var answers = el("div", { className: "scores ces", role: "group",
      "aria-label": question + " From 1 (very hard) to 7 (very easy)" });
    node.textContent = "";
    node.appendChild(el("p", { text: "Thank you! " + question }));
    node.appendChild(answers);
    node.appendChild(el("div", { className: "scale ces", "aria-hidden": "true" }, [
      el("span", { text: "Very hard" }), el("span", { text: "Very easy" }),
    ]));
    [1, 2, 3, 4, 5, 6, 7].forEach(function (ces) {
      var btn = el("button", { type: "button", text: String(ces),
        "aria-label": ces + " out of 7" });
      btn.addEventListener("click", function () {
        if (!self._send({ type: "csat", score: score, ces: ces })) return;
        node.textContent = "";
        node.appendChild(el("p", { text: "Thank you for your feedback!" }));
        self._announce("Thank you for your feedback!");
      });
      answers.appendChild(btn);
    });
    this._announce("Thank you for your rating! " + question);
    answers.firstChild.focus(); // keyboard users go on where the buttons they used were
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
  customElements.define(TAG, SupportbotWidget);

  // ---------------------------------------------------------------------------------------
  // Auto-mount from the script tag
  // ---------------------------------------------------------------------------------------

  var script = findOwnScript();
  if (!script || script.getAttribute("data-mount") === "false") return;

  function mount() {
    if (document.querySelector(TAG)) return;
    var widget = document.createElement(TAG);
    var server = script.getAttribute("data-server");
    if (!server) {
      try { server = new URL(script.src, window.location.href).origin; } catch (_e) { server = ""; }
    }
    widget.setAttribute("server", server || window.location.origin);
    if (script.getAttribute("data-title")) widget.setAttribute("title-text", script.getAttribute("data-title"));
    if (script.getAttribute("data-color")) widget.setAttribute("color", script.getAttribute("data-color"));
    if (script.getAttribute("data-open")) widget.setAttribute("open", script.getAttribute("data-open"));
    document.body.appendChild(widget);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
