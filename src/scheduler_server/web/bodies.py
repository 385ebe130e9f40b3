"""Reading a request's JSON body with limits, for every JSON route.

The body is read with a bound whether or not it has a Content-Length (a
chunked body is refused with 413 once it passes ``server.max_body_bytes``,
never cut and parsed). Parsing refuses what Python's ``json`` would accept but
JSON does not (``NaN``, ``Infinity``), integers longer than any field allows
(Python refuses to convert more than 4,300 digits), and nesting deeper than
``MAX_DEPTH`` (a 10,000-level array would exhaust the recursion limit).
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

#: Deepest nesting of arrays and objects a body may have; the deepest real request
#: (a policy config with per-rule settings) has 5 levels.
MAX_DEPTH = 32
#: Longest integer literal: every integer field is at most 64-bit (20 characters with its sign).
MAX_INT_DIGITS = 20

_READ_CHUNK = 64 * 1024
_CACHE_KEY = "scheduler_server.body"


class BodyError(Exception):
    """A body (or query) the route cannot take: answered with ``status`` (400 or 413), ``message`` and ``field``."""

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


def read_body() -> bytes:
    """The raw body, at most ``MAX_CONTENT_LENGTH`` bytes; RequestEntityTooLarge (413) beyond it."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    cached = request.environ.get(_CACHE_KEY)
    if cached is not None:
        return cached
    # A body without a length (chunked, under gunicorn): the server's own stream, since werkzeug's
    # bounded wrapper stops silently at the limit and would hand a cut document to the parser.
    # Only when the server says that stream ends (wsgi.input_terminated); otherwise werkzeug's is empty.
    terminated = request.content_length is None and request.environ.get("wsgi.input_terminated")
    stream = request.environ["wsgi.input"] if terminated else request.stream
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if limit is not None and size > limit:
            raise RequestEntityTooLarge()
        parts.append(chunk)
        if request.content_length is not None and size >= request.content_length:
            break
    body = b"".join(parts)
    request.environ[_CACHE_KEY] = body
    return body


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BodyError(
            f"request body: an integer of {len(text)} characters; no field takes more than {MAX_INT_DIGITS} digits"
        )
    return int(text)


def _constant(name: str) -> Any:
    raise BodyError(f"request body: not valid JSON ({name} is not a JSON number)")


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; BodyError (400) naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("request body: not valid JSON (not UTF-8)") from None
    try:
        value = json.loads(text, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(f"request body: not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise BodyError(f"request body: nested deeper than the {MAX_DEPTH} levels this server accepts") from None
    if _depth(value) > MAX_DEPTH:
        raise BodyError(f"request body: nested deeper than the {MAX_DEPTH} levels this server accepts")
    return value


def json_body(*, required: bool = True, send: str = "JSON") -> Any:
    """The request's JSON, or BodyError. ``None`` if the body is empty and not required.

    ``send`` says what an empty body should have held (e.g. "a JSON object with t0, t1 and policy").
    """
    raw = read_body()
    if not raw.strip():
        if required:
            raise BodyError(f"request body: empty; send {send}")
        return None
    return parse_json(raw)


def json_object(described: str) -> dict[str, Any]:
    """The request's JSON, which must be an object: ``described`` says which ("a JSON object with t0 and t1")."""
    body = json_body(send=described)
    if not isinstance(body, dict):
        raise BodyError(f"request body: must be {described}, not a JSON {type(body).__name__}")
    return body


def _depth(value: Any) -> int:
    """Nesting depth without recursion: a scalar is 0, ``[]`` is 1."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest
