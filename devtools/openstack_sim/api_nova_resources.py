"""Nova's flavors (with ``os-extra_specs``), keypairs, limits and quota sets.

The quota sets and limits report the simulator's real limits: ``max_servers``
instances and ``fip_pool_size`` floating IPs (below 2.36, where Nova still
proxied network quotas); everything the simulator does not limit is -1
(unlimited), with what is in use counted from the cloud's state.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from . import microversion
from .api_nova import nova_error
from .microversion import at_least
from .model import CloudError
from .paging import page
from .strict import accepts

bp = Blueprint("nova_resources", __name__, url_prefix="/compute/v2.1")
bp.after_request(microversion.add_headers)


def _cloud():
    return current_app.config["SIM"].cloud


def _links(kind: str, ident: str) -> list[dict]:
    base = current_app.config["SIM"].config.base_url + "/compute/v2.1"
    return [{"rel": "self", "href": f"{base}/{kind}/{ident}"}, {"rel": "bookmark", "href": f"{base}/{kind}/{ident}"}]


# --- flavors ----------------------------------------------------------------------------


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


@bp.get("/flavors")
@bp.get("/flavors/detail")
@accepts(query={"is_public", "minRam", "minDisk", "sort_key", "sort_dir", "limit", "marker"})
def list_flavors():
    """Nova's flavor list: every flavor here is public, which is all a non-admin sees whatever ``is_public`` says."""
    detail = request.path.endswith("/detail")
    flavors = list(_cloud().flavors.values())
    for param, attr in (("minRam", "ram"), ("minDisk", "disk")):
        raw = request.args.get(param)
        if raw is not None:
            if not raw.isdigit():
                raise CloudError(400, f"Invalid {param} filter [{raw}]")
            flavors = [f for f in flavors if getattr(f, attr) >= int(raw)]
    key = {"flavorid": "id", "id": "id"}.get(request.args.get("sort_key", "flavorid"), request.args.get("sort_key"))
    if key not in ("id", "name", "vcpus", "ram", "disk"):
        raise CloudError(400, f"not simulated: sorting flavors by {request.args.get('sort_key')!r}")
    flavors.sort(key=lambda f: getattr(f, key), reverse=request.args.get("sort_dir") == "desc")
    items, next_link = page([_render_flavor(f, detail) for f in flavors], request.args, request.base_url)
    body: dict = {"flavors": items}
    if next_link:
        body["flavors_links"] = [{"rel": "next", "href": next_link}]
    return jsonify(body)


def _flavor(flavor_id: str):
    flavor = _cloud().flavors.get(flavor_id)
    if flavor is None:
        raise CloudError(404, f"Flavor {flavor_id} could not be found.")
    return flavor


@bp.get("/flavors/<flavor_id>")
@accepts()
def get_flavor(flavor_id):
    return jsonify({"flavor": _render_flavor(_flavor(flavor_id), True)})


@bp.get("/flavors/<flavor_id>/os-extra_specs")
@accepts()
def get_extra_specs(flavor_id):
    return jsonify({"extra_specs": dict(_flavor(flavor_id).extra_specs)})


@bp.get("/flavors/<flavor_id>/os-extra_specs/<key>")
@accepts()
def get_extra_spec(flavor_id, key):
    specs = _flavor(flavor_id).extra_specs
    if key not in specs:
        return nova_error(404, f"Flavor {flavor_id} has no extra specs with key {key}.")
    return jsonify({key: specs[key]})


# --- keypairs ---------------------------------------------------------------------------


def _render_keypair(kp, full: bool) -> dict:
    body = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint}
    if at_least(2):
        body["type"] = kp.type
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


@bp.get("/os-keypairs")
@accepts(query={"limit", "marker"})
def list_keypairs():
    keypairs = sorted(_cloud().keypairs.values(), key=lambda kp: kp.name)
    if ("limit" in request.args or "marker" in request.args) and not at_least(35):
        raise CloudError(400, "not simulated: keypair paging below microversion 2.35 (Nova ignores it there)")
    marker, limit = request.args.get("marker"), request.args.get("limit")
    if marker:
        names = [kp.name for kp in keypairs]
        if marker not in names:
            raise CloudError(400, f"marker [{marker}] not found")
        keypairs = keypairs[names.index(marker) + 1 :]
    body: dict = {"keypairs": [{"keypair": _render_keypair(kp, False)} for kp in keypairs]}
    if limit:
        if not limit.isdigit():
            raise CloudError(400, f"Invalid input for query parameters limit. Value: {limit}.")
        if len(keypairs) > int(limit):
            body["keypairs"] = body["keypairs"][: int(limit)]
            last = keypairs[int(limit) - 1].name if int(limit) else ""
            body["keypairs_links"] = [{"rel": "next", "href": f"{request.base_url}?limit={limit}&marker={last}"}]
    return jsonify(body)


@bp.post("/os-keypairs")
@accepts(body={"keypair": {"name", "public_key", "type"}})
def create_keypair():
    body = (request.get_json(silent=True) or {}).get("keypair") or {}
    if "type" in body and not at_least(2):
        return nova_error(
            400,
            "Invalid input for field/attribute keypair. Additional properties are not allowed ('type' was unexpected)",
        )
    if body.get("type", "ssh") != "ssh":
        return nova_error(400, f"not simulated: keypair type {body.get('type')!r} (only ssh)")
    if not body.get("public_key"):
        return nova_error(400, "The simulator only imports keypairs: public_key is required.")
    kp = _cloud().import_keypair(str(body.get("name") or ""), body["public_key"])
    return jsonify({"keypair": _render_keypair(kp, False) | {"user_id": _cloud().user_id}})


@bp.get("/os-keypairs/<name>")
@accepts()
def get_keypair(name):
    kp = _cloud().keypairs.get(name)
    if kp is None:
        return nova_error(404, f"Keypair {name} not found for user {_cloud().user_id}")
    return jsonify({"keypair": _render_keypair(kp, True)})


@bp.delete("/os-keypairs/<name>")
@accepts()
def delete_keypair(name):
    _cloud().delete_keypair(name)
    return "", 202


# --- limits and quota sets ----------------------------------------------------------------


def usage(cloud) -> dict[str, tuple[int, int]]:
    """Each quota of the cloud as (limit, in use); -1 is unlimited."""
    with cloud.lock:
        flavors = [cloud.flavors.get(s.flavor_id) for s in cloud.servers.values()]
        quotas = {
            "instances": (cloud.config.max_servers, len(cloud.servers)),
            "cores": (-1, sum(f.vcpus for f in flavors if f)),
            "ram": (-1, sum(f.ram for f in flavors if f)),
            "key_pairs": (-1, len(cloud.keypairs)),
            "metadata_items": (-1, 0),
            "injected_files": (-1, 0),
            "injected_file_content_bytes": (-1, 0),
            "injected_file_path_bytes": (-1, 0),
            "server_groups": (-1, 0),
            "server_group_members": (-1, 0),
        }
        if not at_least(36):  # the network quotas Nova proxied before 2.36
            quotas["floating_ips"] = (cloud.config.fip_pool_size, len(cloud.floating_ips))
            quotas["fixed_ips"] = (-1, len(cloud.ports))
            quotas["security_groups"] = (-1, len(cloud.security_groups))
            quotas["security_group_rules"] = (-1, 0)
    return quotas


LIMIT_NAMES = {
    "instances": ("maxTotalInstances", "totalInstancesUsed"),
    "cores": ("maxTotalCores", "totalCoresUsed"),
    "ram": ("maxTotalRAMSize", "totalRAMUsed"),
    "key_pairs": ("maxTotalKeypairs", None),
    "metadata_items": ("maxServerMeta", None),
    "injected_files": ("maxPersonality", None),
    "injected_file_content_bytes": ("maxPersonalitySize", None),
    "server_groups": ("maxServerGroups", "totalServerGroupsUsed"),
    "server_group_members": ("maxServerGroupMembers", None),
    "floating_ips": ("maxTotalFloatingIps", "totalFloatingIpsUsed"),
    "security_groups": ("maxSecurityGroups", "totalSecurityGroupsUsed"),
    "security_group_rules": ("maxSecurityGroupRules", None),
}


@bp.get("/limits")
@accepts()
def limits():
    absolute = {}
    for quota, (limit, used) in usage(_cloud()).items():
        max_name, used_name = LIMIT_NAMES.get(quota, (None, None))
        if max_name:
            absolute[max_name] = limit
        if used_name:
            absolute[used_name] = used
    absolute["maxImageMeta"] = -1
    return jsonify({"limits": {"absolute": absolute, "rate": []}})


def _quota_set(project_id: str, detail: bool) -> dict:
    cloud = _cloud()
    if project_id != cloud.project_id:
        raise CloudError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
    body: dict = {"id": project_id}
    for quota, (limit, used) in usage(cloud).items():
        body[quota] = {"limit": limit, "in_use": used, "reserved": 0} if detail else limit
    return {"quota_set": body}


@bp.get("/os-quota-sets/<project_id>")
@accepts()
def quota_set(project_id):
    return jsonify(_quota_set(project_id, detail=False))


@bp.get("/os-quota-sets/<project_id>/detail")
@accepts()
def quota_set_detail(project_id):
    return jsonify(_quota_set(project_id, detail=True))


@bp.get("/os-quota-sets/<project_id>/defaults")
@accepts()
def quota_set_defaults(project_id):
    """The simulator's limits are its defaults: there is no way to change a project's quota."""
    return jsonify(_quota_set(project_id, detail=False))
