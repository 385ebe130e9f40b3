"""The /ui/ blueprint: the pages, their static assets, and the headers every UI answer carries."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, abort, render_template, request, send_from_directory, url_for

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
#: The only kinds of file served from static/, with the type each is sent as.
STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}
STATIC_DIR = str(files("scheduler_server.web.ui") / "static")
#: data-page of each page, and its title.
PAGES = {
    "planner": "Planner",
    "sun": "Sun calculator",
    "queue": "Pipeline queue",
    "pipeline": "Pipeline",
    "instances": "Instances",
}


@bp.after_app_request
def _headers(response: Response) -> Response:
    """On every answer under /ui, the routes' own and those no route matched (a 404, 405, the 308 of /ui),
    and on the 302 of / to the UI. A redirect's Location is made relative (path and query): Werkzeug
    builds the strict-slash 308's from the Host header, which a client or a proxy chooses."""
    to_ui = request.path == "/" and response.status_code == 302
    if not to_ui and request.path != "/ui" and not request.path.startswith("/ui/"):
        return response
    location = response.headers.get("Location")
    if response.status_code in (301, 302, 303, 307, 308) and location:
        parts = urlsplit(location)
        path = "/" + parts.path.lstrip("/")  # never "//host": that would be another site
        response.headers["Location"] = urlunsplit(("", "", path, parts.query, ""))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


_IMPORT = re.compile(r'^import [^;]*? from "\./([a-z0-9_-]+\.js)";', re.MULTILINE)


@cache
def modules_of(script: str) -> tuple[str, ...]:
    """Every module ``script`` imports, directly or not, so the page can preload them all at once
    instead of discovering them one level at a time."""
    found: list[str] = []
    todo = [script]
    while todo:
        text = (files("scheduler_server.web.ui") / "static" / todo.pop()).read_text(encoding="utf-8")
        for name in _IMPORT.findall(text):
            if name not in found:
                found.append(name)
                todo.append(name)
    return tuple(sorted(found))


def _page(name: str) -> str:
    script = f"{name}.js"
    return render_template(
        f"{name}.html", page=name, title=PAGES[name], pages=PAGES, script=script, preload=modules_of(script)
    )


@bp.get("/")
def planner():
    return _page("planner")


@bp.get("/sun")
def sun():
    return _page("sun")


@bp.get("/queue")
def queue():
    return _page("queue")


@bp.get("/pipeline")
def pipeline():
    """The page reads ?id= itself; the server only sends the frame."""
    return _page("pipeline")


@bp.get("/pipelines/<int:pipeline_id>")
def pipeline_by_path(pipeline_id: int):
    return _page("pipeline")


@bp.get("/instances")
def instances():
    return _page("instances")


@cache
def assets_version() -> str:
    """A digest of every shipped asset: the path segment that lets browsers keep them for good."""
    digest = hashlib.sha256()
    for path in sorted((files("scheduler_server.web.ui") / "static").iterdir(), key=lambda p: p.name):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@bp.app_template_global()
def ui_asset(name: str) -> str:
    """The URL of a static asset under this build's version, e.g. /ui/static/<version>/dom.js.

    The scripts import each other by relative paths, so they resolve under the same version."""
    return url_for("ui.versioned_static", version=assets_version(), filename=name)


@bp.get("/static/<version>/<path:filename>")
def versioned_static(version: str, filename: str):
    """Kept a year by the browser when the version is this build's (it changes with any asset)."""
    response = _asset(filename)
    if version == assets_version():
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/static/<path:filename>")
def static(filename: str):
    return _asset(filename)


def _asset(filename: str) -> Response:
    kind = STATIC_TYPES.get(PurePosixPath(filename).suffix)
    if kind is None or "/" in filename:
        abort(404)
    response = send_from_directory(STATIC_DIR, filename, mimetype=kind)
    response.headers["Cache-Control"] = "no-cache"
    return response
