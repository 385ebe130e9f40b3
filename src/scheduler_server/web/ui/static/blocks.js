// The planner's blocks table (sortable, with each block's cuts) and its script box (copy, download).

import { el, fmtDuration, fmtNumber, fmtTime } from "./dom.js";

const COLUMNS = [
  ["index", "#", (b) => b.index],
  ["name", "Name", (b) => b.name],
  ["kind", "Kind", (b) => b.kind],
  ["t0", "Start (UTC)", (b) => b.t0ms],
  ["t1", "End (UTC)", (b) => b.t1ms],
  ["duration", "Duration", (b) => b.t1ms - b.t0ms],
  ["az", "Az (deg)", (b) => b.az],
  ["el", "El (deg)", (b) => b.el],
  ["throw", "Throw (deg)", (b) => b.throw],
  ["cuts", "Cuts", (b) => (b.cuts || []).length],
];

let rows = [];
let sortKey = "index";
let ascending = true;

function cell(block, key) {
  switch (key) {
    case "index":
      return el("td", { className: "num", text: block.index + 1 });
    case "t0":
      return el("td", { text: fmtTime(block.t0) });
    case "t1":
      return el("td", { text: fmtTime(block.t1) });
    case "duration":
      return el("td", { className: "num", text: fmtDuration((block.t1ms - block.t0ms) / 1000) });
    case "az":
    case "el":
    case "throw":
      return el("td", { className: "num", text: fmtNumber(block[key]) });
    case "cuts": {
      const cuts = block.cuts || [];
      if (!cuts.length) return el("td", { className: "muted", text: "none" });
      return el("td", {}, el("ul", { className: "cuts" }, cuts.map((c) => el("li", { text: c }))));
    }
    default:
      return el("td", { text: block[key] ?? "" });
  }
}

function header(table) {
  const tr = el("tr");
  for (const [key, label] of COLUMNS) {
    const th = el("th", { attrs: { scope: "col" } });
    if (key === sortKey) th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const button = el("button", { type: "button", className: "sort", text: label });
    button.addEventListener("click", () => {
      ascending = key === sortKey ? !ascending : true;
      sortKey = key;
      render(table);
      table.querySelector(`th[aria-sort] button`).focus();
    });
    th.append(button);
    tr.append(th);
  }
  table.tHead.replaceChildren(tr);
}

function render(table) {
  header(table);
  const value = COLUMNS.find(([key]) => key === sortKey)[2];
  const sorted = [...rows].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    const order = typeof va === "string" ? va.localeCompare(vb) : (va ?? -Infinity) - (vb ?? -Infinity);
    return (ascending ? order : -order) || a.index - b.index;
  });
  const body = document.createElement("tbody");
  for (const block of sorted) {
    const tr = el("tr", { dataset: { kind: block.kind, index: block.index } });
    for (const [key] of COLUMNS) tr.append(cell(block, key));
    body.append(tr);
  }
  table.tBodies[0].replaceWith(body);
}

export function showBlocks(table, blocks) {
  rows = blocks;
  render(table);
}

let scriptText = "";
let scriptName = "schedule.py";

export function showScript(pre, text, name) {
  scriptText = text || "";
  scriptName = name;
  pre.textContent = scriptText;
}

export function wireScriptButtons() {
  const status = document.getElementById("copy-status");
  document.getElementById("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(scriptText);
      status.textContent = "Copied.";
    } catch {
      // No clipboard (e.g. plain http from another host): select the text for the user to copy.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("script"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status.textContent = "The clipboard is not available here: the script is selected, press Ctrl+C.";
    }
  });
  document.getElementById("download").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([scriptText], { type: "text/x-python" }));
    const link = el("a", { href: url, download: scriptName });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    status.textContent = `Saved as ${scriptName}.`;
  });
}
