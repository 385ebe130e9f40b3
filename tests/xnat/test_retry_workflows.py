"""Retries with xnat.workflows on (review of issue 15): a retry with fresh credentials is queued again (was a 500)
and keeps its one workflow entry; a succeeded pipeline's retry is a 409 before any token is issued or workflow
written; a verification that fails on any exception leaves no live token at XNAT."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from scheduler_server.pipelines.models import Pipeline
from tests.waiting import wait_until

from .conftest import XNAT_USERS
from .test_verify import item, make_app, scripts, service_of, tokens_of, wait_done  # noqa: F401  (fixtures)

ISSUE = "^/data/services/tokens/issue$"
PUT = "^/data/workflows$"


def _entries(sim):
    return [w for w in sim.state.workflows if w["id"] == "XNAT_E00001"]


def _done_and_released(client, xnat_sim):
    pid = client.post("/api/v1/pipelines", json=item(xnat_sim.url)).json["pipelines"][0]["id"]
    assert wait_done(client, pid)["status"] == "succeeded"
    wait_until(lambda: [w["status"] for w in _entries(xnat_sim)] == ["Complete"], 10, message="Complete in XNAT")
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token released")
    return pid


def test_a_succeeded_pipelines_retry_is_refused_before_anything_is_issued(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    pid = _done_and_released(client, xnat_sim)
    issued, puts = len(xnat_sim.state.requests_seen("POST", ISSUE)), len(xnat_sim.state.requests_seen("PUT", PUT))
    issued += len(xnat_sim.state.requests_seen("GET", ISSUE))
    answer = client.post(f"/api/v1/pipelines/{pid}/retry", json={"user": "alice", "pwd": XNAT_USERS["alice"]})
    assert answer.status_code == 409, answer.json
    seen = len(xnat_sim.state.requests_seen("POST", ISSUE)) + len(xnat_sim.state.requests_seen("GET", ISSUE))
    assert seen == issued and len(xnat_sim.state.requests_seen("PUT", PUT)) == puts
    assert len(tokens_of(client)) == 1


def test_a_retry_with_fresh_credentials_keeps_its_workflow_entry(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    pid = _done_and_released(client, xnat_sim)
    service = service_of(client)
    with service.store.write() as session:
        session.execute(update(Pipeline).where(Pipeline.id == pid).values(status="failed"))
    answer = client.post(f"/api/v1/pipelines/{pid}/retry", json={"user": "alice", "pwd": XNAT_USERS["alice"]})
    assert answer.status_code == 202, answer.json
    assert wait_done(client, pid)["status"] == "succeeded"
    wait_until(lambda: service.store.get_pipeline(pid).workflow_at, 10, message="the last update written")
    (entry,) = _entries(xnat_sim)  # the same entry, updated again, never a second one
    assert entry["status"] == "Complete"
    statuses = [r["query"].get("wrk:workflowData/status") for r in xnat_sim.state.requests_seen("PUT", PUT)]
    assert statuses.count("Complete") == 2  # the retry's own run written to it too (its latest state wins)
    wait_until(lambda: tokens_of(client)[1].released_at, 10, message="the new token released")
    assert all(xnat_sim.state.live_token(t.alias) is None for t in tokens_of(client))


@pytest.mark.parametrize("workflows", [False, True])
def test_any_failure_while_verifying_invalidates_the_issued_token(make_app, xnat_sim, workflows):
    client = make_app([{"url": xnat_sim.url}], workflows=workflows)
    service = service_of(client)

    def broken(*args, **kwargs):
        raise RuntimeError("the token row could not be written")

    service.tokens.record = broken
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    answer = client.post("/api/v1/pipelines", json=item(xnat_sim.url))
    assert answer.status_code == 500
    assert xnat_sim.state.tokens, "a token was issued"
    assert all(xnat_sim.state.live_token(alias) is None for alias in xnat_sim.state.tokens)


def test_a_later_items_503_leaves_no_queued_entry(make_app, make_xnat_sim):
    first, down = make_xnat_sim(), make_xnat_sim(faults={"fail_500": "^/data/services/tokens"})
    client = make_app([{"url": first.url}, {"url": down.url}], workflows=True)
    answer = client.post("/api/v1/pipelines", json=[item(first.url), item(down.url)])
    assert answer.status_code == 503, answer.json
    (entry,) = _entries(first)  # written (the permission check), then dismissed before the answer
    assert entry["status"] == "Failed (Dismissed)" and "created no pipeline" in entry["details"]
    assert all(first.state.live_token(alias) is None for alias in first.state.tokens)


def test_a_failed_insert_leaves_no_queued_entry(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    service = service_of(client)

    def broken(*args, **kwargs):
        raise RuntimeError("the insert failed")

    service.store.add_pipelines = broken
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    answer = client.post("/api/v1/pipelines", json=[item(xnat_sim.url), item(xnat_sim.url, session="S01_MR2")])
    assert answer.status_code == 500
    entries = xnat_sim.state.workflows
    assert len(entries) == 2 and {w["status"] for w in entries} == {"Failed (Dismissed)"}, entries
