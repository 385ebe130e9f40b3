"""One access-log line per request, on the ``scheduler_server.access`` logger.

The path is logged without its query string: ``?token=`` must never reach a log.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

log = logging.getLogger("scheduler_server.access")


def install_access_log(app: Flask) -> None:
    @app.before_request
    def _start_clock():
        g.access_started = time.monotonic()

    @app.after_request
    def _log_request(response):
        started = g.get("access_started")
        took = (time.monotonic() - started) * 1000 if started is not None else 0.0
        log.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote_addr,
            request.method,
            request.path,
            response.status_code,
            response.calculate_content_length() or "-",
            took,
        )
        return response
