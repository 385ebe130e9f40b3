// DOM helpers: every element is made with createElement and every text set with textContent,
// so nothing that comes from the API is ever parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// el("td", {className: "status", text: "queued", dataset: {id: 3}, attrs: {scope: "col"}, on: {click: f}})
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  return append(node, children);
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (name === "className") node.setAttribute("class", value);
    else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else node.setAttribute(name, String(value));
  }
  return append(node, children);
}

function applyProps(node, props) {
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "className") node.className = value;
    else if (name === "dataset") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else if (name === "attrs") for (const [k, v] of Object.entries(value)) node.setAttribute(k, String(v));
    else if (name === "on") for (const [k, v] of Object.entries(value)) node.addEventListener(k, v);
    else node[name] = value;
  }
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export const $ = (selector) => document.querySelector(selector);

export function page() {
  return document.getElementById("page");
}

export function setState(state) {
  page().dataset.state = state;
}

export function showError(message) {
  const box = document.getElementById("error");
  box.textContent = String(message);
  box.hidden = false;
}

export function clearError() {
  const box = document.getElementById("error");
  box.textContent = "";
  box.hidden = true;
}

// The page could not draw its data: say why in #error and mark the page.
export function fail(error) {
  showError(error && error.message ? error.message : String(error));
  setState("error");
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// "2024-03-01 12:30:05" in UTC, from an ISO string, a Date or milliseconds.
export function fmtTime(value, { seconds = true } = {}) {
  if (value === null || value === undefined || value === "") return "";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return seconds ? `${day} ${time}:${pad(d.getUTCSeconds())}` : `${day} ${time}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h < 48 ? `${h} h ${pad(m)} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function fmtNumber(value, digits = 2) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "";
}

export function seconds(isoA, isoB) {
  if (!isoA || !isoB) return null;
  return (new Date(isoB).getTime() - new Date(isoA).getTime()) / 1000;
}

// A <dialog> asking a yes/no question; resolves true for yes.
export function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-no").focus();
  });
}

// Make `old` look like `fresh` in place, so elements a reader holds (a test, a focused link, a
// selection) survive a refresh; returns the node now in the document. Listeners stay the old ones.
export function morph(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) {
    old.replaceWith(fresh);
    return fresh;
  }
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
    return old;
  }
  for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of [...fresh.attributes]) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  morphChildren(old, [...fresh.childNodes]);
  return old;
}

// Make the children of `parent` look like `children` (nodes), in place, keeping parent's attributes.
export function morphChildren(parent, children) {
  const before = [...parent.childNodes];
  children.forEach((child, i) => (i < before.length ? morph(before[i], child) : parent.append(child)));
  for (const extra of before.slice(children.length)) extra.remove();
}

// Replace the rows of `body` by `rows`, keeping (and updating) each existing row with the same data-id.
export function morphRows(body, rows) {
  const kept = new Map();
  for (const tr of body.rows) if (tr.dataset.id !== undefined) kept.set(tr.dataset.id, tr);
  const placed = rows.map((tr) => {
    const old = tr.dataset.id !== undefined ? kept.get(tr.dataset.id) : undefined;
    return old ? morph(old, tr) : tr;
  });
  const same = placed.length === body.rows.length && placed.every((tr, i) => body.rows[i] === tr);
  if (!same) body.replaceChildren(...placed);
}
