"""Strings that must match a published pattern, checked with the same semantics the document implies.

pydantic's own ``pattern`` uses Rust's regex, whose ``$`` differs from
Python's (a JSON-schema validator in Python, and a client generating strings
from the pattern, accept a trailing newline before ``$``). Checking with
Python's ``re.search`` keeps what the server accepts and what the document
allows the same set.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field


def matching(pattern: str, what: str, **field: Any) -> Any:
    """A ``str`` type that must match ``pattern`` (published as the schema's ``pattern``); ``what`` explains it."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            shown = repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
            raise ValueError(f"must be {what}, not {shown}")
        return value

    return Annotated[str, AfterValidator(check), Field(json_schema_extra={"pattern": pattern}, **field)]
