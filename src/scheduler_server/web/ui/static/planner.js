// The planner page: a window, a policy and its preset, config overrides; the schedule drawn as a
// timeline and a sky view, the checker's verdict, the blocks and the script.

import { api, ApiError } from "./api.js";
import { $, clearError, el, fail, fmtTime, setState } from "./dom.js";
import { showBlocks, showScript, wireScriptButtons } from "./blocks.js";
import { drawSky } from "./skyview.js";
import { drawTimeline } from "./timeline.js";
import { legend } from "./plot.js";

const MAX_SKY_SAMPLES = 1500;
let policies = [];

// "YYYY-MM-DD HH:MM" (UTC unless it says otherwise) -> ms since the epoch.
function parseUtc(text) {
  const t = text.trim().replace(" ", "T");
  return Date.parse(/(Z|[+-]\d\d:\d\d)$/.test(t) ? t : `${t}Z`);
}

function fieldError(name, message) {
  const box = document.getElementById(`${name}-error`);
  box.textContent = message;
  box.hidden = false;
  document.getElementById(name).setAttribute("aria-invalid", "true");
}

function clearFieldErrors() {
  for (const name of ["t0", "t1", "config"]) {
    const box = document.getElementById(`${name}-error`);
    box.textContent = "";
    box.hidden = true;
    document.getElementById(name).removeAttribute("aria-invalid");
  }
}

function fillPresets() {
  const chosen = policies.find((p) => p.name === $("#policy").value);
  const select = $("#preset");
  select.replaceChildren(el("option", { value: "", text: "(none)" }));
  for (const name of Object.keys(chosen ? chosen.presets : {})) select.append(el("option", { value: name, text: name }));
  showDefaults();
}

function showDefaults() {
  const chosen = policies.find((p) => p.name === $("#policy").value);
  const preset = $("#preset").value;
  let text = chosen ? JSON.stringify(chosen.defaults, null, 2) : "";
  if (chosen && preset && chosen.presets[preset]) {
    text = `preset ${preset} sets:\n${JSON.stringify(chosen.presets[preset], null, 2)}\n\nthe policy's defaults:\n${text}`;
  }
  $("#defaults").textContent = text;
}

function readConfig() {
  const text = $("#config").value.trim();
  if (!text) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, `config: not JSON: ${error.message}`, "policy.config");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError(400, "config: must be a JSON object", "policy.config");
  }
  return value;
}

function showRefusal(error) {
  const field = error.field || "";
  if (field === "t0" || field === "t1") fieldError(field, error.message);
  else if (field.startsWith("policy")) fieldError("config", error.message);
  fail(error);
}

async function skyPositions(t0, t1) {
  const step = Math.max(60, Math.ceil((t1 - t0) / 1000 / MAX_SKY_SAMPLES / 60) * 60);
  const query = { t0: new Date(t0).toISOString(), t1: new Date(t1).toISOString(), step, bodies: "sun,moon" };
  try {
    const data = await api("/api/v1/sky/positions", { query });
    return { ...data, ms: data.times.map((t) => Date.parse(t)) };
  } catch (error) {
    $("#status").textContent = `Sun and moon tracks not shown: ${error.message}`;
    return null;
  }
}

function verdict(check) {
  const box = $("#verdict");
  const problems = $("#problems");
  problems.replaceChildren();
  box.className = "";
  if (!check) {
    box.textContent = "not checked";
    $("#verdict-detail").textContent = "(this answer carries no check)";
    return;
  }
  box.textContent = check.safe ? "safe" : "unsafe";
  box.className = check.safe ? "safe" : "unsafe";
  const closest = Number.isFinite(check.min_sun_distance_deg) ? `${check.min_sun_distance_deg.toFixed(2)} deg` : "n/a";
  $("#verdict-detail").textContent = `closest approach to the sun ${closest}, limit ${check.limit_deg} deg`;
  for (const problem of check.problems || []) problems.append(el("li", { text: problem }));
}

function draw(answer, t0, t1, sky) {
  const started = performance.now();
  const blocks = (answer.blocks || [])
    .map((b, index) => ({ ...b, index, t0ms: Date.parse(b.t0), t1ms: Date.parse(b.t1) }))
    .sort((a, b) => a.t0ms - b.t0ms);
  const check = answer.check || null;
  const timeline = $("#timeline");
  $("#result").hidden = false;
  drawTimeline(timeline, { t0, t1, blocks, events: answer.events, check, sky });
  drawSky($("#skyview"), { blocks, sky, limit: check ? check.limit_deg : NaN });
  verdict(check);
  const kinds = [...new Set(blocks.map((b) => b.kind))];
  legend($("#legend"), [
    ...kinds.map((k) => ["swatch-kind", k, k]),
    ["wait", "slew or wait"],
    ...(sky ? [["track sun", "sun"], ["track moon", "moon"]] : []),
    ...(check && check.samples && check.samples.length ? [["sun-distance", "min sun distance"], ["limit", "sun limit"]] : []),
  ]);
  showBlocks($("#blocks"), blocks);
  showScript($("#script"), answer.commands, `schedule-${fmtTime(t0, { seconds: false }).replace(/[-:]/g, "").replace(" ", "T")}Z.py`);
  void document.body.offsetHeight; // lay the page out now, so the time counts layout as well as script
  timeline.dataset.drawMs = (performance.now() - started).toFixed(1);
  timeline.dataset.blocks = String(blocks.length);
}

async function submit(event) {
  event.preventDefault();
  setState("loading");
  clearError();
  clearFieldErrors();
  $("#status").textContent = "Scheduling...";
  const started = performance.now();
  $("#submit").disabled = true;
  try {
    const t0 = parseUtc($("#t0").value);
    const t1 = parseUtc($("#t1").value);
    const policy = { policy: $("#policy").value, config: readConfig() };
    if ($("#preset").value) policy.preset = $("#preset").value;
    const body = { t0: $("#t0").value.trim(), t1: $("#t1").value.trim(), policy, format: "json" };
    toLink();
    const [answer, sky] = await Promise.all([
      api("/api/v1/schedule/", { method: "POST", body }),
      Number.isFinite(t0) && Number.isFinite(t1) && t1 > t0 ? skyPositions(t0, t1) : null,
    ]);
    draw(answer, t0, t1, sky);
    const took = ((performance.now() - started) / 1000).toFixed(1);
    const count = (answer.blocks || []).length;
    const note = sky ? "" : ` ${$("#status").textContent}`;
    $("#status").textContent = `${count} block${count === 1 ? "" : "s"} in ${took} s.${note}`;
    setState("ready");
  } catch (error) {
    $("#status").textContent = "";
    if (error instanceof ApiError) showRefusal(error);
    else fail(error);
  } finally {
    $("#submit").disabled = false;
  }
}

async function init() {
  const now = new Date();
  now.setUTCSeconds(0, 0);
  $("#t0").value = fmtTime(now, { seconds: false });
  $("#t1").value = fmtTime(now.getTime() + 24 * 3600e3, { seconds: false });
  wireScriptButtons();
  $("#plan-form").addEventListener("submit", submit);
  $("#policy").addEventListener("change", fillPresets);
  $("#preset").addEventListener("change", showDefaults);
  try {
    policies = (await api("/api/v1/policies")).policies;
  } catch (error) {
    fail(error);
    return;
  }
  const select = $("#policy");
  for (const p of policies) select.append(el("option", { value: p.name, text: p.name, title: p.description }));
  if (policies.some((p) => p.name === "basic")) select.value = "basic";
  fillPresets();
  fromLink();
  $("#timeline").addEventListener("click", pickBlock);
  $("#timeline").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    if (!event.target.closest(".band")) return;
    event.preventDefault();
    pickBlock(event);
  });
  setState("ready");
}

// A planner link (?t0=&t1=&policy=&preset=&config=) fills the form; a submitted form becomes one.
function fromLink() {
  const params = new URLSearchParams(window.location.search);
  for (const name of ["t0", "t1", "config"]) if (params.has(name)) $(`#${name}`).value = params.get(name);
  if (policies.some((p) => p.name === params.get("policy"))) {
    $("#policy").value = params.get("policy");
    fillPresets();
  }
  if ([...$("#preset").options].some((o) => o.value === params.get("preset"))) {
    $("#preset").value = params.get("preset");
    showDefaults();
  }
}

function toLink() {
  const params = new URLSearchParams({ t0: $("#t0").value.trim(), t1: $("#t1").value.trim(), policy: $("#policy").value });
  if ($("#preset").value) params.set("preset", $("#preset").value);
  const config = $("#config").value.trim();
  if (config && config !== "{}" && config.length <= 2000) params.set("config", config);
  history.replaceState(null, "", `?${params}`);
}

// A band clicked in the timeline: its row in the blocks table, marked and brought into view.
function pickBlock(event) {
  const band = event.target.closest(".band");
  if (!band) return;
  for (const row of document.querySelectorAll("#blocks tr.picked")) row.classList.remove("picked");
  const row = document.querySelector(`#blocks tbody tr[data-index="${band.dataset.index}"]`);
  if (!row) return;
  row.classList.add("picked");
  row.scrollIntoView({ block: "center" });
}

init();
