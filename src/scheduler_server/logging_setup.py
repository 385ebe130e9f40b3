"""Log format and handlers; every line made while serving a request carries its id."""

from __future__ import annotations

import logging

from flask import g, has_request_context

from scheduler_server.config import LoggingSettings

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(settings: LoggingSettings) -> None:
    root = logging.getLogger()
    root.setLevel(settings.level)
    if any(getattr(h, "_scheduler_server", False) for h in root.handlers):
        return
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.file is not None:
        path = settings.file.expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in handlers:
        handler._scheduler_server = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
