// One pipeline: its fields (never a password), the history of transitions with reasons and timings,
// the log tailing live (stdout/stderr tabs), cancel and retry behind a confirmation dialog.

import { api, ApiError, poll } from "./api.js";
import { $, clearError, confirmDialog, el, fail, fmtDuration, fmtTime, morphChildren, seconds, setState, showError } from "./dom.js";

const POLL_MS = 1500;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// Never shown, whatever the API sends (it masks them anyway).
const SECRET = /pwd|passw|secret|token/i;
const SHOWN_FIRST = ["id", "type", "status", "reason", "exit_code", "attempt", "instance", "project", "subject", "session",
  "script", "files", "priority", "timeout", "cancel_requested"];
const LOG_LIMIT = 2 * 1024 * 1024; // characters kept on the page per stream

const logs = {
  stdout: { text: "", next: 0, complete: false, inflight: null, epoch: 0 },
  stderr: { text: "", next: 0, complete: false, inflight: null, epoch: 0 },
};
let stream = "stdout";
let current = null;
let stopPolling = null;

function pipelineId() {
  const fromQuery = new URLSearchParams(window.location.search).get("id");
  const fromPath = window.location.pathname.match(/\/pipelines\/(\d+)\/?$/);
  const raw = fromQuery ?? (fromPath ? fromPath[1] : null);
  return raw !== null && /^\d{1,10}$/.test(raw) ? raw : null;
}

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function showDetails(p) {
  const dl = el("dl");
  const keys = [...SHOWN_FIRST.filter((k) => k in p), ...Object.keys(p).filter((k) => !SHOWN_FIRST.includes(k))];
  for (const key of keys) {
    if (SECRET.test(key) || key === "history" || key === "timings") continue;
    const dd = el("dd", { text: text(p[key]) });
    if (key === "instance" && p.instance) {
      dd.replaceChildren(el("a", { href: `${document.body.dataset.root || ""}/ui/instances`, text: p.instance }));
    }
    if (key === "status") dd.className = "status";
    if (key === "status") dd.dataset.status = p.status;
    dl.append(el("dt", { text: key.replace(/_/g, " ") }), dd);
  }
  const t = p.timings || {};
  const rows = [
    ["submitted", fmtTime(t.queued)],
    ["instance ready", fmtTime(t.instance_ready)],
    ["script started", fmtTime(t.script_started)],
    ["finished", fmtTime(t.finished)],
    ["waited", fmtDuration(seconds(t.queued, t.script_started || (FINISHED.has(p.status) ? t.finished : new Date().toISOString())))],
    ["ran", t.script_started ? fmtDuration(seconds(t.script_started, t.finished || new Date().toISOString())) : ""],
  ];
  for (const [label, value] of rows) dl.append(el("dt", { text: label }), el("dd", { text: value }));
  morphChildren($("#details"), [...dl.childNodes]);
  $("h1").textContent = `Pipeline ${p.id}`;
  document.title = `Pipeline ${p.id} · scheduler-server`;
}

function showHistory(history) {
  const body = el("tbody");
  let previous = null;
  for (const h of history || []) {
    body.append(el("tr", {},
      el("td", { text: fmtTime(h.at) }),
      el("td", { className: "status", dataset: { status: h.from ?? "" }, text: h.from ?? "" }),
      el("td", { className: "status", dataset: { status: h.to }, text: h.to }),
      el("td", { className: "num", text: h.attempt }),
      el("td", { className: "num", text: previous ? fmtDuration(seconds(previous, h.at)) : "" }),
      el("td", { text: h.reason ?? "" })));
    previous = h.at;
  }
  morphChildren($("#history").tBodies[0], [...body.childNodes]);
}

function showButtons(p) {
  $("#cancel").disabled = FINISHED.has(p.status) || p.cancel_requested;
  $("#retry").disabled = !(p.status === "failed" || p.status === "cancelled");
}

function showLog() {
  const box = $("#log");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  if (box.textContent !== logs[stream].text) box.textContent = logs[stream].text;
  if (atBottom) box.scrollTop = box.scrollHeight;
  const log = logs[stream];
  $("#log-status").textContent = log.complete ? "complete" : current && FINISHED.has(current.status) ? "" : "following...";
}

// One tail in flight per stream: a caller while one runs gets that one's promise. A chunk that does not
// start at log.next (an answer to a request made before the log was reset) is dropped; refresh resets the
// logs when a new attempt starts, and the next tail reads it from 0.
function tail(name) {
  const log = logs[name];
  if (!log.inflight) log.inflight = tailRounds(name, log).finally(() => { log.inflight = null; });
  return log.inflight;
}

async function tailRounds(name, log) {
  if (log.complete) return;
  for (let rounds = 0; rounds < 8; rounds++) {
    const since = log.next;
    const epoch = log.epoch;
    let chunk;
    try {
      chunk = await api(`/api/v1/pipelines/${pipelineId()}/logs`, { query: { stream: name, since } });
    } catch (error) {
      // 503: the instance cannot be reached now; say so and try again at the next tick.
      if (error instanceof ApiError && error.status === 503) $("#log-status").textContent = error.message;
      else throw error;
      return;
    }
    if (epoch !== log.epoch || since !== log.next || chunk.offset !== since) return; // stale: the log was reset meanwhile
    log.text = (log.text + chunk.data).slice(-LOG_LIMIT);
    log.next = chunk.next;
    log.complete = chunk.complete;
    if (!chunk.data || chunk.complete) break;
  }
}

async function refresh() {
  // The log is read while the pipeline is (not after it): a reset for a new attempt below drops that read.
  const reading = tail(stream);
  reading.catch(() => {}); // its error, if any, is the one awaited below
  try {
    const p = await api(`/api/v1/pipelines/${pipelineId()}`);
    if (current && current.attempt !== p.attempt) {
      for (const log of Object.values(logs)) Object.assign(log, { text: "", next: 0, complete: false, epoch: log.epoch + 1 });
    }
    current = p;
    showDetails(p);
    showHistory(p.history);
    showButtons(p);
    await reading;
    showLog();
    if (document.getElementById("page").dataset.state === "error") clearError();
    setState("ready");
  } catch (error) {
    fail(error);
    // A 4xx will not change by asking again (a 404 will not appear, a 400 id stays bad); a 401 is the token's dialog.
    if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401 && stopPolling) {
      stopPolling();
    }
  }
}

function selectTab(name) {
  stream = name;
  for (const other of ["stdout", "stderr"]) {
    const tab = $(`#tab-${other}`);
    tab.setAttribute("aria-selected", String(other === name));
    tab.tabIndex = other === name ? 0 : -1;
  }
  $("#log").setAttribute("aria-labelledby", `tab-${name}`);
  showLog();
  tail(name).then(showLog, fail);
}

// A retry of an XNAT pipeline whose token was released is a 400 asking for fresh credentials: they are
// asked in #credentials and sent in the retry's body once, never stored (the inputs are emptied on close).
function needsCredentials(error) {
  return error instanceof ApiError && error.status === 400 && /fresh credentials/.test(error.message);
}

function askCredentials(why) {
  const dialog = $("#credentials");
  const inputs = [$("#cred-name"), $("#cred-secret")];
  $("#credentials-why").textContent = why;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => {
      const [name, secret] = inputs.map((input) => input.value);
      for (const input of inputs) input.value = "";
      if (dialog.returnValue !== "send" || !name || !secret) resolve(null);
      else resolve($("#cred-kind").value === "alias" ? { alias: name, secret } : { user: name, pwd: secret });
    }, { once: true });
    dialog.showModal();
    inputs[0].focus();
  });
}

async function post(verb) {
  const path = `/api/v1/pipelines/${current.id}/${verb}`;
  try {
    return await api(path, { method: "POST" });
  } catch (error) {
    if (verb !== "retry" || !needsCredentials(error)) throw error;
    const credentials = await askCredentials(error.message);
    return credentials ? api(path, { method: "POST", body: credentials }) : null;
  }
}

async function act(verb) {
  const question = verb === "cancel" ? `Cancel pipeline ${current.id}?` : `Queue pipeline ${current.id} again?`;
  if (!(await confirmDialog(question))) return;
  try {
    const answer = await post(verb);
    if (!answer) return; // no credentials given
    current = answer;
    clearError();
    showDetails(current);
    showHistory(current.history);
    showButtons(current);
  } catch (error) {
    showError(`${verb} failed: ${error.message}`);
  }
}

function init() {
  if (pipelineId() === null) {
    fail(new Error("No pipeline id: open /ui/pipeline?id=N from the queue."));
    return;
  }
  for (const name of ["stdout", "stderr"]) $(`#tab-${name}`).addEventListener("click", () => selectTab(name));
  $(".tabs").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = stream === "stdout" ? "stderr" : "stdout";
    selectTab(next);
    $(`#tab-${next}`).focus();
  });
  $("#cancel").addEventListener("click", () => act("cancel"));
  $("#retry").addEventListener("click", () => act("retry"));
  stopPolling = poll(refresh, POLL_MS);
}

init();
