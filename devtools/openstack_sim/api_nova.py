"""Nova (compute API v2.1, microversions 2.1 to 2.37): servers, their metadata and actions.

Flavors, keypairs, limits and quota sets are in ``api_nova_resources``; the
version negotiation in ``microversion``. Each answer has the shape of the
requested microversion (``locked`` from 2.9, ``description`` from 2.19,
``tags`` from 2.26; ``networks`` required from 2.37, where "auto"/"none"
become valid). Nova's error bodies (``{"itemNotFound": {"code": 404,
"message": ...}}``) are reproduced because openstacksdk turns their message
into its exception text.
"""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, jsonify, request

from . import microversion
from .microversion import at_least
from .model import CloudError, Server
from .nova_requests import check_boot_source, check_networks, counts, filtered
from .paging import page
from .strict import accepts

bp = Blueprint("nova", __name__, url_prefix="/compute")
bp.after_request(microversion.add_headers)
ERROR_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    503: "serviceUnavailable",
}
SERVER_FIELDS = {
    "name",
    "imageRef",
    "flavorRef",
    "key_name",
    "networks",
    "security_groups",
    "metadata",
    "user_data",
    "min_count",
    "max_count",
    "description",
    "block_device_mapping_v2",
}
LIST_FILTERS = ("name", "status", "flavor", "image", "ip", "ip6", "changes-since", "tags", "tags-any", "not-tags")
LIST_QUERY = {*LIST_FILTERS, "not-tags-any", "limit", "marker", "deleted"}  # deleted: ignored for non-admins


def nova_error(status: int, message: str):
    key = ERROR_KEYS.get(status, "computeFault")
    return jsonify({key: {"code": status, "message": message}}), status


def _cloud():
    return current_app.config["SIM"].cloud


def _base() -> str:
    return current_app.config["SIM"].config.base_url + "/compute/v2.1"


def _version(base: str) -> dict:
    top = microversion.text(microversion.MAX)
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": top,
        "min_version": microversion.text(microversion.MIN),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


@bp.get("/")
@accepts()
def versions():
    return jsonify({"versions": [_version(current_app.config["SIM"].config.base_url)]})


@bp.get("/v2.1")
@bp.get("/v2.1/")
@accepts()
def version():
    return jsonify({"version": _version(current_app.config["SIM"].config.base_url)})


def _links(kind: str, ident: str) -> list[dict]:
    return [
        {"rel": "self", "href": f"{_base()}/{kind}/{ident}"},
        {"rel": "bookmark", "href": f"{_base()}/{kind}/{ident}"},
    ]


def render_server(s: Server, cloud) -> dict:
    addresses: dict[str, list] = {}
    if s.fixed_ip and s.network_id:
        net = cloud.networks[s.network_id].name
        port = cloud.ports.get(s.port_id)
        mac = port.mac_address if port else None
        entries = [{"version": 4, "addr": s.fixed_ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}]
        for fip in cloud.floating_ips.values():
            if fip.port_id and fip.port_id == s.port_id:
                entries.append(
                    {
                        "version": 4,
                        "addr": fip.floating_ip_address,
                        "OS-EXT-IPS:type": "floating",
                        "OS-EXT-IPS-MAC:mac_addr": mac,
                    }
                )
        addresses[net] = entries
    body = {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": dict(s.metadata),
        "hostId": "" if s.status == "BUILD" else "a1b2c3" + s.project_id[:20],
        "image": {"id": s.image_id, "links": _links("images", s.image_id)},
        "flavor": {"id": s.flavor_id, "links": _links("flavors", s.flavor_id)},
        "created": s.created,
        "updated": s.updated,
        "addresses": addresses,
        "accessIPv4": "",
        "accessIPv6": "",
        "links": _links("servers", s.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": s.key_name,
        "OS-SRV-USG:launched_at": s.launched_at,
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": g} for g in s.security_groups],
        "OS-EXT-STS:task_state": s.task_state,
        "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": 1 if s.status == "ACTIVE" else 0,
        "os-extended-volumes:volumes_attached": [],
    }
    if s.fault:
        body["fault"] = s.fault
    return body | _versioned(s)


def _versioned(s: Server) -> dict:
    """The server fields later microversions add."""
    extra: dict = {}
    if at_least(9):
        extra["locked"] = False
    if at_least(19):
        extra["description"] = s.description
    if at_least(26):
        extra["tags"] = []
    return extra


# --- servers ----------------------------------------------------------------------------


def _list_servers(detail: bool):
    cloud = _cloud()
    for key in ("tags", "tags-any", "not-tags", "not-tags-any"):
        if key in request.args and not at_least(26):
            raise CloudError(400, f"not simulated: query parameter {key!r} below microversion 2.26")
    with cloud.lock:
        servers = list(cloud.servers.values())
        if request.args.get("changes-since"):  # Nova then lists the recently deleted ones too
            servers += list(cloud.deleted_servers)
        servers.sort(key=lambda s: (s.created, s.id), reverse=True)
        items = [
            render_server(s, cloud) if detail else {"id": s.id, "name": s.name, "links": _links("servers", s.id)}
            for s in filtered(servers, request.args, cloud)
        ]
    items, next_link = page(items, request.args, f"{_base()}/servers{'/detail' if detail else ''}")
    body = {"servers": items}
    if next_link:
        body["servers_links"] = [{"rel": "next", "href": next_link}]
    return jsonify(body)


@bp.get("/v2.1/servers")
@accepts(query=LIST_QUERY)
def list_servers():
    return _list_servers(detail=False)


@bp.get("/v2.1/servers/detail")
@accepts(query=LIST_QUERY)
def list_servers_detail():
    return _list_servers(detail=True)


@bp.post("/v2.1/servers")
@accepts(body={"server": SERVER_FIELDS})
def create_server():
    body = (request.get_json(silent=True) or {}).get("server")
    if not isinstance(body, dict):
        return nova_error(400, "Invalid input for field/attribute server.")
    check_networks(body)
    check_boot_source(body)
    low, high = counts(body)
    server = _cloud().create_servers(body, low, high)[0]
    response = jsonify(
        {
            "server": {
                "id": server.id,
                "links": _links("servers", server.id),
                "OS-DCF:diskConfig": "MANUAL",
                "security_groups": [{"name": g} for g in server.security_groups],
                "adminPass": base64.b32encode(server.id.encode()[:10]).decode().rstrip("="),
            }
        }
    )
    response.status_code = 202
    response.headers["Location"] = f"{_base()}/servers/{server.id}"
    return response


@bp.get("/v2.1/servers/<server_id>")
@accepts()
def get_server(server_id):
    cloud = _cloud()
    with cloud.lock:
        return jsonify({"server": render_server(cloud.get_server(server_id), cloud)})


@bp.put("/v2.1/servers/<server_id>")
@accepts(body={"server": {"name", "description"}})
def update_server(server_id):
    body = (request.get_json(silent=True) or {}).get("server")
    if not isinstance(body, dict):
        return nova_error(400, "Invalid input for field/attribute server.")
    if "description" in body and not at_least(19):
        return nova_error(
            400,
            "Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)",
        )
    cloud = _cloud()
    server = cloud.update_server(server_id, body)
    with cloud.lock:
        return jsonify({"server": render_server(server, cloud)})


@bp.delete("/v2.1/servers/<server_id>")
@accepts()
def delete_server(server_id):
    _cloud().delete_server(server_id)
    return "", 204


@bp.post("/v2.1/servers/<server_id>/action")
@accepts(body={"os-getConsoleOutput": {"length"}})
def server_action(server_id):
    cloud = _cloud()
    body = request.get_json(silent=True) or {}
    server = cloud.get_server(server_id)
    if "os-getConsoleOutput" in body:
        lines = [f"cloud-init: booting {server.name}", f"cloud-init: status {server.status}"]
        if server.status == "ACTIVE":
            lines.append(f"ci-info: {server.fixed_ip} sshd listening on port {cloud.config.ssh_port}")
        return jsonify({"output": "\n".join(lines) + "\n"})
    return nova_error(400, f"There is no such action: {', '.join(body) or '(none)'}")


# --- metadata ---------------------------------------------------------------------------


def _valid_metadata(data) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255 for k, v in data.items()
    ):
        raise CloudError(400, "Invalid input for field/attribute metadata.")
    return data


@bp.get("/v2.1/servers/<server_id>/metadata")
@accepts()
def get_metadata(server_id):
    return jsonify({"metadata": dict(_cloud().get_server(server_id).metadata)})


@bp.post("/v2.1/servers/<server_id>/metadata")
@bp.put("/v2.1/servers/<server_id>/metadata")
@accepts(body={"metadata": None})
def set_metadata(server_id):
    cloud = _cloud()
    data = _valid_metadata((request.get_json(silent=True) or {}).get("metadata"))
    with cloud.lock:
        server = cloud.get_server(server_id)
        if request.method == "PUT":
            server.metadata = dict(data)
        else:
            server.metadata.update(data)
        return jsonify({"metadata": dict(server.metadata)})


@bp.get("/v2.1/servers/<server_id>/metadata/<key>")
@accepts()
def get_metadata_item(server_id, key):
    metadata = _cloud().get_server(server_id).metadata
    if key not in metadata:
        return nova_error(404, "Metadata item was not found")
    return jsonify({"meta": {key: metadata[key]}})


@bp.put("/v2.1/servers/<server_id>/metadata/<key>")
@accepts(body={"meta": None})
def set_metadata_item(server_id, key):
    meta = _valid_metadata((request.get_json(silent=True) or {}).get("meta"))
    if list(meta) != [key]:
        return nova_error(400, "Request body and URI mismatch")
    cloud = _cloud()
    with cloud.lock:
        cloud.get_server(server_id).metadata.update(meta)
    return jsonify({"meta": meta})


@bp.delete("/v2.1/servers/<server_id>/metadata/<key>")
@accepts()
def delete_metadata_item(server_id, key):
    cloud = _cloud()
    with cloud.lock:
        if cloud.get_server(server_id).metadata.pop(key, None) is None:
            return nova_error(404, "Metadata item was not found")
    return "", 204
