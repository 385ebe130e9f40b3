"""How long the telescope takes to do things: the timing model shared by policy and checker.

A script says *what* to do; when each move happens follows from how long every
command before it takes. These are nominal durations, not promises: the margin
against them is ``min_sun_time`` (the sun cannot reach a pointing for that long),
so a command running late by less than that stays safe.

Slews move both axes at once, each at its own speed, so a slew lasts as long as
the slower axis needs (plus settling) and stays within the az/el rectangle of its
two ends.

The command durations default to what the observatory's own scheduler (schedlib's
SAT policy) assumes: a relock (``uxm_setup``) 15 min, a detector setup (the IV curve
and what follows it) 20 min, 180 s of settling after ``bias_dets``, 60 s a bias step.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from scheduler_server.observing.types import PolicyConfig

DAY = 86400.0


class TelescopeModel(PolicyConfig):
    # Bounds keep every duration a script can add up to within days, so a plan never reaches
    # outside the ephemeris: speeds down to 0.01 deg/s, each command at most a day.
    az_speed: float = Field(1.0, ge=0.01, le=10.0, description="Azimuth slew speed, deg/s (0.01..10).")
    el_speed: float = Field(0.5, ge=0.01, le=10.0, description="Elevation slew speed, deg/s (0.01..10).")
    settle_seconds: float = Field(10.0, ge=0, le=3600.0, description="Time to settle after each move (at most 1 h).")
    az_limits: tuple[float, float] = Field(
        (-90.0, 480.0), description="Lowest and highest azimuth the telescope may point at (the SAT's ACU: -90..480)."
    )
    el_limits: tuple[float, float] = Field(
        (20.0, 90.0), description="Lowest and highest elevation the telescope may point at."
    )
    uxm_setup_seconds: float = Field(
        900.0, ge=0, le=DAY, description="Nominal duration of smurf.uxm_setup() (at most a day)."
    )
    iv_curve_seconds: float = Field(
        1200.0, ge=0, le=DAY, description="Nominal duration of smurf.iv_curve() (at most a day)."
    )
    bias_dets_seconds: float = Field(
        180.0, ge=0, le=DAY, description="Nominal duration of smurf.bias_dets() (at most a day)."
    )
    bias_step_seconds: float = Field(
        60.0, ge=0, le=DAY, description="Nominal duration of smurf.bias_step() (at most a day)."
    )

    @model_validator(mode="after")
    def _limits(self):
        lo, hi = self.el_limits
        if not 0 <= lo < hi <= 90:
            raise ValueError("el_limits must be [low, high] with 0 <= low < high <= 90")
        lo, hi = self.az_limits
        if not -360 <= lo < hi <= 720:
            raise ValueError("az_limits must be [low, high] with -360 <= low < high <= 720")
        return self

    def slew_seconds(self, az_from: tuple[float, float], el_from: float, az_to: float, el_to: float) -> float:
        """Slew time from anywhere in the azimuth range ``az_from`` at ``el_from`` to one point."""
        daz = max(abs(az_to - az_from[0]), abs(az_to - az_from[1]))
        return max(daz / self.az_speed, abs(el_to - el_from) / self.el_speed) + self.settle_seconds

    def longest_slew_seconds(self) -> float:
        """The first slew of a script, from a pointing nobody knows: up to the whole azimuth range
        (570 deg on the SAT, more than a turn) or the whole elevation range, whichever takes longer."""
        (az_lo, az_hi), (el_lo, el_hi) = self.az_limits, self.el_limits
        return max((az_hi - az_lo) / self.az_speed, (el_hi - el_lo) / self.el_speed) + self.settle_seconds

    def command_seconds(self, name: str) -> float:
        return {
            "smurf.uxm_setup": self.uxm_setup_seconds,
            "smurf.iv_curve": self.iv_curve_seconds,
            "smurf.bias_dets": self.bias_dets_seconds,
            "smurf.bias_step": self.bias_step_seconds,
        }.get(name, 0.0)
