"""A worker of ``serve --workers N`` that gets SIGTERM while it is still starting (its app, its dispatcher)
finishes starting, then stops cleanly (the pipelines' stop: the lease handed over), instead of dying at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(
    """
    import os, signal, sys, time, types
    import scheduler_server.app as app_module
    import scheduler_server.http_server as http_server
    import scheduler_server.web.access_log as access_log
    import scheduler_server.web.pipelines.lifecycle as lifecycle
    from scheduler_server.commands import serve

    class Server:
        def run(self):
            print("served", flush=True)

    def start(app):
        os.kill(os.getpid(), signal.SIGTERM)  # the master stops while this worker starts
        time.sleep(0.2)
        print("started", flush=True)

    app_module.create_app = lambda settings: object()
    access_log.install_access_log = lambda app: None
    http_server.create_server = lambda *args, **kwargs: Server()
    lifecycle.start_pipelines = start
    lifecycle.stop_pipelines = lambda app: print("stopped pipelines", flush=True)
    reporter = types.SimpleNamespace(ready=lambda: print("ready", flush=True), failed=print)
    code = serve._worker(types.SimpleNamespace(server=None), "127.0.0.1", 0, [], reporter)
    print("returned", code, flush=True)
    """
)


def test_a_sigterm_while_a_worker_starts_stops_it_cleanly_after_the_start():
    done = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.split("\n")[:4] == ["started", "ready", "stopped pipelines", "returned None"], done.stdout
    assert "served" not in done.stdout
