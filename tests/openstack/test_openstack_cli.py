"""python-openstackclient's own commands against the simulator (each costs a second or two: few of them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from devtools.openstack_sim.model import PRIVATE_NET_ID

OPENSTACK = Path(sys.executable).with_name("openstack")
IMAGE = "0b1f5a4e-7c9d-4a2b-8e6f-5d3c2b1a0f9e"  # cirros-0.6.2


def _run(clouds_yaml: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "OS_CLOUD": "sim"}
    env = {k: v for k, v in env.items() if not k.startswith("OS_") or k in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")}
    done = subprocess.run([str(OPENSTACK), *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert done.returncode == 0, f"openstack {' '.join(args)}: {done.stderr}"
    return done


def _json(clouds_yaml: Path, *args: str):
    return json.loads(_run(clouds_yaml, *args, "-f", "json").stdout)


def test_openstack_cli_gets_right_answers_or_clear_refusals(sim, conn, clouds_yaml):
    """Nine commands: create --min/--max --wait, list filters, set --name, flavor/quota show, floating IPs, versions."""
    sim.cloud.flavors["1"].extra_specs["hw:cpu_policy"] = "shared"
    sim.config.max_servers, sim.config.fip_pool_size = 9, 6
    conn.compute.create_server(name="other", image_id=IMAGE, flavor_id="2", networks=[{"uuid": PRIVATE_NET_ID}])
    made = _json(
        clouds_yaml,
        "server",
        "create",
        *("--image", "cirros-0.6.2", "--flavor", "m1.tiny"),
        *("--min", "2"),
        *("--max", "2", "--wait", "cli"),
    )
    assert (made["name"], made["status"]) == ("cli-1", "ACTIVE")
    servers = {s.name: s for s in sim.cloud.servers.values()}
    assert set(servers) == {"other", "cli-1", "cli-2"} and servers["cli-2"].network_id == PRIVATE_NET_ID

    tiny = _json(clouds_yaml, "server", "list", "--flavor", "m1.tiny")
    assert sorted(s["Name"] for s in tiny) == ["cli-1", "cli-2"]
    by_ip = _json(clouds_yaml, "server", "list", "--ip", re.escape(servers["cli-2"].fixed_ip) + "$")
    assert [s["Name"] for s in by_ip] == ["cli-2"]
    _run(clouds_yaml, "server", "set", "--name", "renamed", "cli-1")
    assert servers["cli-1"].name == "renamed"

    flavor = _json(clouds_yaml, "flavor", "show", "m1.tiny")
    assert flavor["properties"] == {"hw:cpu_policy": "shared"} and flavor["vcpus"] == 1
    quota = {row["Resource"]: row["Limit"] for row in _json(clouds_yaml, "quota", "show")}
    assert (quota["instances"], quota["floating_ips"], quota["cores"]) == (9, 6, -1)

    wanted = sim.config.floating_ip(4)
    fip = _json(clouds_yaml, "floating", "ip", "create", "--floating-ip-address", wanted, "public")
    assert fip["floating_ip_address"] == wanted
    again = _run(clouds_yaml, "floating", "ip", "create", "--floating-ip-address", wanted, "public", ok=False)
    assert again.returncode != 0 and f"IP address {wanted} already allocated" in again.stderr

    future = _run(clouds_yaml, "--os-compute-api-version", "2.99", "server", "list", ok=False)
    assert future.returncode != 0 and "a minimum of 2.1 and a maximum of 2.37" in future.stderr
