"""The sat policy's script: the provenance header, the imports, the platform checks and the ops' sorunlib calls.

The shape is the one the observatory's sequencer runs (docs/observing.md): comment header lines, the imports,
``run.initialize()`` under ``disable_trace``, the platform checks, then one line per call. The helpers here are
the only way a value enters a line: numbers through ``num`` (rounded, never ``-0.0``), times through ``iso``
(whole seconds, ``+00:00``), strings through ``lit`` (a Python literal) and free text through ``comment`` (one
line). Names come from plan files and requests, so they are hostile until proven otherwise: a patch called
``x"); import os  #`` stays the text of a string literal or a comment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from scheduler_server.observing.policies.sat.steps import Op

IMPORTS = (
    "import numpy as np",
    "import sorunlib as run",
    "from nextline import disable_trace",
    "import socket",
    "import time",
    "",
    "with disable_trace():",
    "    run.initialize()",
    "",
)


def iso(t: float) -> str:
    """POSIX seconds as ISO 8601 UTC, whole seconds, ``+00:00``."""
    return datetime.fromtimestamp(round(t), tz=UTC).isoformat()


def num(value: float, digits: int = 3) -> str:
    """A finite number rounded to ``digits`` decimals as a Python literal (``-0.0`` becomes ``0.0``)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(round(value, digits) + 0.0)


def lit(text: str) -> str:
    """A string as a Python literal on one line (``repr`` escapes quotes, newlines and control characters)."""
    return repr(str(text))


def one_line(text: str) -> str:
    """Free text folded to one line of printable characters (for comments)."""
    folded = " ".join(str(text).split())
    return "".join(c if c.isprintable() else "?" for c in folded)


def comment(text: str) -> str:
    return f"# {one_line(text)}".rstrip()


@dataclass(frozen=True)
class Header:
    """The script's provenance: who wrote it, from what (plan names), with which config."""

    version: str
    policy: str = "sat"
    preset: str | None = None
    platform: str = "satp1"
    cmb_plan: str | None = None
    cal_plan: str | None = None
    wiregrid_plan: str | None = None
    config_digest: str = ""  # "sha256:<hex>"

    def lines(self) -> list[str]:
        return [
            comment(f"scheduler-server {self.version}"),
            comment(f"policy: {self.policy}, preset: {self.preset}"),
            comment(f"platform: {self.platform}"),
            comment(f"cmb plan: {self.cmb_plan}"),
            comment(f"cal plan: {self.cal_plan}"),
            comment(f"wiregrid plan: {self.wiregrid_plan}"),
            comment(f"config digest: {self.config_digest}"),
        ]


def render(header_lines: Sequence[str], preamble_lines: Sequence[str], ops: Iterable[Op]) -> str:
    """The whole script: header comments, the imports (unless ``preamble_lines`` bring them), checks, then ops.

    Header lines are comments whatever they hold. Every line is checked to be one line: a command holding a
    newline is a bug in its writer, refused here rather than written.
    """
    lines = [comment(line[1:] if line.startswith("#") else line) for line in header_lines]
    body = list(preamble_lines)
    if not _has_imports(body):
        lines += IMPORTS
    lines += body
    for op in ops:
        lines += op.commands
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"a script line holds a line break: {line!r}")
    return "\n".join(lines) + "\n"


def _has_imports(lines: Sequence[str]) -> bool:
    return "import sorunlib as run" in lines
