"""Keystone v3: version discovery and password authentication with a service catalogue."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, jsonify, request

from .strict import accepts

TOKEN_LIFETIME = timedelta(hours=1)
V3 = {
    "id": "v3.14",
    "status": "stable",
    "updated": "2020-04-07T00:00:00Z",
    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
}

DOMAIN = {"id", "name"}
AUTH_BODY = {
    "identity": {
        "methods": None,
        "password": {"user": {"id": None, "name": None, "password": None, "domain": DOMAIN}},
    },
    "scope": {"project": {"id": None, "name": None, "domain": DOMAIN}},
}
bp = Blueprint("keystone", __name__, url_prefix="/identity")


class TokenStore:
    """Issued tokens and their expiry; other services validate X-Auth-Token against it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> tuple[str, datetime]:
        token = "gAAAA" + secrets.token_urlsafe(48)
        expires = datetime.now(UTC) + TOKEN_LIFETIME
        with self._lock:
            self._expiry[token] = time.time() + TOKEN_LIFETIME.total_seconds()
        return token, expires

    def valid(self, token: str | None) -> bool:
        with self._lock:
            return bool(token) and self._expiry.get(token, 0) > time.time()

    def revoke(self, token: str | None) -> bool:
        with self._lock:
            return self._expiry.pop(token or "", None) is not None


def unauthorized(message: str = "The request you have made requires authentication."):
    response = jsonify({"error": {"code": 401, "title": "Unauthorized", "message": message}})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = f'Keystone uri="{request.host_url}identity"'
    return response


def _version(base: str) -> dict:
    return {**V3, "links": [{"rel": "self", "href": f"{base}/identity/v3/"}]}


@bp.get("/")
@bp.get("")
@accepts()
def versions():
    response = jsonify({"versions": {"values": [_version(current_app.config["SIM"].config.base_url)]}})
    response.status_code = 300
    return response


@bp.get("/v3/")
@bp.get("/v3")
@accepts()
def version():
    return jsonify({"version": _version(current_app.config["SIM"].config.base_url)})


def _check_password(auth: dict, cfg) -> str | None:
    """None if the password credentials match, else why not."""
    identity = auth.get("identity") or {}
    if "password" not in (identity.get("methods") or []):
        return "Only the password method is supported by this simulator."
    user = (identity.get("password") or {}).get("user") or {}
    if user.get("name", user.get("id")) != cfg.username or user.get("password") != cfg.password:
        return "The request you have made requires authentication."
    project = ((auth.get("scope") or {}).get("project")) or {}
    if project and project.get("name", cfg.project_name) != cfg.project_name and project.get("id") is None:
        return f"Project {project.get('name')} not found or not accessible."
    return None


def _catalog(base: str, region: str, project_id: str) -> list[dict]:
    services = [
        ("identity", "keystone", f"{base}/identity"),
        ("compute", "nova", f"{base}/compute/v2.1"),
        ("network", "neutron", f"{base}/network"),
        ("image", "glance", f"{base}/image"),
        ("orchestration", "heat", f"{base}/orchestration/v1/{project_id}"),
    ]
    return [
        {
            "type": kind,
            "name": name,
            "id": f"{kind}-service",
            "endpoints": [
                {"id": f"{kind}-{iface}", "interface": iface, "region": region, "region_id": region, "url": url}
                for iface in ("public", "internal", "admin")
            ],
        }
        for kind, name, url in services
    ]


@bp.post("/v3/auth/tokens")
@accepts(body={"auth": AUTH_BODY})
def issue_token():
    sim = current_app.config["SIM"]
    cfg = sim.config
    body = request.get_json(silent=True) or {}
    problem = _check_password(body.get("auth") or {}, cfg)
    if problem:
        return unauthorized(problem)
    token, expires = sim.tokens.issue()
    cloud = sim.cloud
    domain = {"id": "default", "name": "Default"}
    payload = {
        "token": {
            "methods": ["password"],
            "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "user": {"id": cloud.user_id, "name": cfg.username, "domain": domain, "password_expires_at": None},
            "project": {"id": cloud.project_id, "name": cfg.project_name, "domain": domain},
            "roles": [{"id": "member-role", "name": "member"}, {"id": "reader-role", "name": "reader"}],
            "is_domain": False,
            "catalog": [
                entry
                for entry in _catalog(cfg.base_url, cfg.region, cloud.project_id)
                if cfg.orchestration or entry["type"] != "orchestration"
            ],
        }
    }
    response = jsonify(payload)
    response.status_code = 201
    response.headers["X-Subject-Token"] = token
    return response


@bp.delete("/v3/auth/tokens")
@accepts()
def revoke_token():
    sim = current_app.config["SIM"]
    if not sim.tokens.valid(request.headers.get("X-Auth-Token")):
        return unauthorized()
    if not sim.tokens.revoke(request.headers.get("X-Subject-Token")):
        return jsonify({"error": {"code": 404, "title": "Not Found", "message": "Could not find token."}}), 404
    return "", 204
