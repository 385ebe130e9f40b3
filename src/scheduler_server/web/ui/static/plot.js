// A small SVG plotting module: linear scales, time and number ticks, axes, and paths that break at gaps.
// Colours and strokes come from ui.css classes; only geometry is set here.

import { svg } from "./dom.js";

export function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const f = (v) => r0 + (v - d0) * k;
  f.domain = [d0, d1];
  f.range = [r0, r1];
  return f;
}

const MINUTE = 60e3;
const HOUR = 60 * MINUTE;
const TIME_STEPS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  24 * HOUR, 48 * HOUR, 7 * 24 * HOUR];

// Ticks for a time axis in ms since the epoch, aligned to UTC.
export function timeTicks(t0, t1, most = 10) {
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= most) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, step };
}

export function timeLabel(t, step) {
  const d = new Date(t);
  const hm = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
  const day = `${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
  if (step >= 24 * HOUR) return day;
  return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? `${day} ${hm}` : hm;
}

export function numTicks(v0, v1, most = 6) {
  const span = Math.abs(v1 - v0) || 1;
  const raw = span / most;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= most) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(Math.min(v0, v1) / step) * step; v <= Math.max(v0, v1) + 1e-9; v += step) ticks.push(+v.toFixed(6));
  return ticks;
}

// A panel: frame, horizontal grid with y labels, vertical time grid, y-axis title. Returns the <g>.
export function panel({ x, y, yTicks, timeStep, timeTicksMs, title, xLabels = false, yFormat = String }) {
  const [left, right] = x.range;
  const [bottom, top] = y.range;
  const g = svg("g", { className: "panel" });
  g.append(svg("rect", { className: "frame", x: left, y: top, width: right - left, height: bottom - top }));
  for (const v of yTicks) {
    const py = y(v);
    g.append(svg("line", { className: "grid", x1: left, x2: right, y1: py, y2: py }));
    g.append(svg("text", { className: "tick y", x: left - 6, y: py + 4, text: yFormat(v) }));
  }
  for (const t of timeTicksMs) {
    const px = x(t);
    g.append(svg("line", { className: "grid", x1: px, x2: px, y1: top, y2: bottom }));
    if (xLabels) g.append(svg("text", { className: "tick x", x: px, y: bottom + 16, text: timeLabel(t, timeStep) }));
  }
  if (title) {
    g.append(svg("text", { className: "axis-title", x: left + 6, y: top + 14, text: title }));
  }
  return g;
}

// Path through points [[x, y], ...]; a null point, or a jump wider than maxJump in x-units, breaks the line.
export function linePath(points, { maxJumpY = Infinity } = {}) {
  let d = "";
  let prev = null;
  for (const p of points) {
    if (!p || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
      prev = null;
      continue;
    }
    const move = !prev || Math.abs(p[1] - prev[1]) > maxJumpY;
    d += `${move ? "M" : "L"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    prev = p;
  }
  return d;
}

export function path(points, className, options = {}) {
  return svg("path", { className, d: linePath(points, options) || "M0,0" });
}

export function legend(box, entries) {
  box.replaceChildren();
  for (const [className, label, kind] of entries) {
    const dataset = kind === undefined ? undefined : { kind };
    const swatch = svg("svg", { className: "swatch", width: 18, height: 10, viewBox: "0 0 18 10", "aria-hidden": "true" },
      svg("rect", { className, dataset, x: 0, y: 1, width: 18, height: 8 }));
    const item = document.createElement("span");
    item.className = "legend-item";
    item.append(swatch, document.createTextNode(label));
    box.append(item);
  }
}

// Inclusive, finite min/max of several arrays.
export function extent(...arrays) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) for (const v of a) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
}
