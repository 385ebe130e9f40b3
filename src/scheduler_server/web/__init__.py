"""HTTP only: parse, validate, call a service, shape the JSON. No business logic here."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import docs, health, pipelines_api, pipelines_common, pipelines_seed, schedule

    for module in (health, schedule, docs, pipelines_seed, pipelines_api):
        app.register_blueprint(module.bp)
    pipelines_common.install(app)
