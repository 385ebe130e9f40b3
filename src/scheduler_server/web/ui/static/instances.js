// Live instances: state, backend, address, uses, age, the pipeline on it; delete with confirmation.

import { api, poll } from "./api.js";
import { $, clearError, confirmDialog, el, fail, fmtDuration, morphRows, setState, showError } from "./dom.js";

const POLL_MS = 3000;
const ROOT = document.body.dataset.root || "";

function age(created) {
  return created ? fmtDuration((Date.now() - Date.parse(created)) / 1000) : "";
}

function row(instance) {
  const remove = el("button", { type: "button", className: "delete", text: "Delete" });
  remove.setAttribute("aria-label", `Delete instance ${instance.id}`);
  remove.disabled = instance.state !== "idle";
  remove.title = remove.disabled ? "Only an idle instance can be deleted" : "";
  remove.addEventListener("click", () => removeInstance(instance.id));
  const pipeline = instance.pipeline
    ? el("a", { href: `${ROOT}/ui/pipeline?id=${encodeURIComponent(instance.pipeline)}`, text: instance.pipeline })
    : "";
  return el("tr", { dataset: { id: instance.id, state: instance.state } },
    el("td", { text: instance.id }),
    el("td", { className: "status", dataset: { status: instance.state }, text: instance.state }),
    el("td", { text: instance.backend }),
    el("td", { text: instance.address ?? "" }),
    el("td", { className: "num", text: instance.uses }),
    el("td", { text: age(instance.created) }),
    el("td", {}, pipeline),
    el("td", { text: instance.error ?? "" }),
    el("td", {}, remove));
}

async function refresh() {
  try {
    const answer = await api("/api/v1/instances");
    const rows = answer.items.map(row);
    if (!rows.length) rows.push(el("tr", {}, el("td", { attrs: { colspan: 9 }, text: "No live instance." })));
    morphRows($("#instances").tBodies[0], rows);
    $("#updated").textContent = `(${answer.items.length}, updated ${new Date().toISOString().slice(11, 19)} UTC)`;
    if (document.getElementById("page").dataset.state === "error") clearError();
    setState("ready");
  } catch (error) {
    fail(error);
  }
}

async function removeInstance(id) {
  if (!(await confirmDialog(`Delete instance ${id}? Its server or sandbox is destroyed.`))) return;
  try {
    await api(`/api/v1/instances/${encodeURIComponent(id)}`, { method: "DELETE" });
    clearError();
  } catch (error) {
    showError(`Delete failed: ${error.message}`);
  }
  await refresh();
}

function showUntracked(report) {
  const rows = report.candidates.map((c) => el("tr", { dataset: { id: c.id } },
    el("td", { text: c.id }), el("td", { text: c.name ?? "" }), el("td", { text: c.state ?? "" }),
    el("td", { text: c.address ?? "" }), el("td", { text: c.tagged ? "yes" : "no" })));
  if (!rows.length) rows.push(el("tr", {}, el("td", { attrs: { colspan: 5 }, text: "None." })));
  morphRows($("#untracked").tBodies[0], rows);
  $("#untracked-delete").disabled = report.dry_run ? !report.candidates.length : true;
  const failed = (report.failed || []).map((f) => `${f.id}: ${f.error}`).join("; ");
  $("#untracked-status").textContent = report.dry_run
    ? `${report.candidates.length} found.`
    : `${report.deleted.length} deleted.${failed ? ` Failed: ${failed}` : ""}`;
}

async function untracked(dryRun) {
  const query = { dry_run: dryRun ? "true" : "false", all: $("#untracked-all").checked ? "true" : "false" };
  if (!dryRun) {
    const what = $("#untracked-all").checked ? "every untracked instance of the project, tagged or not" : "the untracked instances tagged with this scheduler's id";
    if (!(await confirmDialog(`Delete ${what}? Their servers or sandboxes are destroyed.`))) return;
  }
  $("#untracked-status").textContent = dryRun ? "Asking the backend..." : "Deleting...";
  try {
    const answer = await api("/instance", { method: "DELETE", query });
    showUntracked(answer.content);
  } catch (error) {
    $("#untracked-status").textContent = "";
    showError(`Untracked instances: ${error.message}`);
  }
}

$("#untracked-list").addEventListener("click", () => untracked(true));
$("#untracked-delete").addEventListener("click", () => untracked(false));
$("#untracked-all").addEventListener("change", () => {
  $("#untracked-delete").disabled = true;
});
poll(refresh, POLL_MS);
