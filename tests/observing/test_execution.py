"""Every `basic` preset's scripts, run under the real sorunlib against simulated agents (tests/observing/sorun)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from scheduler_server.observing.policies.basic.config import PRESETS
from scheduler_server.observing.policies.basic.policy import BasicPolicy
from scheduler_server.observing.service import PolicyRequest, build_config, run_schedule

from .sorun import Durations, Platform, run_script

WINDOWS = {"1 day": ("2024-03-04", "2024-03-05"), "7 days": ("2024-03-01", "2024-03-08")}
CASES = [(preset, window) for preset in [None, *PRESETS] for window in WINDOWS]
IDS = [f"{preset or 'default'}-{window}" for preset, window in CASES]


def utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def durations_for(preset):
    """The preset's own telescope model: seed-2023's zero-length setup with real slews, the others' nominal figures."""
    return Durations.of_model(build_config("basic", BasicPolicy(), {}, preset).telescope)


class Runs(dict):
    """Each case scheduled and run once, when a test first asks for it (an xdist worker runs only its own)."""

    def __missing__(self, case):
        preset, window = case
        t0, t1 = map(utc, WINDOWS[window])
        result = run_schedule(t0, t1, PolicyRequest("basic", {}, preset=preset))
        self[case] = result.commands, run_script(result.commands, t0, durations_for(preset)), result.blocks
        return self[case]


@pytest.fixture(scope="module")
def runs():
    return Runs()


def calls_in(text: str, name: str) -> int:
    return len(re.findall(rf"^{re.escape(name)}\(", text, re.M))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_script_runs_to_its_end_and_every_agent_accepts_every_call(runs, case):
    text, report, _ = runs[case]
    assert report.ok, report.summary()
    assert report.ops and all(op.ok for op in report.ops if op.end is not None), report.summary()
    assert [op.line for op in report.ops if op.end is None] == [], "an operation was left running"
    smurfs = Platform().smurfs
    counted = {op: sum(1 for r in report.ops if r.op == op) for op in ("go_to", "take_bias_steps", "bias_dets")}
    assert counted["go_to"] == calls_in(text, "acu.move_to")
    assert counted["take_bias_steps"] == smurfs * calls_in(text, "smurf.bias_step")
    assert counted["bias_dets"] == smurfs * calls_in(text, "smurf.bias_dets")
    assert len(report.waits) == calls_in(text, "wait_until") > 5
    assert len(report.scans) == calls_in(text, "seq.scan")


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_scan_sweeps_from_where_the_script_moved_for_its_width(runs, case):
    text, report, _ = runs[case]
    widths = [float(w) for w in re.findall(r"^seq\.scan\(.*width=([-\d.]+)\)$", text, re.M)]
    moves = [r for r in report.ops if r.op == "go_to"]
    for scan, width in zip(report.scans, widths, strict=True):
        if scan.skipped:
            continue
        last_move = [m for m in moves if m.start <= scan.started][-1]
        assert scan.endpoints == pytest.approx((last_move.params["az"], last_move.params["az"] + width))
        assert scan.stopped == pytest.approx(max(scan.stop_time, scan.started))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_wait_until_is_late_and_sorunlib_skips_or_shortens_no_scan(runs, case):
    """Issue 12's timeline: with the durations the preset plans with, the script keeps to its own times."""
    _, report, blocks = runs[case]
    assert report.late_waits() == [], report.summary()
    assert report.skipped_scans() == [], report.summary()
    assert report.shortened_scans() == [], report.summary()
    # ... and each block reported is what sorunlib observed: seq.scan's start (after the opening bias step) to its end.
    observed = [t for scan in report.scans for t in (scan.started, scan.stopped)]
    assert observed == pytest.approx([t for b in blocks for t in (b.t0.timestamp(), b.t1.timestamp())], abs=1.0)
