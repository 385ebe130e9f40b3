"""A project launch counts its pipelines as accepted xnat submissions on /metrics; a dry run counts none."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .test_launch import launch
from .test_verify import make_app, scripts  # noqa: F401  (fixtures)

ACCEPTED = ("scheduler_server_pipeline_submissions_total", (("kind", "xnat"), ("outcome", "accepted")))


def accepted(client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if (sample.name, tuple(sorted(sample.labels.items()))) == ACCEPTED:
                return sample.value
    return 0.0


def test_a_launch_counts_each_pipeline_it_queued_and_a_dry_run_none(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    before = accepted(client)  # the series are this test process's, shared with earlier tests
    assert launch(client, xnat_sim, dry_run=True).status_code == 200
    assert accepted(client) == before
    answer = launch(client, xnat_sim)
    assert answer.status_code == 201, answer.json
    assert accepted(client) == before + answer.json["created"] == before + 5
