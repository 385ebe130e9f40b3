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

// Points at angular distance `radius` (deg) around (az, el): the avoidance zone's edge on the sky.
function circleAround(az, el, radius) {
  const points = [];
  const lat = el * RAD;
  const d = radius * RAD;
  for (let b = 0; b <= 360; b += 10) {
    const bearing = b * RAD;
    const lat2 = Math.asin(Math.sin(lat) * Math.cos(d) + Math.cos(lat) * Math.sin(d) * Math.cos(bearing));
    const dlon = Math.atan2(Math.sin(bearing) * Math.sin(d) * Math.cos(lat), Math.cos(d) - Math.sin(lat) * Math.sin(lat2));
    points.push(project(az + dlon / RAD, lat2 / RAD));
  }
  return points;
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

function zones(g, sky, limit) {
  const sun = sky.bodies.sun;
  if (!sun || !Number.isFinite(limit)) return;
  const wanted = Math.min(48, sky.ms.length);
  const every = Math.max(1, Math.floor(sky.ms.length / wanted));
  for (let k = 0; k < sky.ms.length; k += every) {
    if (sun.el[k] < -limit) continue;
    const edge = circleAround(sun.az[k], sun.el[k], limit);
    g.append(svg("path", { className: "sun-zone", d: `${linePath(edge)}Z` }));
  }
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
