"""Giving a reused floating IP back at destroy: every request inside call(), so a 5xx is retried and a cloud
refusing connections is a CloudAPIError naming the call, never a keystoneauth exception escaping destroy."""

from __future__ import annotations

import logging

import pytest

from devtools.openstack_sim import parse_rule
from scheduler_server.pipelines.backend_errors import ProvisionError
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError

from .conftest import wait_for


def _reusing(sim, conn, make_backend):
    public = conn.network.find_network("public", ignore_missing=False)
    spare = conn.network.create_ip(floating_network_id=public.id, description="someone's spare")
    backend = make_backend(use_floating_ip=True, ip_pool="public")
    info = backend.wait_until_reachable(backend.provision("pipeline-x-1"))
    assert info.extra["fip_id"] == spare.id and info.extra["fip_allocated"] is False
    return backend, info, spare


def test_a_5xx_while_giving_a_reused_address_back_is_retried(sim, conn, make_backend, caplog):
    backend, info, spare = _reusing(sim, conn, make_backend)
    for method, path in (
        ("GET", f"/floatingips/{spare.id}$"),
        ("GET", "/ports/"),
        ("PUT", f"/floatingips/{spare.id}$"),
    ):
        sim.cloud.faults.add(parse_rule(f"api_error:method={method},path={path},status=503,count=1"))
    with caplog.at_level(logging.WARNING):
        backend.destroy(info)
    retried = [r.getMessage() for r in caplog.records if "retry 1/" in r.getMessage()]
    assert [m.split(" failed")[0].rsplit(" ", 1)[0] for m in retried] == [
        "openstack: get floating IP",
        "openstack: get port",
        "openstack: disassociate floating IP",
    ], retried
    served = [(r["method"], r["status"]) for r in sim.request_log if r["path"].endswith(f"/floatingips/{spare.id}")]
    assert served[-2:] == [("PUT", 503), ("PUT", 200)], served  # handed back by the retry, not by the delete
    wait_for(lambda: not sim.cloud.servers, what="the server to go")
    assert conn.network.get_ip(spare.id).port_id is None


def test_a_cloud_refusing_connections_at_release_is_a_cloud_api_error_naming_the_call(sim, conn, make_backend):
    backend, info, spare = _reusing(sim, conn, make_backend)
    backend.ips.retries = 0
    sim.stop()  # its port now refuses connections
    with pytest.raises(CloudAPIError, match=rf"^get floating IP {spare.id}: .*Connection refused") as raised:
        backend.ips.release(spare.id, False, info.id)
    assert raised.value.status is None
    with pytest.raises(
        ProvisionError, match=rf"^cannot delete server {info.name}: get floating IP .*Connection refused"
    ):
        backend.destroy(info)


def test_the_orphan_sweep_retries_a_5xx_delete_and_a_refused_connection_is_one_warning(sim, conn, make_backend, caplog):
    backend = make_backend(use_floating_ip=True, ip_pool="public")
    public = conn.network.find_network("public", ignore_missing=False)
    orphan = conn.network.create_ip(floating_network_id=public.id, description=backend.ips.description("gone"))
    sim.cloud.faults.add(parse_rule(f"api_error:method=DELETE,path=/floatingips/{orphan.id}$,status=503,count=1"))
    with caplog.at_level(logging.WARNING):
        assert backend.ips.sweep() == [orphan.floating_ip_address]  # deleted by the retry
    assert any("delete floating IP" in r.getMessage() and "retry 1/" in r.getMessage() for r in caplog.records)
    assert conn.network.find_ip(orphan.id) is None
    second = conn.network.create_ip(floating_network_id=public.id, description=backend.ips.description("gone"))
    backend.ips.retries = 0
    sim.cloud.faults.add(parse_rule(f"api_error:method=DELETE,path=/floatingips/{second.id}$,status=503,count=1"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert backend.ips.sweep() == []  # kept for the next sweep, one line, no exception
    said = [r.getMessage() for r in caplog.records if "cannot delete orphan floating IP" in r.getMessage()]
    assert len(said) == 1 and "delete floating IP" in said[0], said
