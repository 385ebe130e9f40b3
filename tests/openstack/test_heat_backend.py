"""``provisioning: heat``: each instance a Heat stack, on the simulator's Orchestration API
(real openstacksdk, real HTTP, real sshd per server), and end to end under ``serve``."""

from __future__ import annotations

import json
import sqlite3
import threading

import openstack.config
import openstack.connection
import pytest
import requests

from devtools.openstack_sim import parse_rule
from devtools.openstack_sim.process import SimProcess
from scheduler_server.pipelines.backend_errors import BackendConfigError, ProvisionError
from scheduler_server.pipelines.clouds.backend import TAG_KEY
from scheduler_server.pipelines.clouds.openstack import heat
from scheduler_server.pipelines.clouds.openstack.settings import OpenStackSettings

from .conftest import KEYPAIR, assert_nothing_left, wait_for
from .harness import markers, seed_config


def stacks_left(sim) -> list[str]:
    return [s.name for s in sim.app.config["SIM"].stacks.stacks.values() if s.status != "DELETE_COMPLETE"]


def heat_backend(make_backend, **overrides):
    return make_backend(provisioning="heat", **overrides)


def up(backend, name="pipeline-h-1"):
    return backend.wait_until_reachable(backend.provision(name))


def test_a_stack_per_instance_reached_over_ssh_and_deleted_whole(sim, conn, make_backend):
    backend = heat_backend(make_backend, user_data="#cloud-config\n", security_group="default")
    info = up(backend)
    assert type(backend).__name__ == "HeatBackend" and info.extra["stack"] is True
    stack = conn.orchestration.get_stack(info.id)
    assert stack.name == "pipeline-h-1" and stack.status == "CREATE_COMPLETE"
    assert f"{TAG_KEY}=sched-test" in stack.tags
    assert stack.parameters["user_data"] == "******"  # hidden: user data may hold secrets
    server = sim.cloud.servers[info.extra["server_id"]]
    assert info.address == server.fixed_ip and server.key_name == KEYPAIR
    assert server.metadata.get(TAG_KEY) is None  # the stack is the instance, not its server
    state = sim.app.test_client().get("/_sim/state").get_json()
    assert state["servers"][0]["user_data"] == "#cloud-config\n"
    [listed] = state["stacks"]  # as the servers are listed, and without the (maybe secret) parameters
    assert (listed["id"], listed["name"], listed["status"]) == (info.id, "pipeline-h-1", "CREATE_COMPLETE")
    resources = {r["name"]: r for r in listed["resources"]}
    assert resources["server"]["physical_id"] == server.id and resources["server"]["type"] == "OS::Nova::Server"
    assert {r["status"] for r in resources.values()} == {"CREATE_COMPLETE"} and "port" in resources
    assert "cloud-config" not in json.dumps(listed) and f"{TAG_KEY}=sched-test" in listed["tags"]
    result = backend.executor(info).run("echo $SSH_CONNECTION")
    assert result.ok and result.text().split()[2] == server.fixed_ip
    assert backend.get_instance(info.id).state == "active"
    backend.destroy(info)
    backend.destroy(info)  # idempotent
    deletes = [r["status"] for r in sim.request_log if r["method"] == "DELETE" and "/stacks/" in r["path"]]
    assert deletes and 302 not in deletes  # to the canonical /stacks/<name>/<id>: no redirect
    assert_nothing_left(sim)
    wait_for(lambda: not stacks_left(sim), what="the stack to go")
    assert backend.get_instance(info.id) is None
    gone = sim.app.test_client().get("/_sim/state").get_json()["stacks"]
    assert [(s["status"], {r["status"] for r in s["resources"]}) for s in gone] == [
        ("DELETE_COMPLETE", {"DELETE_COMPLETE"})
    ]


def test_floating_ip_and_own_security_group_variant(sim, conn, make_backend):
    backend = heat_backend(make_backend, use_floating_ip=True, ip_pool="public", heat_create_security_group=True)
    info = up(backend)
    assert info.address.startswith(f"127.{sim.config.address_block}.2")  # the floating range
    resources = {r.name: r.resource_type for r in conn.orchestration.resources(info.id)}
    assert resources == {
        "port": "OS::Neutron::Port",
        "server": "OS::Nova::Server",
        "floating_ip": "OS::Neutron::FloatingIP",
        "security_group": "OS::Neutron::SecurityGroup",
    }
    assert backend.executor(info).run("true").ok
    backend.destroy(info)
    assert_nothing_left(sim)


def test_create_failed_gives_the_stacks_reason(sim, make_backend):
    sim.cloud.faults.add(parse_rule("stack_error"))
    backend = heat_backend(make_backend)
    info = backend.provision("pipeline-h-f")
    with pytest.raises(ProvisionError, match="stack pipeline-h-f CREATE_FAILED: .*Simulated fault: stack_error"):
        backend.wait_until_reachable(info)
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_hanging_stack_times_out_and_is_deleted(sim, make_backend):
    sim.cloud.faults.add(parse_rule("stack_stuck"))
    backend = heat_backend(make_backend, boot_timeout=1)
    info = backend.provision("pipeline-h-s")
    with pytest.raises(ProvisionError, match=r"still CREATE_IN_PROGRESS after 1 s \(boot_timeout 1 s\); deleted"):
        backend.wait_until_reachable(info)
    backend.destroy(info)  # as the pool then does: the stack is already being deleted
    wait_for(lambda: not stacks_left(sim), what="the hanging stack to be deleted")
    assert_nothing_left(sim)


def test_listing_is_by_stack_tag_and_hides_creates_in_flight(sim, conn, make_backend):
    other = heat_backend(make_backend, scheduler_id="someone-else").provision("pipeline-o-1")
    # A create whose answer is slow: the stack exists before provision() returns.
    sim.cloud.faults.add(parse_rule("api_timeout:method=POST,path=/stacks$,seconds=1.5,phase=after"))
    backend = heat_backend(make_backend)
    result = {}
    thread = threading.Thread(target=lambda: result.update(info=backend.provision("pipeline-h-l")))
    thread.start()
    wait_for(lambda: len(stacks_left(sim)) == 2, what="our stack to exist")
    assert backend.list_instances() == []  # the pool cannot know it yet: not an untracked one
    thread.join()
    mine = result["info"]
    ours = backend.list_instances()
    assert [i.id for i in ours] == [mine.id] and ours[0].tagged and ours[0].extra["request"] == mine.extra["request"]
    everything = {i.id: i.tagged for i in backend.list_instances(include_untagged=True)}
    assert everything == {mine.id: True, other.id: False}
    for info in (mine, other):
        backend.destroy(info)
    assert_nothing_left(sim)


SITE_TEMPLATE = """
heat_template_version: 2018-08-31
parameters:
  image: {type: string}
  flavor: {type: string}
  network: {type: string}
  key_name: {type: string}
  server_name_prefix: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties: {network: {get_param: network}}
  vm:
    type: OS::Nova::Server
    properties:
      name: {str_replace: {template: PREFIX-vm, params: {PREFIX: {get_param: server_name_prefix}}}}
      image: {get_param: image}
      flavor: {get_param: flavor}
      key_name: {get_param: key_name}
      networks: [{port: {get_resource: port}}]
outputs:
  address: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  server_id: {value: {get_resource: vm}}
"""


def test_a_site_template_with_its_own_parameters(sim, tmp_path, make_backend):
    template = tmp_path / "site.yaml"
    template.write_text(SITE_TEMPLATE)
    backend = heat_backend(
        make_backend, heat_template_file=str(template), heat_parameters={"server_name_prefix": "lab"}
    )
    info = up(backend)
    server = sim.cloud.servers[info.extra["server_id"]]
    assert server.name == "lab-vm" and info.address == server.fixed_ip
    assert backend.executor(info).run("true").ok
    backend.destroy(info)
    assert_nothing_left(sim)


def test_a_site_template_may_hard_code_its_image_and_is_told_so(sim, tmp_path, make_backend, caplog):
    # Site templates written before the settings check named their image themselves: they still start.
    own = SITE_TEMPLATE.replace("  image: {type: string}\n", "").replace("{get_param: image}", "cirros-0.6.2")
    template = tmp_path / "site.yaml"
    template.write_text(own)
    with caplog.at_level("WARNING"):
        backend = heat_backend(make_backend, heat_template_file=str(template), **PREFIX)  # image_id ubuntu-22.04
    said = [r.getMessage() for r in caplog.records if "declares no parameter 'image'" in r.getMessage()]
    assert said and said[0].endswith("its stacks take the template's own, not pipelines.openstack.image_id"), said
    info = up(backend)
    image = sim.cloud.servers[info.extra["server_id"]].image_id
    assert image == next(i.id for i in sim.cloud.images.values() if i.name == "cirros-0.6.2")  # the template's
    backend.destroy(info)
    assert_nothing_left(sim)


PREFIX = {"heat_parameters": {"server_name_prefix": "x"}}


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        (None, {}, r"heat_template_file .*missing\.yaml: No such file or directory"),
        ("resources: [\n", {}, r"not valid YAML at line 2"),
        ("heat_template_version: 2018-08-31\nresources: {}\n", {}, "the template has no resources"),
        (SITE_TEMPLATE.replace("  address:", "  where:"), {"heat_parameters": {"server_name_prefix": "x"}}, "output 'address'"),
        (SITE_TEMPLATE, {"heat_parameters": {"server_name_prefix": "x", "colour": "red"}}, r"heat_parameters\.colour: not a parameter of"),
        (SITE_TEMPLATE, {}, r"parameter 'server_name_prefix' has no default; set pipelines\.openstack\.heat_parameters\.server_name_prefix"),
        (SITE_TEMPLATE, {"auth_keyname": None, "heat_parameters": {"server_name_prefix": "x"}}, r"'key_name' has no default.*auth_keyname"),
        # A configured value the template has no parameter for is refused, not silently dropped.
        (SITE_TEMPLATE, {"user_data": "#cloud-config\n", **PREFIX}, r"heat_template_file \S+missing\.yaml: declares no parameter 'user_data', so pipelines\.openstack\.user_data would be dropped: declare it in the template or unset that setting$"),
        (SITE_TEMPLATE, {"user_data_file": __file__, **PREFIX}, r"no parameter 'user_data', so pipelines\.openstack\.user_data_file would be dropped"),
        (SITE_TEMPLATE, {"use_floating_ip": True, "ip_pool": "public", "security_group": "default", **PREFIX}, r"no parameters 'floating_network', 'security_groups', so pipelines\.openstack\.ip_pool with use_floating_ip, pipelines\.openstack\.security_group would be dropped"),
        (SITE_TEMPLATE, {"use_floating_ip": True, "ip_pool": "public", **PREFIX}, r"or unset that setting \(pipelines\.openstack\.use_floating_ip: false\)$"),
    ],
)  # fmt: skip
def test_a_bad_template_or_parameter_is_a_clear_config_error(tmp_path, make_backend, text, overrides, message):
    template = tmp_path / "missing.yaml"
    if text is not None:
        template.write_text(text)
    with pytest.raises(BackendConfigError, match=message) as raised:
        heat_backend(make_backend, heat_template_file=str(template), **overrides)
    assert "\n" not in str(raised.value)  # the start error is one line


def test_the_bundled_template_needs_a_network(make_backend):
    with pytest.raises(BackendConfigError, match=r"'network' has no default.*pipelines\.openstack\.network_id"):
        heat_backend(make_backend, network_id=None)


def test_a_create_that_timed_out_but_happened_is_found_by_name_and_request_tag(sim, conn, make_backend):
    sim.cloud.faults.add(parse_rule("api_timeout:method=POST,path=/stacks$,seconds=2,phase=after"))
    backend = heat_backend(make_backend, api_timeout=1)
    info = up(backend, "pipeline-h-t")
    assert [s.id for s in conn.orchestration.stacks()] == [info.id]  # one stack, not a second attempt's
    backend.destroy(info)
    assert_nothing_left(sim)


# --- end to end: `serve` on the simulator as separate processes ---------------------------------


def sim_process(tmp_path, ssh_key, **options) -> SimProcess:
    return SimProcess(tmp_path / "sim", keypairs={KEYPAIR: ssh_key.with_suffix(".pub")}, delete_delay=0.05, **options)


def heat_config(tmp_path, sim, ssh_key, **overrides):
    overrides.setdefault("pipelines", {}).setdefault("openstack", {})["provisioning"] = "heat"
    return seed_config(tmp_path, sim, ssh_key, **overrides)


def sdk(sim: SimProcess):
    config = openstack.config.OpenStackConfig(config_files=[str(sim.clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud="sim"))


def make_stack(conn, name: str, tags: list[str]):
    """A stack made by somebody else (a crashed scheduler: tagged; a colleague: not) from the bundled template."""
    return conn.orchestration.create_stack(
        name=name,
        template=heat.bundled(OpenStackSettings()),
        parameters={
            "image": conn.image.find_image("ubuntu-22.04", ignore_missing=False).id,
            "flavor": conn.compute.find_flavor("m1.small", ignore_missing=False).id,
            "network": conn.network.find_network("private", ignore_missing=False).id,
        },
        tags=tags,
    )


def complete(conn, stack) -> bool:
    return conn.orchestration.get_stack(stack.id).status == "CREATE_COMPLETE"


def live_stacks(conn) -> dict[str, str]:
    return {s.name: s.id for s in conn.orchestration.stacks()}


@pytest.mark.slow
def test_pipelines_run_on_stacks_and_delete_instance_works_by_stack_tag(tmp_path, ssh_key, services):
    with sim_process(tmp_path, ssh_key, boot_delay=0.5) as sim:
        service = services(heat_config(tmp_path, sim, ssh_key, work=2.0), tmp_path / "service.log")
        ids = service.post_pipelines(["h1", "h2"])
        wait_for(lambda: len(markers(tmp_path, "started")) == 2, 60, what="both pipelines running")
        busy = [i for i in requests.get(f"{service.url}/instance", timeout=10).json()["content"] if i["pipeline"]]
        assert len(busy) == 2 and all(i["address"].startswith(f"127.{sim.info['address_block']}.2") for i in busy)
        jobs = {f"job-{i['pipeline']}-1" for i in busy}  # the stack's server names the job it runs
        wait_for(
            lambda: jobs <= {s["metadata"].get("scheduler_server_job") for s in sim.state()["servers"]},
            10,
            what=f"server metadata {jobs}",
        )
        conn = sdk(sim)
        running = set(live_stacks(conn).values())
        scheduler_id = scheduler_id_of(tmp_path)
        orphan = make_stack(conn, "leftover", [f"{TAG_KEY}={scheduler_id}"])
        foreign = make_stack(conn, "colleague", [])
        wait_for(lambda: all(complete(conn, s) for s in (orphan, foreign)), 15, what="the two stacks made")
        url = f"{service.url}/instance"
        dry = requests.delete(f"{url}?dry_run=true", timeout=30).json()["content"]
        assert {c["id"] for c in dry["candidates"]} == {orphan.id}
        assert requests.delete(url, timeout=30).json()["content"]["deleted"] == [orphan.id]
        wait_for(lambda: "leftover" not in live_stacks(conn), 15, what="the orphan stack to go")
        assert running | {foreign.id} == set(live_stacks(conn).values())
        views = service.wait_final(ids)
        assert {v["status"] for v in views.values()} == {"succeeded"}, views
        assert sorted(markers(tmp_path, "done")) == ["h1", "h2"]
        everything = requests.delete(f"{url}?all=true", timeout=30).json()["content"]
        assert foreign.id in everything["deleted"]
        wait_for(lambda: not live_stacks(conn), 30, what=f"no stack left, have {live_stacks(conn)}")
        wait_for(lambda: sim.leftovers() == {"servers": [], "floating_ips": []}, 30, what="an empty cloud")


def scheduler_id_of(tmp_path) -> str:
    with sqlite3.connect(tmp_path / "data" / "pipelines.sqlite") as db:
        return db.execute("SELECT value FROM meta WHERE key = 'scheduler_id'").fetchone()[0]


@pytest.mark.slow
def test_a_failed_stack_is_the_pipelines_reason_and_a_leaked_stack_is_reconciled(tmp_path, ssh_key, services):
    with sim_process(tmp_path, ssh_key, boot_delay=0.3, faults=["stack_error:count=1"]) as sim:
        config = heat_config(tmp_path, sim, ssh_key, MAX_ATTEMPTS=1, pipelines={"reconcile_interval": 1})
        service = services(config, tmp_path / "service.log")
        [pipeline] = service.post_pipelines(["f1"])
        view = service.wait_final([pipeline])[pipeline]
        assert view["status"] == "failed"
        assert "CREATE_FAILED: Resource CREATE failed: Simulated fault: stack_error" in view["reason"], view
        conn = sdk(sim)
        scheduler_id = scheduler_id_of(tmp_path)
        leaked = make_stack(conn, "pipeline-leaked-1", [f"{TAG_KEY}={scheduler_id}", "scheduler_server_request=x"])
        foreign = make_stack(conn, "colleague", [])
        wait_for(lambda: leaked.id not in live_stacks(conn).values(), 20, what="reconciliation to delete the leak")
        assert live_stacks(conn) == {"colleague": foreign.id}
        conn.orchestration.delete_stack(foreign.id)
        wait_for(lambda: sim.leftovers() == {"servers": [], "floating_ips": []}, 30, what="an empty cloud")


@pytest.mark.slow
def test_kill_9_while_stacks_are_created_then_restart_leaks_nothing(tmp_path, ssh_key, services):
    with sim_process(tmp_path, ssh_key, boot_delay=0.8) as sim:
        config = heat_config(tmp_path, sim, ssh_key, work=1.0)
        service = services(config, tmp_path / "service.log")
        ids = service.post_pipelines(["k1", "k2"])
        conn = sdk(sim)
        booting = lambda: [s for s in conn.orchestration.stacks() if s.status == "CREATE_IN_PROGRESS"]  # noqa: E731
        wait_for(booting, 30, interval=0.02, what="a stack being created")
        service.kill9()
        assert booting(), "stacks should be in progress at the moment of the crash"
        service = services(config, tmp_path / "service-2.log")
        views = service.wait_final(ids, timeout=90)
        assert {v["status"] for v in views.values()} == {"succeeded"}, views
        assert sorted(markers(tmp_path, "done")) == ["k1", "k2"]  # each ran once
        wait_for(lambda: not live_stacks(conn), 30, what=f"no stack left, have {live_stacks(conn)}")
        wait_for(lambda: sim.leftovers() == {"servers": [], "floating_ips": []}, 30, what="an empty cloud")
