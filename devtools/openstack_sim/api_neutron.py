"""Neutron (network API v2.0): networks, subnets, ports, security groups and floating IPs.

Floating-IP updates honour ``If-Match: revision_number=N`` (412 on a stale
revision), which is what lets clients claim a free floating IP without a lock.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .model import CloudError, FloatingIP, Network, Port
from .paging import page

bp = Blueprint("neutron", __name__, url_prefix="/network")


def neutron_error(status: int, message: str, kind: str | None = None):
    kind = kind or {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(status, "InternalServerError")
    return jsonify({"NeutronError": {"type": kind, "message": message, "detail": ""}}), status


def _cloud():
    return current_app.config["SIM"].cloud


def _base() -> str:
    return current_app.config["SIM"].config.base_url + "/network"


@bp.get("/")
def versions():
    return jsonify(
        {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{_base()}/v2.0/"}]}]}
    )


@bp.get("/v2.0/")
@bp.get("/v2.0")
def resources():
    names = ("network", "subnet", "port", "floatingip", "security-group")
    return jsonify(
        {
            "resources": [
                {"name": n, "collection": n + "s", "links": [{"rel": "self", "href": f"{_base()}/v2.0/{n}s"}]}
                for n in names
            ]
        }
    )


def _listing(collection: str, items: list[dict]):
    """Apply Neutron's equality filters (any query key that is an attribute) and pagination."""
    for key, value in request.args.items(multi=True):
        if key in ("limit", "marker", "fields", "sort_key", "sort_dir"):
            continue
        items = [i for i in items if key in i and _matches(i[key], value)]
    try:
        items, next_link = page(items, request.args, f"{_base()}/v2.0/{collection}")
    except CloudError as exc:
        return neutron_error(exc.status, exc.message, exc.kind)
    body = {collection: items}
    if next_link:
        body[f"{collection}_links"] = [{"rel": "next", "href": next_link}]
    return jsonify(body)


def _matches(attribute, value: str) -> bool:
    if isinstance(attribute, bool):  # Neutron accepts router:external=true as well as =True
        return str(attribute).lower() == value.lower()
    return ("" if attribute is None else str(attribute)) == value


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


@bp.get("/v2.0/networks")
def list_networks():
    cloud = _cloud()
    return _listing("networks", [_render_network(n, cloud) for n in cloud.networks.values()])


@bp.get("/v2.0/networks/<net_id>")
def get_network(net_id):
    cloud = _cloud()
    if net_id not in cloud.networks:
        return neutron_error(404, f"Network {net_id} could not be found.", "NetworkNotFound")
    return jsonify({"network": _render_network(cloud.networks[net_id], cloud)})


@bp.get("/v2.0/subnets")
def list_subnets():
    cloud = _cloud()
    return _listing("subnets", [_render_subnet(n, cloud) for n in cloud.networks.values()])


@bp.get("/v2.0/ports")
def list_ports():
    cloud = _cloud()
    with cloud.lock:
        return _listing("ports", [_render_port(p, cloud) for p in cloud.ports.values()])


@bp.get("/v2.0/ports/<port_id>")
def get_port(port_id):
    cloud = _cloud()
    with cloud.lock:
        if port_id not in cloud.ports:
            return neutron_error(404, f"Port {port_id} could not be found.", "PortNotFound")
        return jsonify({"port": _render_port(cloud.ports[port_id], cloud)})


@bp.get("/v2.0/security-groups")
def list_security_groups():
    cloud = _cloud()
    items = [
        {
            "id": g.id,
            "name": g.name,
            "description": "",
            "project_id": cloud.project_id,
            "tenant_id": cloud.project_id,
            "security_group_rules": [],
            "revision_number": 1,
            "tags": [],
        }
        for g in cloud.security_groups.values()
    ]
    return _listing("security_groups", items)


@bp.get("/v2.0/floatingips")
def list_fips():
    cloud = _cloud()
    with cloud.lock:
        return _listing("floatingips", [_render_fip(f) for f in cloud.floating_ips.values()])


@bp.post("/v2.0/floatingips")
def create_fip():
    body = (request.get_json(silent=True) or {}).get("floatingip")
    if not isinstance(body, dict):
        return neutron_error(400, "Invalid input: a floatingip object is required.", "BadRequest")
    fip = _cloud().create_fip(body.get("floating_network_id"), body.get("port_id"), body.get("description") or "")
    return jsonify({"floatingip": _render_fip(fip)}), 201


@bp.get("/v2.0/floatingips/<fip_id>")
def get_fip(fip_id):
    return jsonify({"floatingip": _render_fip(_cloud().get_fip(fip_id))})


@bp.put("/v2.0/floatingips/<fip_id>")
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
    fip = _cloud().update_fip(fip_id, {k: v for k, v in body.items() if k != "fixed_ip_address"}, revision)
    return jsonify({"floatingip": _render_fip(fip)})


@bp.delete("/v2.0/floatingips/<fip_id>")
def delete_fip(fip_id):
    _cloud().delete_fip(fip_id)
    return "", 204
