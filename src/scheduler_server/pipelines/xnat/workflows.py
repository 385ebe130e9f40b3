"""Status back in XNAT: with ``xnat.workflows``, each pipeline on a listed host keeps a ``wrk:workflowData`` entry on
its session, as XNAT's own pipeline engine does, so the session's history shows it.

- **The entry** (``fields``): ``id`` = the session's XNAT ID, ``data_type`` = its xsiType, ``pipeline_name`` = the
  script, ``launch_time`` = when it was submitted (UTC, to the second), ``status`` in XNAT's words (Queued, Running,
  Complete, Failed; a cancel is "Failed (Dismissed)", XNAT's status for a failure no one will act on), the step
  (``step_description``, ``current_step_id`` = our status), ``percentageComplete``, a link back in ``comments``
  (our pipeline id) and, once ended, the reason in ``details``.
- **Idempotent** on (session, pipeline name, launch time): XNAT's ``PUT /data/workflows`` with those fields finds
  and updates the entry they name, so a repeated update (a crash between the PUT and our record of it) never
  makes a second one. The launch time is fixed when the entry is first written; a submission picks the first
  second that no entry of the same pipeline name on the session already has in XNAT and that no other pipeline
  has claimed in ``xnat_workflow_keys`` (``claim``: its own short transaction, before the PUT; the unique key
  sends a concurrent claimant of the same second to the next one); a launch claims its sessions' keys in one
  INSERT (``claim_all``), the conflicting ones then one by one.
- **When**: the Queued entry at submit (``at_submit``, which is also the permission check: a user who may not
  write workflows is refused with a 400 naming ``workflows``, or with ``xnat.workflow_permission: warn`` the
  pipeline is queued with a warning and keeps no entry); every later status change by ``Workflows.sweep``, which
  the dispatcher runs on a worker thread, outside any of its transactions. A row whose ``workflow_at`` is None
  (``Pipeline.move`` clears it) has an update to write; each pipeline's latest state is written (one row per
  pipeline: its older states are never written after it), ended pipelines first, then running, then queued ones,
  oldest change first within each, so a launch's 1,000 Queued entries never hold up a finished pipeline's last one.
  XNAT down: the sweep stops for that host and tries again
  (``SWEEP_EVERY``); dispatching goes on; the backlog is written when XNAT answers.
- **The token**: ``Tokens.hold`` keeps a pipeline's alias token while an update of one of its pipelines is still to
  be written, so the last one (Complete, Failed) is written with it; then the token is released.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError

from scheduler_server.pipelines.models import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    PROVISIONING,
    QUEUED,
    RUNNING,
    STAGING,
    SUCCEEDED,
    Pipeline,
    XnatWorkflowKey,
)
from scheduler_server.pipelines.storage.lease import check_side_effect
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.xnat.client import XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatNotFound, XnatUnavailable
from scheduler_server.pipelines.xnat.hosts import match
from scheduler_server.pipelines.xnat.settings import XnatSettings
from scheduler_server.pipelines.xnat.tokens import TokenGone, Tokens

log = logging.getLogger(__name__)

SWEEP_EVERY = 1.0
BATCH = 200  # updates written per sweep at most (the rest at the next)
#: Our status -> XNAT's status, step description and percentage.
STATUS = {
    QUEUED: ("Queued", "queued", 0),
    PROVISIONING: ("Queued", "waiting for an instance", 5),
    STAGING: ("Queued", "staging the job", 10),
    RUNNING: ("Running", "running the script", 50),
    SUCCEEDED: ("Complete", "complete", 100),
    FAILED: ("Failed", "failed", None),
    CANCELLED: ("Failed (Dismissed)", "cancelled", None),
}
LAUNCH_FORMAT = "%Y-%m-%dT%H:%M:%S"
CLAIM_ROUNDS = 5  # a launch's bulk claims at its second and the next ones, before one by one


def enabled(settings: XnatSettings | None) -> bool:
    return settings is not None and settings.workflows


def launch_time(at: float) -> str:
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime(LAUNCH_FORMAT)


def _same_time(xnat_value: Any, ours: str) -> bool:
    """XNAT answers ``2026-12-01 17:20:00.0`` for our ``2026-12-01T17:20:00``."""
    return str(xnat_value or "").replace("T", " ")[:19] == ours.replace("T", " ")


def link(pipeline_id: int | None, settings: XnatSettings | None) -> str:
    """The comments' link back: the pipeline's page under ``xnat.link_base``, else its API path only."""
    if pipeline_id is None:
        return "scheduler-server"
    base = settings.link_base if settings is not None else None
    where = f"{base}/ui/pipelines/{pipeline_id}" if base else f"/api/v1/pipelines/{pipeline_id}"
    return f"scheduler-server pipeline {pipeline_id}: {where}"


def fields(pipeline: Pipeline, settings: XnatSettings | None = None) -> dict[str, Any]:
    """The wrk:workflowData fields for the pipeline's state now (``settings``: for the link back)."""
    key = pipeline.spec["xnat_workflow"]
    status, step, percent = STATUS[pipeline.status]
    values = {
        "id": key["id"],
        "data_type": key["data_type"],
        "pipeline_name": key["pipeline_name"],
        "launch_time": key["launch_time"],
        "status": status,
        "step_description": step,
        "current_step_id": pipeline.status,
        "percentageComplete": percent,
        "comments": link(pipeline.id, settings),
    }
    if pipeline.status in FINAL_STATES and pipeline.reason:
        values["details"] = pipeline.reason[:250]
    return values


def prepare(pipeline: Pipeline, session_id: str, data_type: str, when: float) -> None:
    """Mark a pipeline (not yet inserted) as keeping a workflow entry; the sweep writes it (a launch's way)."""
    key = {"id": session_id, "data_type": data_type, "pipeline_name": pipeline.script, "launch_time": launch_time(when)}
    pipeline.spec = dict(pipeline.spec, xnat_workflow=key)
    pipeline.workflow_status, pipeline.workflow_at = "", None


def claim(store: Store, host: str, session_id: str, name: str, when: int, taken: frozenset | set = frozenset()) -> int:
    """The first second from ``when`` whose key no entry in XNAT has (``taken``: their launch times as XNAT writes
    them) and no other pipeline has claimed: claimed now, in its own transaction (the unique key decides)."""
    while True:
        if launch_time(when).replace("T", " ") not in taken:
            row = XnatWorkflowKey(host=host, session_id=session_id, pipeline_name=name, launch_time=when)
            try:
                with store.write() as session:
                    session.add(row)
                return when
            except IntegrityError:
                pass  # claimed by another pipeline in the meantime
        when += 1


def claim_all(store: Store, host: str, keys: list[tuple[str, str, int]]) -> list[int]:
    """Claim many (session_id, name, second) keys, a launch's, in one INSERT. On a conflict the free ones are
    claimed again in one and the held ones tried at their next second, together (the same project launched twice
    in one second: 1,000 conflicts, one INSERT more), for a few seconds; what is left one by one. Returns each
    key's second, in order."""
    seconds: dict[int, int] = {}
    for shift in range(CLAIM_ROUNDS):
        tried = {n: (s, name, when + shift) for n, (s, name, when) in enumerate(keys) if n not in seconds}
        if _insert_all(store, host, list(tried.values())):
            seconds.update({n: key[2] for n, key in tried.items()})
            break
        held = _held(store, host, list(tried.values()))
        free = {n: key for n, key in tried.items() if key not in held}
        if _insert_all(store, host, list(free.values())):
            seconds.update({n: key[2] for n, key in free.items()})
    last = CLAIM_ROUNDS - 1
    return [
        seconds[n] if n in seconds else claim(store, host, s, name, w + last) for n, (s, name, w) in enumerate(keys)
    ]


def _insert_all(store: Store, host: str, keys: list[tuple[str, str, int]]) -> bool:
    rows = [dict(host=host, session_id=s, pipeline_name=n, launch_time=w) for s, n, w in keys]
    if not rows:
        return True
    try:
        with store.write() as session:
            session.execute(insert(XnatWorkflowKey), rows)
    except IntegrityError:
        return False
    return True


def _held(store: Store, host: str, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    key = XnatWorkflowKey
    query = select(key.session_id, key.pipeline_name, key.launch_time).where(
        key.host == host,
        key.session_id.in_({s for s, _, _ in keys}),
        key.pipeline_name.in_({n for _, n, _ in keys}),
        key.launch_time.in_({w for _, _, w in keys}),
    )
    with store.read() as session:
        return {tuple(row) for row in session.execute(query)}


def at_submit(settings: XnatSettings | None, client: XnatClient, item: Any, auth: tuple[str, str], store: Store) -> Any:
    """Write the Queued entry of a verified item (``item.experiment``: XNAT's row of its session). Returns the
    item's error (XnatAuthError naming ``workflows`` when refused and workflow_permission is refuse) or None;
    a warning goes to ``item.warnings``. XnatUnavailable propagates (the submission is a 503)."""
    found = getattr(item, "experiment", None)
    if not enabled(settings) or not found or "xnat_workflow" in item.pipeline.spec:
        return None  # a retry keeps its entry: the sweep writes its Queued after the retry committed
    pipeline = item.pipeline
    name = pipeline.script
    taken = {str(row.get("launch_time") or "")[:19] for row in client.workflows_of(auth, found["ID"], name)}
    # another entry of this script on this session in the same second (in XNAT, or claimed): the next free one
    when = claim(store, client.server.url, found["ID"], name, int(pipeline.created_at), taken)
    prepare(pipeline, found["ID"], found.get("xsiType") or "", when)
    try:
        client.put_workflow(auth, fields(pipeline, settings))
    except (XnatAuthError, XnatNotFound) as exc:
        pipeline.spec = {k: v for k, v in pipeline.spec.items() if k != "xnat_workflow"}
        pipeline.workflow_status = None
        words = _words(exc)
        if settings.workflow_permission == "refuse":
            why = "this user may not write workflows on the session" if isinstance(exc, XnatAuthError) else "refused"
            return XnatAuthError(f"{words}; {why}", "workflows")
        item.warnings.append(f"workflows: no workflow entry in XNAT for this pipeline ({words})")
        return None
    pipeline.workflow_status = STATUS[QUEUED][0]
    return None


def dismiss(client: XnatClient, pipeline: Pipeline, auth: tuple[str, str]) -> None:
    """Mark the entry written for a pipeline that was never created "Failed (Dismissed)" (same key: no new one)."""
    values = dict(fields(pipeline), status=STATUS[CANCELLED][0], step_description="not created")
    values.update(current_step_id=CANCELLED, details="the submission created no pipeline")
    client.put_workflow(auth, values)
    pipeline.workflow_status = None


class Workflows:
    def __init__(self, store: Store, tokens: Tokens):
        self.store = store
        self.tokens = tokens
        self._complained: set[str] = set()

    def enabled(self) -> bool:
        return enabled(self.tokens.settings) and self.tokens.listed()

    def pending(self, token_id: int) -> bool:
        """An update of a pipeline of this token is still to be written (Tokens.hold)."""
        with self.store.read() as session:
            query = _due().where(Pipeline.token_id == token_id).limit(1)
            return session.scalar(query) is not None

    def sweep(self) -> int:
        """Write the updates due, oldest change first; returns how many were written."""
        settings = self.tokens.settings
        with self.store.read() as session:
            rows = list(session.scalars(_due(Pipeline).order_by(*_ORDER).limit(BATCH)))
        down: set[str] = set()
        written = 0
        for pipeline in rows:
            host = str(pipeline.spec.get("host", ""))
            if host in down:
                continue  # keep its order: nothing of a host that did not answer is written after it
            try:
                written += self._write(settings, pipeline)
            except XnatUnavailable as exc:
                down.add(host)
                if host not in self._complained:
                    log.warning("XNAT workflows on %s: %s; the updates wait and are retried", host, exc.reason)
                    self._complained.add(host)
                continue
            self._complained.discard(host)
        return written

    def _write(self, settings: XnatSettings | None, pipeline: Pipeline) -> int:
        server = match(settings, str(pipeline.spec.get("host", ""))) if enabled(settings) else None
        if server is None or "xnat_workflow" not in pipeline.spec:
            self._mark(pipeline, None, pipeline.workflow_id)  # no longer configured: the entry is left as it is
            return 0
        try:
            auth = self.tokens.credentials(pipeline.id)
        except TokenGone as exc:
            log.warning("XNAT workflow of pipeline %s not updated: %s", pipeline.id, exc)
            self._mark(pipeline, None, pipeline.workflow_id)
            return 0
        values = fields(pipeline, settings)
        check_side_effect()  # run as leader (the sweep): nothing sent to XNAT once its lease lapsed
        with XnatClient(server) as client:
            try:
                client.put_workflow(auth, values)
                workflow_id = pipeline.workflow_id or _entry_id(client, auth, values)
            except (XnatAuthError, XnatNotFound) as exc:  # never taken: not retried (XNAT down is XnatUnavailable)
                log.warning("XNAT refused the workflow update of pipeline %s: %s", pipeline.id, _words(exc))
                self._mark(pipeline, None, pipeline.workflow_id)
                return 0
        self._mark(pipeline, values["status"], workflow_id)
        return 1

    def _mark(self, pipeline: Pipeline, status: str | None, workflow_id: int | None) -> None:
        """Record what was written, as of the state read: a row that changed since stays due (its move cleared
        ``workflow_at``, and this leaves it so), for the next sweep."""
        with self.store.write() as session:
            session.execute(
                update(Pipeline)
                .where(
                    Pipeline.id == pipeline.id,
                    Pipeline.status == pipeline.status,
                    Pipeline.updated_at == pipeline.updated_at,
                )
                .values(workflow_status=status, workflow_at=pipeline.updated_at, workflow_id=workflow_id)
                .execution_options(synchronize_session=False)
            )


def _words(exc: XnatAuthError | XnatNotFound) -> str:
    """The refusal without its ``field: `` prefix."""
    return exc.message.removeprefix(f"{exc.field}: ")


#: Ended pipelines' updates first (their last, which releases the token), then running ones, then the queued
#: (a 1,000-session launch's Queued entries wait behind them, never the other way); oldest change first within.
_ORDER = (
    case((Pipeline.status.in_(FINAL_STATES), 0), (Pipeline.status == RUNNING, 1), else_=2),
    Pipeline.updated_at,
    Pipeline.id,
)


def _due(what: Any = Pipeline.id):
    """Pipelines keeping a workflow entry with a change not yet written (``Pipeline.move`` clears ``workflow_at``;
    its index keeps this a lookup however many pipelines have their entries up to date)."""
    return select(what).where(Pipeline.workflow_at.is_(None), Pipeline.workflow_status.is_not(None))


def _entry_id(client: XnatClient, auth: tuple[str, str], values: dict[str, Any]) -> int | None:
    for row in client.workflows_of(auth, values["id"], values["pipeline_name"]):
        same = row.get("pipeline_name") == values["pipeline_name"]
        if same and _same_time(row.get("launch_time"), values["launch_time"]):
            try:
                return int(row.get("wrk_workflowData_id"))
            except (TypeError, ValueError):
                return None
    return None
