"""GET / : is the service up, and which version (the pipeline seed's health check). Needs no token."""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel

from .. import __version__
from .openapi import spec

bp = Blueprint("health", __name__)


class Health(BaseModel):
    request: str
    content: dict[str, str]


@spec.operation("/", "get", "Health check: the service is up", ["health"], responses={200: ("Up, with its version", Health)})
@bp.get("/")
def health():
    return jsonify({"request": "success", "content": {"status": "ok", "version": __version__}})
