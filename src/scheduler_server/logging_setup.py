"""Log format and handlers; every line made while serving a request carries its id.

The ``logging:`` section of the settings lives here, with the code that reads it. ``format: json``
writes one JSON object per line (time, level, logger, message, and request_id, pipeline_id, instance
and exception where they apply) for a log collector; ``text`` (the default) is the line below.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from flask import g, has_request_context
from pydantic import BaseModel, ConfigDict, Field

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    file: Path | None = Field(None, description="Also log to this file (stderr is always used).")
    format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per line (docs/metrics.md)."
    )


#: Fields of the work being done (``pipeline_id``, ``instance``) that every log line made meanwhile carries.
_context: contextvars.ContextVar[tuple[tuple[str, object], ...]] = contextvars.ContextVar("log_context", default=())


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Within the block, log records of this thread (or task) carry ``fields`` as attributes."""
    token = _context.set(tuple({**dict(_context.get()), **fields}.items()))
    try:
        yield
    finally:
        _context.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        for key, value in _context.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


#: The fields of ``log_context`` (and the request id) a JSON line carries when a record has them.
CONTEXT_FIELDS = ("request_id", "pipeline_id", "instance")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a message's newlines are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None and value != "-":
                line[key] = value if isinstance(value, int | float | str) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


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
        handler.setFormatter(JsonFormatter() if settings.format == "json" else logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
