"""A cloud that refuses connections at start: the warm-up says so on one line, no thread traceback."""

from __future__ import annotations

import logging
import threading

import pytest
import yaml

from devtools.openstack_sim import SimConfig, Simulator
from scheduler_server.pipelines.clouds.backend import create_backend
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError

from .conftest import pipeline_settings


@pytest.mark.parametrize("provisioning", ["nova", "heat"])
def test_a_cloud_refusing_connections_is_one_line_at_start(ssh_key, tmp_path, caplog, monkeypatch, provisioning):
    sim = Simulator(SimConfig()).start()
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
    sim.stop()  # its port now refuses connections
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    settings = pipeline_settings(sim, path, ssh_key, provisioning=provisioning, api_retries=0)
    backend = create_backend(settings, scheduler_id="sched-test", data_dir=tmp_path)
    try:
        with caplog.at_level(logging.WARNING):
            backend.adopt([])  # what the pool runs at start: the warm-up thread
            for thread in threading.enumerate():
                if thread.name == "openstack-warm-up":
                    thread.join(15)
        # What the pool's reconciliation and restart call next: a BackendError naming the call, too.
        with pytest.raises(CloudAPIError, match=r"^list (servers|stacks): .*Connection refused"):
            backend.list_instances()
        with pytest.raises(CloudAPIError, match=r"^get (server|stack): .*Connection refused"):
            backend.get_instance("d6f1c0de-0000-4000-8000-000000000000")
    finally:
        backend.close()
    assert escaped == [], "an exception escaped the warm-up thread"
    ours = [r for r in caplog.records if r.name.startswith("scheduler_server") and r.levelno >= logging.ERROR]
    expected = ["openstack: look up image 'ubuntu-22.04': "]
    if provisioning == "heat":  # the catalogue could not be read: not "the cloud has no Heat"
        expected.append("openstack: look up orchestration service: ")
    assert [r.getMessage()[: len(e)] for r, e in zip(ours, expected, strict=True)] == expected
    for record in ours:
        message = record.getMessage()
        assert "Connection refused" in message and "\n" not in message and record.exc_info is None
    assert "Traceback" not in caplog.text
