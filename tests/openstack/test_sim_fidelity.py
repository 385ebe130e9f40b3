"""The simulator answers right or refuses explicitly: strict parameters, microversions, filters, counts, quotas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devtools.openstack_sim import strict
from devtools.openstack_sim.app import STRICT_BLUEPRINTS
from devtools.openstack_sim.model import PRIVATE_NET_ID, PUBLIC_NET_ID
from tests.openstack.conftest import wait_for

IMAGE = "0b1f5a4e-7c9d-4a2b-8e6f-5d3c2b1a0f9e"  # cirros-0.6.2
OTHER_IMAGE = "6d4a4b3c-1f0e-4e3e-9a63-0c6b1d2e3f40"  # ubuntu-22.04
BOGUS = "sim_bogus_field"


class Api:
    """Plain HTTP against the simulator with a token, a compute microversion per call."""

    def __init__(self, sim):
        self.sim = sim
        self.base = sim.config.base_url
        cfg = sim.config
        auth = {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": cfg.username, "password": cfg.password}},
            }
        }
        response = requests.post(f"{self.base}/identity/v3/auth/tokens", json={"auth": auth}, timeout=5)
        self.token = response.headers["X-Subject-Token"]

    def call(self, method: str, path: str, version: str | None = None, **kwargs) -> requests.Response:
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        if version:
            headers["OpenStack-API-Version"] = f"compute {version}"
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def boot(self, version: str | None = None, **server) -> requests.Response:
        body = {"name": "vm", "imageRef": IMAGE, "flavorRef": "1", **server}
        return self.call("POST", "/compute/v2.1/servers", version, json={"server": body})

    def servers(self, version: str | None = None, **query) -> list[dict]:
        response = self.call("GET", "/compute/v2.1/servers/detail", version, params=query)
        assert response.status_code == 200, response.text
        return response.json()["servers"]


@pytest.fixture
def api(sim):
    return Api(sim)


def _wrappers(spec: Mapping) -> list[str]:
    return [key for key, sub in spec.items() if sub is not None]


def test_every_route_refuses_an_unknown_query_parameter_and_body_field(sim, api):
    """Core services (and /_sim) refuse in the gate: a 400 naming the field; any other route must not accept it."""
    probed, silent = 0, []
    for rule in sim.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<[^>]+>", "x", rule.rule.replace("<tenant>", sim.cloud.project_id))
        view = sim.app.view_functions[rule.endpoint]
        core = rule.endpoint.split(".")[0] in STRICT_BLUEPRINTS
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            probes = [{"params": {BOGUS: "1"}}]
            if method in ("POST", "PUT", "PATCH"):
                spec = strict.spec_of(view)
                probes.append({"json": {BOGUS: 1}})
                probes += [{"json": {wrapper: {BOGUS: 1}}} for wrapper in (_wrappers(spec.body) if spec else [])]
            for probe in probes:
                answer = api.call(method, path, **probe)
                refused = answer.status_code == 400 and BOGUS in answer.text
                if not refused and (core or answer.status_code < 400 or answer.status_code == 400):
                    silent.append(f"{method} {rule.rule} {probe}: {answer.status_code} {answer.text[:150]}")
            probed += 1
    assert not silent, "\n".join(silent)
    assert probed > 40
    nova = api.call("GET", "/compute/v2.1/servers", params={"sort_key": "name"})
    assert nova.json() == {
        "badRequest": {"code": 400, "message": "not simulated: query parameter 'sort_key' on GET /compute/v2.1/servers"}
    }
    neutron = api.call("POST", "/network/v2.0/floatingips", json={"floatingip": {"subnet_id": "s"}})
    assert neutron.json()["NeutronError"]["message"].startswith("not simulated: body field 'floatingip.subnet_id'")


def test_microversions_are_negotiated_as_nova_does(api):
    document = api.call("GET", "/compute/v2.1/").json()["version"]
    assert (document["min_version"], document["version"]) == ("2.1", "2.37")
    for headers, chosen in [
        ({}, "2.1"),
        ({"OpenStack-API-Version": "compute 2.19"}, "2.19"),
        ({"X-OpenStack-Nova-API-Version": "2.9"}, "2.9"),
        ({"OpenStack-API-Version": "compute latest"}, "2.37"),
        ({"OpenStack-API-Version": "compute 2.26", "X-OpenStack-Nova-API-Version": "2.3"}, "2.26"),
    ]:
        answer = api.call("GET", "/compute/v2.1/servers", headers=headers)
        assert answer.status_code == 200
        assert answer.headers["OpenStack-API-Version"] == f"compute {chosen}"
        assert answer.headers["X-OpenStack-Nova-API-Version"] == chosen
        assert {"OpenStack-API-Version", "X-OpenStack-Nova-API-Version"} <= {
            v.strip() for v in answer.headers["Vary"].split(",")
        }
    refused = api.call("GET", "/compute/v2.1/servers", "2.38")
    assert refused.status_code == 406 and "OpenStack-API-Version" not in refused.headers
    assert refused.json() == {
        "computeFault": {
            "code": 406,
            "message": "Version 2.38 is not supported by the API. Minimum is 2.1 and maximum is 2.37.",
        }
    }
    malformed = api.call("GET", "/compute/v2.1/servers", "2.x")
    assert malformed.status_code == 400 and "is of invalid format" in malformed.json()["badRequest"]["message"]


def test_server_shapes_and_update_follow_the_microversion(api):
    server_id = api.boot(name="shape").json()["server"]["id"]
    path = f"/compute/v2.1/servers/{server_id}"
    old = api.call("GET", path).json()["server"]
    assert not {"locked", "description", "tags"} & set(old)
    new = api.call("GET", path, "2.26").json()["server"]
    assert (new["locked"], new["description"], new["tags"]) == (False, None, [])
    renamed = api.call("PUT", path, json={"server": {"name": "renamed"}})
    assert renamed.status_code == 200 and renamed.json()["server"]["name"] == "renamed"
    early = api.call("PUT", path, "2.18", json={"server": {"description": "d"}})
    assert early.status_code == 400 and "'description' was unexpected" in early.text
    described = api.call("PUT", path, "2.19", json={"server": {"description": "about it"}}).json()["server"]
    assert described["description"] == "about it" and described["name"] == "renamed"
    assert api.call("PUT", path, json={"server": {"name": ""}}).status_code == 400


def test_server_list_filters_answer_right(sim, api):
    first = api.boot(name="alpha", flavorRef="1").json()["server"]["id"]
    second = api.boot(name="beta", flavorRef="2", imageRef=OTHER_IMAGE).json()["server"]["id"]
    ips = {s["id"]: s["addresses"]["private"][0]["addr"] for s in api.servers()}
    ids = lambda **query: {s["id"] for s in api.servers(**query)}  # noqa: E731
    assert ids(flavor="2") == {second} and ids(flavor="1") == {first}
    assert ids(image=OTHER_IMAGE) == {second} and ids(image=IMAGE) == {first}
    assert ids(ip=re.escape(ips[first]) + "$") == {first}
    assert ids(ip=ips[first].rsplit(".", 2)[0]) == {first, second}  # a regex matched at the start
    assert ids(ip="1\\.2\\.3") == set() and ids(ip6=".*") == set()  # no server has IPv6
    assert ids(name="^al") == {first} and ids(name="ta$") == {second} and ids(name="e") == {second}
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert ids(**{"changes-since": future}) == set() and ids(**{"changes-since": past}) == {first, second}
    assert api.call("GET", "/compute/v2.1/servers", params={"changes-since": "yesterday"}).status_code == 400
    api.call("DELETE", f"/compute/v2.1/servers/{first}")
    wait_for(lambda: first not in sim.cloud.servers, what="the server to go")
    assert ids() == {second}
    deleted = [s for s in api.servers(**{"changes-since": past}) if s["id"] == first]
    assert [s["status"] for s in deleted] == ["DELETED"]  # Nova lists recently deleted servers with changes-since
    assert ids(**{"tags": "x"}, version="2.26") == set()
    assert api.call("GET", "/compute/v2.1/servers", params={"tags": "x"}).status_code == 400  # before 2.26


def test_min_and_max_count_make_several_servers_named_as_nova(sim, api):
    sim.config.max_servers = 4
    assert api.boot(name="pair", min_count=2, max_count=2).status_code == 202
    assert sorted(s["name"] for s in api.servers()) == ["pair-1", "pair-2"]
    assert api.boot(name="bad", min_count=3, max_count=2).status_code == 400
    assert api.boot(name="bad", min_count=0).status_code == 400
    over = api.boot(name="many", min_count=3, max_count=5)
    assert over.status_code == 403 and "Requested 3, but already used 2 of 4 instances" in over.text
    assert api.boot(name="fill", min_count=1, max_count=5).status_code == 202  # as many as the quota allows
    assert sorted(s["name"] for s in api.servers(name="^fill")) == ["fill-1", "fill-2"]
    single = api.boot(name="solo", max_count=1)
    assert single.status_code == 403


def test_networks_rule_of_each_microversion(sim, api):
    def network_of(response):
        assert response.status_code == 202, response.text
        return sim.cloud.get_server(response.json()["server"]["id"]).network_id

    assert network_of(api.boot()) == PRIVATE_NET_ID  # 2.1, networks absent: the project's only network
    assert network_of(api.boot(networks=[])) == PRIVATE_NET_ID
    assert api.boot(networks="auto").status_code == 400  # a string only from 2.37
    required = api.boot("2.37")
    assert required.status_code == 400 and "'networks' is a required property" in required.text
    assert network_of(api.boot("2.37", networks="auto")) == PRIVATE_NET_ID
    assert network_of(api.boot("2.37", networks="none")) is None
    assert requests.post(f"{api.base}/_sim/networks", json={"name": "second"}, timeout=5).status_code == 201
    ambiguous = api.boot()
    assert ambiguous.status_code == 409 and "More than one possible network found" in ambiguous.text
    assert ambiguous.json()["conflictingRequest"]["code"] == 409
    assert api.boot(networks=[{"uuid": PUBLIC_NET_ID}]).status_code == 400


def test_flavor_extra_specs_and_filters(sim, api):
    sim.cloud.flavors["2"].extra_specs["hw:cpu_policy"] = "shared"
    assert api.call("GET", "/compute/v2.1/flavors/1/os-extra_specs").json() == {"extra_specs": {}}
    assert api.call("GET", "/compute/v2.1/flavors/2/os-extra_specs").json() == {
        "extra_specs": {"hw:cpu_policy": "shared"}
    }
    assert api.call("GET", "/compute/v2.1/flavors/2/os-extra_specs/hw:cpu_policy").json() == {"hw:cpu_policy": "shared"}
    assert api.call("GET", "/compute/v2.1/flavors/2/os-extra_specs/nope").status_code == 404
    assert api.call("GET", "/compute/v2.1/flavors/9/os-extra_specs").status_code == 404
    big = api.call("GET", "/compute/v2.1/flavors/detail", params={"minRam": 4096, "is_public": "None"}).json()
    assert [f["name"] for f in big["flavors"]] == ["m1.medium", "m1.large"]
    by_name = api.call("GET", "/compute/v2.1/flavors", params={"sort_key": "name", "sort_dir": "desc"}).json()
    assert [f["name"] for f in by_name["flavors"]] == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]


def test_quota_sets_and_limits_report_the_simulators_real_limits(sim, api):
    project = sim.cloud.project_id
    sim.config.max_servers, sim.config.fip_pool_size = 7, 5
    api.boot(name="counted", flavorRef="3")
    quota = api.call("GET", f"/compute/v2.1/os-quota-sets/{project}").json()["quota_set"]
    assert (quota["id"], quota["instances"], quota["floating_ips"], quota["cores"]) == (project, 7, 5, -1)
    detail = api.call("GET", f"/compute/v2.1/os-quota-sets/{project}/detail", "2.36").json()["quota_set"]
    assert detail["instances"] == {"limit": 7, "in_use": 1, "reserved": 0}
    assert detail["cores"]["in_use"] == 2 and detail["ram"]["in_use"] == 4096
    assert "floating_ips" not in detail  # network quotas left Nova at 2.36
    defaults = api.call("GET", f"/compute/v2.1/os-quota-sets/{project}/defaults").json()["quota_set"]
    assert defaults["instances"] == 7
    assert api.call("GET", "/compute/v2.1/os-quota-sets/someone-else").status_code == 403
    absolute = api.call("GET", "/compute/v2.1/limits").json()["limits"]["absolute"]
    assert (absolute["maxTotalInstances"], absolute["totalInstancesUsed"], absolute["totalCoresUsed"]) == (7, 1, 2)
    network = api.call("GET", f"/network/v2.0/quotas/{project}").json()["quota"]
    assert network["floatingip"] == 5
    used = api.call("GET", f"/network/v2.0/quotas/{project}/details").json()["quota"]
    assert used["floatingip"] == {"limit": 5, "used": 0, "reserved": 0} and used["port"]["used"] == 1


def test_floating_ip_create_with_an_address(sim, api):
    wanted = sim.config.floating_ip(3)

    def create(address):
        body = {"floatingip": {"floating_network_id": PUBLIC_NET_ID, "floating_ip_address": address}}
        return api.call("POST", "/network/v2.0/floatingips", json=body)

    made = create(wanted)
    assert made.status_code == 201 and made.json()["floatingip"]["floating_ip_address"] == wanted
    taken = create(wanted).json()["NeutronError"]
    assert taken["type"] == "IpAddressAlreadyAllocated" and wanted in taken["message"]
    assert create(wanted).status_code == 409
    outside = create("10.1.2.3")
    assert outside.status_code == 400 and outside.json()["NeutronError"]["type"] == "InvalidIpForNetwork"
    assert create("not-an-ip").status_code == 400
    api.call("DELETE", f"/network/v2.0/floatingips/{made.json()['floatingip']['id']}")


def test_neutron_listings_sort_and_select_fields(api):
    names = api.call("GET", "/network/v2.0/networks", params={"sort_key": "name", "sort_dir": "desc", "fields": "name"})
    assert names.json() == {"networks": [{"name": "public"}, {"name": "private"}]}
    external = api.call("GET", "/network/v2.0/networks", params={"router:external": "true"}).json()["networks"]
    assert [n["id"] for n in external] == [PUBLIC_NET_ID]
