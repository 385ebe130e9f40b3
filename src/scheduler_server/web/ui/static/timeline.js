// The planner's timeline: azimuth and elevation against time with one .band[data-kind] per block,
// slews and waits between them, the sun's and the moon's tracks, the checker's minimum sun distance
// with its limit, and the policy's state lanes (HWP, boresight, detectors) when the answer has them.

import { svg } from "./dom.js";
import { extent, numTicks, panel, path, scale, timeTicks } from "./plot.js";

const WIDTH = 1200;
const LEFT = 64;
const RIGHT = 16;
const LANES = ["hwp", "boresight", "detectors"];
const LANE_HEIGHT = 18;

function describe(block) {
  const az = block.az === null || block.az === undefined ? "" : `, az ${block.az}..${(block.az + (block.throw || 0)).toFixed(2)}`;
  const el = block.el === null ? "" : `, el ${block.el}`;
  return `${block.name} (${block.kind}) ${block.t0} to ${block.t1}${az}${el}`;
}

function azDomain(blocks) {
  const starts = blocks.map((b) => b.az);
  const ends = blocks.map((b) => (b.az ?? NaN) + (b.throw || 0));
  const [lo, hi] = extent(starts, ends, [0, 360]);
  return [Math.floor(lo / 30) * 30, Math.ceil(hi / 30) * 30];
}

function quarterTurns(lo, hi) {
  const ticks = [];
  for (let v = Math.ceil(lo / 90) * 90; v <= hi; v += 90) ticks.push(v);
  return ticks;
}

function azPanel(g, x, y, blocks, sky) {
  const gaps = svg("g", { className: "gaps" });
  const bands = svg("g", { className: "bands" });
  const slews = [];
  blocks.forEach((b, i) => {
    // A block without an azimuth (a wait, a sleep) is a band over the panel's full height.
    const pointed = b.az !== null && b.az !== undefined;
    const top = pointed ? y(b.az + (b.throw || 0)) : y.range[1] + 1;
    const bottom = pointed ? y(b.az) : y.range[0] - 1;
    const rect = svg("rect", {
      className: pointed ? "band" : "band unpointed",
      dataset: { kind: b.kind, index: b.index ?? i },
      tabindex: 0,
      role: "button",
      "aria-label": describe(b),
      x: x(b.t0ms),
      y: Math.min(top, bottom) - 1,
      width: Math.max(1, x(b.t1ms) - x(b.t0ms)),
      height: Math.max(2, Math.abs(bottom - top) + 2),
    });
    rect.append(svg("title", { text: describe(b) }));
    bands.append(rect);
    if (!pointed) return;
    const next = blocks[i + 1];
    if (next && next.az !== null && next.t0ms > b.t1ms) {
      gaps.append(svg("rect", { className: "wait", x: x(b.t1ms), y: y.range[1], width: x(next.t0ms) - x(b.t1ms),
        height: y.range[0] - y.range[1] }, svg("title", { text: `slew or wait: ${b.t1} to ${next.t0}` })));
      slews.push([x(b.t1ms), y(b.az)], [x(next.t0ms), y(next.az)], null);
    }
  });
  g.append(gaps, path(slews, "slew"), bands);
  if (sky) {
    const jump = Math.abs(y(180) - y(0));
    for (const body of ["sun", "moon"]) {
      const track = sky.bodies[body];
      if (!track) continue;
      const points = sky.ms.map((t, k) => (track.el[k] < 0 ? null : [x(t), y(track.az[k])]));
      g.append(path(points, `track ${body}`, { maxJumpY: jump }));
    }
  }
}

function elPanel(g, x, y, blocks, sky) {
  const segments = [];
  const slews = [];
  blocks.forEach((b, i) => {
    if (b.el === null) return;
    segments.push([x(b.t0ms), y(b.el)], [x(b.t1ms), y(b.el)], null);
    const next = blocks[i + 1];
    if (next && next.el !== null) slews.push([x(b.t1ms), y(b.el)], [x(next.t0ms), y(next.el)], null);
  });
  g.append(path(slews, "slew"), path(segments, "el-scan"));
  if (sky) {
    for (const body of ["sun", "moon"]) {
      const track = sky.bodies[body];
      if (!track) continue;
      g.append(path(sky.ms.map((t, k) => (track.el[k] < 0 ? null : [x(t), y(track.el[k])])), `track ${body}`));
    }
  }
}

function distancePanel(g, x, y, check) {
  const samples = check.samples.map(([t, d]) => [Date.parse(t), d]);
  const limit = check.limit_deg;
  g.append(path(samples.map(([t, d]) => [x(t), y(d)]), "sun-distance"));
  g.append(path(samples.map(([t, d]) => (d < limit ? [x(t), y(d)] : null)), "sun-distance under"));
  if (Number.isFinite(limit)) {
    const py = y(limit);
    g.append(svg("line", { className: "limit", x1: x.range[0], x2: x.range[1], y1: py, y2: py }));
    g.append(svg("text", { className: "limit-label", x: x.range[1] - 4, y: py - 4, text: `limit ${limit} deg` }));
  }
}

function lanes(g, x, top, events) {
  LANES.forEach((lane, row) => {
    const y0 = top + row * (LANE_HEIGHT + 4);
    g.append(svg("text", { className: "tick y", x: x.range[0] - 6, y: y0 + 13, text: lane }));
    g.append(svg("rect", { className: "frame", x: x.range[0], y: y0, width: x.range[1] - x.range[0], height: LANE_HEIGHT }));
    for (const e of events) {
      if (e.lane !== lane) continue;
      const t0 = Date.parse(e.t0);
      const t1 = Date.parse(e.t1);
      const extra = e.direction ? ` ${e.direction}` : e.angle !== undefined && e.angle !== null ? ` ${e.angle} deg` : "";
      const width = Math.max(1, x(t1) - x(t0));
      g.append(svg("rect", {
        className: "event",
        dataset: { lane, state: e.state },
        x: x(t0),
        y: y0 + 1,
        width,
        height: LANE_HEIGHT - 2,
      }, svg("title", { text: `${lane}: ${e.state}${extra}, ${e.t0} to ${e.t1}` })));
      const label = lane === "boresight" ? extra.trim() : `${e.state}${extra}`;
      if (width > label.length * 7 + 6) {
        g.append(svg("text", { className: "lane-text", x: x(t0) + 3, y: y0 + 13, text: label }));
      }
    }
  });
}

// blocks: the answer's blocks with t0ms/t1ms added, sorted by t0; sky: positions with ms times, or null.
export function drawTimeline(root, { t0, t1, blocks, events, check, sky }) {
  const x = scale(t0, t1, LEFT, WIDTH - RIGHT);
  const { ticks, step } = timeTicks(t0, t1, 12);
  const layout = [["az", 180], ["el", 110]];
  if (check && Array.isArray(check.samples) && check.samples.length) layout.push(["distance", 90]);
  const hasLanes = Array.isArray(events) && events.length > 0;
  const g = svg("g");
  let top = 8;
  const placed = [];
  for (const [name, height] of layout) {
    placed.push([name, top, height]);
    top += height + 14;
  }
  placed.forEach(([name, y0, height], k) => {
    const last = k === placed.length - 1 && !hasLanes;
    let y;
    let title;
    if (name === "az") {
      y = scale(...azDomain(blocks), y0 + height, y0);
      title = "azimuth (deg)";
    } else if (name === "el") {
      y = scale(0, 90, y0 + height, y0);
      title = "elevation (deg)";
    } else {
      y = scale(0, 180, y0 + height, y0);
      title = "min sun distance (deg)";
    }
    const yTicks = name === "az" ? quarterTurns(...y.domain) : numTicks(...y.domain, 5);
    const p = panel({ x, y, yTicks, timeStep: step, timeTicksMs: ticks, title, xLabels: last });
    if (name === "az") azPanel(p, x, y, blocks, sky);
    else if (name === "el") elPanel(p, x, y, blocks, sky);
    else distancePanel(p, x, y, check);
    g.append(p);
  });
  if (hasLanes) {
    const laneGroup = svg("g", { className: "lanes" });
    lanes(laneGroup, x, top, events);
    top += LANES.length * (LANE_HEIGHT + 4);
    g.append(laneGroup);
    const axis = panel({ x, y: scale(0, 1, top, top), yTicks: [], timeStep: step, timeTicksMs: ticks, xLabels: true });
    g.append(axis);
  }
  g.append(svg("text", { className: "tick utc", x: WIDTH - RIGHT, y: top + 29, text: "time (UTC)" }));
  const height = top + 34;
  root.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  root.replaceChildren(g);
}
