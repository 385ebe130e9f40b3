"""End to end: `scheduler-server serve` (its own process) on the simulator (its own process).

Pipelines run the seed's argument contract on simulated servers that are real
SSH hosts; the seed's curl examples drive it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import openstack.config
import openstack.connection
import pytest
import requests

from devtools.openstack_sim.process import SimProcess
from scheduler_server.pipelines.clouds.backend import TAG_KEY

from .conftest import wait_for
from .harness import KEYPAIR, markers, seed_config

pytestmark = pytest.mark.slow


@pytest.fixture
def sim_proc(tmp_path, ssh_key):
    sim = SimProcess(
        tmp_path / "sim", keypairs={KEYPAIR: ssh_key.with_suffix(".pub")}, boot_delay=0.5, delete_delay=0.05
    )
    with sim:
        yield sim


def curl(*args: str) -> str:
    result = subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sdk(sim: SimProcess):
    config = openstack.config.OpenStackConfig(config_files=[str(sim.clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud="sim"))


def test_seed_curl_examples_run_pipelines_on_simulated_vms(tmp_path, sim_proc, ssh_key, services):
    assert shutil.which("curl"), "curl is needed for this test"
    service = services(seed_config(tmp_path, sim_proc, ssh_key, work=2.0), tmp_path / "service.log")
    server = f"127.0.0.1:{service.port}"
    first, more = _submit_the_seeds_examples(server)
    block = _busy_instances_show_servers(server, sim_proc)
    _cleanup_spares_what_runs(server, sim_proc)

    views = service.wait_final([first["content"]["id"], *[r["id"] for r in more["content"]]])
    assert {v["status"] for v in views.values()} == {"succeeded"}, views
    assert sorted(markers(tmp_path, "done")) == ["ncrc_S01323", "ncrc_S1", "ncrc_S2"]
    for line in markers(tmp_path, "started"):  # ran over SSH on a server's own address
        assert line.split()[3].startswith(block)
    wait_for(
        lambda: sim_proc.leftovers() == {"servers": [], "floating_ips": []}, 20, what="no server or floating IP left"
    )


def _submit_the_seeds_examples(server: str):
    """The seed's curl examples: one request, then a list of two; the list hides every password."""
    one = '{"project":"test","subject":"XNAT_S00013","session":"ncrc_S01323","host":"http://xnat/xnat/","user":"admin","pwd":"admin","script":"qmroct.sh"}'
    two = "[" + one.replace("S01323", "S1") + "," + one.replace("S01323", "S2") + "]"
    first = json.loads(curl("-X", "POST", "-H", "Content-Type: application/json", "-d", one, f"{server}/pipeline"))
    assert first["request"] == "success" and first["content"]["status"] == "queued"
    more = json.loads(curl("-X", "POST", "-H", "Content-Type: application/json", "-d", two, f"{server}/pipeline"))
    assert [r["request"] for r in more["content"]] == ["success", "success"]
    listed = json.loads(curl(f"{server}/pipeline"))["content"]
    assert {p["session"] for p in listed} == {"ncrc_S01323", "ncrc_S1", "ncrc_S2"} and all(
        p["pwd"] != "admin" for p in listed
    )

    return first, more


def _busy_instances_show_servers(server: str, sim_proc) -> str:
    """While they run, /instance shows simulated servers with their floating IPs (in the returned block)."""
    block = f"127.{sim_proc.info['address_block']}."
    busy = wait_for(
        lambda: [i for i in json.loads(curl(f"{server}/instance"))["content"] if i["state"] == "busy"],
        30,
        what="a busy instance",
    )
    assert busy[0]["address"].startswith(block) and busy[0]["backend"] == "openstack"
    # The server's metadata names the job it runs: job-<pipeline>-<attempt>.
    job = f"job-{busy[0]['pipeline']}-1"
    wait_for(
        lambda: any(
            s["id"] == busy[0]["backend_id"] and s["metadata"].get("scheduler_server_job") == job
            for s in sim_proc.state()["servers"]
        ),
        10,
        what=f"metadata {job}",
    )

    return block


def _cleanup_spares_what_runs(server: str, sim_proc) -> None:
    """DELETE /instance removes an untracked server of ours (a crash leftover), never a running one;
    ?all=true removes somebody else's server too."""
    conn = sdk(sim_proc)
    scheduler_id = next(s["metadata"][TAG_KEY] for s in sim_proc.state()["servers"] if TAG_KEY in s["metadata"])
    image = conn.image.find_image("ubuntu-22.04", ignore_missing=False)
    orphan = conn.compute.create_server(
        name="leftover", image_id=image.id, flavor_id="1", networks="auto", metadata={TAG_KEY: scheduler_id}
    )
    foreign = conn.compute.create_server(name="colleague", image_id=image.id, flavor_id="1", networks="auto")
    running = {i["backend_id"] for i in json.loads(curl(f"{server}/instance"))["content"] if i["pipeline"] is not None}
    dry = requests.delete(f"http://{server}/instance?dry_run=true", timeout=30).json()["content"]
    candidates = {c["id"] for c in dry["candidates"]}
    assert orphan.id in candidates and foreign.id not in candidates and not candidates & running
    assert dry["deleted"] == []
    deleted = json.loads(curl("-X", "DELETE", f"{server}/instance"))["content"]
    assert orphan.id in deleted["deleted"] and not set(deleted["deleted"]) & running
    wait_for(
        lambda: orphan.id not in {s["id"] for s in sim_proc.state()["servers"]}, what="the orphan to go"
    )  # Nova deletes asynchronously
    ids = {s["id"] for s in sim_proc.state()["servers"]}
    assert foreign.id in ids and running <= ids
    everything = requests.delete(f"http://{server}/instance?all=true", timeout=30).json()["content"]
    assert foreign.id in everything["deleted"]


FAULTS = {
    # name: (sim faults, sim options, config overrides, expected status, reason fragment in the history)
    "server-error": (["server_error:count=1"], {}, {}, "succeeded", "went to ERROR: No valid host was found"),
    "stuck-in-build": (
        ["server_stuck:count=1"],
        {},
        {"pipelines": {"openstack": {"boot_timeout": 3}}},
        "succeeded",
        "still BUILD after",
    ),
    "api-5xx": (["api_error:method=POST,path=/servers$,status=500,count=3"], {}, {}, "succeeded", None),
    "api-timeout": (
        ["api_timeout:method=GET,path=/servers/detail$,seconds=3,count=2"],
        {},
        {"pipelines": {"openstack": {"api_timeout": 1}}},
        "succeeded",
        None,
    ),
    "quota-exceeded": ([], {"max_servers": 0}, {"MAX_ATTEMPTS": 2}, "failed", "Quota exceeded for instances"),
    "server-vanishes": (["server_vanish:after=1.2,count=1"], {}, {}, "succeeded", "no longer exists"),
    "fip-pool-dry": ([], {"fip_pool_size": 0}, {"MAX_ATTEMPTS": 2}, "failed", "No more IP addresses available"),
    "fip-pool-of-one": (
        [],
        {"fip_pool_size": 1},
        {"pipelines": {"retry_backoff": 2}},
        "succeeded",
        "No more IP addresses available",
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_ends_every_pipeline_with_a_reason_and_leaks_nothing(tmp_path, ssh_key, services, name):
    faults, options, overrides, expected, reason = FAULTS[name]
    sim = SimProcess(
        tmp_path / "sim",
        keypairs={KEYPAIR: ssh_key.with_suffix(".pub")},
        faults=faults,
        boot_delay=0.5,
        delete_delay=0.05,
        **options,
    )
    with sim:
        service = services(seed_config(tmp_path, sim, ssh_key, work=2.0, **overrides), tmp_path / "service.log")
        ids = service.post_pipelines(["s1", "s2"])
        views = service.wait_final(ids, timeout=120)
        assert {v["status"] for v in views.values()} == {expected}, {
            i: (v["status"], v["reason"]) for i, v in views.items()
        }
        for view in views.values():
            assert view["reason"], view
        if reason:
            history = " | ".join(t["reason"] or "" for v in views.values() for t in v["history"])
            assert reason in history, history
        if expected == "succeeded":
            assert sorted(markers(tmp_path, "done")) == ["s1", "s2"]
        fired = requests.get(f"{sim.base_url}/_sim/faults", timeout=5).json()["faults"]
        assert all(rule["fired"] >= 1 for rule in fired), fired  # each injected fault did happen
        wait_for(
            lambda: sim.leftovers() == {"servers": [], "floating_ips": []},
            30,
            what=f"an empty cloud, have {sim.leftovers()}",
        )


def test_kill_9_while_booting_and_running_then_restart(tmp_path, sim_proc, ssh_key, services):
    sim_proc.configure(boot_delay=1.0)
    config = seed_config(tmp_path, sim_proc, ssh_key, work=2.0)
    service = services(config, tmp_path / "service.log")
    sessions = [f"c{n}" for n in range(6)]
    ids = service.post_pipelines(sessions)
    # Wait for the moment with a script running and another server still booting.
    wait_for(
        lambda: markers(tmp_path, "started") and any(s["status"] == "BUILD" for s in sim_proc.state()["servers"]),
        60,
        interval=0.02,
        what="a running pipeline while a server boots",
    )
    service.kill9()
    before = sim_proc.state()["servers"]
    assert before, "servers should exist at the moment of the crash"
    time.sleep(0.5)
    service = services(config, tmp_path / "service-2.log")
    views = service.wait_final(ids, timeout=150)
    assert {v["status"] for v in views.values()} == {"succeeded"}, {
        i: (v["status"], v["reason"]) for i, v in views.items()
    }
    done = markers(tmp_path, "done")
    assert sorted(done) == sorted(sessions), done  # each script completed exactly once
    for view in views.values():  # and each pipeline ended exactly once
        assert [t["to"] for t in view["history"]].count("succeeded") == 1, view["history"]
        assert not {"failed", "cancelled"} & {t["to"] for t in view["history"]}
    wait_for(
        lambda: sim_proc.leftovers() == {"servers": [], "floating_ips": []},
        30,
        what=f"no orphan, have {sim_proc.leftovers()}",
    )


def test_periodic_reconciliation_deletes_our_untracked_servers_in_any_state(tmp_path, sim_proc, ssh_key, services):
    config = seed_config(tmp_path, sim_proc, ssh_key, work=4.0, pipelines={"reconcile_interval": 1})
    service = services(config, tmp_path / "service.log")
    ids = service.post_pipelines(["r1", "r2"])
    wait_for(lambda: markers(tmp_path, "started"), 30, what="a running pipeline")
    scheduler_id = next(s["metadata"][TAG_KEY] for s in sim_proc.state()["servers"] if TAG_KEY in s["metadata"])
    conn = sdk(sim_proc)
    image = conn.image.find_image("ubuntu-22.04", ignore_missing=False)
    sim_proc.add_fault(kind="server_stuck")
    stuck = conn.compute.create_server(
        name="lost-1", image_id=image.id, flavor_id="1", networks="auto", metadata={TAG_KEY: scheduler_id}
    )
    sim_proc.add_fault(kind="server_error")
    errored = conn.compute.create_server(
        name="lost-2", image_id=image.id, flavor_id="1", networks="auto", metadata={TAG_KEY: scheduler_id}
    )
    foreign = conn.compute.create_server(name="not-ours", image_id=image.id, flavor_id="1", networks="auto")
    orphans = {stuck.id, errored.id}
    wait_for(lambda: not orphans & {s["id"] for s in sim_proc.state()["servers"]}, 15, what="the sweep")
    views = service.wait_final(ids)
    assert {v["status"] for v in views.values()} == {"succeeded"}, views
    wait_for(
        lambda: [s["id"] for s in sim_proc.state()["servers"]] == [foreign.id], 20, what="only the foreign server left"
    )
