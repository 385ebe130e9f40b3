"""Sun, moon and planet positions: against a second library, against skyfield itself, offline, cached."""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest

from scheduler_server.observing.sky import cache
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.ephemerides import ATACAMA
from scheduler_server.observing.sky.geometry import angular_distance

# Three 12-day spells in 2023..2025 (inside the IERS tables astropy ships, so it needs no
# download), 20 random moments each: three table chunks per body to compute, not dozens.
RNG = np.random.default_rng(20240301)
SPELLS = (1678838400, 1720051200, 1762732800)  # 2023-03-15, 2024-07-04, 2025-11-10
TIMES = np.sort(np.concatenate([start + RNG.uniform(0, 12 * 86400, 20) for start in SPELLS])).round()


def astropy_altaz(body: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body, solar_system_ephemeris
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False  # offline: the bundled IERS tables only
    iers.conf.auto_max_age = None
    location = EarthLocation.from_geodetic(ATACAMA.lon * u.deg, ATACAMA.lat * u.deg, ATACAMA.elevation * u.m)
    when = Time(times, format="unix", scale="utc")
    with solar_system_ephemeris.set("builtin"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = AltAz(obstime=when, location=location, pressure=0 * u.hPa)  # no refraction, as sky.py
        position = get_body(body, when, location).transform_to(frame)
    return position.az.deg, position.alt.deg


@pytest.mark.parametrize("body", ["sun", "moon", "uranus", "saturn", "jupiter"])
def test_positions_agree_with_astropy_to_002_deg(body):
    az, el = sky.altaz(body, ATACAMA, TIMES)
    az_ref, el_ref = astropy_altaz(body, TIMES)
    separation = angular_distance(az, el, az_ref, el_ref)
    assert separation.max() < 0.02, f"{body}: worst {separation.max():.4f} deg"
    assert np.ptp(el) > 30  # the sample really spans the sky, not one spot


def test_interpolated_tables_match_skyfield_directly():
    from skyfield.api import wgs84

    ts, eph = sky._skyfield()
    observer = eph["earth"] + wgs84.latlon(ATACAMA.lat, ATACAMA.lon, ATACAMA.elevation)
    when = sky._skyfield_time(ts, TIMES)
    for body in ("sun", "moon"):
        el_ref, az_ref, _ = observer.at(when).observe(eph[sky.EPHEMERIS_NAMES[body]]).apparent().altaz()
        az, el = sky.altaz(body, ATACAMA, TIMES)
        assert angular_distance(az, el, az_ref.degrees, el_ref.degrees).max() < 0.001


def test_dense_arrays_take_the_fast_path_without_losing_accuracy():
    t = 1709251200 + np.arange(0, 86400, 10.0)
    az, el = sky.altaz("moon", ATACAMA, t)
    az_point, el_point = sky.altaz("moon", ATACAMA, t[::97])  # few times: the cubic directly
    assert angular_distance(az[::97], el[::97], az_point, el_point).max() < 1e-4


def test_sidereal_time_is_continuous_across_table_chunks():
    edge = sky.CHUNK_SECONDS * 1200
    t = edge + np.arange(-600, 600, 60.0)
    lst = sky.sidereal_time(ATACAMA, t)
    steps = np.diff(lst)
    assert np.allclose(steps, 60 * sky.SIDEREAL_DEG_PER_SECOND, atol=1e-6)


def test_nothing_is_downloaded_when_computing_from_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path / "empty-cache"))
    sky._table.cache_clear()
    sky._skyfield.cache_clear()

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    try:
        az, el = sky.altaz("sun", ATACAMA, np.array([1704067200.0]))
    finally:
        sky._table.cache_clear()
    assert np.isfinite(az).all() and np.isfinite(el).all()
    assert list((tmp_path / "empty-cache" / "sky").rglob("*.npy"))  # and the table was cached


def test_tables_are_reused_from_disk_and_broken_files_are_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path / "c"))
    t = np.array([1735689600.0, 1735700000.0])
    sky._table.cache_clear()
    first = sky.altaz("moon", ATACAMA, t)
    files = sorted((tmp_path / "c").rglob("moon-*.npy"))
    assert len(files) == 1
    sky._table.cache_clear()
    monkeypatch.setattr(sky, "_compute", lambda *a: pytest.fail("recomputed although cached"))
    assert np.array_equal(sky.altaz("moon", ATACAMA, t)[1], first[1])
    monkeypatch.undo()
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path / "c"))
    files[0].write_bytes(b"not a numpy file")
    sky._table.cache_clear()
    again = sky.altaz("moon", ATACAMA, t)
    sky._table.cache_clear()
    assert np.allclose(again[1], first[1])


def test_cache_file_names_carry_the_site_and_library_versions():
    name = f"sky/{sky.data_versions()}/{ATACAMA.key}"
    assert "skyfield" in name and "-22.958000" in name


def test_unknown_body_is_refused():
    with pytest.raises(ValueError, match="unknown body 'pluto'"):
        sky.altaz("pluto", ATACAMA, np.array([0.0]))
