"""OpenStackBackend against the simulator: real openstacksdk, real HTTP, real sshd per server."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.openstack_sim import parse_rule
from scheduler_server.pipelines.backend_errors import BackendConfigError, InstanceGone, ProvisionError
from scheduler_server.pipelines.clouds.backend import TAG_KEY

from .conftest import KEYPAIR, assert_nothing_left, leftovers, wait_for


def up(backend, name="pipeline-x-1"):
    return backend.wait_until_reachable(backend.provision(name))


def test_provision_reach_run_destroy(sim, make_backend):
    backend = make_backend(
        use_floating_ip=True, ip_pool="public", user_data="#cloud-config\npackages: [jq]\n", security_group="default"
    )
    info = up(backend)
    assert info.state == "active" and info.port == sim.config.ssh_port
    assert info.address.startswith(f"127.{sim.config.address_block}.2")  # the floating range
    assert info.extra["fip_allocated"] is True
    result = backend.executor(info).run("echo $SSH_CONNECTION")
    assert result.ok and result.text().split()[2] == sim.cloud.servers[info.id].fixed_ip  # NATed to the fixed IP
    server = sim.cloud.servers[info.id]
    assert server.name == "pipeline-x-1" and server.key_name == KEYPAIR and server.security_groups == ["default"]
    assert server.metadata[TAG_KEY] == "sched-test" and "scheduler_server_created_at" in server.metadata
    state = sim.app.test_client().get("/_sim/state").get_json()
    assert state["servers"][0]["user_data"] == "#cloud-config\npackages: [jq]\n"
    backend.destroy(info)
    backend.destroy(info)  # idempotent
    assert_nothing_left(sim)


def test_names_or_ids_and_the_fixed_address_without_floating_ip(sim, make_backend):
    backend = make_backend(
        image_id="0b1f5a4e-7c9d-4a2b-8e6f-5d3c2b1a0f9e", flavor="3", network_id="3f0a8b52-55c3-4b0e-9d4e-2a1f6c7d8e90"
    )
    info = up(backend)
    server = sim.cloud.servers[info.id]
    assert (server.image_id, server.flavor_id) == ("0b1f5a4e-7c9d-4a2b-8e6f-5d3c2b1a0f9e", "3")
    assert info.address == server.fixed_ip
    assert backend.executor(info).run("true").ok
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_free_floating_ip_is_reused_and_handed_back(sim, conn, make_backend):
    public = conn.network.find_network("public", ignore_missing=False)
    existing = conn.network.create_ip(floating_network_id=public.id, description="someone's spare")
    backend = make_backend(use_floating_ip=True, ip_pool="public")
    info = up(backend)
    assert info.address == existing.floating_ip_address and info.extra["fip_allocated"] is False
    backend.destroy(info)
    wait_for(lambda: not sim.cloud.servers, what="the server to go")
    fip = conn.network.get_ip(existing.id)
    assert fip.port_id is None and fip.description == "someone's spare"  # not ours to delete


def test_concurrent_claims_never_share_an_address(sim, conn, make_backend):
    public = conn.network.find_network("public", ignore_missing=False)
    spares = {conn.network.create_ip(floating_network_id=public.id).floating_ip_address for _ in range(3)}
    backend = make_backend(use_floating_ip=True, ip_pool="public", max_parallel_provisioning=8)
    with ThreadPoolExecutor(8) as workers:
        infos = list(workers.map(lambda n: up(backend, f"pipeline-c-{n}"), range(8)))
    addresses = [i.address for i in infos]
    assert len(set(addresses)) == 8
    assert spares <= set(addresses)
    assert sum(not i.extra["fip_allocated"] for i in infos) == 3
    for info in infos:
        assert backend.executor(info).run("true").ok
    with ThreadPoolExecutor(8) as workers:
        list(workers.map(backend.destroy, infos))
    wait_for(lambda: not sim.cloud.servers, what="the servers to go")
    assert sorted(leftovers(sim)["floating_ips"]) == sorted(spares)


@pytest.mark.parametrize(
    "setup,overrides,reason",
    [
        (lambda sim: setattr(sim.config, "max_servers", 0), {}, "Quota exceeded for instances"),
        (None, {"image_id": "no-such-image"}, "image_id: no image named or with id 'no-such-image'"),
        (None, {"flavor": "m9.huge"}, "flavor: no flavor"),
        (lambda sim: sim.cloud.faults.add(parse_rule("server_error")), {}, "went to ERROR: No valid host was found"),
        (lambda sim: sim.cloud.faults.add(parse_rule("server_stuck")), {"boot_timeout": 1}, "still BUILD after 1 s"),
        (
            lambda sim: setattr(sim.config, "fip_pool_size", 0),
            {"use_floating_ip": True, "ip_pool": "public"},
            "No more IP addresses available on network",
        ),
        (None, {"use_floating_ip": True, "ip_pool": "private"}, "ip_pool: network 'private' is not external"),
    ],
    ids=["quota", "image", "flavor", "error", "stuck", "pool-dry", "pool-not-external"],
)
def test_cloud_errors_become_the_reason_and_nothing_leaks(sim, make_backend, setup, overrides, reason):
    if setup:
        setup(sim)
    backend = make_backend(**overrides)
    info = None
    with pytest.raises(ProvisionError, match=reason):
        info = backend.provision("pipeline-e-1")
        backend.wait_until_reachable(info)
    if info is not None:  # what the pool does with an instance that failed to come up
        backend.destroy(info)
    assert_nothing_left(sim)


def test_5xx_on_create_is_retried_into_one_server(sim, make_backend):
    sim.cloud.faults.add(parse_rule("api_error:method=POST,path=/servers$,status=503,count=2"))
    backend = make_backend()
    info = up(backend)
    assert list(sim.cloud.servers) == [info.id]
    assert [r["status"] for r in sim.request_log if r["method"] == "POST" and r["path"].endswith("/servers")] == [
        503,
        503,
        202,
    ]
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_create_that_timed_out_but_happened_is_found_not_repeated(sim, make_backend):
    sim.cloud.faults.add(parse_rule("api_timeout:method=POST,path=/servers$,seconds=2,phase=after"))
    backend = make_backend(api_timeout=1)
    info = up(backend)
    assert list(sim.cloud.servers) == [info.id]
    posts = lambda: [r for r in sim.request_log if r["method"] == "POST" and r["path"].endswith("/servers")]  # noqa: E731
    wait_for(posts, what="the slow POST to be answered")
    time.sleep(0.2)
    assert len(posts()) == 1
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_create_that_happened_late_leaves_no_duplicate(sim, make_backend):
    # The first POST is served only after the client gave up and sent a second one: two servers exist for a while.
    sim.cloud.faults.add(parse_rule("api_timeout:method=POST,path=/servers$,seconds=2.5"))
    backend = make_backend(api_timeout=1)
    info = backend.provision("pipeline-d-1")
    wait_for(lambda: len(sim.cloud.servers) == 2, 10, what="the late create")
    info = backend.wait_until_reachable(info)
    wait_for(lambda: list(sim.cloud.servers) == [info.id], 10, what="the duplicate to be deleted")
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_vanished_server_is_instance_gone(sim, make_backend):
    backend = make_backend()
    info = up(backend)
    sim.cloud.vanish_server(info.id)
    with pytest.raises(InstanceGone, match="no longer exists"):
        backend.executor(info).run("true", timeout=5)
    assert backend.get_instance(info.id) is None
    backend.destroy(info)  # still idempotent


def test_listing_tells_ours_from_others_and_hides_creates_in_flight(sim, conn, make_backend):
    image = conn.image.find_image("ubuntu-22.04", ignore_missing=False)
    conn.compute.create_server(name="someone-else", image_id=image.id, flavor_id="1", networks="auto")
    other = make_backend(scheduler_id="other-scheduler")
    theirs = other.provision("pipeline-o-1")
    # A create whose response is slow: the server exists before provision() returns.
    sim.cloud.faults.add(parse_rule("api_timeout:method=POST,path=/servers$,seconds=1.5,phase=after"))
    backend = make_backend()
    result = {}
    thread = threading.Thread(target=lambda: result.update(info=backend.provision("pipeline-m-1")))
    thread.start()
    wait_for(lambda: len(sim.cloud.servers) == 3, what="our server to exist")
    assert backend.list_instances() == []
    thread.join()
    ours = result["info"]
    assert [i.id for i in backend.list_instances()] == [ours.id]
    everything = {i.name: i.tagged for i in backend.list_instances(include_untagged=True)}
    assert everything == {"someone-else": False, "pipeline-o-1": False, "pipeline-m-1": True}
    backend.destroy(ours)
    other.destroy(theirs)


def test_listing_sweeps_our_floating_ips_that_lost_their_server(sim, conn, make_backend):
    backend = make_backend(use_floating_ip=True, ip_pool="public")
    public = conn.network.find_network("public", ignore_missing=False)
    orphan = conn.network.create_ip(floating_network_id=public.id, description=backend.ips.description("dead-server"))
    foreign = conn.network.create_ip(floating_network_id=public.id, description="scheduler-server other server x")
    backend.list_instances()
    assert {f.floating_ip_address for f in sim.cloud.floating_ips.values()} == {foreign.floating_ip_address}
    assert orphan.id not in sim.cloud.floating_ips


def test_parallel_provisioning_is_bounded(sim, make_backend):
    sim.config.boot_delay = 0.6
    backend = make_backend(max_parallel_provisioning=2)
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            with sim.cloud.lock:
                peak[0] = max(peak[0], sum(s.status == "BUILD" for s in sim.cloud.servers.values()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(5) as workers:
        infos = list(workers.map(lambda n: up(backend, f"pipeline-b-{n}"), range(5)))
    stop.set()
    watcher.join()
    assert peak[0] == 2
    for info in infos:
        backend.destroy(info)
    assert_nothing_left(sim)


def test_unusable_configuration_is_reported_at_construction(make_backend):
    with pytest.raises(BackendConfigError, match="image_id must be set"):
        make_backend(image_id=None)
    with pytest.raises(BackendConfigError, match="ip_pool must name"):
        make_backend(use_floating_ip=True, ip_pool=None)


def test_a_failed_write_after_provision_frees_the_slot_and_the_server(sim, make_backend, tmp_path, monkeypatch):
    """The pool records a new server right after provision(); if that write fails, nothing else would
    ever delete the server or give back its provisioning slot."""
    from sqlalchemy.exc import OperationalError

    from scheduler_server.pipelines.models import InstanceState
    from scheduler_server.pipelines.scheduling.pool import Pool
    from scheduler_server.pipelines.storage.store import Store

    backend = make_backend(max_parallel_provisioning=1)
    store = Store(f"sqlite:///{tmp_path / 'pool.sqlite'}")
    pool = Pool(store, backend, lambda: backend.settings)
    with store.write() as session:
        name = pool.create(session).id
    saves = []
    real_save = pool._save

    def failing_first_save(instance_id, **values):
        saves.append(values)
        if len(saves) == 1:
            raise OperationalError("UPDATE instances", {}, Exception("database is locked"))
        real_save(instance_id, **values)

    monkeypatch.setattr(pool, "_save", failing_first_save)
    with pytest.raises(OperationalError):
        pool.boot(name)
    assert pool.get(name).state == InstanceState.BROKEN
    assert_nothing_left(sim)
    assert backend._booting.acquire(timeout=0)  # the one slot is free again
    store.close()


def test_spares_wait_for_an_awaited_servers_first_launch_and_the_pool_says_who_waits(sim, make_backend, tmp_path):
    """A server a pipeline waits for keeps spares from connecting until its first job is launched
    (they would slow that launch down), and ``Pool.boot`` names the pipeline that can start now."""
    from scheduler_server.pipelines.scheduling.pool import Pool
    from scheduler_server.pipelines.storage.store import Store

    backend = make_backend()
    store = Store(f"sqlite:///{tmp_path / 'pool.sqlite'}")
    pool = Pool(store, backend, lambda: backend.settings)  # also tells the backend which servers are awaited
    with store.write() as session:
        awaited, spare = pool.create(session), pool.create(session)
        awaited.pipeline_id = 7
        awaited_name, spare_name = awaited.id, spare.id
    assert pool.boot(spare_name) is None  # first: its own probe would otherwise wait out the hold below
    assert pool.boot(awaited_name) == 7
    gate, entered = backend._reach_order, threading.Event()

    def spare_turn():
        with gate.turn(lambda: False):
            entered.set()

    waiting = threading.Thread(target=spare_turn)
    waiting.start()
    assert not entered.wait(0.4)  # held back: the awaited server's first launch has not happened
    executor = pool.executor(pool.get(awaited_name))
    job = str(tmp_path / "remote" / "job-7-1")
    executor.run(f"mkdir -p {job} && echo 'sleep 0' > {job}/run.sh")
    executor.launch_detached(job, "run.sh", b"\n")  # stdin: the (empty) secret line
    assert entered.wait(2)
    waiting.join(2)
    for name in (awaited_name, spare_name):
        pool.destroy(name)
    assert_nothing_left(sim)
    store.close()
