// Supportbot deflection dashboard: headline tiles, charts (Chart.js, vendored), content gaps and
// the per-article table, for a period of local days in the browser's time zone.
// Plain JS, no build step, no inline code (the page runs under script-src 'self').
// Everything from the server is rendered with textContent, never as HTML.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const root = $("reports");
  const canDraft = root.dataset.canDraft === "true";
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const DAY_MS = 86400000;
  const COLORS = {
    blue: "#2f6fed",
    green: "#12b76a",
    red: "#d92d20",
    amber: "#f79009",
    grey: "#98a2b3",
    light: "#d0d5dd",
    text: "#344054",
  };
  const REASON_LABELS = {
    no_knowledge: "No knowledge",
    low_confidence: "Low confidence",
    customer_request: "Asked for a person",
    sensitive_topic: "Sensitive topic",
    repeated_failure: "Repeated failure",
    frustration: "Frustration",
    error: "Answer failed",
    unknown: "Unknown",
  };
  const state = { since: null, until: null, days: 30, sort: { key: "cited", dir: "desc" },
    articles: [], charts: {}, request: 0 };

  // --- helpers --------------------------------------------------------------------------------

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      window.location.href = "/login?next=/reports";
      throw new Error("signed out");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : response.statusText);
    return data;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Local dates as "YYYY-MM-DD" strings; arithmetic on UTC midnights so DST never shifts a day.
  function isoToday() {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date());
    const get = (type) => parts.find((p) => p.type === type).value;
    return `${get("year")}-${get("month")}-${get("day")}`;
  }
  function addDays(iso, days) {
    return new Date(Date.parse(iso + "T00:00:00Z") + days * DAY_MS).toISOString().slice(0, 10);
  }
  function daysBetween(since, until) {
    return Math.round((Date.parse(until + "T00:00:00Z") - Date.parse(since + "T00:00:00Z")) / DAY_MS) + 1;
  }
  const dayFormat = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", month: "short", day: "numeric" });
  const longDayFormat = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", year: "numeric", month: "short", day: "numeric" });
  const dayLabel = (iso) => dayFormat.format(new Date(iso + "T00:00:00Z"));
  const longDay = (iso) => longDayFormat.format(new Date(iso + "T00:00:00Z"));

  const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    const s = ms / 1000;
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  // --- the period -----------------------------------------------------------------------------

  function setPeriod(since, until, days) {
    state.since = since;
    state.until = until;
    state.days = days;
    $("since").value = since;
    $("until").value = until;
    for (const button of document.querySelectorAll("[data-days]")) {
      const active = Number(button.dataset.days) === days;
      button.classList.toggle("active", active);
      button.setAttribute("aria-pressed", String(active));
    }
    const query = periodQuery(since, until);
    $("export-articles").href = "/api/reports/articles.csv?" + query;
    $("export-conversations").href = "/api/reports/conversations.csv?" + query;
    load();
  }

  function lastDays(days) {
    const until = isoToday();
    setPeriod(addDays(until, -(days - 1)), until, days);
  }

  function periodQuery(since, until) {
    return new URLSearchParams({ since, until, tz }).toString();
  }

  // --- loading --------------------------------------------------------------------------------

  async function load() {
    const request = ++state.request;
    root.dataset.loaded = "loading"; // "summary", then "all": tests and screenshots wait on it
    const { since, until } = state;
    const length = daysBetween(since, until);
    const previousUntil = addDays(since, -1);
    const previousSince = addDays(previousUntil, -(length - 1));
    $("period-label").textContent =
      `${longDay(since)} – ${longDay(until)} (${length} day${length === 1 ? "" : "s"}), compared with the ${length} days before`;
    $("tz-label").textContent = tz;
    showError("");
    $("gaps-status").textContent = "Grouping questions…";
    $("gaps-status").hidden = false;
    try {
      const [current, previous] = await Promise.all([
        getJSON("/api/reports/summary?" + periodQuery(since, until)),
        getJSON("/api/reports/summary?" + periodQuery(previousSince, previousUntil)),
      ]);
      if (request !== state.request) return; // a newer period was picked meanwhile
      renderTiles(current, previous);
      renderCharts(current);
      state.articles = current.articles;
      renderArticles();
      root.dataset.loaded = "summary";
    } catch (error) {
      if (request === state.request) showError("Could not load the report: " + error.message);
      return;
    }
    try {
      const gaps = await getJSON("/api/reports/gaps?" + periodQuery(since, until));
      if (request !== state.request) return;
      renderGaps(gaps);
    } catch (error) {
      if (request === state.request) $("gaps-status").textContent = "Could not group the questions: " + error.message;
    }
    if (request === state.request) root.dataset.loaded = "all";
  }

  function showError(message) {
    $("load-error").textContent = message;
    $("load-error").hidden = !message;
  }

  // --- tiles ----------------------------------------------------------------------------------

  function tile(id, value, sub, change) {
    const node = $(id);
    node.querySelector(".value").textContent = value;
    node.querySelector(".sub").textContent = sub || "";
    const delta = node.querySelector(".delta");
    delta.className = "delta";
    delta.textContent = "";
    if (!change || change.diff === null || change.diff === undefined || !isFinite(change.diff)) {
      delta.textContent = change && change.note ? change.note : "no previous figure";
      delta.classList.add("flat");
      return;
    }
    const good = node.dataset.good;
    const arrow = change.diff > 0 ? "▲" : change.diff < 0 ? "▼" : "■";
    const text = Math.abs(change.diff) < 1e-9 ? "no change" : change.text;
    delta.textContent = `${arrow} ${text} ${change.against}`;
    if (Math.abs(change.diff) < 1e-9) delta.classList.add("flat");
    else delta.classList.add((change.diff > 0) === (good === "up") ? "better" : "worse");
  }

  function rateChange(now, before) {
    if (now === null || before === null) return null;
    const points = (now - before) * 100;
    return { diff: points, text: `${points >= 0 ? "+" : "−"}${Math.abs(points).toFixed(1)} pts`, against: "vs previous period" };
  }

  function renderTiles(current, previous) {
    const t = current.total;
    const p = previous.total;
    tile("tile-deflection", pct(t.deflection_rate),
      `${t.deflected_confirmed + t.deflected_assumed} of ${t.decided} decided, ${t.deflected_confirmed} confirmed`,
      rateChange(t.deflection_rate, p.deflection_rate));
    tile("tile-escalation", pct(t.escalation_rate), `${t.escalated} handed to a person`,
      rateChange(t.escalation_rate, p.escalation_rate));
    const csat = t.csat.average;
    const before = p.csat.average;
    tile("tile-csat", csat === null ? "–" : csat.toFixed(2) + " / 5",
      `${t.csat.responses} ratings` + (t.ces.average !== null ? ` · effort ${t.ces.average.toFixed(1)} / 7` : ""),
      csat !== null && before !== null
        ? { diff: csat - before, text: `${csat - before >= 0 ? "+" : "−"}${Math.abs(csat - before).toFixed(2)}`, against: "vs previous period" }
        : null);
    const frt = t.first_human_response_ms;
    const frtBefore = p.first_human_response_ms.p50;
    tile("tile-frt", duration(frt.p50), frt.count ? `median by a person · p90 ${duration(frt.p90)} · bot ${duration(t.first_bot_response_ms.p50)}` : "no escalation answered yet",
      frt.p50 !== null && frtBefore !== null
        ? { diff: frt.p50 - frtBefore, text: `${frt.p50 >= frtBefore ? "+" : "−"}${duration(Math.abs(frt.p50 - frtBefore))}`, against: "vs previous period" }
        : null);
    const backlog = current.backlog;
    const lastBefore = previous.days.length ? previous.days[previous.days.length - 1].queue_waiting_end_of_day : null;
    tile("tile-backlog", String(backlog.waiting_now),
      backlog.oldest_waiting_s !== null
        ? `oldest waiting ${duration(backlog.oldest_waiting_s * 1000)} · ${backlog.in_progress_now} in progress`
        : `${backlog.in_progress_now} in progress`,
      lastBefore !== null
        ? { diff: backlog.waiting_now - lastBefore, text: `${backlog.waiting_now >= lastBefore ? "+" : "−"}${Math.abs(backlog.waiting_now - lastBefore)}`, against: "vs end of previous period" }
        : { diff: null, note: "waiting for a person now" });
  }

  // --- charts ---------------------------------------------------------------------------------

  function baseOptions(extra) {
    return Object.assign({
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, color: COLORS.text } } },
    }, extra);
  }

  function chart(id, config) {
    if (typeof window.Chart !== "function") throw new Error("the chart library did not load");
    const existing = state.charts[id];
    if (existing) {
      existing.data = config.data;
      existing.options = config.options;
      existing.update();
      return existing;
    }
    if (!state.styled) {
      // Chart text in the page's own font and colours, so the charts look like the product.
      const style = getComputedStyle(document.body);
      window.Chart.defaults.font.family = style.fontFamily;
      window.Chart.defaults.color = COLORS.text;
      state.styled = true;
    }
    state.charts[id] = new window.Chart($(id), config);
    return state.charts[id];
  }

  function noData(id, empty) {
    const box = $(id).parentElement;
    box.querySelector(".no-data").hidden = !empty;
    box.classList.toggle("empty", empty);
  }

  const percentAxis = { min: 0, max: 100, ticks: { callback: (v) => v + "%" }, grid: { color: "#eef0f3" } };

  function renderCharts(summary) {
    const days = summary.days;
    const labels = days.map((d) => dayLabel(d.day));
    const asPct = (x) => (x === null ? null : Math.round(x * 1000) / 10);

    chart("chart-daily", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { type: "line", label: "Deflection", data: days.map((d) => asPct(d.deflection_rate)), yAxisID: "rate",
            borderColor: COLORS.green, backgroundColor: COLORS.green, tension: 0.25, spanGaps: true, pointRadius: 2 },
          { type: "line", label: "Escalation", data: days.map((d) => asPct(d.escalation_rate)), yAxisID: "rate",
            borderColor: COLORS.red, backgroundColor: COLORS.red, tension: 0.25, spanGaps: true, pointRadius: 2 },
          { type: "bar", label: "Conversations", data: days.map((d) => d.conversations), yAxisID: "count",
            backgroundColor: "rgba(47, 111, 237, 0.16)", borderRadius: 3 },
        ],
      },
      options: baseOptions({
        scales: {
          rate: Object.assign({ position: "left" }, percentAxis),
          count: { position: "right", beginAtZero: true, grid: { display: false }, ticks: { precision: 0 } },
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
        },
      }),
    });
    noData("chart-daily", summary.total.conversations === 0);

    const reasons = Object.entries(summary.total.escalations_by_reason).sort((a, b) => b[1] - a[1]);
    chart("chart-reasons", {
      type: "bar",
      data: {
        labels: reasons.map(([r]) => REASON_LABELS[r] || r.replace(/_/g, " ")),
        datasets: [{ label: "Escalations", data: reasons.map(([, n]) => n), backgroundColor: COLORS.amber, borderRadius: 3 }],
      },
      options: baseOptions({
        indexAxis: "y",
        interaction: { mode: "nearest", intersect: true },
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { grid: { display: false } } },
      }),
    });
    noData("chart-reasons", reasons.length === 0);

    const started = days.filter((d) => d.queue_waiting_end_of_day !== null);
    chart("chart-backlog", {
      type: "line",
      data: {
        labels: started.map((d) => dayLabel(d.day)),
        datasets: [
          { label: "Waiting at end of day", data: started.map((d) => d.queue_waiting_end_of_day),
            borderColor: COLORS.blue, backgroundColor: "rgba(47, 111, 237, 0.12)", fill: true, tension: 0.2, pointRadius: 2 },
          { label: "Peak during the day", data: started.map((d) => d.queue_waiting_peak),
            borderColor: COLORS.grey, backgroundColor: COLORS.grey, borderDash: [4, 4], tension: 0.2, pointRadius: 0 },
        ],
      },
      options: baseOptions({
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } } },
      }),
    });
    noData("chart-backlog", !started.some((d) => d.queue_waiting_peak > 0));

    const csat = summary.total.csat;
    const scores = Object.keys(csat.distribution).sort();
    chart("chart-csat", {
      type: "bar",
      data: {
        labels: scores.map((s) => "★".repeat(Number(s))),
        datasets: [{ label: "Ratings", data: scores.map((s) => csat.distribution[s]), borderRadius: 3,
          backgroundColor: ["#d92d20", "#f97066", "#fdb022", "#6ce9a6", "#12b76a"] }],
      },
      options: baseOptions({
        interaction: { mode: "nearest", intersect: true },
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { grid: { display: false } } },
      }),
    });
    noData("chart-csat", csat.responses === 0);

    const frt = days.map((d) => d.first_human_response_ms);
    const max = Math.max(0, ...frt.map((f) => f.p90 || 0));
    const [unit, divisor] = max >= 3 * 3600000 ? ["h", 3600000] : ["min", 60000];
    const scaled = (ms) => (ms === null ? null : Math.round((ms / divisor) * 10) / 10);
    chart("chart-frt", {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "Median", data: frt.map((f) => scaled(f.p50)), borderColor: COLORS.blue, backgroundColor: COLORS.blue, spanGaps: true, tension: 0.25, pointRadius: 2 },
          { label: "90th percentile", data: frt.map((f) => scaled(f.p90)), borderColor: COLORS.amber, backgroundColor: COLORS.amber, spanGaps: true, tension: 0.25, pointRadius: 2 },
        ],
      },
      options: baseOptions({
        scales: {
          y: { beginAtZero: true, title: { display: true, text: unit === "h" ? "hours" : "minutes" } },
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
        },
      }),
    });
    noData("chart-frt", summary.total.first_human_response_ms.count === 0);
  }

  // --- the article table ----------------------------------------------------------------------

  function articleValue(row, key) {
    if (key === "title") return (row.title || row.article_id).toLowerCase();
    return row[key];
  }

  function renderArticles() {
    const { key, dir } = state.sort;
    const sign = dir === "asc" ? 1 : -1;
    const rows = state.articles.slice().sort((a, b) => {
      const x = articleValue(a, key);
      const y = articleValue(b, key);
      if (x === y) return a.article_id < b.article_id ? -1 : 1;
      if (x === null || x === undefined) return 1; // empty values last, whatever the direction
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    const body = $("articles-body");
    body.replaceChildren();
    for (const row of rows) {
      const tr = el("tr");
      tr.dataset.articleId = row.article_id;
      const name = el("td", "article");
      name.append(el("span", "title", row.title || row.article_id));
      if (row.title) name.append(el("span", "id", row.article_id));
      tr.append(name);
      for (const column of ["cited", "retrieved", "helpful", "not_helpful", "conversations"]) {
        tr.append(el("td", "num", row[column]));
      }
      tr.append(el("td", "num", pct(row.deflection_rate)));
      body.append(tr);
    }
    $("articles-empty").hidden = rows.length > 0;
    for (const th of document.querySelectorAll("#articles-table th[data-key]")) {
      const sorted = th.dataset.key === key;
      th.setAttribute("aria-sort", sorted ? (dir === "asc" ? "ascending" : "descending") : "none");
    }
  }

  function sortBy(key, type) {
    if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
    else state.sort = { key, dir: type === "text" ? "asc" : "desc" };
    renderArticles();
  }

  // --- content gaps ---------------------------------------------------------------------------

  function renderGaps(data) {
    const list = $("gaps-list");
    list.replaceChildren();
    $("gaps-count").textContent = String(data.groups.length);
    $("gaps-status").textContent = data.groups.length
      ? `${data.questions} question${data.questions === 1 ? "" : "s"} in ${data.groups.length} group${data.groups.length === 1 ? "" : "s"}.`
      : "No failed questions in this period.";
    for (const group of data.groups) {
      const li = el("li", "gap");
      const head = el("div", "gap-head");
      head.append(el("span", "gap-count", group.count));
      const title = el("div", "gap-title");
      title.append(el("strong", "", group.title));
      const reasons = Object.entries(group.reasons)
        .map(([r, n]) => `${n} ${(REASON_LABELS[r] || r.replace(/_/g, " ")).toLowerCase()}`).join(" · ");
      title.append(el("span", "hint", `${group.conversations} conversation${group.conversations === 1 ? "" : "s"} · ${reasons}`));
      head.append(title);
      if (canDraft) {
        const link = el("a", "button draft-link", "Draft an article");
        link.href = group.draft_url;
        link.target = "_blank";
        link.rel = "noopener";
        head.append(link);
      }
      li.append(head);
      const details = el("details", "gap-details");
      details.append(el("summary", "", "Questions and agent replies"));
      const cols = el("div", "gap-cols");
      const asked = el("div");
      asked.append(el("h3", "", "Customers asked"));
      const ul = el("ul");
      for (const q of group.questions) ul.append(el("li", "", q));
      asked.append(ul);
      const replied = el("div");
      replied.append(el("h3", "", "Agents replied"));
      const ol = el("ul", "replies");
      if (!group.replies.length) ol.append(el("li", "hint", "No agent reply yet."));
      for (const r of group.replies) ol.append(el("li", "", r));
      replied.append(ol);
      cols.append(asked, replied);
      details.append(cols);
      li.append(details);
      list.append(li);
    }
  }

  // --- wiring ---------------------------------------------------------------------------------

  for (const button of document.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => lastDays(Number(button.dataset.days)));
  }
  $("period-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const since = $("since").value;
    const until = $("until").value;
    if (!since || !until) return;
    if (since > until) {
      showError("The start date is after the end date.");
      return;
    }
    setPeriod(since, until, null);
  });
  for (const th of document.querySelectorAll("#articles-table th[data-key]")) {
    th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key, th.dataset.type));
  }
  lastDays(30);
})();
