"""The Flask application: ``create_app(settings)`` and, for gunicorn, ``app``.

``gunicorn scheduler_server.app:app`` builds the app on first access of ``app``
from the configuration found as ``config.load_settings`` describes, so merely
importing this module reads no files.
"""

from __future__ import annotations

import sys

from flask import Flask
from flask_cors import CORS

from scheduler_server import metrics
from scheduler_server.config import Settings, load_settings
from scheduler_server.logging_setup import configure_logging
from scheduler_server.observing.policies.registry import available_policies
from scheduler_server.startup_error import ConfigError, StartupError
from scheduler_server.web import register_blueprints
from scheduler_server.web.errors import install_error_handlers


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings if settings is not None else load_settings()
    metrics.setup(settings.data_path)  # before any series exists: where the workers' series meet
    configure_logging(settings.logging)
    app = Flask("scheduler_server")
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.json.sort_keys = False
    if settings.server.cors_origins:
        CORS(app, resources={r"/api/*": {"origins": settings.server.cors_origins}})
    install_error_handlers(app)
    register_blueprints(app)
    # Load the policy plug-ins now, so the first request does not pay for their imports.
    available_policies()
    return app


def _app_from_environment() -> Flask:
    """The app gunicorn serves: built in the worker, whose pipeline dispatcher starts at once.

    Starting it here, not on the first pipeline request, means queued and running
    pipelines are recovered as soon as the service is back after a crash.
    """
    from scheduler_server.web.pipelines.lifecycle import start_pipelines

    try:
        app = create_app()
        start_pipelines(app)
        return app
    except ConfigError as exc:
        # One line, no traceback: the operator needs the file, the key and the problem.
        kind = "cannot start" if isinstance(exc, StartupError) else "bad configuration"
        sys.stderr.write(f"scheduler-server: {kind}: {exc}\n")
        # Exit code 4 is gunicorn's APP_LOAD_ERROR: the master stops instead of respawning workers.
        raise SystemExit(4) from None


_app: Flask | None = None


def __getattr__(name: str):
    global _app
    if name == "app":
        if _app is None:
            _app = _app_from_environment()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
