"""The SAT focal plane: seven wafers on the sky, which of them a calibration target names, and their outline.

Wafer centres and radius are schedlib's (``SATPolicy.make_geometry``: ws0 at the centre, ws1/ws4 below/above,
ws2/ws3 and ws6/ws5 on the low-/high-azimuth sides), the same on every SAT, shifted by ``xi_offset`` and
``eta_offset``. Focal-plane coordinates follow so3g: at boresight rotation 0, ``xi`` grows with azimuth and
``eta`` with elevation, both the sine projection about the boresight (radians of the sine, given here in degrees);
a boresight rotation ``r`` turns the focal plane by ``r`` counter-clockwise in (xi, eta) (so3g's
``euler(2, -r)``, as schedlib applies it), which is what makes each platform's ``array_focus`` table right.

A wafer's footprint is the polygon of ``COVER_POINTS`` points circumscribing its circle with a 1% margin
(schedlib's ``make_circular_cover``), drawn on the sphere about the wafer's centre. What a planner needs of
it is, for a boresight at elevation ``el_bore``, each point's azimuth offset from the boresight and its
elevation: both are independent of the boresight's azimuth, so one outline serves every scan at that elevation.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from functools import lru_cache

import numpy as np

from scheduler_server.observing.types import ScheduleInputError

# schedlib's default SAT optics offsets (deg)
_D_XI = 10.9624
_D_ETA_SIDE = 6.46363
_D_ETA_MID = 12.634
WAFER_RADIUS = 6.0
WAFERS: dict[str, tuple[float, float]] = {
    "ws0": (0.0, 0.0),
    "ws1": (0.0, -_D_ETA_MID),
    "ws2": (-_D_XI, -_D_ETA_SIDE),
    "ws3": (-_D_XI, _D_ETA_SIDE),
    "ws4": (0.0, _D_ETA_MID),
    "ws5": (_D_XI, _D_ETA_SIDE),
    "ws6": (_D_XI, -_D_ETA_SIDE),
}
COVER_POINTS = 50
COVER_MARGIN = 1.01

_ALL = "ws0,ws1,ws2,ws3,ws4,ws5,ws6"
# satp1 and satp2: the focus names by boresight angle (the wafers on each side move as the focal plane turns).
_ROTATING_FOCUS = {
    0: {"left": "ws3,ws2", "middle": "ws0,ws1,ws4", "right": "ws5,ws6", "bottom": "ws1,ws2,ws6", "all": _ALL},
    45: {"left": "ws3,ws4", "middle": "ws2,ws0,ws5", "right": "ws1,ws6", "bottom": "ws1,ws2,ws3", "all": _ALL},
    -45: {"left": "ws1,ws2", "middle": "ws6,ws0,ws3", "right": "ws4,ws5", "bottom": "ws1,ws6,ws5", "all": _ALL},
}
# satp3: one table whatever the boresight (schedlib ignores a boresight override there).
_FIXED_FOCUS = {
    "left": "ws3,ws2",
    "middle": "ws0,ws1,ws4",
    "right": "ws5,ws6",
    "top": "ws3,ws4,ws5",
    "toptop": "ws4",
    "center": "ws0",
    "bottom": "ws1,ws2,ws6",
    "bottombottom": "ws1",
    "all": _ALL,
}
PLATFORMS = ("satp1", "satp2", "satp3")


def focus_table(platform: str, boresight: float) -> dict[str, str] | None:
    """The platform's focus names at this boresight angle; None when the platform has no table for the angle."""
    if platform == "satp3":
        return dict(_FIXED_FOCUS)
    if platform not in PLATFORMS:
        raise ScheduleInputError("platform", f"unknown SAT platform {platform!r}; known: {', '.join(PLATFORMS)}")
    angle = int(round(boresight))
    if abs(boresight - angle) > 1e-6 or angle not in _ROTATING_FOCUS:
        return None
    return dict(_ROTATING_FOCUS[angle])


def resolve_wafers(
    query: str,
    *,
    platform: str,
    boresight: float,
    field: str,
    ignore_wafers: Iterable[str] = (),
    wafer_sets: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The wafers a target's ``array_query`` names, in its order, minus ``ignore_wafers``.

    The query is a focus name of the platform's table at ``boresight`` (case-insensitive), a name of the
    config's ``wafer_sets``, or comma-separated wafer names and glob patterns (``ws0,ws3``, ``ws[0-2]``, ``*``);
    each part also matches a wafer whose name contains it, as schedlib's queries do. An empty result after
    ``ignore_wafers`` is an empty tuple (the caller drops the target); a query that names nothing is an error.
    """
    text = (query or "").strip().lower()
    if not text:
        raise ScheduleInputError(field, "no wafers named (array_query is empty)")
    table = focus_table(platform, boresight)
    if table is None and text in _ROTATING_FOCUS[0]:
        angles = ", ".join(str(a) for a in _ROTATING_FOCUS)
        raise ScheduleInputError(
            field, f"focus {text!r} on {platform} is defined at boresight {angles} only, not {boresight:g}"
        )
    text = (table or {}).get(text, text)
    if wafer_sets and text in wafer_sets:
        text = str(wafer_sets[text]).lower()
    parts = [part.strip() for part in text.split(",") if part.strip()]
    chosen: dict[str, None] = {}  # in the order written (schedlib's tags carry the query as written)
    for part in parts:
        found = [w for w in WAFERS if part in w or fnmatch.fnmatchcase(w, part)]
        if not found:
            known = ", ".join(sorted({*WAFERS, *(table or {})}))
            raise ScheduleInputError(field, f"{part!r} is neither a wafer nor a focus of {platform} ({known})")
        chosen.update(dict.fromkeys(found))
    ignored = {w.strip().lower() for w in ignore_wafers}
    return tuple(w for w in chosen if w not in ignored)


def wafer_centres(
    wafers: Iterable[str], boresight: float, xi_offset: float = 0.0, eta_offset: float = 0.0
) -> np.ndarray:
    """(n, 2) array of (xi, eta) in degrees of each wafer's centre, offsets applied, turned by the boresight."""
    xy = np.array([WAFERS[w] for w in wafers], dtype=float).reshape(-1, 2) + (xi_offset, eta_offset)
    r = np.radians(boresight)
    c, s = np.cos(r), np.sin(r)
    return np.column_stack([xy[:, 0] * c - xy[:, 1] * s, xy[:, 0] * s + xy[:, 1] * c])


@lru_cache(maxsize=256)
def outline(
    wafers: tuple[str, ...], boresight: float, el_bore: float, xi_offset: float = 0.0, eta_offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth offsets from the boresight and elevations (deg) of the footprint's outline points.

    Read-only arrays of ``COVER_POINTS`` points per wafer, with the boresight at elevation ``el_bore``.
    """
    centres = np.radians(wafer_centres(wafers, boresight, xi_offset, eta_offset))
    xi, eta = centres[:, 0:1], centres[:, 1:2]
    # so3g's rotation_xieta: the boresight's z axis turned by theta about y, then by phi about z.
    theta = np.arcsin(np.minimum(np.hypot(xi, eta), 1.0))
    phi = np.arctan2(-xi, -eta)
    around = 2.0 * np.pi * np.arange(COVER_POINTS) / COVER_POINTS
    reach = np.radians(COVER_MARGIN * WAFER_RADIUS) / np.cos(np.pi / COVER_POINTS)
    px, py, pz = np.sin(reach) * np.cos(around), np.sin(reach) * np.sin(around), np.cos(reach)
    qx = np.cos(theta) * px + np.sin(theta) * pz  # about y by theta
    qz = -np.sin(theta) * px + np.cos(theta) * pz
    fx = np.cos(phi) * qx - np.sin(phi) * py  # about z by phi
    fy = np.sin(phi) * qx + np.cos(phi) * py
    # The boresight frame onto the sky at azimuth 0: about y by (90 deg - el_bore); azimuth is minus longitude.
    e = np.radians(el_bore)
    wx = np.sin(e) * fx + np.cos(e) * qz
    wz = -np.cos(e) * fx + np.sin(e) * qz
    az = -np.degrees(np.arctan2(fy, wx)).ravel()
    el = np.degrees(np.arcsin(np.clip(wz, -1.0, 1.0))).ravel()
    az.setflags(write=False)
    el.setflags(write=False)
    return az, el
