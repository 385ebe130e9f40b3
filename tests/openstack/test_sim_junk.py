"""Malformed bodies never make the simulator answer 500: every POST/PUT/PATCH route (walked from the
app's url_map) gets junk bodies, on made-up ids and on real ones (a server, a floating IP, a stack)."""

from __future__ import annotations

import json
import re

from devtools.openstack_sim import api_heat, heat_views, strict
from devtools.openstack_sim.model import PUBLIC_NET_ID
from tests.openstack.conftest import wait_for
from tests.openstack.test_sim_fidelity import IMAGE, Api
from tests.openstack.test_sim_heat import server_with

JUNK = [[], "text", 7, True, [{"a": 1}], {"x": []}, b"null", b"{not json", b"[" * 5000 + b"]" * 5000]
VALUES = [[], "text", -1, 10**30, float("inf"), 1.5, None, {"a": []}, [[[]]], "a" * 300]


def bodies(spec) -> list:
    """Junk at the top, then each declared field (and each declared sub-field) given each junk value."""
    out = list(JUNK)
    body = spec.body if spec else {}
    for key, sub in body.items():
        out += [{key: value} for value in VALUES]
        if isinstance(sub, dict | set | frozenset):
            out += [{key: {name: value}} for name in sub for value in VALUES]
    return out


def walk(sim, api, ids: dict) -> tuple[int, list]:
    probed, broken = 0, []
    for rule in sim.app.url_map.iter_rules():
        methods = sorted(rule.methods & {"POST", "PUT", "PATCH"})
        if not methods or rule.rule.startswith("/identity"):
            continue
        path = re.sub(r"<([^>]+)>", lambda m, e=rule.endpoint: ids.get((e, m.group(1)), "x"), rule.rule)
        for method in methods:
            for body in bodies(strict.spec_of(sim.app.view_functions[rule.endpoint])):
                junk = body in JUNK  # must be refused; the rest must only not be a 500
                data = body if isinstance(body, bytes) else json.dumps(body).encode()  # inf as Infinity
                answer = api.call(method, path, data=data, headers={"Content-Type": "application/json"})
                probed += 1
                if answer.status_code >= 500 or (junk and not 400 <= answer.status_code < 500):
                    broken.append((method, path, body, answer.status_code, answer.text[:200]))
    return probed, broken


def test_server_counts_are_nova_integers(sim):
    api = Api(sim)
    for raw in (b"1e999", b"1.5", b"-1", b"true", b'"1e3"', b'" 2"'):
        body = b'{"server": {"name": "n", "imageRef": "%s", "flavorRef": "1", "max_count": %s}}' % (IMAGE.encode(), raw)
        answer = api.call("POST", "/compute/v2.1/servers", data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and "max_count" in answer.text, (raw, answer.text)
    assert api.boot(max_count="2", min_count=2).status_code == 202 and len(sim.cloud.servers) == 2


def test_junk_bodies_are_4xx_never_500(sim):
    api = Api(sim)
    server = api.boot().json()["server"]["id"]
    wait_for(lambda: sim.cloud.servers[server].status == "ACTIVE", what="the server")
    fip = api.call("POST", "/network/v2.0/floatingips", json={"floatingip": {"floating_network_id": PUBLIC_NET_ID}})
    ids = {(endpoint, "server_id"): server for endpoint in ("nova.update_server", "nova.server_action")}
    ids |= {("nova.set_metadata", "server_id"): server, ("nova.set_metadata_item", "server_id"): server}
    ids |= {("nova.set_metadata_item", "key"): "k", ("neutron.update_fip", "fip_id"): fip.json()["floatingip"]["id"]}
    ids |= {(e, "tenant"): sim.cloud.project_id for e in ("heat.create_stack", "heat.lookup", "heat.stack")}
    probed, broken = walk(sim, api, ids)
    assert probed > 200
    assert broken == []


GROUP_ONLY = {
    "heat_template_version": "2018-08-31",
    "resources": {"g": {"type": "OS::Neutron::SecurityGroup", "properties": {"rules": []}}},
}


def test_deleted_stacks_beyond_a_bound_are_forgotten(sim, conn, monkeypatch):
    monkeypatch.setattr(api_heat, "KEEP_DELETED", 2)
    made = []
    for n in range(4):
        stack = conn.orchestration.create_stack(name=f"gone-{n}", template=GROUP_ONLY)
        conn.orchestration.wait_for_status(stack, "CREATE_COMPLETE", interval=0.05, wait=10)
        conn.orchestration.delete_stack(stack)
        conn.orchestration.wait_for_delete(stack, interval=0.05, wait=10)
        made.append(stack.id)
    conn.orchestration.create_stack(name="kept", template=GROUP_ONLY)
    known = set(sim.stacks.stacks)
    assert not known & set(made[:2]) and set(made[2:]) <= known and len(known) == 3
    assert conn.orchestration.get(f"/stacks/{made[0]}").status_code == 404


BAD_VALUES = ["", "x", "-1", "1e999", "true,false", "a" * 300, "\u00e9", "%", "0"]


def test_per_stack_heat_routes_with_bad_values_of_their_parameters_are_never_500(sim, conn):
    stack = conn.orchestration.create_stack(name="probed", template=GROUP_ONLY)
    conn.orchestration.wait_for_status(stack, "CREATE_COMPLETE", interval=0.05, wait=10)
    event = next(iter(conn.orchestration.stack_events(stack, resource_name="g")))
    base = f"/stacks/probed/{stack.id}"
    known = sorted(api_heat.LIST_KEYS | heat_views.EVENT_KEYS | heat_views.RESOURCE_KEYS | {"resolve_outputs"})
    paths = ["/stacks", "/stacks/probed", base, f"{base}/resources", f"{base}/resources/g", f"{base}/events"]
    paths += [f"{base}/resources/g/events", f"{base}/resources/g/events/{event.id}", f"{base}/template"]
    paths += [f"{base}/outputs", f"{base}/environment", f"{base}/files", "/stacks/probed/resources"]
    client, token = sim.app.test_client(), Api(sim).token  # in-process: some 4,000 requests
    prefix = f"/orchestration/v1/{sim.cloud.project_id}"
    broken, probed = [], 0
    for path in paths:
        for key in known:
            for value in BAD_VALUES:
                answer = client.get(prefix + path, query_string={key: value}, headers={"X-Auth-Token": token})
                probed += 1
                if answer.status_code >= 500:
                    broken.append((path, key, value, answer.status_code))
    assert probed > 1000 and broken == []
    conn.orchestration.delete_stack(stack)


def test_heat_create_fields_and_server_properties_with_junk_are_never_500(sim):
    api, n, broken = Api(sim), 0, []
    create = f"/orchestration/v1/{sim.cloud.project_id}/stacks"
    fields = ["stack_name", "template", "parameters", "tags", "timeout_mins", "disable_rollback", "environment"]
    properties = ["name", "image", "flavor", "key_name", "networks", "security_groups", "metadata", "user_data"]
    bodies = [{"stack_name": "s", "template": server_with()} | {key: value} for key in fields for value in VALUES]
    bodies += [{"stack_name": "p", "template": server_with(**{key: value})} for key in properties for value in VALUES]
    for body in bodies:
        n += 1
        if body["stack_name"] in ("s", "p"):
            body["stack_name"] += str(n)  # one name each: no 409 hides a 500
        answer = api.call("POST", create, data=json.dumps(body), headers={"Content-Type": "application/json"})
        if answer.status_code >= 500:
            broken.append((body, answer.status_code))
    assert n > 100 and broken == []
