"""The sat policy end to end: the seed-style request, presets, plans from a request, priority, safety, lanes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from scheduler_server.observing.policies.sat.plans import bundled
from scheduler_server.observing.service import PolicyRequest, run_schedule
from scheduler_server.observing.types import PolicyFailure

SAMPLES = {"cmb_plan": "sample_cmb.txt", "cal_plan": "sample_cal_targets.txt", "wiregrid_plan": "sample_wiregrid.txt"}
DEC1 = datetime(2023, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from scheduler_server.app import create_app
    from scheduler_server.config import Settings

    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data"))).test_client()


def schedule(t0: datetime, hours: float, config=None, preset="satp1"):
    return run_schedule(t0, t0 + timedelta(hours=hours), PolicyRequest("sat", config or {}, preset))


@pytest.fixture(scope="module")
def sample_day():
    return schedule(DEC1, 24, SAMPLES)


def when(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def spans(result, kind=None):
    return [(b.t0.timestamp(), b.t1.timestamp(), b) for b in result.blocks if kind in (None, b.kind)]


@pytest.mark.parametrize("t0", ["2023-10-31 00:00", "2023-11-30 12:00", "2023-12-30 23:00"])
def test_the_seed_style_request_schedules_the_bundled_baseline(client, t0):
    start = datetime.fromisoformat(t0).replace(tzinfo=UTC)
    body = {
        "t0": t0,
        "t1": (start + timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
        "policy": json.dumps({"policy": "sat", "preset": "satp1", "config": {}}),
        "format": "json",
    }
    answer = client.post("/api/v1/schedule/", json=body)
    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()
    lines = data["commands"].splitlines()
    assert lines[:4] == [lines[0], "# policy: sat, preset: satp1", "# platform: satp1", lines[3]]
    assert lines[0].startswith("# scheduler-server ") and lines[3] == "# cmb plan: satp1_baseline_20231031.txt"
    assert re.fullmatch(r"# config digest: sha256:[0-9a-f]{64}", lines[6])
    blocks = data["blocks"]
    assert len(blocks) >= 10 and {b["kind"] for b in blocks} == {"master"}
    assert all(start.timestamp() <= when(b["t0"]) < when(b["t1"]) <= start.timestamp() + 86400 for b in blocks)
    assert len(re.findall(r"^run\.seq\.scan\(", data["commands"], re.M)) == len(blocks)
    assert data["check"]["safe"] is True, data["check"]["problems"]
    assert data["events"] and {e["lane"] for e in data["events"]} == {"hwp", "boresight", "detectors"}


def test_each_block_is_what_its_scan_line_runs(sample_day):
    scans = re.findall(r"^run\.seq\.scan\(description=(.*?), stop_time='([^']+)'", sample_day.commands, re.M)
    observed = [b for b in sample_day.blocks if b.kind in ("master", "calibration")]
    assert [when(stop) for _, stop in scans] == [b.t1.timestamp() for b in observed]
    # every scan is preceded (after its ops) by a wait_until its block's start, never a later one
    waits = [when(t) for t in re.findall(r"^run\.wait_until\('([^']+)'", sample_day.commands, re.M)]
    for block in observed:
        assert block.t0.timestamp() in waits


def test_the_presets_write_their_platforms_scripts():
    window = datetime(2023, 11, 10, tzinfo=UTC)
    p1, p3 = (schedule(window, 6, preset=p).commands for p in ("satp1", "satp3"))
    p2 = schedule(window, 6, preset="satp2").commands
    assert "daq-satp1-sequencer" in p1 and "daq-satp2-sequencer" in p2 and "daq-satp3-sequencer" in p3
    assert "iv_kwargs" in p1 and "iv_kwargs" not in p3 and "take_noise" not in p3.split("# checks over")[1]
    assert "Readout fan shutter/vent" in p3 and "Readout fan" not in p1
    assert "az_speed=0.8, az_accel=1.5" in p1 and "az_speed=0.5, az_accel=0.25" in p3
    assert "exclusion_radius'] <= 41.0" in p1 and "exclusion_radius'] <= 49.0" in p2


def test_a_plan_sent_in_the_request_is_the_one_scheduled():
    rows = [line for line in bundled("sample_cmb.txt").splitlines() if line.startswith("  2023-12-02 0")][:3]
    renamed = [line.replace("wide_east", "mine_east").replace("wide_west", "mine_west") for line in rows]
    result = schedule(datetime(2023, 12, 2, tzinfo=UTC), 4, {"cmb_plan_text": "\n".join(renamed)})
    assert "# cmb plan: request" in result.commands
    assert result.blocks and {b.name for b in result.blocks} <= {"mine_east", "mine_west", "deep_east", "deep_west"}
    assert any(b.name.startswith("mine_") for b in result.blocks)


def test_calibration_beats_cmb_where_they_overlap(sample_day):
    cal = spans(sample_day, "calibration")
    assert cal, "the sample plan's Saturn crossing is scheduled"
    for t0, t1, _ in spans(sample_day, "master"):
        assert all(t1 <= c0 or t0 >= c1 for c0, c1, _ in cal)
    without = schedule(DEC1, 24, {"cmb_plan": "sample_cmb.txt"})
    c0, c1, _ = cal[0]
    assert any(t0 < c1 and c0 < t1 for t0, t1, _ in spans(without, "master"))  # the CMB had that time
    cuts = [cut for _, _, b in spans(sample_day, "master") for cut in b.cuts]
    assert any("calibration saturn" in cut for cut in cuts)


def test_a_wiregrid_run_has_the_hwp_spinning(sample_day):
    wiregrid = spans(sample_day, "wiregrid")
    assert wiregrid and "run.wiregrid.calibrate(" in sample_day.commands
    hwp = [e for e in sample_day.events if e["lane"] == "hwp"]
    for t0, t1, _ in wiregrid:
        assert any(e["state"] == "spinning" and when(e["t0"]) <= t0 and t1 <= when(e["t1"]) for e in hwp)


def test_the_hwp_spins_whenever_a_scan_runs_and_the_lanes_follow_the_script(sample_day):
    events = sample_day.events
    hwp = [e for e in events if e["lane"] == "hwp"]
    for t0, t1, block in spans(sample_day):
        if block.kind == "master" or 48 <= block.el <= 60:
            assert any(e["state"] == "spinning" and when(e["t0"]) <= t0 and t1 <= when(e["t1"]) for e in hwp), block
    spin_ups = len(re.findall(r"^run\.hwp\.spin_up\(", sample_day.commands, re.M))
    assert spin_ups == sum(e["state"] == "spin_up" for e in hwp) >= 1
    angles = [float(a) for a in re.findall(r"^run\.acu\.set_boresight\(([-\d.]+)\)", sample_day.commands, re.M)]
    assert angles == [e["angle"] for e in events if e["lane"] == "boresight" and e["state"] == "rotating"]
    relocks = len(re.findall(r"^run\.smurf\.uxm_relock\(", sample_day.commands, re.M))
    assert relocks == sum(e["state"] == "relock" for e in events if e["lane"] == "detectors") == 1
    assert [e["t0"] for e in events] == sorted(e["t0"] for e in events)


def test_disable_hwp_leaves_the_hwp_alone():
    result = schedule(DEC1, 12, {**SAMPLES, "disable_hwp": True})
    assert "run.hwp." not in result.commands and "run.wiregrid." not in result.commands
    assert {e["state"] for e in result.events if e["lane"] == "hwp"} == {"stopped"}
    assert result.blocks and "wiregrid" not in {b.kind for b in result.blocks}


def test_the_given_state_is_where_the_script_starts():
    t0 = datetime(2023, 11, 12, tzinfo=UTC)
    state = {
        "az": 120,
        "el": 50,
        "boresight": 45,
        "hwp_spinning": True,
        "hwp_dir": "cw",
        "last_relock": (t0 - timedelta(hours=2)).isoformat(),
        "last_iv": (t0 - timedelta(hours=1)).isoformat(),
    }
    result = schedule(t0, 6, {"state": state})
    first_scan = result.commands.index("run.seq.scan(")
    assert "uxm_relock" not in result.commands[:first_scan]  # relocked 2 h ago: not due
    assert "assert (hwp_state['direction'] == 'ccw') == False" in result.commands
    assert "'Boresight current position'], 45.0" in result.commands
    fresh = schedule(t0, 6)
    assert "uxm_relock" in fresh.commands[: fresh.commands.index("run.seq.scan(")]
    # an IV after the relock left the detectors biased: at the plan's first boresight (-45) nothing is redone
    ready = schedule(t0, 6, {"state": {**state, "boresight": -45}})
    opening = ready.commands[: ready.commands.index("run.seq.scan(")]
    assert "iv_curve" not in opening and "set_boresight" not in opening and "iv_curve" in result.commands
    assert ready.blocks[0].t0 < fresh.blocks[0].t0


def test_a_week_is_scheduled_with_every_scan_sun_safe_by_the_checker(client):
    body = {
        "t0": "2023-11-10 00:00",
        "t1": "2023-11-17 00:00",
        "policy": {"policy": "sat", "preset": "satp2", "config": {}},
        "format": "json",
    }
    data = client.post("/api/v1/schedule/", json=body).get_json()
    assert data["check"]["safe"] is True and data["check"]["min_sun_distance_deg"] > 41.0
    assert len(data["blocks"]) > 7 * 12


def test_an_unsafe_plan_is_never_returned(monkeypatch):
    from scheduler_server.observing.policies.basic import avoidance

    monkeypatch.setattr(avoidance.SunGuard, "safe", lambda self, *a, **k: True)
    monkeypatch.setattr(avoidance.SunGuard, "unsafe", lambda self, *a, **k: [])
    with pytest.raises(PolicyFailure, match="independent safety check"):
        schedule(datetime(2023, 11, 5, tzinfo=UTC), 24)  # its afternoon scans pass the sun


def test_a_telescope_starting_near_the_sun_moves_away_first():
    # 2023-10-30 20:00 UTC: the afternoon sun is about 25 deg from az 240 el 50
    state = {"az": 240, "el": 50, "hwp_spinning": True, "hwp_dir": "ccw"}
    result = schedule(datetime(2023, 10, 30, 20, tzinfo=UTC), 6, {"state": state})
    body = result.commands.split("# checks over\n", 1)[1].strip().splitlines()
    assert body[0].startswith("run.acu.move_to(") and "az=240.0" not in body[0]
    assert "uxm_relock" in "\n".join(body[1:10])  # the relock after it, away from the sun


def test_home_at_end_spins_down_and_stows():
    result = schedule(
        datetime(2023, 11, 5, tzinfo=UTC), 12, {"home_at_end": True, "stow_position": {"az_stow": 180, "el_stow": 60}}
    )
    tail = [line for line in result.commands.strip().splitlines() if not line.startswith("# dropped: ")][-3:]
    assert tail[-2:] == ["run.hwp.spin_down(active=True)", "run.acu.move_to(az=180.0, el=60.0)"]
    assert [e["state"] for e in result.events if e["lane"] == "hwp"][-2:] == ["spin_down", "stopped"]


def test_pointing_offsets_are_added_to_every_commanded_pointing():
    plain = schedule(datetime(2023, 11, 5, tzinfo=UTC), 5)
    offset = schedule(datetime(2023, 11, 5, tzinfo=UTC), 5, {"az_offset": 1.5, "el_offset": -0.5})
    moves = re.compile(r"^run\.acu\.move_to\(az=([-\d.]+), el=([-\d.]+)\)", re.M)
    a, b = moves.findall(plain.commands), moves.findall(offset.commands)
    assert a and len(a) == len(b)
    assert all(float(x2) == float(x1) + 1.5 and float(y2) == float(y1) - 0.5 for (x1, y1), (x2, y2) in zip(a, b))


def _item(kind, t0, t1, name="x"):
    from scheduler_server.observing.policies.sat.merge import Item
    from scheduler_server.observing.policies.sat.steps import Visit

    return Item(Visit(kind=kind, name=name, t0=t0, t1=t1, az=100.0, el=50.0, throw=40.0))


def test_long_cmb_blocks_are_divided_into_equal_pieces_and_short_ones_kept():
    from scheduler_server.observing.policies.sat.merge import divide

    pieces = divide([_item("master", 0, 3 * 3600), _item("master", 4 * 3600, 4 * 3600 + 70 * 60)], 3600)
    assert [(p.visit.t0, p.visit.t1) for p in pieces] == [
        (0, 3600),
        (3600, 7200),
        (7200, 10800),
        (14400, 14400 + 4200),  # 70 min: under 1.25 h, whole
    ]


def test_priority_cuts_cmb_around_calibration_and_drops_wiregrid_overlapping_it():
    from scheduler_server.observing.policies.sat.merge import by_priority, min_duration

    dropped = []
    cmb = [_item("master", 0, 3 * 3600, "patch")]
    cal = [_item("calibration", 3600, 5400, "saturn")]
    wiregrid = [_item("wiregrid", 5000, 6000, "wiregrid_gain"), _item("wiregrid", 9000, 9600, "wiregrid_gain")]
    items = by_priority(cmb, cal, wiregrid, 0.0, dropped)
    assert [(i.visit.kind, i.visit.t0, i.visit.t1) for i in items] == [
        ("master", 0, 3600),
        ("calibration", 3600, 5400),
        ("master", 5400, 9000),
        ("wiregrid", 9000, 9600),
        ("master", 9600, 10800),
    ]
    assert [w.visit.t0 for w, _ in dropped] == [5000]
    assert all("calibration saturn" in i.cuts[0] for i in items[2:3])
    kept = min_duration(items, 1500, dropped)
    assert [i.visit.t0 for i in kept] == [0, 3600, 5400, 9000]  # the 20-minute CMB tail is dropped


def test_what_is_dropped_is_said_in_the_cuts_of_the_block_after_it():
    result = schedule(datetime(2023, 11, 10, tzinfo=UTC), 24, preset="satp2")  # 49 deg: midday scans go
    said = [cut for b in result.blocks for cut in b.cuts if cut.startswith("dropped before it: master ")]
    assert any("sun" in cut for cut in said)
    named = {b.name for b in result.blocks}
    assert any("Solar Avoidance Violation" in cut for cut in said) and all(
        "Solar Avoidance Violation" not in n for n in named
    )


def test_the_timeline_parks_clear_of_a_sun_that_comes_to_where_it_rests():
    """A constructed sun rising at az 100 reaches the last scan's sweep during a long gap: the telescope leaves
    before it does, waits somewhere it stays clear, and makes the next scan."""
    from scheduler_server.observing.policies.basic.avoidance import SunGuard
    from scheduler_server.observing.policies.sat.merge import Item
    from scheduler_server.observing.policies.sat.ops_config import OpsConfig
    from scheduler_server.observing.policies.sat.steps import SatState, Visit
    from scheduler_server.observing.policies.sat.timeline import Planner
    from scheduler_server.observing.telescope import TelescopeModel
    from tests.observing.conftest import constructed_sky, utc

    t0, hour = utc(2023, 11, 5), 3600
    sun = constructed_sky("sun", t0, 8, 10, 100.0, -30.0, del_per_min=0.25)  # el -30 + 15 deg an hour
    guard = SunGuard(sun, 41.0, lookahead=1980)
    model = TelescopeModel(az_limits=(-45.0, 405.0), el_limits=(40.0, 90.0))
    planner = Planner(
        guard, model, OpsConfig(min_hwp_el=48, max_hwp_el=60), (60.0, 56.0, 52.0, 48.0, 44.0, 40.0), {}, 60
    )

    def visit(name, az, start, stop):
        return Item(Visit("master", name, t0 + start * hour, t0 + stop * hour, az, 50.0, 40.0, boresight=0.0))

    items = [visit("a", 80.0, 0.5, 1.5), visit("b", 260.0, 4.0, 5.0)]
    timeline = planner.plan(items, SatState(t=t0, az=180.0, el=50.0), t0 + 6 * hour)
    assert [laid.visit.name for laid in timeline.laid] == ["a", "b"] and not timeline.dropped
    a_end = timeline.laid[0].visit.t1
    moves = [(t, op) for t, op in timeline.timed if op.name == "move" and t >= a_end]
    leave, first = moves[0]
    assert guard.safe((80.0, 120.0, 50.0, 50.0), a_end, leave)  # it stayed only while that was safe
    assert not guard.safe((80.0, 120.0, 50.0, 50.0), a_end, t0 + 3 * hour)  # staying on would not have been
    spot = (first.detail["az"], first.detail["az"], first.detail["el"], first.detail["el"])
    assert spot[0] != 260.0 and guard.safe(spot, leave + first.duration, moves[1][0])
    assert any("waited clear of the sun" in cut for cut in timeline.laid[1].cuts)


def test_the_cli_answers_the_lanes_with_format_json_as_the_api_does():
    from click.testing import CliRunner

    from scheduler_server.cli import main

    args = ["schedule", "--t0", "2023-11-05 00:00", "--t1", "2023-11-05 06:00", "--policy", "sat", "--preset", "satp3"]
    answer = CliRunner().invoke(main, [*args, "--format", "json"])
    assert answer.exit_code == 0, answer.output
    data = json.loads(answer.output)
    assert data["blocks"] and {e["lane"] for e in data["events"]} == {"hwp", "boresight", "detectors"}
    assert "# platform: satp3" in data["commands"]
