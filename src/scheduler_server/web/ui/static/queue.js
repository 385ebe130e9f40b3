// The pipeline queue: counts by status, filters and search, server-side pages, live updates by
// polling (the visible page and the counts only, every 2 s), queue depth and throughput.

import { api, poll } from "./api.js";
import { $, clearError, el, fail, fmtDuration, fmtTime, morphChildren, morphRows, seconds, setState } from "./dom.js";
import { drawSummary } from "./summary.js";

const POLL_MS = 2000;
const STATUSES = ["queued", "provisioning", "staging", "running", "succeeded", "failed", "cancelled"];
// [sort key or null, heading, cell]
const COLUMNS = [
  ["id", "Id", (p) => el("td", { className: "num" }, el("a", { href: pipelineHref(p.id), text: p.id }))],
  ["status", "Status", (p) => el("td", { className: "status", dataset: { status: p.status }, text: p.status })],
  [null, "Type", (p) => el("td", { text: p.type })],
  [null, "Project", (p) => el("td", { text: p.project ?? "" })],
  [null, "Subject", (p) => el("td", { text: p.subject ?? "" })],
  [null, "Session", (p) => el("td", { text: p.session ?? "" })],
  [null, "Script", (p) => el("td", { text: p.script ?? "" })],
  ["submitted", "Submitted (UTC)", (p) => el("td", { text: fmtTime(p.timings.queued) })],
  ["started", "Started (UTC)", (p) => el("td", { text: fmtTime(p.timings.script_started) })],
  ["finished", "Finished (UTC)", (p) => el("td", { text: fmtTime(p.timings.finished) })],
  [null, "Duration", (p) => el("td", { className: "num", text: duration(p) })],
  [null, "Attempt", (p) => el("td", { className: "num", text: p.attempt })],
];
const FILTERS = [
  ["status", "#filter-status"],
  ["project", "#filter-project"],
  ["subject", "#filter-subject"],
  ["session", "#filter-session"],
  ["q", "#search"],
];

const state = { offset: 0, limit: 50, sort: "-id", total: 0 };
let generation = 0;

function pipelineHref(id) {
  return `${document.body.dataset.root || ""}/ui/pipeline?id=${encodeURIComponent(id)}`;
}

function duration(p) {
  const start = p.timings.script_started;
  if (!start) return "";
  return fmtDuration(seconds(start, p.timings.finished || new Date().toISOString()));
}

function filters() {
  const query = {};
  for (const [name, selector] of FILTERS) {
    const value = $(selector).value.trim();
    if (value) query[name] = value;
  }
  return query;
}

function header() {
  const tr = el("tr");
  for (const [key, label] of COLUMNS) {
    const th = el("th", { attrs: { scope: "col" } });
    if (!key) {
      th.textContent = label;
    } else {
      const current = state.sort.replace(/^-/, "") === key;
      if (current) th.setAttribute("aria-sort", state.sort.startsWith("-") ? "descending" : "ascending");
      th.append(el("button", { type: "button", className: "sort", text: label, on: { click: () => sortBy(key) } }));
    }
    tr.append(th);
  }
  $("#pipelines").tHead.replaceChildren(tr);
}

function sortBy(key) {
  state.sort = state.sort === key ? `-${key}` : key;
  state.offset = 0;
  header();
  refresh();
  $("#pipelines th[aria-sort] button").focus();
}

function showPage(page) {
  const rows = page.items.map((p) => el("tr", { dataset: { id: p.id, status: p.status } }, COLUMNS.map(([, , cell]) => cell(p))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { attrs: { colspan: COLUMNS.length }, text: "No pipeline matches." })));
  morphRows($("#pipelines").tBodies[0], rows);
  state.total = page.total;
  const last = Math.min(page.offset + page.items.length, page.total);
  $("#range").textContent = page.total ? `${page.offset + 1} to ${last} of ${page.total}` : "none";
  $("#prev").disabled = page.offset <= 0;
  $("#next").disabled = page.offset + page.limit >= page.total;
  $("#updated").textContent = `updated ${fmtTime(new Date())} UTC`;
}

// Each count is a button that filters the table by its status ("all" clears the filter).
function showCounts(counts) {
  const item = (status, n, label) => el("li", { dataset: { status } },
    el("button", { type: "button", className: "count", dataset: { status }, title: `Show ${label} pipelines` },
      el("strong", { text: n }), el("span", { className: "status", dataset: { status }, text: label })));
  const items = STATUSES.map((status) => item(status, counts[status] || 0, status));
  const all = STATUSES.reduce((sum, status) => sum + (counts[status] || 0), 0);
  morphChildren($("#counts"), [item("all", all, "all"), ...items]);
}

function filterByCount(event) {
  const button = event.target.closest("button[data-status]");
  if (!button) return;
  $("#filter-status").value = button.dataset.status === "all" ? "" : button.dataset.status;
  changed();
}

async function refresh() {
  const mine = ++generation;
  const query = { ...filters(), sort: state.sort, offset: state.offset, limit: state.limit };
  try {
    const [page, summary] = await Promise.all([api("/api/v1/pipelines", { query }), api("/api/v1/pipelines/summary")]);
    if (mine !== generation) return; // a newer request (filters changed) answers instead
    if (page.total && page.offset >= page.total) {
      // Past the end (an old link, rows gone): show the last page instead of an empty one.
      state.offset = Math.floor((page.total - 1) / state.limit) * state.limit;
      remember();
      return refresh();
    }
    showPage(page);
    showCounts(summary.counts);
    drawSummary(summary);
    clearError();
    setState("ready");
  } catch (error) {
    if (mine === generation) fail(error);
  }
}

function remember() {
  const params = new URLSearchParams(filters());
  if (state.offset) params.set("offset", String(state.offset));
  const search = params.toString();
  history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
}

function restore() {
  const params = new URLSearchParams(window.location.search);
  for (const [name, selector] of FILTERS) if (params.get(name)) $(selector).value = params.get(name);
  const offset = Number(params.get("offset"));
  if (Number.isInteger(offset) && offset > 0) state.offset = offset;
}

function changed() {
  state.offset = 0;
  state.limit = Number($("#page-size").value);
  remember();
  refresh();
}

function init() {
  restore();
  header();
  let typing = null;
  for (const [, selector] of FILTERS) {
    const input = $(selector);
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
      clearTimeout(typing);
      typing = setTimeout(changed, 250);
    });
  }
  $("#page-size").addEventListener("change", changed);
  $("#counts").addEventListener("click", filterByCount);
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    changed();
  });
  $("#prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    remember();
    refresh();
  });
  $("#next").addEventListener("click", () => {
    if (state.offset + state.limit < state.total) state.offset += state.limit;
    remember();
    refresh();
  });
  poll(refresh, POLL_MS);
}

init();
