"""``scheduler-server serve``: run the HTTP service (waitress, see ``http_server``) and the pipeline dispatcher.

With ``--workers 1`` (``server.workers``, the default) both run in this one process. With more,
this process binds the port and becomes the master of that many forked workers (``workers``),
each of which builds the app and its pipeline service after the fork and serves the same sockets.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import signal
from functools import partial

import click

from scheduler_server.commands.common import config_option, settings_or_exit, start_failure
from scheduler_server.config import Settings
from scheduler_server.startup_error import ConfigError

log = logging.getLogger("scheduler_server.serve")

#: What every worker imports; importing starts no thread and opens nothing.
_SHARED_MODULES = (
    "scheduler_server.app",
    "scheduler_server.web.access_log",
    "scheduler_server.web.pipelines.lifecycle",
)


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: server.port, 8010).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes serving the port (default: server.workers, 1: this process alone).",
)
@config_option
def command(host: str | None, port: int | None, workers: int | None, config_path: str | None) -> None:
    """Start the service (embedded defaults: local backend, SQLite, built-in policies)."""
    settings = settings_or_exit(config_path)
    host = host or settings.server.host
    port = port or settings.server.port
    count = workers or settings.server.workers
    if count > 1:
        _serve_with_workers(settings, host, port, count)
    else:
        _serve_alone(settings, host, port)


def _serve_alone(settings: Settings, host: str, port: int) -> None:
    from scheduler_server.app import create_app
    from scheduler_server.http_server import create_server, serve_until_stopped
    from scheduler_server.web.access_log import install_access_log
    from scheduler_server.web.pipelines.lifecycle import start_pipelines, stop_pipelines

    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise start_failure(exc) from None
    install_access_log(app)
    try:
        server = create_server(app, host, port, settings.server)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    # Bound first, so a second copy on a taken port exits before it touches the pipelines.
    try:
        start_pipelines(app)
    except ConfigError as exc:
        server.close()
        raise start_failure(exc) from None
    log.info("serving on http://%s:%d", host, port)
    serve_until_stopped(server)
    stop_pipelines(app)
    log.info("stopped")


def _serve_with_workers(settings: Settings, host: str, port: int, count: int) -> None:
    from scheduler_server.http_server import bind_sockets
    from scheduler_server.logging_setup import configure_logging
    from scheduler_server.web.auth import warn_for_workers
    from scheduler_server.workers import Master, metrics_directory

    configure_logging(settings.logging)
    for module in _SHARED_MODULES:  # imported once, before the fork: shared by the workers copy-on-write
        importlib.import_module(module)
    try:
        sockets = bind_sockets(host, port)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    try:
        metrics_dir = metrics_directory(settings.data_path)
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc.filename}: {exc.strerror or exc}") from None
    log.info("serving on http://%s:%d with %d workers", host, port, count)
    warn_for_workers(settings.pipelines.tokens_file)  # once here, not once per worker
    try:
        failure = Master(count, partial(_worker, settings, host, port, sockets)).run()
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)  # every worker has ended: no series is live
    if failure is not None:
        raise click.ClickException(failure)
    log.info("stopped")


def _worker(settings: Settings, host: str, port: int, sockets, reporter) -> int | None:
    """One worker, after the fork: its own app, database connections and dispatcher, on the master's sockets."""
    from scheduler_server.app import create_app
    from scheduler_server.http_server import create_server, serve_until_stopped
    from scheduler_server.web.access_log import install_access_log
    from scheduler_server.web.pipelines.lifecycle import start_pipelines, stop_pipelines
    from scheduler_server.workers import CANNOT_START

    pending: list[int] = []  # SIGTERM/SIGINT during the start: it finishes, then the worker stops cleanly
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    try:
        app = create_app(settings)
        install_access_log(app)
        server = create_server(app, host, port, settings.server, sockets=sockets)
        start_pipelines(app)
    except ConfigError as exc:
        reporter.failed(start_failure(exc).message)
        return CANNOT_START
    reporter.ready()
    serve_until_stopped(server, pending)
    stop_pipelines(app)
    return None


def _cannot_listen(host: str, port: int, exc: OSError) -> click.ClickException:
    return click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
