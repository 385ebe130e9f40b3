"""The instance pool when another actor changes an instance's row while a boot is under way."""

from __future__ import annotations

import pytest

from scheduler_server.pipelines.backend_errors import BackendError
from scheduler_server.pipelines.models import Instance, InstanceState


@pytest.mark.parametrize("meanwhile", [InstanceState.DELETED, InstanceState.IDLE])
def test_a_boot_that_fails_after_its_row_moved_on_leaves_the_row_alone(make_service, monkeypatch, meanwhile):
    """DELETE /api/v1/instances/<id> deleted it (or another dispatcher brought it up) while this boot
    waited: the failed boot neither raises in its worker nor marks the row broken nor destroys it."""
    service = make_service(start=False)
    pool = service.pool
    with service.store.write() as session:
        name = pool.create(session).id
    destroyed = []
    real_destroy = service.backend.destroy

    def reach_then_fail(info):
        with service.store.write() as session:
            row = session.get(Instance, name)
            if meanwhile == InstanceState.DELETED:
                row.move(InstanceState.DELETING)
            row.move(meanwhile)
        raise BackendError("the server went away while booting")

    monkeypatch.setattr(service.backend, "wait_until_reachable", reach_then_fail)
    monkeypatch.setattr(service.backend, "destroy", lambda info: destroyed.append(info) or real_destroy(info))
    assert pool.boot(name) is None
    row = pool.get(name)
    assert row.state == meanwhile
    assert row.error is None
    assert destroyed == []


def test_a_boot_that_fails_while_booting_marks_the_instance_broken(make_service, monkeypatch):
    service = make_service(start=False)
    pool = service.pool
    with service.store.write() as session:
        name = pool.create(session).id

    def fail(info):
        raise BackendError("no route to host")

    monkeypatch.setattr(service.backend, "wait_until_reachable", fail)
    assert pool.boot(name) is None
    row = pool.get(name)
    assert row.state == InstanceState.BROKEN and "no route to host" in row.error
