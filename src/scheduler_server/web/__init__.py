"""HTTP only: parse, validate, call a service, shape the JSON. No business logic here."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import docs, health, schedule

    for module in (health, schedule, docs):
        app.register_blueprint(module.bp)
