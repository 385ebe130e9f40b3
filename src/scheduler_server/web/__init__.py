"""HTTP only: parse, validate, call a service, shape the JSON. No business logic here."""

from __future__ import annotations

from flask import Flask, current_app, request

from scheduler_server.web.bodies import BodyError
from scheduler_server.web.errors import status_style
from scheduler_server.web.openapi import unknown_query_parameter


def register_blueprints(app: Flask) -> None:
    from scheduler_server.web import docs, health, metrics, schedule, sky, xnat_api
    from scheduler_server.web.pipelines import api as pipelines_api
    from scheduler_server.web.pipelines import legacy_api as pipelines_seed
    from scheduler_server.web.pipelines import lifecycle as pipelines_common
    from scheduler_server.web.ui import pages as ui_pages

    for module in (health, schedule, sky, docs, pipelines_seed, pipelines_api, xnat_api, ui_pages, metrics):
        app.register_blueprint(module.bp)
    pipelines_common.install(app)
    metrics.install(app)
    app.before_request(_refuse_unknown_query_parameters)
    # Raised before a view runs; the seed and REST blueprints shape it in their own style.
    app.register_error_handler(BodyError, lambda exc: status_style(exc.status, exc.message, exc.field))


def _refuse_unknown_query_parameters() -> None:
    """A query parameter the operation's document does not list is a 400, as the document allows none."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    name = unknown_query_parameter(view, request.method, request.args.keys())
    if name is not None:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise BodyError(f"{shown}: unknown query parameter", field=shown)
