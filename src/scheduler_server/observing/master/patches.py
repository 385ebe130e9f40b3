"""What a generated master schedule observes: sky patches and the generator's settings.

A patch is an RA/Dec box (``ra: [lo, hi]``, wrapping through 0 when lo > hi, and
``dec: [lo, hi]``) or a circle (``center: [ra, dec]``, ``radius``), in ICRS degrees,
with a ``priority`` (twice the priority, twice the share of observing time). The
same models validate the policy's config and the ``--patches`` file of
``scheduler-server master-schedule``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StringConstraints, ValidationError, model_validator

from scheduler_server.observing.sky.site import ATACAMA, Site
from scheduler_server.observing.types import PolicyConfig
from scheduler_server.validation_text import problem_text

PatchName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}$")]
DEFAULT_PATCHES_FILE = "patches.yaml"


class SiteConfig(PolicyConfig):
    name: str = Field(
        ATACAMA.name, pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="Site name written in master schedules."
    )
    telescope: str = Field(
        ATACAMA.telescope, pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="Telescope name written in master schedules."
    )
    lat: float = Field(ATACAMA.lat, ge=-90, le=90, description="Geodetic latitude, degrees.")
    lon: float = Field(ATACAMA.lon, ge=-180, le=360, description="East longitude, degrees.")
    elevation: float = Field(
        ATACAMA.elevation, ge=-500, le=9000, description="Height above the WGS84 ellipsoid, metres."
    )

    def to_site(self) -> Site:
        return Site(self.name, self.telescope, self.lat, self.lon, self.elevation)


class Patch(PolicyConfig):
    name: PatchName = Field(description="Patch name (letters, digits, _ . + -), written in the schedule.")
    priority: float = Field(1.0, gt=0, description="Relative share of observing time.")
    ra: tuple[float, float] | None = Field(None, description="Box: RA from, to (deg); wraps through 0 when from > to.")
    dec: tuple[float, float] | None = Field(None, description="Box: Dec from, to (deg).")
    center: tuple[float, float] | None = Field(None, description="Circle: RA, Dec of the centre (deg).")
    radius: float | None = Field(None, gt=0, le=60, description="Circle: radius (deg).")

    @model_validator(mode="after")
    def _one_shape(self):
        box = self.ra is not None or self.dec is not None
        circle = self.center is not None or self.radius is not None
        if box == circle:
            raise ValueError("give either ra and dec (a box) or center and radius (a circle)")
        if box and (self.ra is None or self.dec is None):
            raise ValueError("a box needs both ra and dec")
        if circle and (self.center is None or self.radius is None):
            raise ValueError("a circle needs both center and radius")
        if self.dec is not None and not -90 <= self.dec[0] < self.dec[1] <= 90:
            raise ValueError("dec must be [low, high] within -90..90")
        if self.center is not None and not -90 < self.center[1] < 90:
            raise ValueError("the centre's dec must be within -90..90")
        return self

    def boundary(self, spacing: float = 0.5):
        """Points along the patch outline (ICRS deg), about ``spacing`` degrees apart."""
        import numpy as np

        if self.center is not None:
            n = max(16, int(np.ceil(2 * np.pi * self.radius / spacing)))
            theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
            ra0, dec0, r = np.radians(self.center[0]), np.radians(self.center[1]), np.radians(self.radius)
            dec = np.arcsin(np.sin(dec0) * np.cos(r) + np.cos(dec0) * np.sin(r) * np.cos(theta))
            ra = ra0 + np.arctan2(np.sin(theta) * np.sin(r) * np.cos(dec0), np.cos(r) - np.sin(dec0) * np.sin(dec))
            return np.degrees(ra) % 360.0, np.degrees(dec)
        ra_lo, ra_hi = self.ra
        width = (ra_hi - ra_lo) % 360.0 or 360.0
        dec_lo, dec_hi = self.dec
        n_ra = max(2, int(np.ceil(width * np.cos(np.radians(min(abs(dec_lo), abs(dec_hi)))) / spacing)) + 1)
        n_dec = max(2, int(np.ceil((dec_hi - dec_lo) / spacing)) + 1)
        ras = ra_lo + np.linspace(0.0, width, n_ra)
        decs = np.linspace(dec_lo, dec_hi, n_dec)
        ra = np.concatenate([ras, np.full(n_dec, ras[-1]), ras[::-1], np.full(n_dec, ras[0])])
        dec = np.concatenate([np.full(n_ra, dec_lo), decs, np.full(n_ra, dec_hi), decs[::-1]])
        return ra % 360.0, dec


class GeneratorConfig(PolicyConfig):
    patches: tuple[Patch, ...] | None = Field(
        None,
        max_length=200,
        description="Sky patches to observe; null uses the bundled default patches (observing/master/data/patches.yaml).",
    )
    elevations: tuple[float, ...] = Field(
        (50.0, 60.0), min_length=1, max_length=10, description="Elevations (deg) a scan may use."
    )
    sun_avoidance_angle: float = Field(50.0, ge=0, le=180, description="No scan comes closer to the sun (deg).")
    moon_avoidance_angle: float = Field(20.0, ge=0, le=180, description="No scan comes closer to the moon (deg).")
    min_scan_seconds: int = Field(600, ge=60, description="Shortest constant-elevation scan worth starting.")
    max_scan_seconds: int = Field(
        3000, ge=60, description="Longer scans are split into sub-scans of at most this length."
    )
    gap_seconds: int = Field(60, ge=0, description="Idle time between two scans (slew and settle).")
    boresight_angles: tuple[float, ...] = Field(
        (0.0,), min_length=1, max_length=64, description="Boresight rotations, cycled scan by scan."
    )

    @model_validator(mode="after")
    def _check(self):
        for el in self.elevations:
            if not 0 < el < 90:
                raise ValueError(f"elevation {el} must be within 0..90")
        if self.max_scan_seconds < self.min_scan_seconds:
            raise ValueError("max_scan_seconds must be at least min_scan_seconds")
        if self.patches is not None:
            if not self.patches:
                raise ValueError("patches must not be empty; leave it null for the default patches")
            names = [p.name for p in self.patches]
            if len(set(names)) != len(names):
                raise ValueError("patch names must be unique")
        return self

    def resolved_patches(self) -> tuple[Patch, ...]:
        return self.patches if self.patches is not None else default_patches()


class PatchesFile(GeneratorConfig):
    """The ``--patches`` YAML file: generator settings plus, optionally, the site."""

    site: SiteConfig = Field(default_factory=SiteConfig)


def load_patches_file(path: str | Path) -> PatchesFile:
    """Read and validate a patches YAML file; ValueError says what and where."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    if isinstance(data, list):
        data = {"patches": data}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a mapping with a 'patches' list")
    try:
        return PatchesFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        problem = problem_text(error, unknown="unknown key")
        raise ValueError(f"{path}: {where}: {problem}") from None


@lru_cache(maxsize=1)
def default_patches() -> tuple[Patch, ...]:
    text = (files("scheduler_server.observing.master") / "data" / DEFAULT_PATCHES_FILE).read_text(encoding="utf-8")
    return GeneratorConfig.model_validate(yaml.safe_load(text)).patches
