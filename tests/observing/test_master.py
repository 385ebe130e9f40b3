"""Master schedules: toast's ground-schedule format read and written, and generated from patches."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from scheduler_server.observing.master import archives
from scheduler_server.observing.master import generate as master_generate
from scheduler_server.observing.master import toast as master
from scheduler_server.observing.master.patches import GeneratorConfig, Patch, load_patches_file
from scheduler_server.observing.sky import cache
from scheduler_server.observing.sky.ephemerides import ATACAMA, altaz
from scheduler_server.observing.sky.geometry import distance_to_box
from tests.conftest import SHARED
from tests.observing.conftest import CLI, utc

TOAST = """#Site            Telescope        Latitude [deg] Longitude [deg]   Elevation [m]
 ATACAMA         SAT                     -22.958         -67.786          5200.0
#      Start time UTC        Stop time UTC      Start MJD       Stop MJD Rotation Patch name                            Az min   Az max       El   R/S  Sun el1  Sun az1  Sun el2  Sun az2 Moon el1 Moon az1 Moon el2 Moon az2 Phase  Pass Sub
 2023-01-01 00:22:00  2023-01-01 01:09:30    59945.015278   59945.048264   270.00 DEC-050..-030_RA+000.000..+011.613    218.08   250.32    50.00 S       -13.35   237.50   -22.22   230.79    53.83   349.43    50.07   331.91  0.70     0   0
 2023-01-01 17:17:00  2023-01-01 18:02:00    59945.720139   59945.751389   270.00 DEC-050..-030_RA+336.774..+348.387    109.69   141.93    50.00 R        80.26   267.80    69.92   265.64   -22.90    81.58   -13.13    77.73  0.77     0   0
"""


def test_reads_the_fixed_width_format():
    schedule = master.parse(TOAST)
    assert schedule.site == ATACAMA
    first, second = schedule.scans
    assert first.start == utc(2023, 1, 1, 0, 22, 0)
    assert first.stop == utc(2023, 1, 1, 1, 9, 30)
    assert (first.name, first.az_min, first.az_max, first.el, first.rising) == (
        "DEC-050..-030_RA+000.000..+011.613",
        218.08,
        250.32,
        50.0,
        False,
    )
    assert first.rotation == 270.0 and first.sun == (-13.35, 237.50, -22.22, 230.79) and first.sub == 0
    assert second.rising and second.throw == pytest.approx(32.24)


def test_reads_pipe_separated_lines_without_mjd_and_names_with_spaces():
    text = (
        "#Site | Telescope | Latitude | Longitude | Elevation\n"
        "ATACAMA | SAT | -22.958 | -67.786 | 5200\n"
        "# Start | Stop | Patch | Az min | Az max | El | R/S\n"
        "2024-05-01 10:00:00 | 2024-05-01 11:00:00 | my field | 350.0 | 20.0 | 45.0 | R\n"
    )
    (scan,) = master.parse(text).scans
    assert scan.name == "my field" and scan.rotation == 0.0 and scan.sun is None
    assert scan.throw == pytest.approx(30.0)  # wraps through north


@pytest.mark.parametrize(
    "line, problem",
    [
        (" 2023-13-01 00:22:00  2023-01-01 01:09:30  field 1 2 50 S", "start time '2023-13-01 00:22:00' is not"),
        (" 2023-01-01 02:00:00  2023-01-01 01:09:30  field 1 2 50 S", "stop time 2023-01-01 01:09:30 is not after"),
        (" 2023-01-01 00:22:00  2023-01-01 01:09:30  field 1 2 50", "did not find them"),
        (" 2023-01-01 00:22:00  2023-01-01 01:09:30  field 1 2 95 S", "el 95.0 is outside 0..90"),
        (" 2023-01-01 00:22:00  2023-01-01 01:09:30  field 1 2 50 S x", "sun el1 'x' is not a number"),
    ],
)
def test_parse_errors_name_the_line(line, problem):
    text = "\n".join(TOAST.splitlines()[:3] + [line]) + "\n"
    with pytest.raises(master.MasterScheduleError) as caught:
        master.parse(text, "plan.txt")
    assert str(caught.value).startswith("plan.txt, line 4: ")
    assert problem in str(caught.value)


def test_a_file_that_is_not_a_schedule_is_refused_without_echoing_it():
    with pytest.raises(master.MasterScheduleError) as caught:
        master.parse("root:x:0:0:secret-looking-content\n", "/etc/passwd")
    assert "not a toast ground schedule" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_write_then_read_gives_the_same_schedule():
    schedule = master.parse(TOAST)
    assert master.parse(master.format_schedule(schedule)).scans == schedule.scans


def test_reads_the_real_one_year_sat_schedule():
    schedule = master.read(SHARED / "data" / "schedule_sat.txt")
    assert len(schedule.scans) == 5460
    assert schedule.site.name == "ATACAMA" and schedule.site.lat == -22.958
    starts = np.array([s.start for s in schedule.scans])
    assert (np.diff(starts) >= 0).all()
    assert schedule.scans[-1].start == utc(2023, 12, 30, 22, 59, 30)
    assert {s.el for s in schedule.scans} <= {50.0, 60.0}
    assert all(s.stop > s.start for s in schedule.scans)
    day = schedule.between(utc(2023, 6, 1), utc(2023, 6, 2))
    assert 5 < len(day) < 40


MARCH = (utc(2024, 3, 1), utc(2024, 4, 1))


def test_generated_month_is_sane_and_sun_and_moon_safe():
    spec = GeneratorConfig()
    scans = master_generate.generate(*MARCH, spec, ATACAMA).scans
    assert len(scans) > 300
    starts = np.array([s.start for s in scans])
    stops = np.array([s.stop for s in scans])
    assert (stops > starts).all() and (starts[1:] >= stops[:-1]).all()  # ordered, never overlapping
    assert starts[0] >= MARCH[0] and stops[-1] <= MARCH[1]
    assert (stops - starts <= spec.max_scan_seconds).all()
    assert {s.el for s in scans} <= set(spec.elevations)
    assert {s.name for s in scans} >= {"deep-01h", "south-00h", "south-12h"}
    busy = (stops - starts).sum() / (MARCH[1] - MARCH[0])
    assert busy > 0.6  # most of the time is spent observing
    t = np.concatenate([starts, stops]).astype(float)
    az_lo = np.tile([s.az_min for s in scans], 2)
    az_hi = az_lo + np.tile([s.throw for s in scans], 2)
    el = np.tile([s.el for s in scans], 2)
    for body, angle in (("sun", spec.sun_avoidance_angle), ("moon", spec.moon_avoidance_angle)):
        b_az, b_el = altaz(body, ATACAMA, t)
        assert distance_to_box(b_az, b_el, az_lo, az_hi, el, el).min() >= angle - 0.6


def test_priorities_share_the_time():
    # Two patches on the same piece of sky are always available together: the one
    # with three times the priority should get about three times the observing time.
    twins = (
        Patch(name="low", priority=1, ra=(120, 160), dec=(-50, -30)),
        Patch(name="high", priority=3, ra=(120, 160), dec=(-50, -30)),
    )
    scans = master_generate.generate(*MARCH, GeneratorConfig(patches=twins), ATACAMA).scans
    time = {"low": 0, "high": 0}
    for s in scans:
        time[s.name] += s.stop - s.start
    assert time["low"] > 0
    assert 2.0 < time["high"] / time["low"] < 4.5


def test_any_window_of_a_generated_schedule_is_the_same_however_asked():
    spec = GeneratorConfig()
    day = (utc(2024, 3, 10), utc(2024, 3, 11))
    whole = [s for s in master_generate.generate(*MARCH, spec, ATACAMA).scans if s.stop > day[0] and s.start < day[1]]
    master_generate._MONTHS.clear()  # read back from the cache file this time
    assert list(master_generate.generate(*day, spec, ATACAMA).scans) == whole


def test_a_month_is_read_back_from_the_cache_archive_and_a_broken_one_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path))
    spec = GeneratorConfig(elevations=(55.0,))  # not shipped: generated, then cached
    made = master_generate.generate(*MARCH, spec, ATACAMA).scans
    files = list(tmp_path.rglob("master/*/2024-03.npz"))
    assert len(files) == 1 and len(made) > 100
    master_generate._MONTHS.clear()
    monkeypatch.setattr(master_generate, "plan_month", lambda *a: pytest.fail("generated although cached"))
    assert master_generate.generate(*MARCH, spec, ATACAMA).scans == made
    monkeypatch.undo()
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path))
    files[0].write_bytes(b"not an archive")
    master_generate._MONTHS.clear()
    assert master_generate.generate(*MARCH, spec, ATACAMA).scans == made


def test_archives_give_back_exactly_the_scans_stored():
    scans = master_generate.generate(*MARCH, GeneratorConfig(), ATACAMA).scans
    assert archives.from_arrays(archives.to_arrays(scans)) == scans
    assert archives.from_arrays(archives.to_arrays(())) == ()
    with pytest.raises(ValueError):
        archives.to_arrays(master.parse(TOAST.replace("  0.70     0   0", "")).scans)  # missing columns


def test_the_default_months_are_shipped_and_match_a_fresh_generation():
    key = master_generate.spec_key(GeneratorConfig(), ATACAMA)
    labels = sorted(p.stem for p in (archives.SHIPPED / key).glob("*.npz"))
    assert labels[0] <= "2024-03" and labels[-1] >= "2027-12", (
        "regenerate: .venv/bin/python devtools/ship_master_months.py 2024-01 2027-12"
    )
    for label in ("2025-06",):  # a sample: making every month would make this test slow
        m0 = int(np.datetime64(f"{label}-01T00:00:00").astype(int))
        m1 = int((np.datetime64(label, "M") + 1).astype("datetime64[s]").astype(int))
        assert archives.shipped(key, label) == tuple(master_generate.plan_month(m0, m1, GeneratorConfig(), ATACAMA))
    assert archives.shipped(key, "1999-01") is None


def test_patches_validate_shapes_and_names():
    Patch(name="ok-1", ra=(350, 10), dec=(-40, -30))
    Patch(name="c", center=(10, -40), radius=5)
    for bad in (
        dict(name="x"),
        dict(name="x", ra=(0, 1)),
        dict(name="x y", ra=(0, 1), dec=(0, 1)),
        dict(name="x", ra=(0, 1), dec=(0, 1), radius=2),
    ):
        with pytest.raises(ValueError):
            Patch(**bad)


def test_box_outline_wraps_through_ra_zero():
    ra, dec = Patch(name="w", ra=(350, 10), dec=(-40, -30)).boundary()
    assert ((ra >= 350) | (ra <= 10)).all() and dec.min() == -40 and dec.max() == -30


def test_master_schedule_command_writes_a_readable_file(tmp_path):
    patches = tmp_path / "patches.yaml"
    patches.write_text(
        "elevations: [45]\npatches:\n  - {name: one, ra: [0, 40], dec: [-50, -30]}\n  - {name: two, center: [200, -40], radius: 10}\n"
    )
    out = tmp_path / "plan.txt"
    done = subprocess.run(
        [
            CLI,
            "master-schedule",
            "--start",
            "2024-03-02 00:00",
            "--stop",
            "2024-03-04 00:00",
            "--patches",
            str(patches),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    schedule = master.read(out)
    assert (
        schedule.scans
        and {s.name for s in schedule.scans} <= {"one", "two"}
        and {s.el for s in schedule.scans} == {45.0}
    )
    assert all(utc(2024, 3, 1, 23) < s.start < utc(2024, 3, 4) for s in schedule.scans)


def test_master_schedule_command_reports_a_bad_patches_file(tmp_path):
    patches = tmp_path / "patches.yaml"
    patches.write_text("patches:\n  - {name: one, ra: [0, 40]}\n")
    assert "a box needs both ra and dec" in str(pytest.raises(ValueError, load_patches_file, patches).value)
    done = subprocess.run(
        [
            CLI,
            "master-schedule",
            "--start",
            "2024-03-02 00:00",
            "--stop",
            "2024-03-03 00:00",
            "--patches",
            str(patches),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "patches.0" in done.stderr and "a box needs both ra and dec" in done.stderr
