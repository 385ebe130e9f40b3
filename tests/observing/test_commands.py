"""Every emitted script has the original shape and runs under the real sorunlib (tests/observing/sorun).

Its week-long and per-preset runs are in test_execution.py; here, short windows and a custom config.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta

import pytest

from scheduler_server.observing.policies.basic import script as commands
from scheduler_server.observing.policies.basic.blocks import Scan
from scheduler_server.observing.policies.basic.slews import Move, Route, Wait
from scheduler_server.observing.service import PolicyRequest, run_schedule

from .sorun import Durations, Platform, SunPolicy, run_script


def call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    assert isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name), ast.dump(node)
    return f"{node.value.id}.{node.attr}"


def check_under_sorunlib(script: str, t0: datetime) -> int:
    """The script imports what the sequencer expects, and runs to its end under sorunlib, every call accepted."""
    tree = ast.parse(script)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [
        ("sorunlib", ["*"]),
        ("nextline", ["disable_trace"]),
    ]
    for moment in re.findall(r"'(\d{4}-\d\d-\d\dT[^']*)'", script):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0), f"{moment} is not explicitly UTC"
    # socs' default Sun avoidance in the ACU (20 deg, 1 h) on: the agent refuses a move or scan near the sun
    # with the policy's model's durations, so each move and scan is judged at its real simulated time
    report = run_script(script, t0, Durations.of_model(), Platform(sun=SunPolicy()))
    assert report.ok, report.summary()
    return len(report.ops)


def schedule(t0: str, t1: str, **config) -> str:
    start = datetime.fromisoformat(t0).replace(tzinfo=UTC)
    stop = datetime.fromisoformat(t1).replace(tzinfo=UTC)
    return run_schedule(start, stop, PolicyRequest("basic", config)).commands


@pytest.mark.parametrize(
    "window, config",
    [
        (("2024-03-04 00:00", "2024-03-05 00:00"), {}),
        (("2024-03-04 02:00", "2024-03-04 04:00"), {}),  # night: 12:00-14:00 is sun-cut after its setup
        (
            ("2024-03-04 00:00", "2024-03-05 00:00"),
            {"rules": {"sun-avoidance": {"mode": "box", "min_angle": 6, "min_sun_time": 0}}},
        ),
    ],
)
def test_every_emitted_call_runs_under_sorunlib(window, config):
    text = schedule(*window, **config)
    assert check_under_sorunlib(text, datetime.fromisoformat(window[0]).replace(tzinfo=UTC)) >= 5


def test_the_script_has_the_original_shape():
    text = schedule("2024-03-04 00:00", "2024-03-04 06:00")
    head = "from sorunlib import *\nfrom nextline import disable_trace\n\nwith disable_trace():\n    initialize(test_mode=True)\n\nsmurf.uxm_setup()\nsmurf.iv_curve()\n\n# "
    assert text.startswith(head)
    first = text[len(head) - 2 :].split("\n\n")[0].splitlines()
    assert first[0].startswith("# ") and first[1].startswith("acu.move_to(")
    assert first[2:4] == ["smurf.bias_dets()", first[3]] and first[3].startswith("wait_until('2024-03-04T")
    assert (
        first[4] == "smurf.bias_step()"
        and first[5].startswith("seq.scan(description='")
        and first[6] == "smurf.bias_step()"
    )
    assert text.endswith("smurf.bias_step()\n")


def test_a_block_prints_exactly():
    scan = Scan("south-02h", "master", 1709510400, 1709512800, 217.984, 50.0, 32.276)
    assert commands.block(scan) == (
        "# south-02h\n"
        "acu.move_to(217.98, 50.0)\n"
        "smurf.bias_dets()\n"
        "wait_until('2024-03-04T00:00:00+00:00')\n"
        "smurf.bias_step()\n"
        "seq.scan(description='south-02h', stop_time='2024-03-04T00:40:00+00:00', width=32.28)\n"
        "smurf.bias_step()\n"
    )


def test_routes_print_as_waits_and_moves_before_the_block():
    scan = Scan("B", "master", 1709510400, 1709512800, 10.0, 45.0, 5.0)
    text = commands.block(scan, Route((Wait(1709509000), Move(10.0, 75.0)), "why"))
    assert text.splitlines()[1:4] == [
        "# route: why",
        "wait_until('2024-03-03T23:36:40+00:00')",
        "acu.move_to(10.0, 75.0)",
    ]


def test_names_cannot_break_out_of_their_string_or_comment():
    scan = Scan("evil'); import os\n#", "master", 1709510400, 1709512800, 10.0, 45.0, 5.0)
    text = commands.script([(scan, Route())])
    calls = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)]
    assert [call_name(c.func) for c in calls].count("seq.scan") == 1
    assert not any(isinstance(n, ast.Import) for n in ast.parse(text).body)
