"""The checker's own platform data (``platforms.yaml``): limits per platform and operation durations.

A sat-shaped script names its platform in a ``# platform: <name>`` header line; its limits come
from here. A script may state limits of its own in header lines (``# limit el: 45 60``,
``# limit sun: 45 3600``): they can only narrow the platform's, never widen them (a wider one is a
problem, since the script then believes something about the telescope that is not so).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

RANGES = ("az", "el", "boresight", "hwp_el")


@dataclass(frozen=True)
class Platform:
    name: str
    az: tuple[float, float]
    el: tuple[float, float]
    boresight: tuple[float, float]
    hwp_el: tuple[float, float]
    sun_min_angle: float
    sun_min_time: float
    wiregrid_min_el: float
    wiregrid_boresight: float
    az_speed: float
    el_speed: float
    settle: float
    scan_az_accel: float
    site: tuple[float, float, float] | None = None  # lat, lon (deg), elevation (m); None: not known

    def slew_seconds(self, az0: tuple[float, float], el0: tuple[float, float], az: float, el: float) -> float:
        """From anywhere in the az/el ranges to one point, both axes at once."""
        daz = max(abs(az - az0[0]), abs(az - az0[1]))
        delev = max(abs(el - el0[0]), abs(el - el0[1]))
        return max(daz / self.az_speed, delev / self.el_speed) + self.settle


@cache
def _data() -> dict:
    import yaml

    return yaml.safe_load(resources.files(__package__).joinpath("platforms.yaml").read_text(encoding="utf-8"))


def names() -> list[str]:
    return sorted(_data()["platforms"])


def seconds(name: str) -> float:
    """How long the operation ``name`` ("hwp.spin_up", "smurf.iv_curve", ...) takes at least; 0 if not listed."""
    return float(_data()["seconds"].get(name, 0.0))


def platform(name: str, *, known: bool = True) -> Platform | None:
    """``name``'s data; None if it is not listed, unless ``known`` is False (then the defaults, to replay with)."""
    data = _data()
    if name not in data["platforms"] and known:
        return None
    values = {**data["defaults"], **(data["platforms"].get(name) or {})}
    site = values.pop("site", None)
    return Platform(
        name=name,
        **{k: (float(values[k][0]), float(values[k][1])) for k in RANGES},
        **{k: float(v) for k, v in values.items() if k not in RANGES},
        site=None if site is None else (float(site[0]), float(site[1]), float(site[2])),
    )


def narrowed(base: Platform, header: dict[str, str]) -> tuple[Platform, list[str]]:
    """``base`` with the header's ``limit <what>`` lines applied; and what is wrong with them."""
    changes: dict = {}
    problems: list[str] = []
    for key, text in header.items():
        if not key.startswith("limit "):
            continue
        what = key[len("limit ") :].strip()
        try:
            numbers = [float(x) for x in text.replace("..", " ").split()]
        except ValueError:
            problems.append(f"header '# {key}: {text}': numbers expected")
            continue
        if what in RANGES and len(numbers) == 2 and numbers[0] < numbers[1]:
            lo, hi = getattr(base, what)
            if numbers[0] < lo or numbers[1] > hi:
                problems.append(
                    f"header '# {key}: {text}' widens {base.name}'s {what} range {lo:g}..{hi:g}: the script"
                    " assumes limits the telescope does not have"
                )
                continue
            changes[what] = (numbers[0], numbers[1])
        elif what == "sun" and len(numbers) in (1, 2):
            if numbers[0] < base.sun_min_angle or (len(numbers) == 2 and numbers[1] < base.sun_min_time):
                problems.append(
                    f"header '# {key}: {text}' is looser than {base.name}'s sun policy"
                    f" ({base.sun_min_angle:g} deg, {base.sun_min_time:g} s)"
                )
                continue
            changes["sun_min_angle"] = numbers[0]
            if len(numbers) == 2:
                changes["sun_min_time"] = numbers[1]
        else:
            problems.append(
                f"header '# {key}: {text}': expected 'limit az|el|boresight|hwp_el: LOW HIGH' or 'limit sun: DEG [SECONDS]'"
            )
    return replace(base, **changes), problems
