"""``scheduler-server serve``: run the HTTP service under gunicorn."""

from __future__ import annotations

import click
from gunicorn.app.base import BaseApplication

from ..config import ConfigError
from .common import config_option, settings_or_exit


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._app


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: server.port, 8010).")
@config_option
def command(host: str | None, port: int | None, config_path: str | None) -> None:
    """Start the service (embedded defaults: local backend, SQLite, built-in policies)."""
    from ..app import create_app

    settings = settings_or_exit(config_path)
    host = host or settings.server.host
    port = port or settings.server.port
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    from ..web.pipelines_common import start_pipelines

    # One worker process with threads: the pipeline dispatcher lives in that process
    # (started once the worker is forked), and the observing policies are CPU-light per request.
    options = {"bind": f"{host}:{port}", "workers": 1, "threads": 8, "accesslog": "-"}
    # %(U)s, not %(r)s: the query string may carry ?token=, which must not reach the log.
    options["access_log_format"] = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    options["post_worker_init"] = lambda worker: start_pipelines(app)
    _Gunicorn(app, options).run()
