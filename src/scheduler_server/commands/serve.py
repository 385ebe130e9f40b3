"""``scheduler-server serve``: run the HTTP service (waitress, see ``http_server``) and the pipeline dispatcher in one process."""

from __future__ import annotations

import logging

import click

from scheduler_server.commands.common import config_option, settings_or_exit, start_failure
from scheduler_server.startup_error import ConfigError

log = logging.getLogger("scheduler_server.serve")


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: server.port, 8010).")
@config_option
def command(host: str | None, port: int | None, config_path: str | None) -> None:
    """Start the service (embedded defaults: local backend, SQLite, built-in policies)."""
    from scheduler_server.app import create_app
    from scheduler_server.http_server import create_server, serve_until_stopped
    from scheduler_server.web.access_log import install_access_log
    from scheduler_server.web.pipelines.lifecycle import start_pipelines

    settings = settings_or_exit(config_path)
    host = host or settings.server.host
    port = port or settings.server.port
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise start_failure(exc) from None
    install_access_log(app)
    try:
        server = create_server(app, host, port, settings.server)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # Bound first, so a second copy on a taken port exits before it touches the pipelines.
    try:
        start_pipelines(app)
    except ConfigError as exc:
        server.close()
        raise start_failure(exc) from None
    log.info("serving on http://%s:%d", host, port)
    serve_until_stopped(server)
    log.info("stopped")
