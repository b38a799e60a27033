// Learned questions on the admin page (docs/admin.md, "Learned questions"): candidates waiting
// for a decision (approve, approve for another article, reject; several at once), and the
// approved questions of the article open in the editor, each removable. admin.js tells this file
// which article is open ("supportbot:article") and when one was saved ("supportbot:saved"), so a
// drafted article gets its group's questions as learned questions when it is first published.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  let current = null; // the article open in the editor
  // The questions of a draft opened from the content gaps (admin.js read the link).
  let draftQuestions = window.supportbotDraftQuestions || null;

  async function api(method, path, body) {
    const headers = { "X-CSRF-Token": csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof data.detail === "string" ? data.detail : response.statusText;
      throw new Error(detail || "Request failed (" + response.status + ")");
    }
    return data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function say(message) {
    const note = $("learned-error");
    note.textContent = message;
    note.hidden = !message;
  }

  function selected() {
    return [...document.querySelectorAll("#learned-candidates input[type=checkbox]:checked")].map(
      (box) => Number(box.value),
    );
  }

  async function loadCandidates() {
    const list = $("learned-candidates");
    try {
      const page = await api("GET", "/api/admin/learned?status=candidate&per_page=100");
      $("learned-total").textContent = String(page.total);
      list.replaceChildren();
      for (const item of page.items) {
        const li = el("li", "learned-item");
        const box = el("input");
        box.type = "checkbox";
        box.value = String(item.id);
        box.setAttribute("aria-label", "Select “" + item.question + "”");
        const text = el("span", "learned-question", item.question);
        const meta = el(
          "span",
          "learned-meta",
          " → " + (item.article_title || item.article_id) + " · " + item.source + " · ×" + item.confirmations,
        );
        const approve = el("button", "link-button", "Approve");
        approve.type = "button";
        approve.addEventListener("click", () => decide("approve", [item.id]));
        const reject = el("button", "link-button", "Reject");
        reject.type = "button";
        reject.addEventListener("click", () => decide("reject", [item.id]));
        li.append(box, " ", text, meta, " ", approve, " ", reject);
        list.append(li);
      }
      $("learned-empty").hidden = page.items.length > 0;
    } catch (err) {
      say("Could not load learned questions: " + err.message);
    }
  }

  async function decide(action, ids) {
    if (!ids.length) {
      say("Select questions first.");
      return;
    }
    say("");
    const body = { ids, action };
    const other = $("learned-article").value.trim();
    if (action === "approve" && other) body.article_id = other;
    try {
      await api("POST", "/api/admin/learned/bulk", body);
    } catch (err) {
      say("Not done: " + err.message);
    }
    await loadCandidates();
    await loadArticle();
  }

  async function loadArticle() {
    const box = $("learned-article-list");
    box.replaceChildren();
    $("learned-article-pane").hidden = !current;
    if (!current) return;
    $("learned-article-name").textContent = current.title || current.id;
    try {
      const page = await api(
        "GET",
        "/api/admin/learned?status=approved&per_page=200&article_id=" + encodeURIComponent(current.id),
      );
      for (const item of page.items) {
        const li = el("li", "learned-item", item.question + " ");
        const remove = el("button", "link-button", "Remove");
        remove.type = "button";
        remove.setAttribute("aria-label", "Remove “" + item.question + "”");
        remove.addEventListener("click", async () => {
          try {
            await api("DELETE", "/api/admin/learned/" + item.id);
          } catch (err) {
            say("Not removed: " + err.message);
          }
          await loadArticle();
        });
        li.append(remove);
        box.append(li);
      }
      $("learned-article-empty").hidden = page.items.length > 0;
    } catch (err) {
      say("Could not load the article's learned questions: " + err.message);
    }
  }

  document.addEventListener("supportbot:article", (event) => {
    current = event.detail || null;
    loadArticle();
  });
  document.addEventListener("supportbot:saved", async (event) => {
    const detail = event.detail || {};
    if (detail.creating && draftQuestions && draftQuestions.length && detail.article) {
      const questions = draftQuestions;
      draftQuestions = null;
      try {
        await api("POST", "/api/admin/learned", {
          article_id: detail.article.id,
          questions,
          source: "draft",
        });
      } catch (err) {
        say("The draft's questions were not attached: " + err.message);
      }
      loadArticle();
    }
  });

  $("learned-approve").addEventListener("click", () => decide("approve", selected()));
  $("learned-reject").addEventListener("click", () => decide("reject", selected()));
  $("learned-refresh").addEventListener("click", loadCandidates);
  loadCandidates();
})();
