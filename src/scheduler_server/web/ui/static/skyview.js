// The planner's sky view: an azimuth/elevation polar plot (zenith in the centre, north up, east right)
// with the blocks' sweeps, the sun's and the moon's tracks, and the sun-avoidance zone along the window.

import { svg } from "./dom.js";
import { linePath } from "./plot.js";

const SIZE = 440;
const C = SIZE / 2;
const R = 190;
const RAD = Math.PI / 180;

function project(az, el) {
  const r = (R * (90 - Math.max(0, el))) / 90;
  return [C + r * Math.sin(az * RAD), C - r * Math.cos(az * RAD)];
}

function unit(az, el) {
  const a = az * RAD;
  const e = el * RAD;
  return [Math.cos(e) * Math.sin(a), Math.cos(e) * Math.cos(a), Math.sin(e)];
}

const CELL_AZ = 3;
const CELL_EL = 2;

function cell(az, el) {
  const corners = [[az, el], [az + CELL_AZ, el], [az + CELL_AZ, el + CELL_EL], [az, el + CELL_EL]];
  return `${corners.map(([a, e], i) => `${i ? "L" : "M"}${project(a, e).map((v) => v.toFixed(1)).join(",")}`).join("")}Z`;
}

function grid(g) {
  for (const el of [0, 30, 60]) {
    const r = (R * (90 - el)) / 90;
    g.append(svg("circle", { className: el === 0 ? "horizon" : "grid", cx: C, cy: C, r }));
    g.append(svg("text", { className: "tick", x: C + 3, y: C - r + 12, text: `${el}` }));
  }
  const names = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
  names.forEach((name, k) => {
    const [x, y] = project(k * 45, 0);
    const [lx, ly] = project(k * 45, -8);
    g.append(svg("line", { className: "grid", x1: C, y1: C, x2: x, y2: y }));
    const label = (R + 14) / R;
    g.append(svg("text", { className: "compass", x: C + (lx - C) * label, y: C + (ly - C) * label + 4, text: name }));
  });
}

// The sun-avoidance zone of the whole window: every sky cell within `limit` of the sun at some
// sample (one shape, so overlapping hours do not darken it).
function zones(g, sky, limit) {
  const sun = sky.bodies.sun;
  if (!sun || !Number.isFinite(limit)) return;
  // At most ~240 positions: the sun then moves a few degrees between them, against a limit of tens.
  const every = Math.max(1, Math.ceil(sky.ms.length / 240));
  const picked = [];
  for (let k = 0; k < sky.ms.length; k += every) if (sun.el[k] > -limit) picked.push(...unit(sun.az[k], sun.el[k]));
  if (!picked.length) return;
  const suns = Float64Array.from(picked);
  const near = Math.cos(limit * RAD);
  const within = (x, y, z) => {
    for (let i = 0; i < suns.length; i += 3) if (suns[i] * x + suns[i + 1] * y + suns[i + 2] * z >= near) return true;
    return false;
  };
  let d = "";
  for (let el = 0; el < 90; el += CELL_EL) {
    for (let az = 0; az < 360; az += CELL_AZ) {
      if (within(...unit(az + CELL_AZ / 2, el + CELL_EL / 2))) d += cell(az, el);
    }
  }
  if (d) g.append(svg("path", { className: "sun-zone", d }));
}

function track(g, sky, body) {
  const t = sky.bodies[body];
  if (!t) return;
  const points = sky.ms.map((_, k) => (t.el[k] < 0 ? null : project(t.az[k], t.el[k])));
  g.append(svg("path", { className: `track ${body}`, d: linePath(points) || "M0,0" }));
}

export function drawSky(root, { blocks, sky, limit }) {
  root.setAttribute("viewBox", `0 0 ${SIZE} ${SIZE}`);
  const g = svg("g");
  grid(g);
  if (sky) {
    zones(g, sky, limit);
    track(g, sky, "sun");
    track(g, sky, "moon");
  }
  for (const b of blocks) {
    if (b.az === null || b.el === null) continue;
    const points = [];
    const width = b.throw || 0;
    for (let s = 0; s <= 8; s += 1) points.push(project(b.az + (width * s) / 8, b.el));
    const sweep = svg("path", { className: "sky-scan", dataset: { kind: b.kind }, d: linePath(points) });
    sweep.append(svg("title", { text: `${b.name} (${b.kind}) ${b.t0} to ${b.t1}` }));
    g.append(sweep);
  }
  root.replaceChildren(g);
}
