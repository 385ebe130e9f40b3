"""The ``sat`` policy's configuration: every key, its default and what it means.

Key names are schedlib's (``SATPolicy``/``TelPolicy`` fields, its ``rules`` and ``stages.build_op.plan_moves``
nesting), so an operator's ``run_satp*.yaml`` settings carry over; the differences are said in
docs/observing.md ("The `sat` policy"). The defaults are SATp1's; ``presets.py`` holds each platform's.

Plans come three ways: a bundled plan by name (``cmb_plan``, ``cal_plan``, ``wiregrid_plan``), a file on the
server (``*_plan_file``: site-only, set in a preset of the server's configuration), or the plan's text in the
request (``*_plan_text``, at most ``PLAN_TEXT_LIMIT`` characters).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from scheduler_server.observing.master.patches import SiteConfig
from scheduler_server.observing.types import PolicyConfig

HOUR = 3600.0
DAY = 86400.0
PLAN_TEXT_LIMIT = 1_000_000  # characters: the bundled SATp1 baseline (two months) is 174 kB
PLAN_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"  # a bundled plan's name: no path separators
# The SATs' limits, the policy's copy (the checker has its own): az -45..405 (socs avoidance DEFAULT_POLICY),
# boresight -55..55 (socs acu_agent.rst SATP motion_limits), scan az acceleration at most 4 deg/s^2 (ibid.,
# azimuth accel), scan az speed at most 5 deg/s (this policy's cap)
AZ_RANGE = (-45.0, 405.0)
BORESIGHT_RANGE = (-55.0, 55.0)
EL_RANGE = (20.0, 90.0)  # where a stopped telescope may stand (the ACU's 18.5, rounded up)
MAX_AZ_SPEED, MAX_AZ_ACCEL = 5.0, 4.0
_AS_WRITTEN = ConfigDict(serialize_by_alias=True)
_SITE_ONLY = {"site_only": True}
# schedlib source.py SITES (so3g's figures), to 6 decimals: the policy's copy (the checker has its own)
SATP1_SITE = {"name": "satp1", "telescope": "SAT", "lat": -22.960106, "lon": -67.788364, "elevation": 5188.0}
_TEXT_LIMIT_NOTE = f" At most {PLAN_TEXT_LIMIT:,} characters."


class SunPolicy(PolicyConfig):
    """The observatory's sun policy: no pointing nearer the sun than ``min_angle`` within ``min_sun_time``."""

    min_angle: float = Field(41.0, ge=0, le=90, description="Closest the boresight may come to the sun, deg.")
    min_sun_time: float = Field(
        1980.0, ge=0, le=DAY, description="Seconds a pointing must stay clear of the sun (look-ahead), at most a day."
    )
    time_step: int = Field(10, ge=1, le=300, description="Sampling step of the sun's track, s.")


class PlanMoves(PolicyConfig):
    sun_policy: SunPolicy = Field(default_factory=SunPolicy, description="Sun policy for moves, waits and parking.")
    az_limits: tuple[float, float] = Field(
        (-45.0, 405.0), description="Unwrapped azimuth range the telescope may use, deg (SATs: -45..405)."
    )
    el_limits: tuple[float, float] = Field(
        (40.0, 90.0), description="Elevation range, deg; the top is max_hwp_el when force_max_hwp_el."
    )
    alt_step: float = Field(
        4.0,
        ge=1,
        le=30,
        description="Elevation step tried when routing around the sun, deg (at least 1: work grows as 1/step).",
    )

    @model_validator(mode="after")
    def _limits(self):
        lo, hi = self.el_limits
        if not 0 <= lo < hi <= 90:
            raise ValueError("el_limits must be [low, high] with 0 <= low < high <= 90")
        lo, hi = self.az_limits
        if not -360 <= lo < hi <= 720 or hi - lo < 360:
            raise ValueError("az_limits must be [low, high] with -360 <= low < high <= 720, covering a full turn")
        return self


class BuildOp(PolicyConfig):
    plan_moves: PlanMoves = Field(default_factory=PlanMoves)
    min_duration: float = Field(
        60.0, ge=0, le=DAY, description="Shortest calibration or wiregrid scan kept after a late start, s."
    )
    min_cmb_duration: float = Field(600.0, ge=0, le=DAY, description="Shortest CMB scan kept after a late start, s.")


class Stages(PolicyConfig):
    build_op: BuildOp = Field(default_factory=BuildOp)


class MinDuration(PolicyConfig):
    min_duration: float = Field(600.0, ge=0, le=DAY, description="Shortest scan kept, s.")


class Rules(PolicyConfig):
    model_config = _AS_WRITTEN

    sun_avoidance: SunPolicy = Field(
        default_factory=SunPolicy,
        alias="sun-avoidance",
        description="Sun avoidance of scans and calibration windows; always on. The stricter of it and"
        " stages.build_op.plan_moves.sun_policy is applied everywhere.",
    )
    min_duration: MinDuration | None = Field(
        default_factory=MinDuration,
        alias="min-duration",
        description="Shortest CMB block kept after calibration cuts; null turns it off.",
    )


class Slew(PolicyConfig):
    """How fast the mount moves between pointings (not the scan speed: that is ``az_speed``)."""

    az_speed: float = Field(1.0, ge=0.01, le=10.0, description="Azimuth slew speed, deg/s.")
    el_speed: float = Field(0.5, ge=0.01, le=10.0, description="Elevation slew speed, deg/s.")
    settle_seconds: float = Field(10.0, ge=0, le=3600.0, description="Settling after each move, s.")


Turn = Literal["standard", "standard_gen", "two_leg", "three_leg"]  # the ACU's generate_scan choices


# The ACU refuses "standard" for type 2 and 3 scans (socs acu agent generate_scan): they need a generated one
Generated = Literal["standard_gen", "two_leg", "three_leg"]


class TurnaroundCmb(PolicyConfig):
    type1: Turn = "standard"
    type2: Generated = "standard_gen"
    type3: Generated = "standard_gen"


class Turnaround(PolicyConfig):
    cmb: TurnaroundCmb = Field(default_factory=TurnaroundCmb, description="By CMB scan type.")
    cal: Turn = "standard"


class StowPosition(PolicyConfig):
    az_stow: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Stow azimuth at the end, within plan_moves.az_limits; null: stay (or a sun-safe spot).",
    )
    el_stow: float | None = Field(
        None, allow_inf_nan=False, description="Stow elevation at the end, within plan_moves.el_limits."
    )


class CalTargetConfig(PolicyConfig):
    """One calibration target, as schedlib's ``add_cal_target(source, boresight, elevation, focus, ...)``."""

    source: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="A planet or the moon, e.g. 'jupiter'.")
    boresight: float = Field(ge=-55, le=55, description="Boresight rotation during the scan, deg (-55..55).")
    elevation: float = Field(ge=20, le=90, description="Elevation of the scan, deg.")
    focus: str = Field(
        pattern=r"^[A-Za-z0-9_,]{1,64}$",
        description="Wafer focus: 'left', 'middle', 'right', 'bottom', 'all' (the platform's table) or wafers 'ws0,ws3'.",
    )
    rising: bool | None = Field(None, description="True: the rising crossing only; False: setting; null: either.")
    source_direction: Literal["rising", "setting"] | None = Field(None, description="schedlib's name for rising.")
    allow_partial: bool = Field(False, description="Keep a crossing the window or the sun cuts.")
    drift: bool = Field(True, description="Drift the scan in azimuth with the source.")
    az_branch: float | None = Field(None, ge=-45, le=405, description="Preferred azimuth of the crossing, deg.")
    az_speed: float | None = Field(None, gt=0, le=5, description="Scan speed; null: the policy's az_speed.")
    az_accel: float | None = Field(None, gt=0, le=4, description="Scan acceleration; null: the policy's az_accel.")

    @model_validator(mode="after")
    def _direction(self):
        if self.rising is not None and self.source_direction is not None:
            if self.rising != (self.source_direction == "rising"):
                raise ValueError("rising and source_direction disagree; give one of them")
        return self

    @property
    def direction(self) -> str | None:
        if self.source_direction is not None:
            return self.source_direction
        return None if self.rising is None else ("rising" if self.rising else "setting")


class TelescopeState(PolicyConfig):
    """Where the telescope is when the script starts (schedlib's State); checked against the platform's limits."""

    az: float = Field(180.0, description="Current azimuth, deg (unwrapped, within plan_moves.az_limits).")
    el: float = Field(40.0, description="Current elevation, deg (within plan_moves.el_limits).")
    boresight: float = Field(0.0, ge=-55, le=55, description="Current boresight rotation, deg (-55..55).")
    hwp_spinning: bool = Field(False, description="Whether the HWP spins now.")
    hwp_dir: Literal["ccw", "cw"] | None = Field(
        None, description="Its direction: 'ccw' (positive frequency, schedlib's True) or 'cw'; null when stopped."
    )
    last_relock: datetime | None = Field(None, description="When the detectors were last relocked; null: due now.")
    last_iv: datetime | None = Field(None, description="When the last IV curve was taken; null: due now.")

    @field_validator("hwp_dir", mode="before")
    @classmethod
    def _bool_direction(cls, value):
        if isinstance(value, bool):  # schedlib's state files say True (ccw) / False (cw)
            return "ccw" if value else "cw"
        return value

    @field_validator("last_relock", "last_iv")
    @classmethod
    def _aware(cls, value: datetime | None):
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. +00:00 or Z)")
        return value

    @model_validator(mode="after")
    def _spinning(self):
        if self.hwp_spinning and self.hwp_dir is None:
            raise ValueError("hwp_dir is required when hwp_spinning is true")
        return self


class SatConfig(PolicyConfig):
    model_config = _AS_WRITTEN

    platform: Literal["satp1", "satp2", "satp3"] = Field("satp1", description="Which SAT (hostname, wafer tables).")
    cmb_plan: str | None = Field(
        "satp1_baseline_20231031.txt", pattern=PLAN_NAME, description="A bundled CMB plan by name (policies/sat/data)."
    )
    cmb_plan_file: str | None = Field(
        None,
        description="Path of a CMB plan on the server (schedlib's cmb_plan); overrides cmb_plan. Site-only.",
        json_schema_extra=_SITE_ONLY,
    )
    cmb_plan_text: str | None = Field(
        None, max_length=PLAN_TEXT_LIMIT, description="A CMB plan's text; overrides the others." + _TEXT_LIMIT_NOTE
    )
    cal_plan: str | None = Field(None, pattern=PLAN_NAME, description="A bundled calibration-target plan by name.")
    cal_plan_file: str | None = Field(
        None, description="Path of a calibration-target plan on the server. Site-only.", json_schema_extra=_SITE_ONLY
    )
    cal_plan_text: str | None = Field(
        None, max_length=PLAN_TEXT_LIMIT, description="A calibration-target plan's text." + _TEXT_LIMIT_NOTE
    )
    wiregrid_plan: str | None = Field(None, pattern=PLAN_NAME, description="A bundled wiregrid plan by name.")
    wiregrid_plan_file: str | None = Field(
        None, description="Path of a wiregrid plan on the server. Site-only.", json_schema_extra=_SITE_ONLY
    )
    wiregrid_plan_text: str | None = Field(
        None, max_length=PLAN_TEXT_LIMIT, description="A wiregrid plan's text." + _TEXT_LIMIT_NOTE
    )
    cal_targets: tuple[CalTargetConfig, ...] = Field((), max_length=50, description="Calibration targets to add.")
    state: TelescopeState = Field(default_factory=TelescopeState, description="The telescope at t0.")
    site: SiteConfig = Field(
        default_factory=lambda: SiteConfig(**SATP1_SITE),
        description="Where the SAT stands (SATp1's by default; each preset its own). Site-only: the telescope's,"
        " set in a preset of the server's configuration, never by a request (the checker uses its own data).",
        json_schema_extra=_SITE_ONLY,
    )
    slew: Slew = Field(default_factory=Slew)
    rules: Rules = Field(default_factory=Rules)
    stages: Stages = Field(default_factory=Stages)

    az_speed: float = Field(0.8, gt=0, le=5, description="CMB scan speed, deg/s.")
    az_accel: float = Field(1.5, gt=0, le=4, description="CMB scan acceleration, deg/s^2 (the ACU's 4 at most).")
    scan_type: Literal[1, 2, 3] = Field(
        1,
        description="CMB scan type (sorunlib seq.scan, the ACU's generate_scan): 1 constant elevation and az speed;"
        " 2 constant elevation, az speed varied with az; 3 as 2 with an elevation nod of el_amp at el_freq.",
    )
    el_amp: float = Field(
        0.0,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Type 3's elevation nod, deg either side of the block's elevation (only with scan_type 3); the"
        " nod stays within plan_moves.el_limits and, unless disable_hwp, min_hwp_el..max_hwp_el.",
    )
    el_freq: float = Field(
        0.0, ge=0, le=1.0, allow_inf_nan=False, description="Type 3's nod frequency, Hz (only with scan_type 3)."
    )
    iv_cadence: float | None = Field(4 * HOUR, gt=0, le=7 * DAY, description="Detector setup at least this often, s.")
    bias_step_cadence: float | None = Field(0.5 * HOUR, gt=0, le=7 * DAY, description="Bias steps this often, s.")
    relock_cadence: float | None = Field(
        24 * HOUR, gt=0, le=7 * DAY, description="Relock this often, s; null: never (schedlib's)."
    )
    max_cmb_scan_duration: float | None = Field(
        1 * HOUR, ge=600, le=DAY, description="Longer CMB blocks are divided into scans of about this length, s."
    )
    cryo_stabilization_time: float = Field(0.0, ge=0, le=4 * HOUR, description="Wait after a boresight move, s.")
    det_setup_duration: float = Field(20 * 60.0, ge=0, le=4 * HOUR, description="Detector setup (IV, bias...), s.")
    home_at_end: bool = Field(False, description="Spin the HWP down at the end of the script.")
    stow_position: StowPosition = Field(default_factory=StowPosition)
    turnaround_method: Turnaround = Field(default_factory=Turnaround)
    min_hwp_el: float = Field(48.0, ge=0, le=90, description="Lowest elevation the HWP may spin at, deg.")
    max_hwp_el: float = Field(60.0, ge=0, le=90, description="Highest elevation the HWP may spin at, deg.")
    force_max_hwp_el: bool = Field(True, description="Cap plan_moves.el_limits at max_hwp_el.")
    brake_hwp: bool = Field(True, description="Spin the HWP down with the active brake.")
    disable_hwp: bool = Field(False, description="Leave the HWP alone (no spin up/down, no wiregrid).")
    hwp_override: Literal["ccw", "cw"] | None = Field(
        None, description="Force every scan's HWP direction ('ccw', or schedlib's true; 'cw', or false)."
    )
    boresight_override: float | None = Field(None, ge=-55, le=55, description="Force every scan's boresight, deg.")
    apply_boresight_rot: bool = Field(True, description="Rotate the boresight as the plans say.")
    elevation_override: float | None = Field(None, ge=20, le=90, description="Force every scan's elevation, deg.")
    az_branch_override: float | None = Field(None, ge=-45, le=405, description="Force calibration az branches.")
    allow_partial_override: bool = Field(False, description="Retry a calibration target with allow_partial.")
    drift_override: bool | None = Field(None, description="Force every calibration target's drift.")
    ignore_wafers: tuple[str, ...] = Field((), max_length=7, description="Wafers left out of calibration focus.")
    xi_offset: float = Field(0.0, ge=-10, le=10, description="Focal-plane xi offset, deg.")
    eta_offset: float = Field(0.0, ge=-10, le=10, description="Focal-plane eta offset, deg.")
    az_offset: float = Field(0.0, ge=-10, le=10, description="Added to every commanded azimuth, deg.")
    el_offset: float = Field(0.0, ge=-10, le=10, description="Added to every commanded elevation, deg.")
    wiregrid_az: float = Field(180.0, ge=-45, le=405, description="Wiregrid pointing when wiregrid_override, deg.")
    wiregrid_el: float = Field(50.0, ge=40, le=90, description="Wiregrid elevation when wiregrid_override, deg.")
    wiregrid_override: bool = Field(False, description="Use wiregrid_az/el instead of the wiregrid plan's pointing.")
    min_wiregrid_el: float = Field(49.9, ge=0, le=90, description="Lowest elevation of a wiregrid run, deg.")
    run_noobs: bool = Field(False, description="Relock during no-observation blocks (relock_cadence_noobs).")
    relock_cadence_noobs: float = Field(4 * HOUR, gt=0, le=7 * DAY, description="Relock cadence in noobs blocks, s.")
    scan_tag: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-.]{0,64}$", description="Added to every CMB tag.")
    wait_tolerance: float = Field(
        60.0, ge=0, le=3600, description="run.wait_until's tolerance, s (how late a wait may be reached)."
    )

    @field_validator("hwp_override", mode="before")
    @classmethod
    def _bool_override(cls, value):
        if isinstance(value, bool):  # schedlib's run_satp*.yaml say true (ccw) / false (cw)
            return "ccw" if value else "cw"
        return value

    def el_limits(self) -> tuple[float, float]:
        """The elevations the planner may use: plan_moves.el_limits, capped as schedlib does."""
        lo, hi = self.stages.build_op.plan_moves.el_limits
        if self.elevation_override is not None:
            return (self.elevation_override, self.elevation_override)
        if self.force_max_hwp_el and not self.disable_hwp:
            hi = min(hi, self.max_hwp_el)
        return (lo, hi)

    def sun_policy(self) -> SunPolicy:
        """The stricter of rules.sun-avoidance and plan_moves.sun_policy, applied to everything."""
        a, b = self.rules.sun_avoidance, self.stages.build_op.plan_moves.sun_policy
        return SunPolicy(
            min_angle=max(a.min_angle, b.min_angle),
            min_sun_time=max(a.min_sun_time, b.min_sun_time),
            time_step=min(a.time_step, b.time_step),
        )
