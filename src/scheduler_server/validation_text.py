"""One wording for pydantic validation errors: which field, and what is wrong with it.

Every client-facing 400 names its field the same way, whichever API raised it.
"""

from __future__ import annotations

from pydantic import ValidationError

# Parts of a pydantic error location that are validator or container names, not fields.
_NOT_FIELDS = ("function-", "list[", "dict[")


def field_and_problem(exc: ValidationError, default_field: str) -> tuple[str, str, str]:
    """``(dotted field, problem, pydantic error type)`` for the first error of ``exc``."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"] if not (isinstance(p, str) and p.startswith(_NOT_FIELDS))]
    field = ".".join(loc) or default_field
    kind = error["type"]
    if kind == "missing":
        problem = "missing (required)"
    elif kind == "extra_forbidden":
        problem = "unknown field"
    elif kind == "value_error":
        problem = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        problem = error["msg"]
    return field, problem, kind
