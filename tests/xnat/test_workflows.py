"""Status back in XNAT (xnat.workflows): one wrk:workflowData entry per pipeline on its session, written when queued
and updated as it runs and ends; idempotent on (session, pipeline name, launch time); retried in order while XNAT
is down, with the token kept until the last update is written; a user who may not write workflows refused or warned."""

from __future__ import annotations

from sqlalchemy import update

from scheduler_server.pipelines.models import Pipeline
from tests.waiting import wait_until

from .conftest import XNAT_USERS
from .test_verify import item, make_app, scripts, service_of, tokens_of, wait_done  # noqa: F401  (fixtures)


def _entries(sim, session_id="XNAT_E00001"):
    return [w for w in sim.state.workflows if w["id"] == session_id]


def _written(client, pid):
    row = service_of(client).store.get_pipeline(pid)
    return row if row.workflow_at is not None and row.workflow_at >= row.updated_at else None


def _statuses(sim):
    return [r["query"].get("wrk:workflowData/status") for r in sim.state.requests_seen("PUT", "^/data/workflows$")]


def test_one_entry_follows_the_pipeline_from_queued_to_complete(make_app, xnat_sim, scripts):
    (scripts / "nap.sh").write_text("sleep 1.5\n")
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    answer = client.post("/api/v1/pipelines", json=item(xnat_sim.url, script="nap.sh"))
    assert answer.status_code == 201, answer.json
    (pid,) = [r["id"] for r in answer.json["pipelines"]]
    assert [w["status"] for w in _entries(xnat_sim)] == ["Queued"]  # written at submit
    wait_until(lambda: [w["status"] for w in _entries(xnat_sim)] == ["Running"], 10, message="Running in XNAT")
    assert wait_done(client, pid)["status"] == "succeeded"
    row = wait_until(lambda: _written(client, pid), 10, message="the last update written")
    (entry,) = _entries(xnat_sim)
    assert entry["status"] == "Complete" and entry["percentageComplete"] == "100"
    assert entry["data_type"] == "xnat:mrSessionData" and entry["pipeline_name"] == "nap.sh"
    assert entry["ExternalID"] == "test" and f"pipeline {pid}" in entry["comments"]
    assert row.workflow_id == entry["wrk_workflowData_id"] and row.workflow_status == "Complete"
    assert _statuses(xnat_sim)[0] == "Queued" and _statuses(xnat_sim)[-1] == "Complete"
    assert "Running" in _statuses(xnat_sim)
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token released after the last update")
    assert xnat_sim.state.live_token(tokens_of(client)[0].alias) is None


def test_failed_and_cancelled_in_xnats_words(make_app, xnat_sim, scripts):
    (scripts / "nap.sh").write_text("sleep 30\n")
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    failing = item(xnat_sim.url, script="fail.sh")
    (scripts / "fail.sh").write_text("echo no >&2; exit 3\n")
    napping = item(xnat_sim.url, script="nap.sh", session="S01_MR2")
    failed, cancelled = [r["id"] for r in client.post("/api/v1/pipelines", json=[failing, napping]).json["pipelines"]]
    wait_until(lambda: client.get(f"/api/v1/pipelines/{cancelled}").json["status"] == "running", 10)
    client.post(f"/api/v1/pipelines/{cancelled}/cancel")
    for pid in (failed, cancelled):
        wait_done(client, pid)
        wait_until(lambda pid=pid: _written(client, pid), 10, message="the last update written")
    (fail_entry,) = _entries(xnat_sim)
    assert fail_entry["status"] == "Failed" and "exit" in fail_entry["details"].lower()
    (cancel_entry,) = _entries(xnat_sim, "XNAT_E00002")
    assert cancel_entry["status"] == "Failed (Dismissed)" and cancel_entry["step_description"] == "cancelled"


def test_a_user_who_may_not_write_workflows_is_refused_or_warned(make_app, xnat_sim):
    bob = {"user": "bob", "pwd": XNAT_USERS["bob"]}
    refusing = make_app([{"url": xnat_sim.url}], workflows=True)
    answer = refusing.post("/api/v1/pipelines", json=item(xnat_sim.url, **bob))
    assert answer.status_code == 400 and answer.json["field"] == "workflows", answer.json
    message = answer.json["message"]
    assert (
        message.startswith("workflows: ") and "may not write workflows" in message and message.count("workflows:") == 1
    )
    assert XNAT_USERS["bob"] not in answer.get_data(as_text=True)
    wait_until(lambda: all(t.released_at for t in tokens_of(refusing)), 10, message="the unused token let go")
    warning = make_app([{"url": xnat_sim.url}], workflows=True, workflow_permission="warn")
    answer = warning.post("/api/v1/pipelines", json=item(xnat_sim.url, **bob))
    assert answer.status_code == 201, answer.json
    (report,) = answer.json["pipelines"]
    assert any("workflows" in w for w in report["warnings"]), report
    assert wait_done(warning, report["id"])["status"] == "succeeded"
    assert service_of(warning).store.get_pipeline(report["id"]).workflow_status is None
    assert xnat_sim.state.workflows == []


def test_xnat_down_does_not_stop_dispatching_and_the_backlog_is_written_when_it_returns(make_app, xnat_sim, scripts):
    (scripts / "nap.sh").write_text("sleep 1\n")
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    answer = client.post("/api/v1/pipelines", json=item(xnat_sim.url, script="nap.sh"))
    xnat_sim.faults.fail_500 = "workflows"  # writes and listings of workflows fail; the archive still answers
    (pid,) = [r["id"] for r in answer.json["pipelines"]]
    assert wait_done(client, pid)["status"] == "succeeded"  # dispatching went on
    (token,) = tokens_of(client)
    failed = lambda: [r for r in xnat_sim.state.requests_seen("PUT", "^/data/workflows$") if r["status"] == 500]  # noqa: E731
    wait_until(lambda: len(failed()) >= 2, 10, message="updates tried and failing")
    assert [w["status"] for w in _entries(xnat_sim)] in (["Queued"], ["Running"])
    assert not _written(client, pid) and tokens_of(client)[0].released_at is None  # held for the last update
    xnat_sim.faults.fail_500 = None
    wait_until(lambda: _written(client, pid), 10, message="the backlog written")
    assert [w["status"] for w in _entries(xnat_sim)] == ["Complete"]
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="then the token released")
    assert xnat_sim.state.live_token(token.alias) is None


def test_a_crash_between_the_put_and_its_record_writes_no_second_entry(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    submitted = client.post("/api/v1/pipelines", json=[item(xnat_sim.url), item(xnat_sim.url)]).json["pipelines"]
    first, second = [r["id"] for r in submitted]
    for pid in (first, second):
        wait_done(client, pid)
        wait_until(lambda pid=pid: _written(client, pid), 10, message="the last update written")
    # Two pipelines of one script on one session, submitted together: two entries (launch times a second apart).
    entries = _entries(xnat_sim)
    assert len(entries) == 2 and len({w["launch_time"] for w in entries}) == 2
    ids = {pid: service_of(client).store.get_pipeline(pid).workflow_id for pid in (first, second)}
    service = service_of(client)
    service.tokens.hold = lambda token_id: True  # keep the token for the replay below
    with service.store.write() as session:  # as if the process died after the PUTs, before recording them
        session.execute(update(Pipeline).values(workflow_at=None, workflow_id=None))
    wait_until(lambda: _written(client, first) and _written(client, second), 10, message="rewritten")
    assert len(_entries(xnat_sim)) == 2
    assert {pid: service.store.get_pipeline(pid).workflow_id for pid in (first, second)} == ids


def test_an_update_xnat_will_never_take_does_not_hold_up_the_others(make_app, xnat_sim, scripts):
    (scripts / "nap.sh").write_text("sleep 1\n")
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    items = [item(xnat_sim.url, script="nap.sh"), item(xnat_sim.url, script="nap.sh", session="S01_MR2")]
    lost, kept = [r["id"] for r in client.post("/api/v1/pipelines", json=items).json["pipelines"]]
    service = service_of(client)
    spec = service.store.get_pipeline(lost).spec
    gone = dict(spec, xnat_workflow=dict(spec["xnat_workflow"], id="XNAT_E99999"))  # as if deleted from XNAT
    with service.store.write() as session:
        session.execute(update(Pipeline).where(Pipeline.id == lost).values(spec=gone))
    for pid in (lost, kept):
        assert wait_done(client, pid)["status"] == "succeeded"
    wait_until(lambda: _written(client, kept), 10, message="the other pipeline's updates written")
    assert [w["status"] for w in _entries(xnat_sim, "XNAT_E00002")] == ["Complete"]
    wait_until(lambda: service.store.get_pipeline(lost).workflow_status is None, 10, message="given up on")
    wait_until(lambda: all(t.released_at for t in tokens_of(client)), 10, message="the token released")
