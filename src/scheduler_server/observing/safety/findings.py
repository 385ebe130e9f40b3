"""What the checker finds: the spans the telescope occupies, the violations, and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

# Violation kinds: "sun" (too near the sun) and the sat shape's hazards.
HAZARDS = {
    "hwp_el": "the HWP spins outside its elevation range",
    "boresight": "a boresight move while the HWP spins",
    "bias": "a scan with the detectors not biased since the last relock",
    "time": "time running backwards or late",
    "range": "a pointing outside the platform's range",
    "wiregrid": "a wiregrid run the wiregrid refuses (HWP not spinning, elevation, boresight)",
    "hwp": "an HWP command the HWP cannot follow",
}


@dataclass(frozen=True, slots=True)
class Span:
    """The telescope within az x el from t0 to t1, because of the command on ``line``."""

    line: int
    doing: str  # "slew", "scan" or a command's name while holding still
    t0: float
    t1: float
    az: tuple[float, float]
    el: tuple[float, float]
    label: str = ""  # a scan's description
    target: tuple[float, float] = (0.0, 0.0)  # where a slew goes

    @property
    def what(self) -> str:
        if self.doing == "slew":
            return f"slew to az {self.target[0]:g} el {self.target[1]:g}"
        if self.doing == "scan":
            return f"scan {self.label!r} over az {self.az[0]:g}..{self.az[1]:g} el {self.el[0]:g}"
        return f"{self.doing} at az {self.az[0]:g}..{self.az[1]:g} el {self.el[0]:g}"


@dataclass(frozen=True)
class Violation:
    """An unsafe moment (``kind`` "sun": ``closest`` deg from the sun) or a hazard of another ``kind``
    (see ``HAZARDS``; ``what`` says what is wrong, ``t0``/``t1`` the replayed time or None if unknown)."""

    line: int
    what: str
    t0: float | None
    t1: float | None
    closest: float | None = None
    sun_az: float | None = None
    sun_el: float | None = None
    kind: str = "sun"

    def __str__(self) -> str:
        if self.kind != "sun":
            when = f" (at {iso(self.t0)})" if self.t0 is not None else ""
            return f"line {self.line}: {self.what}{when}"
        return (
            f"line {self.line}: {self.what} from {iso(self.t0)} to {iso(self.t1)} comes {self.closest:.2f} deg"
            f" from the sun (at az {self.sun_az:.1f} el {self.sun_el:.1f})"
        )


@dataclass
class Report:
    min_angle: float
    violations: list[Violation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spans: int = 0
    closest: float | None = None
    # (POSIX time, least sun distance of what the telescope occupies, deg): one per minute
    # of the replayed timeline (the minute's start, its closest moment), over the whole script.
    sun_samples: list[tuple[float, float]] = field(default_factory=list)
    platform: str | None = None  # a sat-shaped script's platform, as its header names it

    @property
    def limit_deg(self) -> float:
        """The least sun distance the script was held to, deg."""
        return self.min_angle

    @property
    def safe(self) -> bool:
        return not self.violations and not self.problems

    def lines(self) -> list[str]:
        return [*self.problems, *(str(v) for v in sorted(self.violations, key=lambda v: v.line))]

    def summary(self) -> str:
        """One line: how many unsafe spans, hazards and problems."""
        sun = sum(v.kind == "sun" for v in self.violations)
        hazards = len(self.violations) - sun
        return (
            f"{sun} span(s) closer than {self.min_angle:g} deg to the sun, {hazards} hazard(s),"
            f" {len(self.problems)} problem(s)"
        )


def iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(round(seconds), tz=UTC).isoformat()
    except (OverflowError, ValueError, OSError):  # beyond the years datetime has (a script's own odd times)
        return f"POSIX {seconds:.0f}"
