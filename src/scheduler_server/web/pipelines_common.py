"""What the two pipeline blueprints share: the service on the app, the token guard, JSON body parsing.

The ``PipelineService`` is built when the blueprints are registered (so a bad
configuration fails at start), but its dispatcher thread starts only on the
first pipeline request or when ``scheduler-server serve`` boots its worker
(``start_pipelines``): building the app never starts threads by itself.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app, request

from ..config import ConfigError
from ..pipelines.clouds.base import BackendConfigError
from ..pipelines.migrations import SchemaError
from ..pipelines.secrets import SecretError
from ..pipelines.service import PipelineService
from ..pipelines.store_errors import StoreUnavailable
from ..startup_error import StartupError
from .auth import TokenAuth, warn_if_open
from .openapi import spec

EXTENSION = "pipelines"

spec.security_schemes.setdefault("bearerAuth", {"type": "http", "scheme": "bearer", "description": "A line of pipelines.tokens_file."})
spec.security_schemes.setdefault("tokenQuery", {"type": "apiKey", "in": "query", "name": "token"})


class BodyError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Pipelines:
    """The pipeline service and its token check, as one Flask extension."""

    def __init__(self, app: Flask):
        try:
            self.service = PipelineService(app.config["SETTINGS"])
        except (BackendConfigError, SecretError) as exc:
            raise ConfigError(str(exc)) from None
        except (StoreUnavailable, SchemaError) as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:  # e.g. the data directory cannot be made
            raise StartupError(f"{exc.filename or 'data directory'}: {exc.strerror or exc}") from None
        self.auth = TokenAuth(lambda: self.service.settings.pipelines.tokens_file)
        warn_if_open(self.auth)


def install(app: Flask) -> None:
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = Pipelines(app)


def start_pipelines(app: Flask) -> None:
    """Start the dispatcher in this process now (gunicorn worker boot) rather than on the first request."""
    install(app)
    app.extensions[EXTENSION].service.ensure_started()


def pipelines() -> Pipelines:
    return current_app.extensions[EXTENSION]


def service() -> PipelineService:
    return pipelines().service


def guard() -> None:
    """before_request of both pipeline blueprints: start the dispatcher here if needed, then check the token."""
    ext = pipelines()
    ext.service.ensure_started()
    ext.auth.check(request)


def json_body(*, required: bool = True) -> Any:
    """The request's JSON, or BodyError naming the problem. ``None`` if empty and not required."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BodyError("request body: empty; send JSON")
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise BodyError(f"request body: not valid JSON ({reason})") from None


def parse_ids(values: list[Any]) -> list[int]:
    ids = []
    for value in values:
        parts = value.split(",") if isinstance(value, str) else [value]
        for part in parts:
            if isinstance(part, bool):
                raise BodyError(f"id: {part!r} is not a pipeline id (an integer)")
            try:
                ids.append(int(str(part).strip()))
            except ValueError:
                raise BodyError(f"id: {part!r} is not a pipeline id (an integer)") from None
    return ids
