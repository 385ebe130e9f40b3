"""Glance (image API v2): version discovery and image lookup by id or name."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .model import CloudError, Image
from .paging import page
from .strict import accepts

FILTERS = ("name", "status", "visibility", "os_hidden", "protected", "container_format", "disk_format")
bp = Blueprint("glance", __name__, url_prefix="/image")


def _base() -> str:
    return current_app.config["SIM"].config.base_url + "/image"


@bp.get("/")
@bp.get("")
@accepts()
def versions():
    items = [
        {
            "id": v,
            "status": "CURRENT" if v == "v2.9" else "SUPPORTED",
            "links": [{"rel": "self", "href": f"{_base()}/v2/"}],
        }
        for v in ("v2.9", "v2.0")
    ]
    return jsonify({"versions": items}), 300


def _render(image: Image) -> dict:
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "container_format": "bare",
        "disk_format": "qcow2",
        "min_disk": 0,
        "min_ram": 0,
        "size": 1 << 28,
        "checksum": None,
        "created_at": image.created_at,
        "updated_at": image.created_at,
        "tags": [],
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }


@bp.get("/v2/images")
@accepts(query={*FILTERS, "limit", "marker"})
def list_images():
    items = [_render(i) for i in current_app.config["SIM"].cloud.images.values()]
    for key in FILTERS:
        if key in request.args:
            wanted = request.args[key].lower() if isinstance(items and items[0][key], bool) else request.args[key]
            items = [i for i in items if (str(i[key]).lower() if isinstance(i[key], bool) else str(i[key])) == wanted]
    try:
        items, next_link = page(items, request.args, f"{_base()}/v2/images")
    except CloudError as exc:
        return jsonify(
            {"message": exc.message, "code": f"{exc.status} Bad Request", "title": "Bad Request"}
        ), exc.status
    body = {"images": items, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if next_link:
        body["next"] = next_link.removeprefix(current_app.config["SIM"].config.base_url + "/image")
    return jsonify(body)


@bp.get("/v2/images/<image_id>")
@accepts()
def get_image(image_id):
    image = current_app.config["SIM"].cloud.images.get(image_id)
    if image is None:
        return jsonify(
            {"message": f"No image found with ID {image_id}", "code": "404 Not Found", "title": "Not Found"}
        ), 404
    return jsonify(_render(image))
