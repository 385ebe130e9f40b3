"""Serves the OpenAPI document and an interactive Swagger UI page.

Swagger UI's files come from the swagger-ui-bundle-v2 package, so the page
works on a machine without internet access.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from scheduler_server.web.openapi import spec

bp = Blueprint("docs", __name__, url_prefix="/api/v1")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scheduler-server API</title>
  <link rel="stylesheet" href="docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(spec.document(server_url=request.host_url.rstrip("/")))


@bp.get("/docs")
def docs_page():
    # Relative asset URLs resolve against /api/v1/, so the page works behind a prefix too.
    return Response(_PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str):
    return send_from_directory(swagger_ui_path, filename)
