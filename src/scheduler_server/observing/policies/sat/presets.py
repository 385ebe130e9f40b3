"""The ``sat`` presets: each SAT platform as schedlib's ``SATP1Policy``, ``SATP2Policy``, ``SATP3Policy`` have it.

Only what differs from the config's defaults (SATp1's) is written. From schedlib (``policies/satp*.py``, their
``from_defaults`` and ``make_config`` as of fb6d295, 2025-11-10, the last version holding them: since the
refactor of 2025-12 the figures come from the operators' run files): SATp1 and SATp2 scan at 0.8 deg/s and
1.5 deg/s^2, SATp3 at 0.5 and 0.25;
SATp1's sun policy is 41 deg, SATp2's and SATp3's 49 deg (1980 s on all three); SATp3 ignores a boresight
override, sets its detectors up with its own commands (no take_noise, 300 s of settling) and checks that the
readout vent is open before anything else (``operations.py`` holds those per-platform commands by platform).
Each stands where schedlib's ``source.SITES`` puts it (the config's default site is SATp1's).
"""

from __future__ import annotations

from typing import Any

_SITE = {"telescope": "SAT", "elevation": 5188.0}  # schedlib source.py SITES, to 6 decimals
_SUN_49 = {"min_angle": 49.0, "min_sun_time": 1980.0}

PRESETS: dict[str, dict[str, Any]] = {
    "satp1": {"platform": "satp1"},
    "satp2": {
        "platform": "satp2",
        "site": {**_SITE, "name": "satp2", "lat": -22.960097, "lon": -67.788133},
        "rules": {"sun-avoidance": _SUN_49},
        "stages": {"build_op": {"plan_moves": {"sun_policy": _SUN_49}}},
    },
    "satp3": {
        "platform": "satp3",
        "site": {**_SITE, "name": "satp3", "lat": -22.959992, "lon": -67.787925},
        "az_speed": 0.5,
        "az_accel": 0.25,
        "rules": {"sun-avoidance": _SUN_49},
        "stages": {"build_op": {"plan_moves": {"sun_policy": _SUN_49}}},
    },
}
