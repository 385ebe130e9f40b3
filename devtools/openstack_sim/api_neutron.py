"""Neutron (network API v2.0): networks, subnets, ports, security groups and floating IPs.

Listings take Neutron's equality filters on their scalar attributes, ``fields``,
``sort_key``/``sort_dir`` and ``limit``/``marker``; anything else is refused
(``strict``). Floating-IP updates honour ``If-Match: revision_number=N`` (412 on a stale
revision), which is what lets clients claim a free floating IP without a lock.
"""

from __future__ import annotations

from types import SimpleNamespace

from flask import Blueprint, current_app, jsonify, request

from .model import CloudError, FloatingIP, Network, Port
from .paging import page
from .strict import accepts

bp = Blueprint("neutron", __name__, url_prefix="/network")


def neutron_error(status: int, message: str, kind: str | None = None):
    kind = kind or {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(status, "InternalServerError")
    return jsonify({"NeutronError": {"type": kind, "message": message, "detail": ""}}), status


def _cloud():
    return current_app.config["SIM"].cloud


def _base() -> str:
    return current_app.config["SIM"].config.base_url + "/network"


@bp.get("/")
@accepts()
def versions():
    return jsonify(
        {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{_base()}/v2.0/"}]}]}
    )


@bp.get("/v2.0/")
@bp.get("/v2.0")
@accepts()
def resources():
    names = ("network", "subnet", "port", "floatingip", "security-group", "quota")
    return jsonify(
        {
            "resources": [
                {"name": n, "collection": n + "s", "links": [{"rel": "self", "href": f"{_base()}/v2.0/{n}s"}]}
                for n in names
            ]
        }
    )


PAGING = {"limit", "marker", "fields", "sort_key", "sort_dir"}


def _listing(collection: str, items: list[dict]):
    """Apply Neutron's equality filters, sorting, ``fields`` and pagination (the view declared the keys)."""
    for key in set(request.args) - PAGING:
        wanted = request.args.getlist(key)
        items = [i for i in items if any(_matches(i.get(key), value) for value in wanted)]
    keys = request.args.getlist("sort_key")
    directions = request.args.getlist("sort_dir")
    _check_sorting(keys, directions, {k for i in items for k in i})
    for n in reversed(range(len(keys))):
        descending = (directions[n] if n < len(directions) else "asc") == "desc"
        items = sorted(items, key=lambda i, k=keys[n]: (i.get(k) is None, str(i.get(k))), reverse=descending)
    items, next_link = page(items, request.args, f"{_base()}/v2.0/{collection}")
    fields = request.args.getlist("fields")
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    body = {collection: items}
    if next_link:
        body[f"{collection}_links"] = [{"rel": "next", "href": next_link}]
    return jsonify(body)


def _check_sorting(keys: list[str], directions: list[str], attributes: set[str]) -> None:
    """As Neutron: known attributes (of the listed records: an empty listing checks none), asc or desc."""
    for key in keys:
        if attributes and key not in attributes:
            raise CloudError(400, f"{key} is an invalid attribute for sort_keys", "HTTPBadRequest")
    for direction in directions:
        if direction not in ("asc", "desc"):
            raise CloudError(
                400, f"{direction} is an invalid value for sort_dirs, valid values are asc, desc", "HTTPBadRequest"
            )
    if directions and len(directions) != len(keys):
        raise CloudError(400, "The number of sort_keys and sort_dirs must be same", "HTTPBadRequest")


def _matches(attribute, value: str) -> bool:
    if isinstance(attribute, bool):  # Neutron accepts router:external=true as well as =True
        return str(attribute).lower() == value.lower()
    if isinstance(attribute, list) and attribute and isinstance(attribute[0], dict):  # fixed_ips=ip_address=A
        key, _, wanted = value.partition("=")
        return any(str(entry.get(key)) == wanted for entry in attribute)
    return ("" if attribute is None else str(attribute)) == value


def _query(render, *records) -> set[str]:
    """The query a listing understands: its scalar attributes (and fixed_ips), plus paging and fields."""
    item = render(*records)
    return PAGING | {k for k, v in item.items() if not isinstance(v, (list, dict)) or k == "fixed_ips"}


def _render_network(n: Network, cloud) -> dict:
    return {
        "id": n.id,
        "name": n.name,
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": False,
        "router:external": n.external,
        "subnets": [n.subnet_id],
        "project_id": cloud.project_id,
        "tenant_id": cloud.project_id,
        "mtu": 1450,
        "revision_number": 1,
        "tags": [],
        "availability_zones": ["nova"],
        "description": "",
    }


def _render_subnet(n: Network, cloud) -> dict:
    return {
        "id": n.subnet_id,
        "name": f"{n.name}-subnet",
        "network_id": n.id,
        "ip_version": 4,
        "cidr": n.cidr,
        "enable_dhcp": True,
        "project_id": cloud.project_id,
        "tenant_id": cloud.project_id,
        "revision_number": 1,
        "gateway_ip": None,
        "allocation_pools": [],
        "dns_nameservers": [],
        "host_routes": [],
        "tags": [],
    }


def _render_port(p: Port, cloud) -> dict:
    return {
        "id": p.id,
        "name": "",
        "network_id": p.network_id,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "mac_address": p.mac_address,
        "status": p.status,
        "admin_state_up": True,
        "fixed_ips": [{"subnet_id": p.subnet_id, "ip_address": p.ip_address}],
        "project_id": cloud.project_id,
        "tenant_id": cloud.project_id,
        "created_at": p.created_at,
        "revision_number": 1,
        "security_groups": [],
        "tags": [],
        "description": "",
    }


def _render_fip(f: FloatingIP) -> dict:
    return {
        "id": f.id,
        "floating_network_id": f.floating_network_id,
        "floating_ip_address": f.floating_ip_address,
        "fixed_ip_address": f.fixed_ip_address,
        "port_id": f.port_id,
        "router_id": None,
        "status": f.status,
        "project_id": f.project_id,
        "tenant_id": f.project_id,
        "description": f.description,
        "revision_number": f.revision_number,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "tags": [],
        "dns_domain": "",
        "dns_name": "",
        "port_details": None,
    }


_FAKE = SimpleNamespace(project_id="")
_NET = Network(id="", name="", external=False)


@bp.get("/v2.0/networks")
@accepts(query=_query(_render_network, _NET, _FAKE))
def list_networks():
    cloud = _cloud()
    return _listing("networks", [_render_network(n, cloud) for n in cloud.networks.values()])


@bp.get("/v2.0/networks/<net_id>")
@accepts()
def get_network(net_id):
    cloud = _cloud()
    if net_id not in cloud.networks:
        return neutron_error(404, f"Network {net_id} could not be found.", "NetworkNotFound")
    return jsonify({"network": _render_network(cloud.networks[net_id], cloud)})


@bp.get("/v2.0/subnets")
@accepts(query=_query(_render_subnet, _NET, _FAKE))
def list_subnets():
    cloud = _cloud()
    return _listing("subnets", [_render_subnet(n, cloud) for n in cloud.networks.values()])


@bp.get("/v2.0/ports")
@accepts(query=_query(_render_port, Port("", "", "", "", "", ""), _FAKE))
def list_ports():
    cloud = _cloud()
    with cloud.lock:
        return _listing("ports", [_render_port(p, cloud) for p in cloud.ports.values()])


@bp.get("/v2.0/ports/<port_id>")
@accepts()
def get_port(port_id):
    cloud = _cloud()
    with cloud.lock:
        if port_id not in cloud.ports:
            return neutron_error(404, f"Port {port_id} could not be found.", "PortNotFound")
        return jsonify({"port": _render_port(cloud.ports[port_id], cloud)})


def _render_group(g, cloud) -> dict:
    return {
        "id": g.id,
        "name": g.name,
        "description": "",
        "project_id": cloud.project_id,
        "tenant_id": cloud.project_id,
        "security_group_rules": [],
        "revision_number": 1,
        "tags": [],
    }


@bp.get("/v2.0/security-groups")
@accepts(query=_query(_render_group, SimpleNamespace(id="", name=""), _FAKE))
def list_security_groups():
    cloud = _cloud()
    return _listing("security_groups", [_render_group(g, cloud) for g in cloud.security_groups.values()])


@bp.get("/v2.0/floatingips")
@accepts(query=_query(_render_fip, FloatingIP("", "", "", "")))
def list_fips():
    cloud = _cloud()
    with cloud.lock:
        return _listing("floatingips", [_render_fip(f) for f in cloud.floating_ips.values()])


@bp.post("/v2.0/floatingips")
@accepts(body={"floatingip": {"floating_network_id", "port_id", "description", "floating_ip_address"}})
def create_fip():
    body = (request.get_json(silent=True) or {}).get("floatingip")
    if not isinstance(body, dict):
        return neutron_error(400, "Invalid input: a floatingip object is required.", "BadRequest")
    _check_strings(body)
    fip = _cloud().create_fip(
        body.get("floating_network_id"),
        body.get("port_id"),
        body.get("description") or "",
        floating_ip_address=body.get("floating_ip_address"),
    )
    return jsonify({"floatingip": _render_fip(fip)}), 201


@bp.get("/v2.0/floatingips/<fip_id>")
@accepts()
def get_fip(fip_id):
    return jsonify({"floatingip": _render_fip(_cloud().get_fip(fip_id))})


@bp.put("/v2.0/floatingips/<fip_id>")
@accepts(body={"floatingip": {"port_id", "description", "fixed_ip_address"}})
def update_fip(fip_id):
    body = (request.get_json(silent=True) or {}).get("floatingip")
    if not isinstance(body, dict):
        return neutron_error(400, "Invalid input: a floatingip object is required.", "BadRequest")
    unknown = set(body) - {"port_id", "description", "fixed_ip_address"}
    if unknown:
        return neutron_error(400, f"Attribute(s) {sorted(unknown)} not allowed in PUT.", "HTTPBadRequest")
    revision = None
    match = request.headers.get("If-Match", "")
    if match:
        key, _, value = match.partition("=")
        if key.strip() != "revision_number" or not value.strip().isdigit():
            return neutron_error(400, f"If-Match header {match!r} must be revision_number=<int>.", "BadRequest")
        revision = int(value)
    _check_strings(body)
    _check_fixed_ip(body)
    fip = _cloud().update_fip(fip_id, {k: v for k, v in body.items() if k != "fixed_ip_address"}, revision)
    return jsonify({"floatingip": _render_fip(fip)})


def _check_strings(body: dict) -> None:
    """A floating IP's fields are all strings (or null), as Neutron's attribute validators say."""
    for key, value in body.items():
        if value is not None and not isinstance(value, str):
            raise CloudError(
                400, f"Invalid input for {key}. Reason: '{value}' is not a valid string.", "HTTPBadRequest"
            )


def _check_fixed_ip(body: dict) -> None:
    """A port has one fixed IP here: ``fixed_ip_address``, if given, must be it."""
    address = body.get("fixed_ip_address")
    if address is None:
        return
    port = _cloud().ports.get(body.get("port_id") or "")
    if port is None or port.ip_address != address:
        raise CloudError(
            400,
            f"Bad floatingip request: Port {body.get('port_id')} does not have fixed ip {address}.",
            "BadRequest",
        )


# --- quotas -----------------------------------------------------------------------------


def _quotas(project_id: str, detail: bool) -> dict:
    cloud = _cloud()
    if project_id != cloud.project_id:
        raise CloudError(403, f"Project {project_id} is not yours: only an admin may see its quotas.", "Forbidden")
    with cloud.lock:
        usage = {
            "floatingip": (cloud.config.fip_pool_size, len(cloud.floating_ips)),
            "network": (-1, len(cloud.networks)),
            "subnet": (-1, len(cloud.networks)),
            "port": (-1, len(cloud.ports)),
            "router": (-1, 0),
            "security_group": (-1, len(cloud.security_groups)),
            "security_group_rule": (-1, 0),
            "rbac_policy": (-1, 0),
            "subnetpool": (-1, 0),
        }
    return {
        "quota": {k: {"limit": lim, "used": used, "reserved": 0} if detail else lim for k, (lim, used) in usage.items()}
    }


@bp.get("/v2.0/quotas/<project_id>")
@bp.get("/v2.0/quotas/<project_id>/default")
@accepts()
def get_quotas(project_id):
    return jsonify(_quotas(project_id, detail=False))


@bp.get("/v2.0/quotas/<project_id>/details")
@bp.get("/v2.0/quotas/<project_id>/details.json")  # what `openstack quota show --usage` asks for
@accepts()
def get_quota_details(project_id):
    return jsonify(_quotas(project_id, detail=True))


@bp.delete("/v2.0/floatingips/<fip_id>")
@accepts()
def delete_fip(fip_id):
    _cloud().delete_fip(fip_id)
    return "", 204
