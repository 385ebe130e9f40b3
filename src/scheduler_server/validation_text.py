"""One wording for pydantic validation errors: which field, and what is wrong with it.

Every client-facing 400 names its field the same way, whichever API raised it;
the configuration file and a policy's config use ``problem_text`` with their own
word for a key the model does not take.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# Parts of a pydantic error location that are validator or container names, not fields.
_NOT_FIELDS = ("function-", "list[", "dict[")


def problem_text(error: Any, *, unknown: str = "unknown field") -> str:
    """What is wrong, in words, for one of ``ValidationError.errors()``; ``unknown`` names an extra key."""
    kind = error["type"]
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return unknown
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return error["msg"]


def field_and_problem(exc: ValidationError, default_field: str) -> tuple[str, str, str]:
    """``(dotted field, problem, pydantic error type)`` for the first error of ``exc``."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"] if not (isinstance(p, str) and p.startswith(_NOT_FIELDS))]
    return ".".join(loc) or default_field, problem_text(error), error["type"]
