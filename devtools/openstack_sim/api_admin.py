"""The simulator's own control API under ``/_sim`` (not OpenStack): inspect state, inject faults.

``GET /_sim/state`` servers, ports, floating IPs, keypairs, stacks (no parameters: they may be secret) and the config
``PATCH /_sim/config`` change boot_delay, delete_delay, max_servers, fip_pool_size
``GET|POST|DELETE /_sim/faults`` list, add (JSON ``{"kind": ..., ...}``) or clear fault rules
``POST /_sim/servers/<id>/vanish`` make a server disappear now
``POST /_sim/networks`` add a project network (JSON ``{"name": ...}``)
``GET /_sim/requests`` the last requests served (method, path, status, fault)
"""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, jsonify, request

from .config import SimConfig
from .faults import FaultRule
from .strict import accepts

bp = Blueprint("admin", __name__, url_prefix="/_sim")


def _sim():
    return current_app.config["SIM"]


def _bad(message: str):
    return jsonify({"error": message}), 400


@bp.get("/state")
@accepts()
def state():
    cloud = _sim().cloud
    with cloud.lock:
        servers = [
            {
                "id": s.id,
                "name": s.name,
                "status": s.status,
                "task_state": s.task_state,
                "fixed_ip": s.fixed_ip,
                "metadata": dict(s.metadata),
                "fate": s.fate,
                "key_name": s.key_name,
                "ssh": f"{s.fixed_ip}:{cloud.config.ssh_port}" if s.host else None,
                "user_data": base64.b64decode(s.user_data).decode(errors="replace") if s.user_data else None,
            }
            for s in cloud.servers.values()
        ]
        fips = [
            {
                "id": f.id,
                "address": f.floating_ip_address,
                "port_id": f.port_id,
                "description": f.description,
                "forwarding": f.forwarder is not None,
            }
            for f in cloud.floating_ips.values()
        ]
        ports = [{"id": p.id, "device_id": p.device_id, "ip_address": p.ip_address} for p in cloud.ports.values()]
        keypairs = sorted(cloud.keypairs)
        stacks = _stacks(_sim().stacks.stacks.values())
    return jsonify(
        {
            "config": cloud.config.public(),
            "servers": servers,
            "floating_ips": fips,
            "ports": ports,
            "keypairs": keypairs,
            "stacks": stacks,
        }
    )


def _stacks(stacks) -> list[dict]:
    """The stacks as ``state`` lists them (under the cloud's lock), each with its resources in template order."""
    return [
        {
            "id": stack.id,
            "name": stack.name,
            "status": stack.status,
            "status_reason": stack.reason,
            "tags": list(stack.tags),
            "resources": [
                {
                    "name": res.name,
                    "type": res.type,
                    "status": res.status,
                    "physical_id": res.physical_id or None,
                }
                for res in (stack.resources[name] for name in stack.order)
            ],
        }
        for stack in stacks
    ]


@bp.patch("/config")
@accepts(body={key: None for key in SimConfig.MUTABLE})
def patch_config():
    try:
        _sim().config.update(request.get_json(silent=True) or {})
    except ValueError as exc:
        return _bad(str(exc))
    return jsonify(_sim().config.public())


@bp.get("/faults")
@accepts()
def list_faults():
    return jsonify({"faults": _sim().cloud.faults.list()})


@bp.post("/faults")
@accepts(body={key: None for key in set(FaultRule.__dataclass_fields__) - {"fired"}})
def add_fault():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad('expected a JSON object like {"kind": "server_error"}')
    allowed = set(FaultRule.__dataclass_fields__) - {"fired"}
    unknown = set(body) - allowed
    if unknown:
        return _bad(f"{', '.join(sorted(unknown))}: unknown field(s); allowed: {', '.join(sorted(allowed))}")
    try:
        rule = FaultRule(**body)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    _sim().cloud.faults.add(rule)
    return jsonify({"faults": _sim().cloud.faults.list()}), 201


@bp.delete("/faults")
@accepts()
def clear_faults():
    _sim().cloud.faults.clear()
    return "", 204


@bp.post("/servers/<server_id>/vanish")
@accepts()
def vanish(server_id):
    cloud = _sim().cloud
    with cloud.lock:
        if server_id not in cloud.servers:
            return jsonify({"error": f"no server {server_id}"}), 404
    cloud.vanish_server(server_id)
    return "", 204


@bp.post("/networks")
@accepts(body={"name": None})
def add_network():
    """Another project network (a server create without networks then is ambiguous, as in Nova)."""
    name = (request.get_json(silent=True) or {}).get("name")
    if not isinstance(name, str) or not name:
        return _bad("name: a non-empty string is required")
    net = _sim().cloud.add_network(name)
    return jsonify({"id": net.id, "name": net.name}), 201


@bp.get("/requests")
@accepts()
def requests_log():
    return jsonify({"requests": list(_sim().request_log)})
