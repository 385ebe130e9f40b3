"""The simulator's Heat API, driven by openstacksdk's orchestration proxy and by the standard `openstack stack` CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from openstack import exceptions as os_exceptions

from devtools.openstack_sim import FaultRule, parse_rule, stacks

from .conftest import KEYPAIR, assert_nothing_left, wait_for
from .test_simulator import ssh

OPENSTACK_CLI = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "openstack"

# One server on its own port with a security group and a floating IP: what a backend asks Heat for.
TEMPLATE = """
heat_template_version: 2018-08-31
description: a worker reachable over SSH
parameters:
  key_name: {type: string}
  flavor:
    type: string
    default: m1.small
    constraints: [{allowed_values: [m1.tiny, m1.small]}]
resources:
  group:
    type: OS::Neutron::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 0.0.0.0/0}]
  port:
    type: OS::Neutron::Port
    properties:
      network: private
      security_groups: [{get_resource: group}]
  server:
    type: OS::Nova::Server
    properties:
      name: {str_replace: {template: STACK-vm, params: {STACK: {get_param: "OS::stack_name"}}}}
      image: ubuntu-22.04
      flavor: {get_param: flavor}
      key_name: {get_param: key_name}
      networks: [{port: {get_resource: port}}]
      metadata: {role: worker}
      user_data_format: RAW
      user_data:
        str_replace: {template: "#!/bin/sh\\necho $who", params: {$who: heat}}
  address:
    type: OS::Neutron::FloatingIP
    properties:
      floating_network: public
      port_id: {get_resource: port}
outputs:
  floating_ip: {value: {get_attr: [address, floating_ip_address]}, description: reach it here}
  fixed_ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  first_address: {value: {get_attr: [server, first_address]}}
  label: {value: {list_join: ["-", [{get_attr: [server, name]}, {get_param: flavor}]]}}
"""

ONE_SERVER = """
heat_template_version: wallaby
parameters:
  key_name: {type: string}
resources:
  server:
    type: OS::Nova::Server
    properties: {image: cirros-0.6.2, flavor: m1.tiny, key_name: {get_param: key_name}, networks: [{network: private}]}
outputs:
  address: {value: {get_attr: [server, first_address]}}
"""


def wait_stack(conn, stack_id: str, status: str):
    stack = conn.orchestration.get_stack(stack_id)
    failures = [s for s in ("CREATE_FAILED", "CREATE_COMPLETE") if s != status]
    return conn.orchestration.wait_for_status(stack, status, failures=failures, interval=0.1, wait=30)


def outputs_of(stack) -> dict:
    return {o["output_key"]: o["output_value"] for o in stack.outputs}


def test_sdk_creates_a_stack_whose_outputs_reach_its_server_and_deletes_every_resource(sim, conn, ssh_key):
    created = conn.orchestration.create_stack(
        name="worker-1", template=TEMPLATE, parameters={"key_name": KEYPAIR}, tags=["pool", "a"], timeout_mins=5
    )
    assert conn.orchestration.get_stack(created.id).status == "CREATE_IN_PROGRESS"  # the server is still in BUILD
    stack = wait_stack(conn, created.id, "CREATE_COMPLETE")
    assert stack.status_reason == "Stack CREATE completed successfully" and stack.tags == ["pool", "a"]
    out = outputs_of(stack)
    with sim.cloud.lock:
        (server,) = sim.cloud.servers.values()
        (fip,) = sim.cloud.floating_ips.values()
    assert out["floating_ip"] == fip.floating_ip_address and fip.port_id == server.port_id
    assert out["fixed_ip"] == out["first_address"] == server.fixed_ip
    assert out["label"] == "worker-1-vm-m1.small" and server.name == "worker-1-vm"
    assert server.metadata == {"role": "worker"} and server.key_name == KEYPAIR
    group = next(r for r in conn.orchestration.resources(stack) if r.name == "group").physical_resource_id
    assert server.security_groups == [group] and group in sim.cloud.security_groups
    reply = ssh(ssh_key, out["floating_ip"], sim.config.ssh_port, "echo via-heat")
    assert reply.stdout.strip() == "via-heat", reply.stderr

    assert conn.orchestration.find_stack("worker-1").id == stack.id  # GET /stacks/worker-1 -> 302 -> canonical
    resources = {r.name: (r.status, r.resource_type) for r in conn.orchestration.resources(stack)}
    assert resources["port"] == ("CREATE_COMPLETE", "OS::Neutron::Port") and len(resources) == 4
    events = [(e.resource_name, e.resource_status) for e in conn.orchestration.stack_events(stack)][
        ::-1
    ]  # newest first
    assert events[0] == ("worker-1", "CREATE_IN_PROGRESS") and events[-1] == ("worker-1", "CREATE_COMPLETE")
    assert events.index(("server", "CREATE_COMPLETE")) < events.index(("address", "CREATE_IN_PROGRESS"))
    server_done = next(
        e
        for e in conn.orchestration.stack_events(stack, resource_name="server")
        if e.resource_status == "CREATE_COMPLETE"
    )
    shown = conn.orchestration.get(f"/stacks/worker-1/{stack.id}/resources/server/events/{server_done.id}").json()
    assert shown["event"]["physical_resource_id"] == server.id and shown["event"]["resource_name"] == "server"
    template = conn.orchestration.get_stack_template(stack)
    assert (template.description, template.heat_template_version) == ("a worker reachable over SSH", "2018-08-31")
    assert [s.name for s in conn.orchestration.stacks(tags=["pool"])] == ["worker-1"]
    assert list(conn.orchestration.stacks(name="other")) == []
    assert [s.name for s in conn.orchestration.stacks(status="COMPLETE", action="CREATE")] == ["worker-1"]
    assert list(conn.orchestration.stacks(status="FAILED")) == []

    conn.orchestration.delete_stack(stack)
    conn.orchestration.wait_for_delete(stack, interval=0.1, wait=30)
    assert_nothing_left(sim)
    assert group not in sim.cloud.security_groups and sim.cloud.ports == {}
    assert list(conn.orchestration.stacks()) == []
    assert conn.orchestration.find_stack("worker-1") is None


def cli_env(sim) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    for line in sim.openrc().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip('"')
    return env


def cli(sim, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(OPENSTACK_CLI), *args], env=cli_env(sim), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_openstack_cli_creates_lists_shows_and_deletes_a_stack(sim, tmp_path):
    template = tmp_path / "server.yaml"
    template.write_text(ONE_SERVER)
    created = cli(
        sim,
        "stack",
        "create",
        "-t",
        str(template),
        "--parameter",
        f"key_name={KEYPAIR}",
        "--wait",
        "--poll",
        "1",
        "cli1",
    )
    assert "CREATE_COMPLETE" in created.stdout
    listed = cli(sim, "stack", "list", "-f", "json")
    assert [(s["Stack Name"], s["Stack Status"]) for s in json.loads(listed.stdout)] == [("cli1", "CREATE_COMPLETE")]
    shown = json.loads(cli(sim, "stack", "show", "-f", "json", "cli1").stdout)
    (server,) = sim.cloud.servers.values()
    assert shown["outputs"] == [
        {"output_key": "address", "output_value": server.fixed_ip, "description": "No description given"}
    ]
    assert shown["parameters"]["key_name"] == KEYPAIR and server.status == "ACTIVE"
    cli(sim, "stack", "delete", "--yes", "--wait", "cli1")
    assert_nothing_left(sim)
    assert sim.stacks.find(shown["id"]).status == "DELETE_COMPLETE"  # still readable by id, as in Heat


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (
            lambda sim: sim.cloud.faults.add(FaultRule("server_error")),
            'Went to status ERROR due to "Message: No valid host',
        ),
        (
            lambda sim: setattr(sim.config, "max_servers", 0),
            "Forbidden: resources.server: Quota exceeded for instances",
        ),
        (lambda sim: sim.cloud.faults.add(FaultRule("stack_error", after=0.2)), "Simulated fault: stack_error"),
    ],
    ids=["server-error", "quota", "stack-fault"],
)
def test_a_failing_stack_says_why(sim, conn, setup, reason):
    setup(sim)
    created = conn.orchestration.create_stack(name="failing", template=ONE_SERVER, parameters={"key_name": KEYPAIR})
    stack = wait_stack(conn, created.id, "CREATE_FAILED")
    assert stack.status_reason.startswith("Resource CREATE failed: ") and reason in stack.status_reason
    conn.orchestration.delete_stack(stack)
    conn.orchestration.wait_for_delete(stack, interval=0.1, wait=30)
    assert_nothing_left(sim)


def test_rollback_removes_what_a_failed_create_made(sim, conn):
    sim.cloud.faults.add(FaultRule("server_error", after=0.5))
    created = conn.orchestration.create_stack(
        name="rolled", template=TEMPLATE, parameters={"key_name": KEYPAIR}, is_rollback_disabled=False
    )
    stack = conn.orchestration.wait_for_status(
        conn.orchestration.get_stack(created.id),
        "ROLLBACK_COMPLETE",
        failures=["CREATE_COMPLETE"],
        interval=0.1,
        wait=30,
    )
    statuses = {r.name: r.status for r in conn.orchestration.resources(stack)}
    assert statuses == dict.fromkeys(("group", "port", "server"), "DELETE_COMPLETE") | {"address": "INIT_COMPLETE"}
    assert_nothing_left(sim)
    conn.orchestration.delete_stack(stack)


def test_a_stack_past_its_timeout_fails_timed_out(sim, conn, monkeypatch):
    monkeypatch.setattr(stacks, "MINUTE", 0.5)  # timeout_mins=1 is half a second here
    sim.cloud.faults.add(FaultRule("server_stuck"))
    created = conn.orchestration.create_stack(
        name="slow", template=ONE_SERVER, parameters={"key_name": KEYPAIR}, timeout_mins=1
    )
    stack = wait_stack(conn, created.id, "CREATE_FAILED")
    assert stack.status_reason == "Timed out" and stack.timeout_mins == 1
    server = next(r for r in conn.orchestration.resources(stack) if r.name == "server")
    assert (server.status, server.status_reason) == ("CREATE_FAILED", "Timed out")
    assert [s.status for s in sim.cloud.servers.values()] == ["BUILD"]


def test_a_stuck_stack_stays_in_progress_until_deleted(sim, conn):
    sim.cloud.faults.add(parse_rule("stack_stuck"))  # as --fault stack_stuck gives it
    created = conn.orchestration.create_stack(name="stuck", template=ONE_SERVER, parameters={"key_name": KEYPAIR})
    with pytest.raises(os_exceptions.ResourceTimeout):
        conn.orchestration.wait_for_status(
            conn.orchestration.get_stack(created.id), "CREATE_COMPLETE", interval=0.1, wait=1
        )
    assert conn.orchestration.get_stack(created.id).status == "CREATE_IN_PROGRESS" and not sim.cloud.servers
    conn.orchestration.delete_stack(created)
    conn.orchestration.delete_stack(created)  # again while the first runs: 204, one deletion
    conn.orchestration.wait_for_delete(created, interval=0.1, wait=30)
    events = [(e.resource_name, e.resource_status) for e in conn.orchestration.stack_events(created)]
    assert events == [("stuck", "DELETE_COMPLETE"), ("stuck", "DELETE_IN_PROGRESS"), ("stuck", "CREATE_IN_PROGRESS")]


def refusal(conn, body: dict, status: int = 400) -> dict:
    response = conn.orchestration.post("/stacks", json=body)
    assert response.status_code == status, response.text
    return response.json()["error"]


UNMODELLED = [  # (resource, key, value), the message: one simulator for all
    (("server", "type", "OS::Cinder::Volume"), "not simulated: resource type OS::Cinder::Volume"),
    (("server", "properties", {"image": "cirros-0.6.2", "flavor": "m1.tiny", "config_drive": True}),
     "not simulated: property config_drive of OS::Nova::Server"),
    (("server", "properties", {"image": {"get_file": "x"}, "flavor": "m1.tiny"}), "not simulated: function get_file"),
    (("server", "properties", {"image": "cirros-0.6.2", "flavor": {"get_attr": ["nowhere", "x"]}}),
     'The specified reference "nowhere"'),
    (("server", "properties", {"image": "no-such-image", "flavor": "m1.tiny"}),
     "Property error: resources.server.properties.image: Error validating value 'no-such-image'"),
    (("server", "properties", {"image": "cirros-0.6.2", "flavor": "2", "networks": [{"network": "private", "fixed_ip": "127.0.0.9"}]}),
     "not simulated: resources.server.properties.networks item"),
    (("server", "properties", {"image": "cirros-0.6.2", "flavor": "2", "metadata": "role=worker"}),
     "Property error: resources.server.properties.metadata: Value must be a map"),
]  # fmt: skip


def test_what_the_simulator_does_not_model_is_refused_at_create(conn):
    for (resource, key, value), message in UNMODELLED:
        template = {"heat_template_version": "2021-04-16", "resources": {resource: {"type": "OS::Nova::Server"}}}
        template["resources"][resource][key] = value
        if key == "type":
            template["resources"][resource]["properties"] = {}
        error = refusal(conn, {"stack_name": "refused", "template": template})
        assert message in error["message"], (value, error)
    assert list(conn.orchestration.stacks()) == []


def test_parameters_names_and_queries_are_checked_as_heat_does(conn):
    missing = refusal(conn, {"stack_name": "p", "template": ONE_SERVER})
    assert (missing["message"], missing["type"]) == (
        "The Parameter (key_name) was not provided.",
        "UserParameterMissing",
    )
    bad_value = refusal(
        conn, {"stack_name": "p", "template": TEMPLATE, "parameters": {"key_name": "k", "flavor": "m1.huge"}}
    )
    assert "Parameter 'flavor' is invalid" in bad_value["message"]
    version = refusal(conn, {"stack_name": "p", "template": {"heat_template_version": "2099-01-01"}})
    assert version["message"].startswith("The template version is invalid")
    assert "Invalid stack name" in refusal(conn, {"stack_name": "1bad", "template": ONE_SERVER})["message"]
    assert (
        "not simulated: stack create field(s) template_url"
        in refusal(conn, {"stack_name": "p", "template_url": "x"})["message"]
    )
    attribute = yaml.safe_load(ONE_SERVER) | {"heat_template_version": "wallaby"}
    attribute["outputs"]["address"]["value"]["get_attr"][1] = "accessIPv4"
    refused = refusal(conn, {"stack_name": "p", "template": attribute, "parameters": {"key_name": KEYPAIR}})
    assert refused["message"].startswith("not simulated: attribute accessIPv4 of OS::Nova::Server")
    conn.orchestration.create_stack(name="twice", template=ONE_SERVER, parameters={"key_name": KEYPAIR})
    again = refusal(conn, {"stack_name": "twice", "template": ONE_SERVER, "parameters": {"key_name": KEYPAIR}}, 409)
    assert again["message"] == "The Stack (twice) already exists."
    listing = conn.orchestration.get("/stacks?flavour=x")
    assert listing.status_code == 400 and "not simulated: query parameter(s) flavour" in listing.text
    assert conn.orchestration.get("/stacks/nothing-here").status_code == 404
    bogus = conn.orchestration.get("/stacks/twice?bogus=1")  # refused before the redirect, not passed along
    assert bogus.status_code == 400 and "not simulated: query parameter(s) bogus" in bogus.text
    wait_for(lambda: conn.orchestration.find_stack("twice").status == "CREATE_COMPLETE", what="stack twice complete")


def server_with(**properties) -> dict:
    props = {"image": "cirros-0.6.2", "flavor": "m1.tiny"} | properties
    return {
        "heat_template_version": "2016-10-14",
        "resources": {"s": {"type": "OS::Nova::Server", "properties": props}},
    }


MALFORMED = [  # one simulator for all: each case costs a request, not a simulator
    ({"template": server_with(), "parameters": []}, "Invalid value for parameters"),
    ({"template": server_with(), "tags": 5}, "Invalid value for tags"),
    ({"template": server_with() | {"resources": []}}, '"resources" must be a map'),
    ({"template": server_with(flavor={"str_replace": 5})}, "Arguments to str_replace must be a map"),
    ({"template": server_with(flavor={"list_join": "x"})}, "Arguments to list_join must be a list"),
    ({"template": server_with(flavor={"get_param": []})}, "Arguments to get_param must be"),
    ({"template": server_with(networks="private")}, "resources.s.properties.networks: Value must be a list"),
    ({"template": server_with() | {"parameters": {"p": {"type": "string", "constraints": [{"allowed_pattern": "("}]}}},
      "parameters": {"p": "x"}}, "Parameter 'p': allowed_pattern is not a regular expression"),
    ({"template": server_with() | {"parameters": {"p": {"type": "number", "constraints": [{"range": {"min": "a"}}]}}},
      "parameters": {"p": "1"}}, "Parameter 'p': range min and max must be numbers"),
    ({"template": server_with(), "timeout_mins": "soon"}, "Invalid value for timeout_mins"),
]  # fmt: skip


def test_malformed_requests_are_400_naming_the_part(conn):
    for body, message in MALFORMED:
        error = refusal(conn, {"stack_name": "malformed"} | body)
        assert message in error["message"], (body, error)
