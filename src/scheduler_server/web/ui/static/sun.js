// The sun calculator: the sun, the moon and the planets at the site now and over a chosen UTC day,
// the sun's distance from a pointing, and when it crosses the avoidance limit around it.

import { api } from "./api.js";
import { $, clearError, el, fail, fmtDuration, fmtNumber, fmtTime, seconds, setState, svg } from "./dom.js";
import { legend, numTicks, panel, path, scale, timeTicks } from "./plot.js";

const BODIES = ["sun", "moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune"];
const WIDTH = 1200;
const RAD = Math.PI / 180;

function angle(az1, el1, az2, el2) {
  const c = Math.sin(el1 * RAD) * Math.sin(el2 * RAD) + Math.cos(el1 * RAD) * Math.cos(el2 * RAD) * Math.cos((az1 - az2) * RAD);
  return Math.acos(Math.max(-1, Math.min(1, c))) / RAD;
}

async function showNow() {
  const now = new Date();
  now.setUTCMilliseconds(0);
  const query = { t0: now.toISOString(), t1: new Date(now.getTime() + 60e3).toISOString(), step: 60, bodies: BODIES.join(",") };
  const data = await api("/api/v1/sky/positions", { query });
  $("#now-time").textContent = `(${fmtTime(data.times[0])} UTC)`;
  const body = document.createElement("tbody");
  for (const name of BODIES) {
    const track = data.bodies[name];
    if (!track) continue;
    const up = track.el[0] >= 0;
    body.append(el("tr", { dataset: { body: name } }, el("th", { attrs: { scope: "row" }, text: name }),
      el("td", { className: "num", text: fmtNumber(track.az[0]) }),
      el("td", { className: "num", text: `${fmtNumber(track.el[0])}${up ? "" : " (below the horizon)"}` })));
  }
  $("#now").tBodies[0].replaceWith(body);
  const s = data.site;
  $("#site").textContent = `Site: latitude ${s.lat} deg, longitude ${s.lon} deg, ${s.elevation} m.`;
}

function dayPlot(data, t0, t1) {
  const ms = data.times.map((t) => Date.parse(t));
  const x = scale(t0, t1, 64, WIDTH - 16);
  const { ticks, step } = timeTicks(t0, t1, 12);
  const y = scale(-30, 90, 228, 8);
  const g = panel({ x, y, yTicks: numTicks(-30, 90, 6), timeStep: step, timeTicksMs: ticks, title: "elevation (deg)" });
  g.append(svg("line", { className: "zero", x1: x.range[0], x2: x.range[1], y1: y(0), y2: y(0) }));
  const yAz = scale(0, 360, 420, 244);
  const gAz = panel({ x, y: yAz, yTicks: [0, 90, 180, 270, 360], timeStep: step, timeTicksMs: ticks, title: "azimuth (deg)",
    xLabels: true });
  const now = Date.now();
  if (now > t0 && now < t1) {
    g.append(svg("line", { className: "now-line", x1: x(now), x2: x(now), y1: 8, y2: 228 }));
    gAz.append(svg("line", { className: "now-line", x1: x(now), x2: x(now), y1: 244, y2: 420 }));
  }
  const jump = Math.abs(yAz(180) - yAz(0));
  BODIES.forEach((name, k) => {
    const track = data.bodies[name];
    if (!track) return;
    g.append(path(ms.map((t, i) => [x(t), y(Math.max(-30, track.el[i]))]), `series s${k}`));
    const up = ms.map((t, i) => (track.el[i] < 0 ? null : [x(t), yAz(((track.az[i] % 360) + 360) % 360)]));
    gAz.append(path(up, `series s${k}`, { maxJumpY: jump }));
  });
  $("#day-plot").setAttribute("viewBox", `0 0 ${WIDTH} 444`);
  $("#day-plot").replaceChildren(g, gAz);
  legend($("#day-legend"), BODIES.map((name, k) => [`series s${k}`, name]));
  return ms;
}

function distancePlot(data, ms, t0, t1, pointing, limit) {
  const sun = data.bodies.sun;
  const x = scale(t0, t1, 64, WIDTH - 16);
  const { ticks, step } = timeTicks(t0, t1, 12);
  const y = scale(0, 180, 188, 8);
  const g = panel({ x, y, yTicks: numTicks(0, 180, 6), timeStep: step, timeTicksMs: ticks, title: "sun to pointing (deg)", xLabels: true });
  const d = ms.map((t, i) => [x(t), y(angle(pointing.az, pointing.el, sun.az[i], sun.el[i]))]);
  g.append(path(d, "sun-distance"));
  g.append(svg("line", { className: "limit", x1: x.range[0], x2: x.range[1], y1: y(limit), y2: y(limit) }));
  g.append(svg("text", { className: "limit-label", x: x.range[1] - 4, y: y(limit) - 4, text: `limit ${limit} deg` }));
  $("#distance-plot").setAttribute("viewBox", `0 0 ${WIDTH} 212`);
  $("#distance-plot").replaceChildren(g);
  return { x, g };
}

function showLimit(limit, plot) {
  const crossings = document.createElement("tbody");
  for (const c of limit.crossings) {
    crossings.append(el("tr", {}, el("td", { text: fmtTime(c.at) }),
      el("td", { text: c.direction === "enter" ? "comes within the limit (unsafe from here)" : "leaves the limit (safe from here)" })));
  }
  if (!limit.crossings.length) crossings.append(el("tr", {}, el("td", { attrs: { colspan: 2 }, text: "none in this day" })));
  $("#crossings").tBodies[0].replaceWith(crossings);
  const intervals = document.createElement("tbody");
  for (const i of limit.intervals) {
    intervals.append(el("tr", {}, el("td", { text: fmtTime(i.t0) }), el("td", { text: fmtTime(i.t1) }),
      el("td", { text: fmtDuration(seconds(i.t0, i.t1)) })));
    const x0 = plot.x(Date.parse(i.t0));
    plot.g.prepend(svg("rect", { className: "inside", x: x0, y: 8, width: Math.max(1, plot.x(Date.parse(i.t1)) - x0), height: 180 }));
  }
  if (!limit.intervals.length) intervals.append(el("tr", {}, el("td", { attrs: { colspan: 3 }, text: "none in this day" })));
  $("#intervals").tBodies[0].replaceWith(intervals);
  const total = limit.intervals.reduce((sum, i) => sum + seconds(i.t0, i.t1), 0);
  $("#limit-summary").textContent = limit.intervals.length
    ? `The sun is within ${limit.limit_deg} deg of this pointing for ${fmtDuration(total)} of the day.`
    : `The sun stays farther than ${limit.limit_deg} deg from this pointing all day: always safe.`;
}

async function showDay(event) {
  if (event) event.preventDefault();
  setState("loading");
  clearError();
  try {
    const t0 = Date.parse(`${$("#day").value}T00:00:00Z`);
    const t1 = t0 + 24 * 3600e3;
    const window = { t0: new Date(t0).toISOString(), t1: new Date(t1).toISOString() };
    const pointing = { az: Number($("#az").value), el: Number($("#el").value) };
    const limitQuery = { ...window, az: $("#az").value, el: $("#el").value, limit_deg: $("#limit").value };
    const [data, limit] = await Promise.all([
      api("/api/v1/sky/positions", { query: { ...window, step: 300, bodies: BODIES.join(",") } }),
      api("/api/v1/sky/sun-limit", { query: limitQuery }),
      showNow(),
    ]);
    const ms = dayPlot(data, t0, t1);
    showLimit(limit, distancePlot(data, ms, t0, t1, pointing, limit.limit_deg));
    setState("ready");
  } catch (error) {
    fail(error);
  }
}

function init() {
  $("#day").value = new Date().toISOString().slice(0, 10);
  $("#day-form").addEventListener("submit", showDay);
  showDay();
  // "Now" stays now: the table is read again every half minute (a failure shows at the next Compute).
  setInterval(() => showNow().catch(() => {}), 30000);
}

init();
