"""The workflow entry's link back (review of issue 15): with xnat.link_base, the comments carry the pipeline's
page URL; without it, its API path only; a link_base that is no plain http(s) base URL is refused at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scheduler_server.pipelines.xnat.settings import XnatSettings
from tests.waiting import wait_until

from .test_verify import item, make_app, scripts, service_of, wait_done  # noqa: F401  (fixtures)


def _comments(client, sim, pid):
    def written():
        row = service_of(client).store.get_pipeline(pid)
        done = row.workflow_at is not None and row.workflow_at >= row.updated_at
        return done and [w["comments"] for w in sim.state.workflows if w["status"] == "Complete"]

    return wait_until(written, 15, message="the last update written")


@pytest.mark.parametrize("base", [None, "https://scheduler.example.org/sched/"])
def test_the_comments_link_to_the_pipeline(make_app, xnat_sim, base):
    extra = {"link_base": base} if base else {}
    client = make_app([{"url": xnat_sim.url}], workflows=True, **extra)
    pid = client.post("/api/v1/pipelines", json=item(xnat_sim.url)).json["pipelines"][0]["id"]
    assert wait_done(client, pid)["status"] == "succeeded"
    (comments,) = _comments(client, xnat_sim, pid)
    where = f"https://scheduler.example.org/sched/ui/pipelines/{pid}" if base else f"/api/v1/pipelines/{pid}"
    assert comments == f"scheduler-server pipeline {pid}: {where}"


@pytest.mark.parametrize(
    "bad", ["ftp://x.example.org", "https://x.example.org/?a=1", "https://u:p@x.example.org", "scheduler", "http://a b"]
)
def test_a_bad_link_base_is_refused(bad):
    with pytest.raises(ValidationError, match="link_base"):
        XnatSettings(link_base=bad)
