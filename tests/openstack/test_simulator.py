"""The simulator, driven by the real openstacksdk: it must behave as a cloud does, faults included."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import openstack
import openstack.config
import openstack.connection
import pytest
import requests
import yaml
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions

from devtools.openstack_sim import FaultRule, parse_rule

from .conftest import KEYPAIR, sdk_connection, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def boot(conn, name="vm", **extra):
    image = conn.image.find_image("ubuntu-22.04", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    net = conn.network.find_network("private", ignore_missing=False)
    return conn.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}], key_name=KEYPAIR, **extra
    )


def ssh(key: Path, address: str, port: int, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "BatchMode=yes",
            f"{_user()}@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_wrong_password_is_401_and_right_one_gets_a_catalog(sim):
    with pytest.raises(os_exceptions.SDKException, match="requires authentication.*401"):
        conn = openstack.connect(
            auth_url=sim.auth_url,
            username="demo",
            password="wrong",
            project_name="demo",
            user_domain_name="Default",
            project_domain_name="Default",
            load_yaml_config=False,
            load_envvars=False,
        )
        conn.authorize()
    conn = sdk_connection(sim)
    conn.authorize()
    catalog = conn.session.auth.get_access(conn.session).service_catalog
    assert {"compute", "network", "image", "identity"} <= set(catalog.get_endpoints())


def test_requests_without_a_token_are_refused(sim):
    response = requests.get(f"{sim.config.base_url}/compute/v2.1/servers", timeout=5)
    assert response.status_code == 401
    assert (
        requests.get(
            f"{sim.config.base_url}/compute/v2.1/servers", headers={"X-Auth-Token": "forged"}, timeout=5
        ).status_code
        == 401
    )


def test_names_and_ids_resolve_and_unknown_ones_do_not(conn):
    assert conn.compute.find_flavor("2", ignore_missing=False).name == "m1.small"
    assert conn.compute.find_flavor("m1.small", ignore_missing=False).id == "2"
    image = conn.image.find_image("cirros-0.6.2", ignore_missing=False)
    assert conn.image.find_image(image.id, ignore_missing=False).name == "cirros-0.6.2"
    assert conn.network.find_network("public", ignore_missing=False).is_router_external
    with pytest.raises(os_exceptions.NotFoundException):
        conn.image.find_image("windows-95", ignore_missing=False)


def test_server_boots_to_a_real_ssh_host_reachable_by_fixed_and_floating_ip(sim, conn, ssh_key):
    user_data = base64.b64encode(b"#cloud-config\nruncmd: [true]\n").decode()
    server = boot(conn, metadata={"owner": "test"}, user_data=user_data)
    assert conn.compute.get_server(server.id).status == "BUILD"
    server = conn.compute.wait_for_server(server, interval=0.05, wait=20)
    fixed = server.addresses["private"][0]["addr"]
    assert fixed.startswith(f"127.{sim.config.address_block}.")
    out = ssh(ssh_key, fixed, sim.config.ssh_port, "echo hello; echo $SSH_CONNECTION")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "hello" and fixed in out.stdout

    public = conn.network.find_network("public", ignore_missing=False)
    port = next(iter(conn.network.ports(device_id=server.id)))
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    assert fip.status == "ACTIVE" and fip.fixed_ip_address == fixed
    out = ssh(ssh_key, fip.floating_ip_address, sim.config.ssh_port, "echo via-fip")
    assert out.stdout.strip() == "via-fip", out.stderr
    addresses = conn.compute.get_server(server.id).addresses["private"]
    assert {a["OS-EXT-IPS:type"] for a in addresses} == {"fixed", "floating"}

    state = sim.app.test_client().get("/_sim/state").get_json()
    assert state["servers"][0]["user_data"].startswith("#cloud-config")
    assert conn.compute.fetch_server_metadata(server).metadata == {"owner": "test"}

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.05, wait=10)
    # Neutron disassociates the floating IP of a deleted server but keeps it allocated.
    fip = conn.network.get_ip(fip.id)
    assert fip.port_id is None and fip.status == "DOWN"
    assert ssh(ssh_key, fixed, sim.config.ssh_port, "true").returncode != 0


def test_deleting_a_server_kills_what_ran_on_it(sim, conn, ssh_key, tmp_path):
    server = conn.compute.wait_for_server(boot(conn), interval=0.05, wait=20)
    fixed = server.addresses["private"][0]["addr"]
    marker = tmp_path / "alive"
    # Detached with setsid+nohup, as a runner does so the job survives the SSH session.
    out = ssh(
        ssh_key,
        fixed,
        sim.config.ssh_port,
        f"setsid nohup sh -c 'while true; do date > {marker}; sleep 0.1; done' >/dev/null 2>&1 & echo started",
    )
    assert out.stdout.strip() == "started"
    wait_for(marker.exists, what="the background job")
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.05, wait=10)
    time.sleep(0.3)
    before = marker.read_text()
    time.sleep(0.4)
    assert marker.read_text() == before, "the job kept running after its server was deleted"


def test_metadata_calls(conn):
    server = boot(conn, metadata={"a": "1"})
    conn.compute.set_server_metadata(server, b="2")
    server = conn.compute.get_server(server.id)
    assert server.metadata == {"a": "1", "b": "2"}
    conn.compute.delete_server_metadata(server, ["a"])
    assert conn.compute.get_server(server.id).metadata == {"b": "2"}


def test_listing_paginates_and_filters_by_name(conn):
    for n in range(5):
        boot(conn, name=f"page-{n}")
    boot(conn, name="other")
    assert sorted(s.name for s in conn.compute.servers(details=True, limit=2)) == sorted(
        [f"page-{n}" for n in range(5)] + ["other"]
    )
    assert sorted(s.name for s in conn.compute.servers(name="^page-")) == [f"page-{n}" for n in range(5)]


def test_quota_exceeded_is_nova_403_with_its_message(sim, conn):
    sim.config.max_servers = 1
    boot(conn)
    with pytest.raises(os_exceptions.ForbiddenException, match="Quota exceeded for instances"):
        boot(conn, name="second")


def test_floating_ip_pool_runs_dry_with_neutron_409(sim, conn):
    sim.config.fip_pool_size = 1
    public = conn.network.find_network("public", ignore_missing=False)
    conn.network.create_ip(floating_network_id=public.id)
    with pytest.raises(os_exceptions.ConflictException, match="No more IP addresses available"):
        conn.network.create_ip(floating_network_id=public.id)


def test_floating_ip_update_is_compare_and_swap_on_revision(conn):
    public = conn.network.find_network("public", ignore_missing=False)
    fip = conn.network.create_ip(floating_network_id=public.id)
    conn.network.update_ip(fip.id, description="first", if_revision=fip.revision_number)
    with pytest.raises(os_exceptions.PreconditionFailedException, match="current revision is 1"):
        conn.network.update_ip(fip.id, description="stale", if_revision=fip.revision_number)
    assert conn.network.get_ip(fip.id).description == "first"


def test_one_port_takes_one_floating_ip(conn):
    server = boot(conn)
    public = conn.network.find_network("public", ignore_missing=False)
    port = next(iter(conn.network.ports(device_id=server.id)))
    conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    with pytest.raises(os_exceptions.ConflictException, match="already has a floating IP"):
        conn.network.create_ip(floating_network_id=public.id, port_id=port.id)


@pytest.mark.parametrize("fate,status", [("server_error", "ERROR"), ("server_stuck", "BUILD")])
def test_server_fates(sim, conn, fate, status):
    sim.cloud.faults.add(FaultRule(kind=fate))
    bad = boot(conn, name="bad")
    good = boot(conn, name="good")
    conn.compute.wait_for_server(good, interval=0.05, wait=20)
    time.sleep(0.2)
    bad = conn.compute.get_server(bad.id)
    assert bad.status == status
    if status == "ERROR":
        assert "No valid host" in bad.fault["message"]
        with pytest.raises(os_exceptions.ResourceFailure):
            conn.compute.wait_for_server(bad, interval=0.05, wait=5)


def test_server_vanishes_after_turning_active(sim, conn):
    sim.cloud.faults.add(parse_rule("server_vanish:after=0.3"))
    server = conn.compute.wait_for_server(boot(conn), interval=0.05, wait=20)
    assert server.status == "ACTIVE"
    wait_for(lambda: conn.compute.find_server(server.id, ignore_missing=True) is None, what="the server to vanish")


def test_api_errors_and_timeouts_hit_only_matching_requests(sim):
    sim.cloud.faults.add(parse_rule("api_error:method=GET,path=/flavors,status=503,count=1"))
    sim.cloud.faults.add(parse_rule("api_timeout:path=/os-keypairs,seconds=2,count=1"))
    conn = sdk_connection(sim, api_timeout=0.5)
    with pytest.raises(os_exceptions.HttpException, match="503") as caught:
        conn.compute.find_flavor("1", ignore_missing=False)
    assert caught.value.status_code == 503
    assert conn.compute.find_flavor("1", ignore_missing=False).name == "m1.tiny"  # count=1: used up
    with pytest.raises(ks_exceptions.ConnectTimeout):
        list(conn.compute.keypairs())
    assert [k.name for k in conn.compute.keypairs()] == [KEYPAIR]
    # The timed-out request is served (and logged) once its 2 s are over, as a slow cloud would.
    faults = wait_for(
        lambda: len([r for r in sim.request_log if r["fault"]]) == 2 and [r for r in sim.request_log if r["fault"]], 5
    )
    assert [(r["path"], r["fault"]) for r in faults] == [
        ("/compute/v2.1/flavors/1", "api_error"),
        ("/compute/v2.1/os-keypairs", "api_timeout"),
    ]


def test_bad_fault_specs_are_rejected_with_the_field_named(sim):
    with pytest.raises(ValueError, match="kind"):
        parse_rule("meteor_strike")
    with pytest.raises(ValueError, match="status"):
        parse_rule("api_error:status=200")
    client = sim.app.test_client()
    response = client.post("/_sim/faults", json={"kind": "api_error", "colour": "red"})
    assert response.status_code == 400 and "colour" in response.get_json()["error"]
    assert client.patch("/_sim/config", json={"boot_delay": "soon"}).status_code == 400


def test_command_line_starts_a_simulator_and_writes_clouds_yaml(tmp_path, ssh_key):
    clouds = tmp_path / "clouds.yaml"
    openrc = tmp_path / "openrc.sh"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.openstack_sim",
            "--boot-delay",
            "0.1",
            "--keypair",
            f"{KEYPAIR}={ssh_key}.pub",
            "--fault",
            "server_error:count=1",
            "--clouds-yaml",
            str(clouds),
            "--openrc",
            str(openrc),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        auth = yaml.safe_load(clouds.read_text())["clouds"]["sim"]["auth"]
        assert auth["auth_url"] == info["auth_url"]
        assert f"export OS_AUTH_URL={info['auth_url']}" in openrc.read_text()
        config = openstack.config.OpenStackConfig(config_files=[str(clouds)], load_envvars=False)
        conn = openstack.connection.Connection(config=config.get_one(cloud="sim"))
        assert [k.name for k in conn.compute.keypairs()] == [KEYPAIR]
        server = boot(conn)
        with pytest.raises(os_exceptions.ResourceFailure):  # --fault server_error:count=1
            conn.compute.wait_for_server(server, interval=0.05, wait=10)
        assert conn.compute.wait_for_server(boot(conn, name="second"), interval=0.05, wait=10).status == "ACTIVE"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
