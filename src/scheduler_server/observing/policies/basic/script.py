"""The command script: sorunlib calls, in exactly the shape the original server emitted.

Every call used here exists in sorunlib with these arguments (``tests/observing``
checks each emitted call against sorunlib's API). Numbers are rounded to 0.01 deg
and times to whole seconds, written as ISO 8601 UTC with an explicit +00:00, so
the same plan always prints the same bytes.
"""

from __future__ import annotations

from scheduler_server.observing.policies.basic.blocks import Scan, iso
from scheduler_server.observing.policies.basic.slews import Move, Route, Wait

PREAMBLE = """from sorunlib import *
from nextline import disable_trace

with disable_trace():
    initialize(test_mode={test_mode})

smurf.uxm_setup()
smurf.iv_curve()
"""


def number(value: float) -> str:
    return repr(round(float(value), 2) + 0.0)  # + 0.0 turns -0.0 into 0.0


def script(plan: list[tuple[Scan, Route]], test_mode: bool = True) -> str:
    parts = [PREAMBLE.format(test_mode=bool(test_mode))]
    for scan, route in plan:
        parts.append(block(scan, route))
    return "\n".join(parts)


def block(scan: Scan, route: Route | None = None) -> str:
    route = route or Route()
    # Names come from validated patch names or master-schedule files; keep a comment
    # on one line whatever they hold, and quote them as Python literals.
    lines = [f"# {_one_line(scan.name)}"]
    if route.note:
        lines.append(f"# route: {route.note}")
    for step in route.steps:
        if isinstance(step, Wait):
            lines.append(f"wait_until({iso(step.until)!r})")
        elif isinstance(step, Move):
            lines.append(f"acu.move_to({number(step.az)}, {number(step.el)})")
    lines += [
        f"acu.move_to({number(scan.az)}, {number(scan.el)})",
        "smurf.bias_dets()",
        f"wait_until({iso(scan.t0)!r})",
        "smurf.bias_step()",
        f"seq.scan(description={scan.name!r}, stop_time={iso(scan.t1)!r}, width={number(scan.throw)})",
        "smurf.bias_step()",
        "",
    ]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())
