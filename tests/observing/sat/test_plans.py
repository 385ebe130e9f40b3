"""The sat policy's plan readers: each format read right, each malformed line refused with its line, the bundles."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

import pytest

from scheduler_server.observing.policies.sat import plans
from scheduler_server.observing.types import ScheduleInputError

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "src/scheduler_server/observing/policies/sat/data"
SHARED_BASELINE = ROOT.parent / "shared/data/satp1_baseline_20231031.txt"


def _seconds(text: str) -> float:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _data_lines(text: str) -> list[tuple[int, list[str]]]:
    """The test's own reading of a '|' file: numbered non-comment lines, cells stripped."""
    return [
        (number, [cell.strip() for cell in line.split("|")])
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


SAT_HEADER = (
    "# start | stop | hwp | rot | az_min | az_max | el | speed | accel | prio | type | pass | sub | uid | patch\n"
)
SAT_ROW = "2023-12-01 00:00:00|2023-12-01 01:00:00|1|45|100|140|50|0.5|0.25|1|CMB|0|1|uid-1|deep"
SAT_ROW2 = "2023-12-01 01:00:00|2023-12-01 02:00:00|-1|0|200|240|60|0.5|0.25|2|CMB|0|2|uid-2|wide"


def _sat(*rows: str) -> str:
    return SAT_HEADER + "\n".join(rows) + "\n"


def test_sat_format_is_read_as_the_file_says():
    text = plans.bundled("sample_cmb.txt")
    blocks = plans.read_cmb_plan(text, "sample_cmb.txt")
    lines = _data_lines(text)
    assert len(blocks) == len(lines) > 50
    for block, (number, cells) in zip(blocks, lines, strict=True):
        start, stop, hwp, rot, az_min, az_max, el, speed, accel, prio, kind, pass_, sub, uid, patch = cells
        assert block.origin == f"sample_cmb.txt:{number}"
        assert (block.t0, block.t1) == (_seconds(start), _seconds(stop))
        assert (block.az_min, block.az_max, block.el) == (float(az_min), float(az_max), float(el))
        assert block.throw == float(az_max) - float(az_min)
        assert block.boresight == float(rot)
        assert block.hwp_dir is (hwp == "1")
        assert (block.name, block.tag, block.pass_, block.sub_pass) == (patch, uid, int(pass_), int(sub))
        if kind == "None":
            assert (block.subtype, block.priority, block.az_speed) == ("noobs", plans.NOOBS_PRIORITY, None)
        else:
            assert (block.subtype, block.priority) == ("cmb", float(prio))
            assert (block.az_speed, block.az_accel) == (float(speed), float(accel))
    assert {b.boresight for b in blocks} == {0.0, 45.0, -45.0}
    assert {b.hwp_dir for b in blocks} == {True, False}
    assert [b.subtype for b in blocks].count("noobs") == 1
    assert len({b.name for b in blocks if b.subtype == "cmb"}) >= 3


def test_baseline_is_read_whole():
    text = plans.bundled("satp1_baseline_20231031.txt")
    assert text == SHARED_BASELINE.read_text()  # the bundled copy is the observatory's file, unchanged
    blocks = plans.read_cmb_plan(text, "baseline")
    lines = [(n, cells) for n, cells in _data_lines(text) if len(cells) == 9]
    assert len(blocks) == len(lines) == 1374
    for block, (number, cells) in zip(blocks, lines, strict=True):
        start, stop, rotation, patch, az_min, az_max, el, pass_, sub = cells
        assert block.origin == f"baseline:{number}"
        assert (block.t0, block.t1, block.boresight) == (_seconds(start), _seconds(stop), float(rotation))
        assert (block.name, block.az_min, block.az_max, block.el) == (patch, float(az_min), float(az_max), float(el))
        assert (block.pass_, block.sub_pass, block.hwp_dir, block.subtype) == (int(pass_), int(sub), None, "cmb")
    assert blocks[0].t0 == _seconds("2023-10-31 00:00:00")
    assert blocks[-1].t1 == _seconds("2024-01-01 00:30:00")
    assert all(a.t1 <= b.t0 for a, b in zip(blocks, blocks[1:], strict=False))
    assert sorted({b.boresight for b in blocks}) == [-45.0, 45.0]


def test_rows_come_back_sorted_and_a_fresh_list_each_time():
    text = _sat(SAT_ROW2, SAT_ROW)
    first = plans.read_cmb_plan(text, "p")
    assert [b.origin for b in first] == ["p:3", "p:2"]
    first.clear()
    assert len(plans.read_cmb_plan(text, "p")) == 2


CAL_9 = """# start | stop | target | direction | rot | ra | dec | el | uid
2023-12-01 02:00:00 | 2023-12-01 03:00:00 | Jupiter;ws3,ws2 | setting | -45 | None | None | 50 | cal-2
2023-12-01 00:00:00 | 2023-12-01 01:00:00 | taua;ws0 | rising | 0 | | | 40 | cal-1
2023-12-01 00:30:00 | 2023-12-01 01:30:00 | mysource;ws1,ws4 | both | 45 | 10.5 | -30.25 | 55 | cal-3
"""
CAL_8 = """2023-12-01 00:00:00 | 2023-12-01 01:00:00 | saturn;left | rising | nan | nan | 48.5 | c1
"""


def test_calibration_plan_nine_columns():
    taua, mine, jupiter = plans.read_cal_plan(CAL_9, "cal.txt")  # sorted by start
    assert (jupiter.source, jupiter.array_query, jupiter.source_direction) == ("jupiter", "ws3,ws2", "setting")
    assert (jupiter.boresight, jupiter.el_bore, jupiter.ra, jupiter.dec) == (-45.0, 50.0, None, None)
    assert (jupiter.t0, jupiter.t1, jupiter.origin) == (
        _seconds("2023-12-01 02:00:00"),
        _seconds("2023-12-01 03:00:00"),
        "cal.txt:2",
    )
    assert (taua.ra, taua.dec) == plans.FIXED_SOURCES["taua"]  # a fixed source without ra/dec gets schedlib's
    assert (mine.source, mine.ra, mine.dec, mine.source_direction, mine.tag) == (
        "mysource",
        10.5,
        -30.25,
        None,
        "cal-3",
    )
    assert not any(t.allow_partial for t in (taua, jupiter, mine))


def test_calibration_plan_eight_columns():
    (saturn,) = plans.read_cal_plan(CAL_8, "cal8")
    assert (saturn.source, saturn.array_query, saturn.boresight, saturn.el_bore) == ("saturn", "left", None, 48.5)
    assert saturn.origin == "cal8:1"


def test_bundled_calibration_and_wiregrid_plans_as_the_files_say():
    text = plans.bundled("sample_cal_targets.txt")
    targets = plans.read_cal_plan(text, "c")
    for target, (number, cells) in zip(targets, _data_lines(text), strict=True):
        start, stop, where, direction, rot, ra, dec, el, uid = cells
        assert (target.origin, target.t0, target.t1) == (f"c:{number}", _seconds(start), _seconds(stop))
        assert f"{target.source};{target.array_query}" == where
        assert (target.source_direction, target.boresight, target.el_bore, target.tag) == (
            direction,
            float(rot),
            float(el),
            uid,
        )
        assert target.ra == (None if ra == "None" else float(ra))
    assert {t.source for t in targets} >= {"jupiter", "saturn", "moon"}
    text = plans.bundled("sample_wiregrid.txt")
    runs = plans.read_wiregrid_plan(text, "w")
    for run, (number, cells) in zip(runs, _data_lines(text), strict=True):
        start, stop, az, el, _kind, _uid, remark = cells
        assert (run.origin, run.t0, run.t1, run.az, run.el) == (
            f"w:{number}",
            _seconds(start),
            _seconds(stop),
            float(az),
            float(el),
        )
        assert run.kind == ("wiregrid_gain" if "gain" in remark else "wiregrid_time_const")
    assert {r.kind for r in runs} == {"wiregrid_gain", "wiregrid_time_const"}


def _replace(row: str, index: int, value: str) -> str:
    cells = row.split("|")
    cells[index] = value
    return "|".join(cells)


BAD_SAT = [
    (SAT_ROW + "|extra", "has 16 '|'-separated columns, expected 15"),
    (_replace(SAT_ROW, 0, "2023-13-01 00:00:00"), "start_utc '2023-13-01 00:00:00' is not a time"),
    (_replace(SAT_ROW, 1, "tomorrow"), "stop_utc 'tomorrow' is not a time"),
    (_replace(SAT_ROW, 1, "2023-12-01"), "is not a time"),
    (_replace(SAT_ROW, 1, "2023-12-01 00:00:00"), "is not after start_utc"),
    (_replace(SAT_ROW, 1, "2023-11-30 23:00:00"), "is not after start_utc"),
    (_replace(SAT_ROW, 2, "2"), "hwp_dir '2' is not a HWP direction"),
    (_replace(SAT_ROW, 2, "ccw"), "hwp_dir 'ccw' is not a HWP direction"),
    (_replace(SAT_ROW, 4, "east"), "az_min 'east' is not a number"),
    (_replace(SAT_ROW, 5, "nan"), "az_max 'nan' is not a number"),
    (_replace(SAT_ROW, 5, "90"), "az_max '90' is below az_min '100'"),
    (_replace(SAT_ROW, 6, "high"), "el 'high' is not a number"),
    (_replace(SAT_ROW, 6, "95"), "el '95' is outside [0, 90]"),
    (_replace(SAT_ROW, 7, "0"), "speed '0' is not a positive number"),
    (_replace(SAT_ROW, 9, "first"), "priority 'first' is not a number"),
    (_replace(SAT_ROW, 10, ""), "type is empty"),
    (_replace(SAT_ROW, 11, "one"), "pass 'one' is not an integer"),
    (_replace(SAT_ROW, 14, ""), "patch is empty"),
]


@pytest.mark.parametrize(("row", "problem"), BAD_SAT)
def test_malformed_sat_row_is_refused_naming_its_line(row, problem):
    with pytest.raises(ScheduleInputError) as caught:
        plans.read_cmb_plan(
            _sat(SAT_ROW2.replace("01:00:00|", "05:00:00|", 1).replace("02:00:00", "06:00:00"), row), "plan.txt"
        )
    assert caught.value.field == "plan.txt:3"
    assert problem in caught.value.problem


TOAST_ROW = (
    "  2023-10-31 00:00:00| 2023-10-31 01:05:00|  -45.00|Constant elevation scan. |100.00|  140.00|   50.00|    0|   0"
)
TOAST_HEAD = "#Site|Telescope|Lat|Lon|Elev\n Atacama |SAT | -22.958| -67.786| 5200.0\n# Start|Stop|Rotation|Patch|Az min|Az max|El|Pass|Sub\n"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (TOAST_ROW.rsplit("|", 1)[0], "has 8 '|'-separated columns, expected 9"),
        (_replace(TOAST_ROW, 2, "left"), "rotation 'left' is not a number"),
        (_replace(TOAST_ROW, 0, "31/10/2023 00:00"), "is not a time"),
        (_replace(TOAST_ROW, 6, ""), "el '' is not a number"),
        (_replace(TOAST_ROW, 8, "1.5"), "sub '1.5' is not an integer"),
    ],
)
def test_malformed_toast_row_is_refused_naming_its_line(row, problem):
    good = TOAST_ROW.replace("2023-10-31", "2023-10-30")
    with pytest.raises(ScheduleInputError) as caught:
        plans.read_cmb_plan(TOAST_HEAD + good + "\n" + row + "\n", "base.txt")
    assert caught.value.field == "base.txt:5"
    assert problem in caught.value.problem


def test_overlapping_rows_are_refused_naming_both_lines():
    late = _replace(_replace(SAT_ROW2, 0, "2023-12-01 00:59:00"), 1, "2023-12-01 02:00:00")
    with pytest.raises(ScheduleInputError) as caught:
        plans.read_cmb_plan(_sat(late, "# a comment", SAT_ROW), "p")
    assert caught.value.field == "p:2"
    assert "overlaps line 4" in caught.value.problem
    text = plans.bundled("sample_wiregrid.txt").replace("05:15:00", "05:31:00")
    with pytest.raises(ScheduleInputError, match="overlaps line"):
        plans.read_wiregrid_plan(text, "w")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "2023-12-01 00:00:00 | 2023-12-01 01:00:00 | pluto;ws0 | rising | 0 | None | None | 50 | u",
            "unknown target 'pluto'",
        ),
        (
            "2023-12-01 00:00:00 | 2023-12-01 01:00:00 | sun;ws0 | rising | 0 | None | None | 50 | u",
            "the Sun is no calibration target",
        ),
        ("2023-12-01 00:00:00 | 2023-12-01 01:00:00 | jupiter | rising | 0 | None | None | 50 | u", "names no wafers"),
        (
            "2023-12-01 00:00:00 | 2023-12-01 01:00:00 | jupiter;ws0,,ws1 | rising | 0 | None | None | 50 | u",
            "not a comma-separated list",
        ),
        ("2023-12-01 00:00:00 | 2023-12-01 01:00:00 | jupiter;ws0 | up | 0 | None | None | 50 | u", "direction 'up'"),
        (
            "2023-12-01 00:00:00 | 2023-12-01 01:00:00 | x;ws0 | rising | 0 | 10 | None | 50 | u",
            "ra and dec go together",
        ),
        ("2023-12-01 00:00:00 | 2023-12-01 01:00:00 | x;ws0 | rising | 0 | 10 | -95 | 50 | u", "dec '-95' is outside"),
        ("2023-12-01 00:00:00 | 2023-12-01 01:00:00 | jupiter;ws0 | rising | 0 | None | None | 50", "expected 9"),
        ("2023-12-01 02:00:00 | 2023-12-01 01:00:00 | jupiter;ws0 | rising | 0 | None | None | 50 | u", "not after"),
    ],
)
def test_malformed_calibration_row_is_refused_naming_its_line(row, problem):
    with pytest.raises(ScheduleInputError) as caught:
        plans.read_cal_plan(CAL_9 + row + "\n", "cal.txt")
    assert caught.value.field == "cal.txt:5"
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2023-12-05 05:00:00 | 2023-12-05 05:20:00 | 180 | 50 | wiregrid | w | wiregrid rotation", "neither 'gain'"),
        ("2023-12-05 05:00:00 | 2023-12-05 05:20:00 | south | 50 | wiregrid | w | gain", "az 'south' is not a number"),
        ("2023-12-05 05:00:00 | 2023-12-05 05:20:00 | 180 | 50 | wiregrid | gain", "expected 7"),
    ],
)
def test_malformed_wiregrid_row_is_refused_naming_its_line(row, problem):
    text = plans.bundled("sample_wiregrid.txt") + row + "\n"
    with pytest.raises(ScheduleInputError) as caught:
        plans.read_wiregrid_plan(text, "wg.txt")
    assert caught.value.field == f"wg.txt:{len(text.splitlines())}"
    assert problem in caught.value.problem


@pytest.mark.parametrize("reader", [plans.read_cmb_plan, plans.read_cal_plan, plans.read_wiregrid_plan])
def test_a_plan_without_rows_is_refused_naming_it(reader):
    with pytest.raises(ScheduleInputError, match="no rows") as caught:
        reader("# only a comment\n\n", "empty.txt")
    assert caught.value.field == "empty.txt"


def test_plan_window_refuses_a_plan_that_ended_and_keeps_rows_touching_the_window():
    blocks = plans.read_cmb_plan(plans.bundled("sample_cmb.txt"), "s")
    end = blocks[-1].t1
    for t0 in (end, end + 86400):
        with pytest.raises(ScheduleInputError, match="the plan ends at 2023-12-03 23:55:00") as caught:
            plans.plan_window(blocks, t0, t0 + 3600, "cmb_plan")
        assert caught.value.field == "cmb_plan"
    t0, t1 = blocks[3].t0 + 60, blocks[5].t0 + 60  # inside row 3, through row 5's start
    assert plans.plan_window(blocks, t0, t1, "s") == blocks[3:6]
    assert plans.plan_window(blocks, blocks[3].t1, blocks[4].t0, "s") == []  # a gap between rows
    assert plans.plan_window(blocks, blocks[0].t0 - 86400, blocks[0].t0, "s") == []
    untimed = plans.CalTarget(source="jupiter", array_query="ws0", el_bore=50)
    assert plans.plan_window([untimed], 0.0, 1.0, "cal") == [untimed]


def test_bundled_plans_ship_with_the_package():
    on_disk = {p.name for p in DATA.iterdir() if p.suffix == ".txt"}
    assert on_disk == set(plans.BUNDLED)
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in on_disk:
        relative = f"observing/policies/sat/data/{name}"
        assert any(fnmatch(relative, p) for p in patterns["scheduler_server"]), name  # the wheel carries it
        assert plans.bundled(name) == (DATA / name).read_text()
    with pytest.raises(ScheduleInputError, match="no bundled plan '../x'") as caught:
        plans.bundled("../x", field="policy.config.cmb_plan")
    assert caught.value.field == "policy.config.cmb_plan"
