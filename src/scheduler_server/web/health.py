"""GET / : is the service up, and which version."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import __version__

bp = Blueprint("health", __name__)


@bp.get("/")
def health():
    return jsonify({"request": "success", "content": {"status": "ok", "version": __version__}})
