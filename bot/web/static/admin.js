// Supportbot admin page: the article list, the editor with a live preview, history, uploads and
// "try a question". Plain JS, no build step. Text from the server or the editor reaches the DOM
// only through textContent, or through the widget's own Markdown sanitizer
// (window.SupportbotMarkdown, from /widget/supportbot.js) for previews and answers.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const PER_PAGE = 50;
  const FIELDS = ["id", "title", "url", "tags", "visibility", "language", "body"];
  const state = {
    page: 1,
    total: 0,
    items: [],
    current: null, // the article open in the editor (null: a new one)
    dirty: false,
    tags: new Set(),
    saves: 0, // saves so far: a try result remembers how many came before it
    lastSaved: "",
    tries: [],
  };

  // --- helpers --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(describe(detail) || "Request failed (" + status + ")");
      this.status = status;
      this.detail = detail;
    }
  }

  /** A readable message from a FastAPI ``detail`` (a string, or a list of validation errors). */
  function describe(detail) {
    if (!detail) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const field = fieldOf(d);
          return (field ? field + ": " : "") + (d.msg || JSON.stringify(d));
        })
        .join("; ");
    }
    return typeof detail.message === "string" ? detail.message : JSON.stringify(detail);
  }

  /** The editor field a validation error is about, if any (``loc`` is like ["body", "title"]). */
  function fieldOf(error) {
    const loc = Array.isArray(error && error.loc) ? error.loc : [];
    for (let i = loc.length - 1; i >= 0; i--) {
      if (FIELDS.includes(loc[i]) && !(loc[i] === "body" && i === 0)) return loc[i];
    }
    return null;
  }

  async function api(method, path, body) {
    const headers = { "X-CSRF-Token": csrf };
    let payload;
    if (body instanceof FormData) {
      payload = body; // the browser sets the multipart boundary
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, credentials: "same-origin", headers, body: payload });
    if (response.status === 401) {
      window.location.href = "/login?next=/admin";
      throw new ApiError(401, "signed out");
    }
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText);
    return data;
  }

  /** Article ids contain "/": keep the segments, encode each one. */
  function articlePath(id, suffix) {
    return "/api/admin/articles/" + String(id).split("/").map(encodeURIComponent).join("/") + (suffix || "");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(id, message) {
    const node = $(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  /** The widget's sanitized Markdown as DOM nodes; plain text if the widget script is missing. */
  function markdown(text) {
    if (window.SupportbotMarkdown) return window.SupportbotMarkdown.render(text || "");
    return el("p", "", text || "");
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return "";
    const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(t).toLocaleDateString();
  }

  function changed(article) {
    const when = ago(article.updated_at);
    const who = article.updated_by ? " by " + article.updated_by : "";
    return when ? "changed " + when + who : "";
  }

  function indexStatus(article) {
    if (!article.indexed) return { text: "not indexed", cls: "off" };
    const n = Number(article.chunks) || 0;
    return { text: "indexed · " + n + (n === 1 ? " chunk" : " chunks"), cls: "ok" };
  }

  function percent(value) {
    return typeof value === "number" ? Math.round(value * 100) + "%" : "–";
  }

  // --- the list -------------------------------------------------------------------------------

  async function loadList() {
    const params = new URLSearchParams({ page: String(state.page), per_page: String(PER_PAGE) });
    const q = $("search-q").value.trim();
    const tag = $("search-tag").value.trim();
    if (q) params.set("q", q);
    if (tag) params.set("tag", tag);
    try {
      const data = await api("GET", "/api/admin/articles?" + params);
      state.items = data.items || [];
      state.total = Number(data.total) || 0;
      show("list-error", "");
    } catch (err) {
      state.items = [];
      state.total = 0;
      show("list-error", err.message);
    }
    renderList();
    loadHeld();
  }

  /** Articles screening held (they ask for secrets or talk to an AI): shown with the reason. */
  async function loadHeld() {
    let held = [];
    try {
      held = await api("GET", "/api/admin/articles/held");
    } catch (err) {
      held = [];
    }
    const list = $("held-list");
    list.replaceChildren();
    for (const item of held || []) {
      const li = el("li");
      li.append(el("strong", "", item.title || item.id), " ");
      li.append(el("span", "id", item.path || item.id));
      li.append(el("div", "failed", item.reason || "held for review"));
      list.append(li);
    }
    $("held-count").textContent = String((held || []).length);
    $("held").hidden = !(held || []).length;
  }

  function renderList() {
    const list = $("article-list");
    list.replaceChildren();
    for (const item of state.items) {
      for (const t of item.tags || []) state.tags.add(t);
      const li = el("li");
      const button = el("button", "article-item");
      button.type = "button";
      button.dataset.articleId = item.id;
      if (state.current && state.current.id === item.id) button.setAttribute("aria-current", "true");
      button.append(el("span", "title", item.title || item.id));
      button.append(el("span", "id", item.id));
      const meta = el("span", "meta");
      const status = indexStatus(item);
      meta.append(el("span", "status " + status.cls, status.text));
      if (item.visibility && item.visibility !== "public") meta.append(el("span", "status internal", item.visibility));
      for (const t of item.tags || []) meta.append(el("span", "tag", t));
      const when = el("span", "changed", changed(item));
      if (item.updated_at) when.title = item.updated_at;
      meta.append(when);
      button.append(meta);
      button.addEventListener("click", () => openArticle(item.id));
      li.append(button);
      list.append(li);
    }
    $("article-total").textContent = String(state.total);
    $("list-empty").hidden = state.items.length > 0 || !$("list-error").hidden;
    const filtered = $("search-q").value.trim() || $("search-tag").value.trim();
    $("list-empty").textContent = filtered ? "No articles match." : "No articles yet: write one or upload files.";
    const first = state.total ? (state.page - 1) * PER_PAGE + 1 : 0;
    const last = Math.min(state.total, (state.page - 1) * PER_PAGE + state.items.length);
    $("page-info").textContent = state.total ? first + "–" + last + " of " + state.total : "";
    $("prev-btn").disabled = state.page <= 1;
    $("next-btn").disabled = state.page * PER_PAGE >= state.total;
    const options = $("tag-options");
    options.replaceChildren();
    for (const t of [...state.tags].sort()) {
      const o = el("option");
      o.value = t;
      options.append(o);
    }
  }

  let searchTimer = null;
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    state.page = 1;
    loadList();
  });
  for (const id of ["search-q", "search-tag"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { state.page = 1; loadList(); }, 300);
    });
  }
  $("prev-btn").addEventListener("click", () => { state.page = Math.max(1, state.page - 1); loadList(); });
  $("next-btn").addEventListener("click", () => { state.page += 1; loadList(); });

  // --- the editor -----------------------------------------------------------------------------

  function formValues() {
    return {
      id: $("f-id").value.trim(),
      title: $("f-title").value.trim(),
      url: $("f-url").value.trim(),
      tags: $("f-tags").value.split(",").map((t) => t.trim()).filter(Boolean),
      visibility: $("f-visibility").value,
      language: $("f-language").value.trim(),
      body: $("f-body").value,
    };
  }

  function snapshot() {
    return JSON.stringify(formValues());
  }

  function clearErrors() {
    show("editor-error", "");
    for (const f of FIELDS) {
      $("f-" + f + "-error").textContent = "";
      $("f-" + f).removeAttribute("aria-invalid");
      $("f-" + f).removeAttribute("aria-describedby");
    }
  }

  function fieldError(field, message) {
    const input = $("f-" + field);
    const box = $("f-" + field + "-error");
    box.textContent = box.textContent ? box.textContent + "; " + message : message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", box.id);
  }

  /** API errors go next to their fields when they name one, and into the banner otherwise. */
  function showApiError(err, what) {
    let first = null;
    if (Array.isArray(err.detail)) {
      for (const d of err.detail) {
        const field = fieldOf(d);
        if (field && !(field === "id" && state.current)) {
          fieldError(field, d.msg || "invalid");
          first = first || field;
        }
      }
    }
    show("editor-error", what + ": " + err.message);
    if (first) $("f-" + first).focus();
  }

  function renderPreview() {
    const preview = $("preview");
    preview.replaceChildren();
    const title = $("f-title").value.trim();
    if (title) preview.append(el("h3", "preview-title", title));
    preview.append(markdown($("f-body").value));
  }

  function setStatus(article) {
    const status = $("editor-status");
    if (!article) {
      status.textContent = "Not saved yet.";
      return;
    }
    const version = article.version > 0 ? "version " + article.version : "not yet edited here";
    const parts = [version, indexStatus(article).text, changed(article)];
    if (article.path) parts.push(article.path);
    status.textContent = parts.filter(Boolean).join(" · ");
  }

  function fill(article) {
    state.current = article;
    $("editor-title").textContent = article ? "Edit “" + article.title + "”" : "New article";
    $("f-id").value = article ? article.id : "";
    $("f-id").readOnly = !!article;
    $("f-id").setAttribute("aria-readonly", article ? "true" : "false");
    $("f-id").placeholder = article ? "" : "billing/refunds (optional)";
    $("f-title").value = article ? article.title || "" : "";
    $("f-url").value = article ? article.url || "" : "";
    $("f-tags").value = article ? (article.tags || []).join(", ") : "";
    $("f-visibility").value = article && article.visibility === "internal" ? "internal" : "public";
    $("f-language").value = article ? article.language || "" : "";
    $("f-body").value = article ? article.body || "" : "";
    $("delete-btn").hidden = !article;
    $("history-btn").hidden = !article;
    setStatus(article);
    clearErrors();
    renderPreview();
    state.lastSaved = snapshot();
    state.dirty = false;
    document.dispatchEvent(new CustomEvent("supportbot:article", { detail: article })); // learned.js
    if (!$("history").hidden) {
      if (article) loadHistory();
      else toggleHistory(false);
    }
    renderList();
  }

  function mayLeave() {
    return !state.dirty || window.confirm("Discard your unsaved changes?");
  }

  async function openArticle(id) {
    if (state.current && state.current.id === id) return;
    if (!mayLeave()) return;
    show("editor-notice", "");
    try {
      fill(await api("GET", articlePath(id)));
    } catch (err) {
      show("editor-error", "Could not open " + id + ": " + err.message);
    }
  }

  $("new-btn").addEventListener("click", () => {
    if (!mayLeave()) return;
    show("editor-notice", "");
    fill(null);
    $("f-title").focus();
  });

  $("editor-form").addEventListener("input", () => {
    state.dirty = snapshot() !== state.lastSaved;
    renderPreview();
  });

  $("editor-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    show("editor-notice", "");
    const v = formValues();
    if (!v.title) {
      fieldError("title", "A title is required.");
      show("editor-error", "Please fix the marked fields.");
      $("f-title").focus();
      return;
    }
    const payload = {
      title: v.title,
      body: v.body,
      url: v.url || null,
      tags: v.tags,
      visibility: v.visibility,
      language: v.language || null,
    };
    const creating = !state.current;
    if (creating && v.id) payload.id = v.id;
    // The version this edit started from: the API refuses (409) rather than overwrite a newer one.
    if (!creating) payload.version = state.current.version;
    $("save-btn").disabled = true;
    try {
      const article = creating
        ? await api("POST", "/api/admin/articles", payload)
        : await api("PUT", articlePath(state.current.id), payload);
      state.saves += 1;
      fill(article);
      document.dispatchEvent(new CustomEvent("supportbot:saved", { detail: { article, creating } }));
      show("editor-notice", (creating ? "Created" : "Saved") + " version " + article.version + " · " + indexStatus(article).text + ".");
      await loadList();
    } catch (err) {
      showApiError(err, "Not saved");
    } finally {
      $("save-btn").disabled = false;
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) event.preventDefault();
  });

  // --- delete ---------------------------------------------------------------------------------

  $("delete-btn").addEventListener("click", () => {
    if (!state.current) return;
    $("confirm-name").textContent = state.current.title + " (" + state.current.id + ")";
    $("confirm-delete").returnValue = "";
    $("confirm-delete").showModal();
  });

  $("confirm-delete").addEventListener("close", async () => {
    if ($("confirm-delete").returnValue !== "delete" || !state.current) {
      $("delete-btn").focus();
      return;
    }
    const gone = state.current;
    try {
      await api("DELETE", articlePath(gone.id));
      state.saves += 1;
      fill(null);
      show("editor-notice", "Deleted “" + gone.title + "” (" + gone.id + ").");
      await loadList();
      $("new-btn").focus();
    } catch (err) {
      show("editor-error", "Not deleted: " + err.message);
    }
  });

  // --- history --------------------------------------------------------------------------------

  function toggleHistory(open) {
    $("history").hidden = !open;
    $("history-btn").setAttribute("aria-expanded", open ? "true" : "false");
    $("version-view").hidden = true;
  }

  $("history-btn").addEventListener("click", () => {
    const open = $("history").hidden;
    toggleHistory(open);
    if (open) loadHistory();
  });

  async function loadHistory() {
    const article = state.current;
    if (!article) return;
    const list = $("history-list");
    try {
      const versions = await api("GET", articlePath(article.id, "/versions"));
      list.replaceChildren();
      const sorted = [...versions].sort((a, b) => b.version - a.version);
      for (const v of sorted) {
        const li = el("li");
        li.value = v.version;
        li.dataset.version = v.version;
        const row = el("div", "row");
        row.append(el("strong", "", "Version " + v.version));
        row.append(el("span", "badge", v.action || ""));
        const when = el("span", "hint", [ago(v.at), v.by ? "by " + v.by : ""].filter(Boolean).join(" "));
        if (v.at) when.title = v.at;
        row.append(when);
        if (v.title) row.append(el("span", "", "“" + v.title + "”"));
        const view = el("button", "secondary", "View");
        view.type = "button";
        view.setAttribute("aria-label", "View version " + v.version);
        view.addEventListener("click", () => viewVersion(article.id, v.version));
        row.append(view);
        if (v.version !== article.version && v.action !== "delete") {
          const restore = el("button", "restore", "Restore");
          restore.type = "button";
          restore.setAttribute("aria-label", "Restore version " + v.version);
          restore.addEventListener("click", () => restoreVersion(article.id, v.version));
          row.append(restore);
        } else if (v.version === article.version) {
          row.append(el("span", "hint", "(current)"));
        }
        li.append(row);
        list.append(li);
      }
    } catch (err) {
      list.replaceChildren(el("li", "error", "Could not load the history: " + err.message));
    }
  }

  async function viewVersion(id, n) {
    try {
      const v = await api("GET", articlePath(id, "/versions/" + n));
      $("version-title").textContent = "Version " + n + " (" + (v.action || "") + "): " + (v.title || "");
      $("version-body").textContent = v.body == null ? "(the article was deleted in this version)" : v.body;
      $("version-view").hidden = false;
    } catch (err) {
      show("editor-error", "Could not load version " + n + ": " + err.message);
    }
  }

  async function restoreVersion(id, n) {
    if (!mayLeave()) return;
    try {
      const article = await api("POST", articlePath(id, "/versions/" + n + "/restore"));
      state.saves += 1;
      fill(article);
      show("editor-notice", "Restored version " + n + " as version " + article.version + ".");
      await loadList();
    } catch (err) {
      show("editor-error", "Not restored: " + err.message);
    }
  }

  // --- upload ---------------------------------------------------------------------------------

  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = $("upload-files").files;
    show("upload-error", "");
    if (!files.length) {
      show("upload-error", "Choose one or more files first.");
      return;
    }
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    $("upload-btn").disabled = true;
    const results = $("upload-results");
    results.replaceChildren();
    try {
      const data = await api("POST", "/api/admin/articles/upload", form);
      for (const r of data.results || []) {
        const failed = !!r.error || r.status === "error" || r.status === "failed";
        const li = el("li", failed ? "failed" : "ok");
        li.append(el("strong", "", r.filename));
        li.append(document.createTextNode(" — " + (r.status || (failed ? "failed" : "ok"))));
        if (r.error) li.append(document.createTextNode(": " + r.error));
        if (r.id && !failed) {
          li.append(document.createTextNode(" "));
          const open = el("button", "link-button", r.id);
          open.type = "button";
          open.setAttribute("aria-label", "Open " + r.id);
          open.addEventListener("click", () => openArticle(r.id));
          li.append(open);
        }
        results.append(li);
      }
      $("upload-files").value = "";
      state.saves += 1;
      await loadList();
    } catch (err) {
      show("upload-error", "Upload failed: " + err.message);
    } finally {
      $("upload-btn").disabled = false;
    }
  });

  // --- try a question -------------------------------------------------------------------------

  function renderTry(node, result, heading, note) {
    node.replaceChildren();
    node.hidden = false;
    const head = el("header");
    head.append(el("h3", "", heading));
    head.append(el("span", "hint", new Date(result.at).toLocaleTimeString()));
    node.append(head);
    node.append(el("p", "asked", "“" + result.question + "”"));
    if (note) node.append(el("p", "note" + (note.same ? " same" : ""), note.text));
    const data = result.data;
    const answer = el("div", "answer md");
    answer.append(markdown(data.answer || ""));
    node.append(answer);
    const dl = el("dl");
    const row = (label, value) => {
      dl.append(el("dt", "", label));
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = value;
      dl.append(dd);
      return dd;
    };
    row("Confidence", percent(data.confidence)).className = "confidence";
    row("Escalate", data.escalate ? "yes" + (data.reason ? " — " + String(data.reason).replace(/_/g, " ") : "") : "no").className =
      data.escalate ? "escalate" : "";
    const sources = el("ul", "sources");
    for (const s of data.sources || []) {
      const li = el("li", state.current && s.article_id === state.current.id ? "mine" : "");
      li.dataset.articleId = s.article_id;
      if (s.url && /^https?:\/\//i.test(s.url)) {
        const a = el("a", "", s.title || s.article_id);
        a.href = s.url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        li.append(a);
      } else {
        li.append(document.createTextNode(s.title || s.article_id));
      }
      li.append(el("span", "score", " " + s.article_id + " · " + percent(s.score)));
      sources.append(li);
    }
    if (!(data.sources || []).length) sources.append(el("li", "hint", "none"));
    row("Sources", sources);
    node.append(dl);
    if (data.passage) {
      node.append(el("p", "hint", "Passage it used:"));
      node.append(el("blockquote", "passage", data.passage));
    }
  }

  function renderTries() {
    const [before, after] = state.tries.length > 1 ? state.tries.slice(-2) : [null, state.tries[0]];
    $("try-empty").hidden = !!after;
    if (!after) return;
    if (before) {
      renderTry($("try-before"), before, "Before", null);
      $("try-before").classList.add("before");
      const between = after.saves - before.saves;
      const note = between > 0
        ? { text: between + (between === 1 ? " change" : " changes") + " saved since “Before”", same: false }
        : { text: "No changes saved since “Before”", same: true };
      renderTry($("try-after"), after, "After", note);
    } else {
      $("try-before").hidden = true;
      renderTry($("try-after"), after, "Answer", null);
    }
  }

  $("try-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("try-q").value.trim();
    show("try-error", "");
    if (!question) {
      show("try-error", "Type a question first.");
      $("try-q").focus();
      return;
    }
    $("try-btn").disabled = true;
    $("try-btn").textContent = "Asking…";
    try {
      const data = await api("POST", "/api/admin/try", { question });
      state.tries.push({ question, data, at: Date.now(), saves: state.saves });
      state.tries = state.tries.slice(-2);
      renderTries();
    } catch (err) {
      show("try-error", "Could not try it: " + err.message);
    } finally {
      $("try-btn").disabled = false;
      $("try-btn").textContent = "Ask";
    }
  });

  // --- start ----------------------------------------------------------------------------------

  fill(null);
  loadList();
})();

// --- a drafted article from the dashboard's content gaps --------------------------------------
// /admin#draft=<payload> opens the editor on a new article pre-filled with a draft: <payload> is
// the UTF-8 JSON object {"title": string, "body": string, "questions"?: [string]} in base64url
// without padding (RFC 4648,
// section 5), made by bot/reports/gaps.py (draft_link). Nothing is saved until the admin presses
// Save; the fragment is removed so a reload does not fill the form again.
(function openDraftFromLink() {
  "use strict";

  const match = /^#draft=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (!match) return;
  let draft;
  try {
    const base64 = match[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    draft = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    draft = null;
  }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  if (!draft || typeof draft.title !== "string" || typeof draft.body !== "string") return;
  const title = document.getElementById("f-title");
  const body = document.getElementById("f-body");
  if (!title || !body) return;
  document.getElementById("new-btn").click(); // a new, empty article (asks first if unsaved)
  if (title.value || body.value) return; // the admin kept their unsaved work
  title.value = draft.title.slice(0, 300);
  body.value = draft.body.slice(0, 100000);
  if (Array.isArray(draft.questions)) {
    // learned.js attaches them to the article as learned questions when it is first saved.
    const questions = draft.questions.filter((q) => typeof q === "string").slice(0, 100);
    window.supportbotDraftQuestions = questions; // read by learned.js (it loads after this file)
  }
  // The editor's own input handler renders the preview and marks the form as unsaved.
  title.form.dispatchEvent(new Event("input", { bubbles: true }));
  const notice = document.getElementById("editor-notice");
  if (notice) {
    notice.textContent = "Drafted from questions customers asked: edit it, then save to publish.";
    notice.hidden = false;
  }
  title.focus();
})();
