"""What the simulator used to accept silently is refused (or answered) as the real service does:
Neutron sorting, Heat's query checks, property types at stack create, quota details."""

from __future__ import annotations

import json

from tests.openstack.test_sim_fidelity import Api
from tests.openstack.test_sim_heat import ONE_SERVER, cli, server_with, wait_stack

from .conftest import KEYPAIR

SG_RULE = {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}


def heat_refusal(conn, template: dict) -> tuple[int, str]:
    response = conn.orchestration.post("/stacks", json={"stack_name": "refused", "template": template})
    return response.status_code, response.json()["error"]["message"]


def test_neutron_sorting_is_checked(sim):
    api = Api(sim)
    ok = api.call("GET", "/network/v2.0/networks", params={"sort_key": "name", "sort_dir": "desc"})
    assert ok.status_code == 200 and [n["name"] for n in ok.json()["networks"]] == ["public", "private"]
    for params, message in [
        ({"sort_key": "colour"}, "colour is an invalid attribute for sort_keys"),
        ({"sort_key": "name", "sort_dir": "up"}, "up is an invalid value for sort_dirs"),
        ({"sort_key": ["name", "id"], "sort_dir": "asc"}, "The number of sort_keys and sort_dirs must be same"),
    ]:
        answer = api.call("GET", "/network/v2.0/networks", params=params)
        assert answer.status_code == 400 and message in answer.text, (params, answer.text)


def test_heat_checks_queries_and_sub_paths_as_heat_does(sim, conn):
    stack = conn.orchestration.create_stack(name="q", template=ONE_SERVER, parameters={"key_name": KEYPAIR})
    wait_stack(conn, stack.id, "CREATE_COMPLETE")
    base = f"/stacks/q/{stack.id}"
    for path, status, text in [
        (f"{base}/resources?with_detail=maybe", 400, 'Unrecognized value "maybe" for "with_detail"'),
        ("/stacks?global_tenant=true", 403, "not authorized to use global_index"),
        ("/stacks?global_tenant=perhaps", 400, 'Unrecognized value "perhaps" for "global_tenant"'),
        ("/stacks/q/outputs", 404, "The Stack (outputs) could not be found"),  # not a lookup sub-path in Heat
    ]:
        answer = conn.orchestration.get(path)
        assert answer.status_code == status and text in answer.json()["error"]["message"], (path, answer.text)
    assert conn.orchestration.get("/stacks?global_tenant=false").status_code == 200
    environment = conn.orchestration.get("/stacks/q/environment").json()  # by name: redirected
    assert environment["parameters"] == {"key_name": KEYPAIR} and environment["resource_registry"] == {"resources": {}}
    assert conn.orchestration.get(f"{base}/files").json() == {}
    refused = conn.orchestration.delete(f"{base}?force=1")
    assert (
        refused.status_code == 400 and "not simulated: query parameter(s) force" in refused.json()["error"]["message"]
    )
    assert conn.orchestration.get(base).json()["stack"]["stack_status"] == "CREATE_COMPLETE"  # not deleted
    assert conn.orchestration.delete(base).status_code == 204


def test_property_types_are_checked_at_create(sim, conn):
    port_from_attr = {
        "heat_template_version": "2018-08-31",
        "resources": {
            "port": {"type": "OS::Neutron::Port", "properties": {"network": "private"}},
            "fip": {
                "type": "OS::Neutron::FloatingIP",
                "properties": {"floating_network": "public", "port_id": {"get_attr": ["port", "device_id"]}},
            },
        },
    }
    group = {
        "type": "OS::Neutron::SecurityGroup",
        "properties": {"rules": [SG_RULE | {"remote_ip_prefix": "300.0.0.0/8"}]},
    }
    for template, message in [
        (server_with(flavor="nope"), "The Flavor ID (nope) could not be found"),
        (server_with(flavor=99), "The Flavor ID (99) could not be found"),  # a number is a string to Heat
        (server_with(image=["cirros-0.6.2"]), "properties.image: Value must be a string; got ['cirros-0.6.2']"),
        (server_with(user_data={"runcmd": []}), "properties.user_data: Value must be a string"),
        (port_from_attr, "not simulated: resources.fip.properties.port_id from get_attr"),
        (server_with() | {"resources": {"g": group}}, "Error validating value '300.0.0.0/8': Invalid net cidr"),
    ]:
        status, text = heat_refusal(conn, template)
        assert status == 400 and message in text, (template, text)
    assert list(conn.orchestration.stacks()) == [] and not sim.cloud.servers


def test_quota_show_with_usage(sim):
    result = cli(sim, "quota", "show", "--usage", "-f", "json")
    shown = {row["Resource"]: row for row in json.loads(result.stdout)}
    assert shown["floating_ips"]["In Use"] == 0 and shown["networks"]["In Use"] == 2, shown
    api = Api(sim)
    quotas = f"/network/v2.0/quotas/{sim.cloud.project_id}"
    detail = api.call("GET", f"{quotas}/details")
    with_suffix = api.call("GET", f"{quotas}/details.json")  # as older clients ask for it
    assert detail.status_code == with_suffix.status_code == 200 and detail.json() == with_suffix.json()
