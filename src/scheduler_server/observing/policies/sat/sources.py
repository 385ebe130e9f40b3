"""Calibration sources: which names the sat policy knows, and where a source is in the sky over time.

Planets and the moon come from ``observing/sky`` (DE421, apparent, topocentric). Fixed sources are schedlib's
(``taua``, ``rcw38``, ``galcenter``, J2000 right ascension in hours and declination in degrees) or any target
given with ``ra``/``dec`` (degrees): precessed and nutated to the equator of date once per track (their drift
over a week is under 0.002 deg), then turned into azimuth and elevation with the site's sidereal time.
Refraction is not applied, as everywhere in ``sky``.
"""

from __future__ import annotations

import numpy as np

from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.site import Site

PLANETS = tuple(body for body in sky.BODIES if body != "sun")  # the sun is never a calibration target
FIXED_SOURCES = {  # (ra hours, dec deg), J2000
    "taua": (5.5755, 22.0167),
    "rcw38": (8.98, -47.5),
    "galcenter": (17.7611, -28.95),
}
KNOWN = (*PLANETS, *FIXED_SOURCES)


def fixed_position(name: str, ra: float | None = None, dec: float | None = None) -> tuple[float, float] | None:
    """(ra, dec) in degrees of a fixed source, or None for a planet; KeyError for an unknown name without ra/dec."""
    if ra is not None and dec is not None:
        return float(ra), float(dec)
    if name in PLANETS:
        return None
    hours, dec_deg = FIXED_SOURCES[name]
    return hours * 15.0, dec_deg


def is_known(name: str, ra: float | None = None, dec: float | None = None) -> bool:
    return (ra is not None and dec is not None) or name in KNOWN


def track(name: str, site: Site, t: np.ndarray, ra: float | None = None, dec: float | None = None):
    """Azimuth (unwrapped, so continuous over the track) and elevation of the source at times ``t``."""
    fixed = fixed_position(name, ra, dec)
    if fixed is None:
        az, el = sky.altaz(name, site, t)
    else:
        ra_date, dec_date = sky.radec_of_date(fixed[0], fixed[1], float(t[len(t) // 2]))
        ha = sky.sidereal_time(site, t) - float(ra_date)
        az, el = sky.hadec_to_altaz(ha, np.full_like(t, float(dec_date)), site.lat)
    return np.degrees(np.unwrap(np.radians(az))), el
