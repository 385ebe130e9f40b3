"""Nova (compute API v2.1): servers, their metadata, flavors, keypairs and limits.

The simulator announces microversion 2.1 only, so clients use the 2.1 shapes;
Nova's error bodies (``{"itemNotFound": {"code": 404, "message": ...}}``) are
reproduced because openstacksdk turns their message into its exception text.
"""

from __future__ import annotations

import base64
import re

from flask import Blueprint, current_app, jsonify, request

from .model import CloudError, Server
from .paging import page

bp = Blueprint("nova", __name__, url_prefix="/compute")
ERROR_KEYS = {
    400: "badRequest",
    403: "forbidden",
    404: "itemNotFound",
    409: "conflictingRequest",
    503: "serviceUnavailable",
}


def nova_error(status: int, message: str):
    key = ERROR_KEYS.get(status, "computeFault")
    return jsonify({key: {"code": status, "message": message}}), status


def _cloud():
    return current_app.config["SIM"].cloud


def _base() -> str:
    return current_app.config["SIM"].config.base_url + "/compute/v2.1"


def _version(base: str) -> dict:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": "2.1",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


@bp.get("/")
def versions():
    return jsonify({"versions": [_version(current_app.config["SIM"].config.base_url)]})


@bp.get("/v2.1")
@bp.get("/v2.1/")
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
    return body


# --- servers ----------------------------------------------------------------------------


def _list_servers(detail: bool):
    cloud = _cloud()
    with cloud.lock:
        servers = sorted(cloud.servers.values(), key=lambda s: (s.created, s.id), reverse=True)
        name = request.args.get("name")
        if name:
            try:
                pattern = re.compile(name)
            except re.error:
                return nova_error(400, f"Invalid filter name: {name}")
            servers = [s for s in servers if pattern.search(s.name)]
        status = request.args.get("status")
        if status:
            servers = [s for s in servers if s.status == status.upper()]
        items = [
            render_server(s, cloud) if detail else {"id": s.id, "name": s.name, "links": _links("servers", s.id)}
            for s in servers
        ]
    try:
        items, next_link = page(items, request.args, f"{_base()}/servers{'/detail' if detail else ''}")
    except CloudError as exc:
        return nova_error(exc.status, exc.message)
    body = {"servers": items}
    if next_link:
        body["servers_links"] = [{"rel": "next", "href": next_link}]
    return jsonify(body)


@bp.get("/v2.1/servers")
def list_servers():
    return _list_servers(detail=False)


@bp.get("/v2.1/servers/detail")
def list_servers_detail():
    return _list_servers(detail=True)


@bp.post("/v2.1/servers")
def create_server():
    body = (request.get_json(silent=True) or {}).get("server")
    if not isinstance(body, dict):
        return nova_error(400, "Invalid input for field/attribute server.")
    server = _cloud().create_server(body)
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
def get_server(server_id):
    cloud = _cloud()
    with cloud.lock:
        return jsonify({"server": render_server(cloud.get_server(server_id), cloud)})


@bp.delete("/v2.1/servers/<server_id>")
def delete_server(server_id):
    _cloud().delete_server(server_id)
    return "", 204


@bp.post("/v2.1/servers/<server_id>/action")
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
def get_metadata(server_id):
    return jsonify({"metadata": dict(_cloud().get_server(server_id).metadata)})


@bp.post("/v2.1/servers/<server_id>/metadata")
@bp.put("/v2.1/servers/<server_id>/metadata")
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
def get_metadata_item(server_id, key):
    metadata = _cloud().get_server(server_id).metadata
    if key not in metadata:
        return nova_error(404, "Metadata item was not found")
    return jsonify({"meta": {key: metadata[key]}})


@bp.put("/v2.1/servers/<server_id>/metadata/<key>")
def set_metadata_item(server_id, key):
    meta = _valid_metadata((request.get_json(silent=True) or {}).get("meta"))
    if list(meta) != [key]:
        return nova_error(400, "Request body and URI mismatch")
    cloud = _cloud()
    with cloud.lock:
        cloud.get_server(server_id).metadata.update(meta)
    return jsonify({"meta": meta})


@bp.delete("/v2.1/servers/<server_id>/metadata/<key>")
def delete_metadata_item(server_id, key):
    cloud = _cloud()
    with cloud.lock:
        if cloud.get_server(server_id).metadata.pop(key, None) is None:
            return nova_error(404, "Metadata item was not found")
    return "", 204


# --- flavors, keypairs, limits ----------------------------------------------------------


def _render_flavor(f, detail: bool) -> dict:
    body = {"id": f.id, "name": f.name, "links": _links("flavors", f.id)}
    if detail:
        body.update(
            {
                "vcpus": f.vcpus,
                "ram": f.ram,
                "disk": f.disk,
                "swap": "",
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "OS-FLV-DISABLED:disabled": False,
                "os-flavor-access:is_public": True,
                "rxtx_factor": 1.0,
            }
        )
    return body


@bp.get("/v2.1/flavors")
@bp.get("/v2.1/flavors/detail")
def list_flavors():
    detail = request.path.endswith("/detail")
    return jsonify({"flavors": [_render_flavor(f, detail) for f in _cloud().flavors.values()]})


@bp.get("/v2.1/flavors/<flavor_id>")
def get_flavor(flavor_id):
    flavor = _cloud().flavors.get(flavor_id)
    if flavor is None:
        return nova_error(404, f"Flavor {flavor_id} could not be found.")
    return jsonify({"flavor": _render_flavor(flavor, True)})


def _render_keypair(kp, full: bool) -> dict:
    body = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint}
    if full:
        body.update(
            {
                "user_id": _cloud().user_id,
                "created_at": kp.created_at,
                "deleted": False,
                "id": abs(hash(kp.name)) % 10**6,
            }
        )
    return body


@bp.get("/v2.1/os-keypairs")
def list_keypairs():
    return jsonify({"keypairs": [{"keypair": _render_keypair(kp, False)} for kp in _cloud().keypairs.values()]})


@bp.post("/v2.1/os-keypairs")
def create_keypair():
    body = (request.get_json(silent=True) or {}).get("keypair") or {}
    if not body.get("public_key"):
        return nova_error(400, "The simulator only imports keypairs: public_key is required.")
    kp = _cloud().import_keypair(str(body.get("name") or ""), body["public_key"])
    return jsonify({"keypair": _render_keypair(kp, False) | {"user_id": _cloud().user_id}})


@bp.get("/v2.1/os-keypairs/<name>")
def get_keypair(name):
    kp = _cloud().keypairs.get(name)
    if kp is None:
        return nova_error(404, f"Keypair {name} not found for user {_cloud().user_id}")
    return jsonify({"keypair": _render_keypair(kp, True)})


@bp.delete("/v2.1/os-keypairs/<name>")
def delete_keypair(name):
    _cloud().delete_keypair(name)
    return "", 202


@bp.get("/v2.1/limits")
def limits():
    cloud = _cloud()
    with cloud.lock:
        used = len(cloud.servers)
    absolute = {
        "maxTotalInstances": cloud.config.max_servers,
        "totalInstancesUsed": used,
        "maxTotalCores": -1,
        "totalCoresUsed": 0,
        "maxTotalRAMSize": -1,
        "totalRAMUsed": 0,
    }
    return jsonify({"limits": {"absolute": absolute, "rate": []}})
