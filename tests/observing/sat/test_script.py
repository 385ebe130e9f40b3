"""The sat script: valid Python in the sequencer's shape, every sorunlib call real and bound, hostile names inert."""

from __future__ import annotations

import ast
import inspect
import math
from dataclasses import replace
from datetime import datetime
from importlib.metadata import version

import pytest
import sorunlib
from sorunlib.commands import _timestamp_to_utc_datetime

from scheduler_server.observing.policies.sat import events, script
from scheduler_server.observing.policies.sat import operations as ops
from scheduler_server.observing.policies.sat.ops_config import DetSetup
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit
from tests.observing.sorun import SAT, Durations, run_script
from tests.observing.sorun.agents import SCAN, SCAN_PARAMS

T = 1_700_000_000.0
HOUR = 3600.0
ALLOWED_IMPORTS = {"numpy", "sorunlib", "nextline", "socket", "time"}
EVERY_CALL = {
    "wait_until", "acu.move_to", "acu.set_boresight", "acu.set_scan_params", "seq.scan", "hwp.spin_up",
    "hwp.spin_down", "smurf.zero_biases", "smurf.uxm_relock", "smurf.iv_curve", "smurf.bias_dets",
    "smurf.bias_step", "smurf.take_noise", "wiregrid.calibrate", "wiregrid.time_constant", "initialize",
}  # fmt: skip


def visits(name: str = "field") -> list[Visit]:
    return [
        Visit("master", name, T + HOUR, T + 2 * HOUR, 100.0, 50.0, 30.0, 0.0, True, tag=f"{name},uid"),
        Visit("noobs", name, T + 2 * HOUR, T + 3 * HOUR, 100.0, 50.0),
        Visit("calibration", name, T + 4 * HOUR, T + 4.5 * HOUR, 120.0, 45.0, 20.0, 45.0, True, az_drift=0.00123),
        Visit(
            "master",
            name,
            T + 6 * HOUR,
            T + 7 * HOUR,
            90.0,
            55.0,
            40.0,
            45.0,
            False,
            scan_type=3,
            el_amp=1.0,
            el_freq=0.15,
            az_speed=0.6,
        ),  # fmt: skip
        Visit("wiregrid", "wiregrid_gain", T + 8 * HOUR, T + 8.2 * HOUR, 180.0, 50.0, wiregrid_kind="wiregrid_gain"),
        Visit(
            "wiregrid",
            "wiregrid_time_const",
            T + 9 * HOUR,
            T + 9.2 * HOUR,
            180.0,
            50.0,
            wiregrid_kind="wiregrid_time_const",
        ),  # fmt: skip
        Visit("master", name, T + 9.5 * HOUR, T + 9.5 * HOUR + 300, 90.0, 50.0, 40.0),  # too short: skipped
    ]


def build(name: str = "field", plan: str = "plan.txt", cfg: ops.OpsConfig | None = None) -> str:
    cfg = cfg or ops.OpsConfig(run_noobs=True, home_at_end=True, cryo_stabilization_time=120.0, vent_check=True)
    state = SatState(t=T, az=180.0, el=40.0)
    header = script.Header(version="0.0", preset="satp1", cmb_plan=plan, cal_plan=plan, config_digest="sha256:ab")
    top = ops.preamble(state, cfg.platform, 41.0, None, vent_check=cfg.vent_check)
    out, state = ops.start(state, cfg)
    for v in visits(name):
        for step in (
            lambda s, v=v: ops.move(s, v.az, v.el, cfg, duration=60.0),
            lambda s, v=v: ops.before_scan(s, v, cfg),
            lambda s, v=v: ops.scan(s, v, cfg),
            lambda s, v=v: ops.after_scan(s, v, cfg),
        ):
            more, state = step(state)
            out += more
    more, state = ops.wrap_up(state, cfg, stow=(180.0, 40.0), duration=60.0)
    return script.render(header.lines(), top, out + more)


def run_calls(tree: ast.AST):
    """Each ``run.<a>.<b>(...)`` call as (dotted name, node); calls through ``run.CLIENTS[...]`` are not sorunlib's."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.insert(0, f.attr)
                f = f.value
            if isinstance(f, ast.Name) and f.id == "run" and parts and parts[0] != "CLIENTS":
                yield ".".join(parts), node


def test_the_sorunlib_we_check_against_is_0_1_35():
    assert version("sorunlib") == "0.1.35"


def test_every_call_is_a_real_sorunlib_function_bound_with_its_arguments():
    tree = ast.parse(build())
    seen = set()
    for name, node in run_calls(tree):
        target = sorunlib
        for part in name.split("."):
            target = getattr(target, part)  # AttributeError: not in sorunlib
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        bound = inspect.signature(target).bind(*args, **kwargs)  # TypeError: arguments it does not take
        extra = bound.arguments.get("kwargs", {})
        if name == "seq.scan":  # passed through to the ACU's generate_scan
            assert set(extra) <= set(SCAN), extra
        if name == "acu.set_scan_params":
            assert set(extra) <= set(SCAN_PARAMS), extra
        if name == "wait_until":
            assert _timestamp_to_utc_datetime(args[0]).utcoffset().total_seconds() == 0
        seen.add(name)
    assert seen == EVERY_CALL


def test_the_script_has_the_sequencers_shape():
    text = build(plan="satp1_baseline_20231031.txt")
    lines = text.splitlines()
    assert lines[:7] == [
        "# scheduler-server 0.0",
        "# policy: sat, preset: satp1",
        "# platform: satp1",
        "# cmb plan: satp1_baseline_20231031.txt",
        "# cal plan: satp1_baseline_20231031.txt",
        "# wiregrid plan: None",
        "# config digest: sha256:ab",
    ]
    assert lines[7:15] == list(script.IMPORTS[:8])
    tree = ast.parse(text)
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports == ALLOWED_IMPORTS | {"ocs"}  # ocs: satp3's vent check, asked for here
    assert "ocs" not in {a.split(".")[0] for a in _imports(build(cfg=ops.OpsConfig()))}
    for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "sleep":
            assert all(isinstance(ast.literal_eval(a), float) for a in call.args)


def _imports(text: str) -> set[str]:
    tree = ast.parse(text)
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_the_same_plan_prints_the_same_bytes():
    assert build() == build()


HOSTILE = [
    'x"); import os  #',
    "x'); import os; os.system('id')  #",
    "a\nimport os\nb",
    "a\r\nimport os",
    "c\u2028import os",
    '"""',
    "\\",
    "\x00\x1b[31m",
    "# not a comment",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inert(name):
    text = build(name=name, plan=name)
    benign = build(name="field", plan="field")
    assert len(text.splitlines()) == len(benign.splitlines())  # nothing broke out onto a line of its own
    tree = ast.parse(text)
    assert _imports(text) == _imports(benign)
    assert len(tree.body) == len(ast.parse(benign).body)
    descriptions = [
        kw.value.value for _, call in run_calls(tree) for kw in call.keywords if kw.arg == "description"
    ]  # fmt: skip
    assert descriptions and all(d == name for d in descriptions if d not in ("wiregrid_gain",))
    assert all(line.startswith("#") for line in text.splitlines()[:7])


def test_header_lines_are_comments_whatever_they_hold():
    text = script.render(["plan: a\nimport os", "no hash"], [], [])
    assert text.splitlines()[:2] == ["# plan: a import os", "# no hash"]
    assert _imports(text) == ALLOWED_IMPORTS


def test_a_command_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="line break"):
        script.render([], [], [Op("bad", 0.0, ("run.wait_until('x')\nimport os",))])


def test_numbers_and_times():
    assert script.num(-0.0001) == "0.0" and script.num(1.23456) == "1.235" and script.num(5, 0) == "5.0"
    assert script.iso(T + 0.4) == "2023-11-14T22:13:20+00:00" and script.iso(T + 0.6) == "2023-11-14T22:13:21+00:00"
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            script.num(bad)


def test_config_numbers_reach_the_script_rounded():
    cfg = ops.OpsConfig(det_setup=DetSetup(iv_kwargs=(("cool_wait", 300), ("run_serially", False)), rfrac=0.4999))
    text = build(cfg=replace(cfg, az_speed=0.123456, min_duration=599.6))
    assert "run.smurf.bias_dets(rfrac=0.5, concurrent=True)" in text
    assert "iv_kwargs={'cool_wait': 300, 'run_serially': False}" in text
    assert "az_speed=0.123" in text and "min_duration=600.0" in text


def test_under_sorunlib_the_hwp_and_boresight_do_what_the_event_lanes_say():
    """Run a script under the sorun harness (the real sorunlib) with op durations equal to the harness's table:
    every call is accepted, nothing is left running, no hazard, and the HWP and boresight lanes it records are
    the ones ``events.lanes`` drew from the ops."""
    durations = Durations.schedlib_sat()
    took = durations.seconds
    cfg = ops.OpsConfig(home_at_end=True)
    cfg = replace(
        cfg,
        relock_duration=cfg.relock.settle + took("uxm_relock"),  # zero_biases, sleep, uxm_relock
        det_setup_duration=took("take_iv")
        + took("bias_dets")
        + cfg.det_setup.settle
        + took("take_bias_steps")
        + took("take_noise"),
        bias_step_duration=took("take_bias_steps"),
        hwp_spin_up=took("pid_to_freq"),
        hwp_spin_down=took("brake"),
        boresight_duration=took("set_boresight"),
    )
    state = SatState(t=T, az=180.0, el=60.0)
    plan = [
        Visit("master", "a", T + 2 * HOUR, T + 3 * HOUR, 100.0, 50.0, 30.0, 0.0, True),
        Visit("calibration", "jupiter", T + 5 * HOUR, T + 5.5 * HOUR, 120.0, 45.0, 20.0, 45.0, True),
        Visit("master", "b", T + 7 * HOUR, T + 8 * HOUR, 200.0, 55.0, 30.0, 45.0, False),
        Visit("master", "low", T + 10 * HOUR, T + 11 * HOUR, 200.0, 35.0, 30.0, 45.0, False),
    ]
    timed, out = [], []
    for step in _steps(plan, cfg, durations):
        more, after = step(state)
        t = state.t
        for op in more:
            timed.append((t, op))
            t += op.duration
        out += more
        state = after
    text = script.render([], ops.preamble(SatState(t=T, az=180.0, el=60.0), "satp1", 41.0), out)
    report = run_script(text, T, durations, SAT.at(park=(180.0, 60.0)), hostname="daq-satp1-sequencer")
    assert report.ok and not report.hazards, report.summary()
    assert [s.description for s in report.scans] == ["a", "jupiter", "b", "low"] and not report.skipped_scans()
    assert not report.late_waits(), report.summary()
    lanes = events.lanes(SatState(t=T, az=180.0, el=60.0), timed)
    for lane in ("hwp", "boresight"):
        planned = [{**e, "t0": _posix(e["t0"]), "t1": _posix(e["t1"])} for e in lanes if e["lane"] == lane]
        assert planned == report.lane(lane)


def _steps(plan: list[Visit], cfg: ops.OpsConfig, durations: Durations):
    yield lambda s: ops.start(s, cfg)
    for v in plan:
        yield lambda s, v=v: ops.move(s, v.az, v.el, cfg, duration=durations.slew(s.az, s.el, v.az, v.el))
        # where a sweep stops is the harness's to say: a wait after each move keeps the ops on the plan's times
        yield lambda s, v=v: ops.wait(s, v.t0 - 1.25 * HOUR)
        yield lambda s, v=v: ops.before_scan(s, v, cfg)
        yield lambda s, v=v: ops.scan(s, v, cfg)
        yield lambda s, v=v: ops.after_scan(s, v, cfg)
    yield lambda s: ops.wrap_up(s, cfg)


def _posix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
