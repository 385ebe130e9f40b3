"""The ``basic`` policy's configuration: every key, its default and what it means.

Rule sections keep the original server's hyphenated names (``sun-avoidance``,
``day-mod``, ...), so configs written for it still apply. A rule section set to
null is switched off, except ``sun-avoidance``, which cannot be.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from scheduler_server.observing.master.patches import GeneratorConfig, SiteConfig
from scheduler_server.observing.policies.basic.rules import (
    AltRange,
    DayMod,
    DriftMode,
    MakeSourcePlan,
    MakeSourceScan,
    MinDuration,
    MoonAvoidance,
    SunAvoidance,
)
from scheduler_server.observing.telescope import TelescopeModel
from scheduler_server.observing.types import PolicyConfig

Planet = Literal["mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune"]
_AS_WRITTEN = ConfigDict(serialize_by_alias=True)


class Rules(PolicyConfig):
    model_config = _AS_WRITTEN

    sun_avoidance: SunAvoidance = Field(
        default_factory=SunAvoidance, alias="sun-avoidance", description="Sun safety; always on."
    )
    moon_avoidance: MoonAvoidance | None = Field(
        default_factory=MoonAvoidance, alias="moon-avoidance", description="Moon avoidance; null turns it off."
    )
    day_mod: DayMod | None = Field(
        default_factory=DayMod, alias="day-mod", description="Calibrate every n-th sidereal day; null: every day."
    )
    drift_mode: DriftMode | None = Field(
        default_factory=DriftMode, alias="drift-mode", description="Rising, setting or both calibration windows."
    )
    alt_range: AltRange | None = Field(
        default_factory=AltRange, alias="alt-range", description="Elevations allowed for calibration scans."
    )
    calibration_min_duration: MinDuration | None = Field(
        default_factory=MinDuration,
        alias="calibration-min-duration",
        description="Shortest observing window kept (seconds between its first and last possible start).",
    )
    min_duration: MinDuration | None = Field(
        default_factory=MinDuration,
        alias="min-duration",
        description="Shortest master scan kept, after the calibration cuts and as observed (after its bias step).",
    )
    make_source_plan: MakeSourcePlan = Field(
        default_factory=MakeSourcePlan, alias="make-source-plan", description="Array footprint for planet scans."
    )
    make_source_scan: MakeSourceScan = Field(
        default_factory=MakeSourceScan, alias="make-source-scan", description="Start choice within a window."
    )


class BasicConfig(PolicyConfig):
    model_config = _AS_WRITTEN

    master_schedule: str | None = Field(
        None,
        description=(
            "Path (on the server) of a toast ground-schedule file; null uses the schedule generated from master_generator."
            " Site-only: set it in a preset of the server's configuration (observing.presets), not in a request."
        ),
        json_schema_extra={"site_only": True},
    )
    master_generator: GeneratorConfig = Field(
        default_factory=GeneratorConfig, description="How the default master schedule is generated."
    )
    calibration_targets: tuple[Planet, ...] = Field(
        ("uranus", "saturn"), max_length=7, description="Planets to calibrate on; [] for none."
    )
    site: SiteConfig = Field(
        default_factory=SiteConfig,
        description="The observatory (the SO site in Atacama by default). Site-only: the telescope's, set in a"
        " preset of the server's configuration (observing.presets), not in a request.",
        json_schema_extra={"site_only": True},
    )
    telescope: TelescopeModel = Field(default_factory=TelescopeModel, description="Slew speeds and command durations.")
    routing_elevations: tuple[float, ...] = Field(
        (30.0, 45.0, 60.0, 75.0),
        max_length=10,
        description="Elevations tried for a detour or a parking spot when a slew or wait would pass the sun.",
    )
    test_mode: bool = Field(True, description="Argument of initialize() in the script.")
    rules: Rules = Field(default_factory=Rules)


PRESETS = {
    # The original 2023 rule: the az/alt box test on scans only, no look-ahead. The
    # checker still holds every moment to min_angle (here 6 deg), slews included.
    "seed-box": {"rules": {"sun-avoidance": {"mode": "box", "min_angle": 6.0, "min_sun_time": 0.0}}},
    "no-calibration": {"calibration_targets": []},
    # The 2023 server's configs/basic.py (simonsobs/scheduler-server at 14dc4aa, schedlib v0.1.0), as a
    # reference: its rules exactly, and its timing: schedlib 2023 gave the bias step, the detector bias and
    # the slews no time, so the commands take none and the slews are the fastest the model allows (10 deg/s,
    # no settling). Its master schedule was the seed's schedule_sat.txt: a site sets master_schedule.
    "seed-2023": {
        "calibration_targets": ["uranus", "saturn"],
        "telescope": {
            "uxm_setup_seconds": 0,
            "iv_curve_seconds": 0,
            "bias_dets_seconds": 0,
            "bias_step_seconds": 0,
            "az_speed": 10.0,
            "el_speed": 10.0,
            "settle_seconds": 0.0,
        },
        "rules": {
            "sun-avoidance": {
                "mode": "box",
                "min_angle": 6.0,
                "min_sun_time": 0.0,
                "min_angle_az": 6.0,
                "min_angle_alt": 6.0,
                "time_step": 10,
                "n_buffer": 3,
            },
            "moon-avoidance": None,
            "day-mod": {"day": 0, "day_mod": 1, "day_ref": "2014-01-01T00:00:00+00:00"},
            "drift-mode": None,
            "alt-range": {"alt_range": [20, 90]},
            "calibration-min-duration": {"min_duration": 300},
            "min-duration": None,
            "make-source-plan": {
                "specs": [{"bounds_x": [-0.5, 0.5], "bounds_y": [-0.5, 0.5]}],
                "spec_shape": "ellipse",
                "max_obs_length": 6000,
            },
            "make-source-scan": {"preferred_length": 1800},
        },
    },
}
