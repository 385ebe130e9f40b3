"""A launch with xnat.workflows (review of issue 15): its first session's Queued entry, written at launch as the
permission check, is dismissed when the launch then creates nothing (the token row or the insert failing); a
refusal's message names workflows once."""

from __future__ import annotations

import pytest

from .conftest import XNAT_USERS
from .test_launch import body
from .test_verify import make_app, scripts, service_of  # noqa: F401  (fixtures)


def _broken(*args, **kwargs):
    raise RuntimeError("the database failed")


@pytest.mark.parametrize("where", ["insert", "token row"])
def test_a_launch_that_creates_nothing_leaves_no_queued_entry(make_app, xnat_sim, where):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    service = service_of(client)
    if where == "insert":
        service.store.add_pipelines = _broken
    else:
        service.tokens.record = _broken
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    answer = client.post("/api/v1/xnat/launch", json=body(xnat_sim, subject="S01"))
    assert answer.status_code == 500
    (entry,) = xnat_sim.state.workflows  # the first session's, written as the permission check
    assert entry["status"] == "Failed (Dismissed)" and "created no pipeline" in entry["details"], entry


def test_a_refused_launchs_message_names_workflows_once(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    answer = client.post("/api/v1/xnat/launch", json=body(xnat_sim, user="bob", pwd=XNAT_USERS["bob"]))
    assert answer.status_code == 400 and answer.json["field"] == "workflows", answer.json
    message = answer.json["message"]
    assert message.startswith("workflows: ") and message.count("workflows:") == 1, message
    assert "may not write workflows" in message
    warned = make_app([{"url": xnat_sim.url}], workflows=True, workflow_permission="warn")
    answer = warned.post("/api/v1/xnat/launch", json=body(xnat_sim, user="bob", pwd=XNAT_USERS["bob"], subject="S02"))
    assert answer.status_code == 201, answer.json
    (warning,) = [w for w in answer.json["warnings"] if "workflow" in w]
    assert warning.count("workflows:") == 1, warning
