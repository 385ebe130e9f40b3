// The queue page's chart: queue depth (line) and pipelines finished per bucket (bars) over the last hours.

import { svg } from "./dom.js";
import { legend, numTicks, panel, path, scale, timeTicks } from "./plot.js";

const WIDTH = 1200;
const HEIGHT = 200;

export function drawSummary(summary) {
  const depth = summary.queue_depth.map(([t, n]) => [Date.parse(t), n]);
  const done = summary.throughput.map(([t, n]) => [Date.parse(t), n]);
  const times = depth.map(([t]) => t);
  if (!times.length) return;
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const top = Math.max(1, ...depth.map(([, n]) => n), ...done.map(([, n]) => n));
  const x = scale(t0, t1, 64, WIDTH - 16);
  const y = scale(0, top, HEIGHT - 24, 8);
  const { ticks, step } = timeTicks(t0, t1, 12);
  const g = panel({ x, y, yTicks: numTicks(0, top, 5).filter((v) => Number.isInteger(v)), timeStep: step, timeTicksMs: ticks,
    title: "pipelines", xLabels: true });
  const bucket = (summary.bucket_seconds || 600) * 1000;
  for (const [t, n] of done) {
    const x0 = x(t - bucket);
    g.append(svg("rect", { className: "bar", x: x0 + 1, y: y(n), width: Math.max(1, x(t) - x0 - 2), height: y(0) - y(n) },
      svg("title", { text: `${n} finished in the ${Math.round(bucket / 60000)} min to ${new Date(t).toISOString()}` })));
  }
  g.append(path(depth.map(([t, n]) => [x(t), y(n)]), "depth"));
  const chart = document.getElementById("summary-chart");
  chart.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  chart.replaceChildren(g);
  document.getElementById("summary-hours").textContent = `(last ${summary.hours} h, UTC)`;
  legend(document.getElementById("summary-legend"), [["depth", "queue depth"], ["bar", "finished per bucket"]]);
}
