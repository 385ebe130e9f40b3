"""Angles on the sky in horizontal coordinates (azimuth, elevation), vectorised.

Everything the telescope occupies is an az/el *box*: a point (holding still), an
arc at one elevation (a constant-elevation scan of width ``throw``) or a rectangle
(a slew, whose two axes move independently, so that the path stays inside the
rectangle spanned by its ends whatever the axis speeds). ``distance_to_box`` gives
the exact angular distance from a direction (the sun) to the nearest point of a box.
"""

from __future__ import annotations

import math

import numpy as np


def wrap180(angle):
    return (np.asarray(angle, dtype=float) + 180.0) % 360.0 - 180.0


def angular_distance(az1, el1, az2, el2) -> np.ndarray:
    """Great-circle distance in degrees (Vincenty's form: accurate at every distance)."""
    a1, e1, a2, e2 = (np.radians(np.asarray(x, dtype=float)) for x in (az1, el1, az2, el2))
    d = a2 - a1
    se1, ce1, se2, ce2, cd = np.sin(e1), np.cos(e1), np.sin(e2), np.cos(e2), np.cos(d)
    y = np.hypot(ce2 * np.sin(d), ce1 * se2 - se1 * ce2 * cd)
    return np.degrees(np.arctan2(y, se1 * se2 + ce1 * ce2 * cd))


def azimuth_gap(az, az_lo, az_hi) -> np.ndarray:
    """How far (deg, >= 0) azimuth ``az`` lies outside the interval az_lo..az_hi, around the circle."""
    width = np.asarray(az_hi, dtype=float) - az_lo
    past = (np.asarray(az, dtype=float) - az_lo) % 360.0
    # Inside the interval both candidates are <= 0 or the first is: clipping at 0 covers it.
    gap = np.maximum(np.minimum(past - width, 360.0 - past), 0.0)
    return np.where(width >= 360.0, 0.0, gap)


def distance_to_box(az, el, az_lo, az_hi, el_lo, el_hi) -> np.ndarray:
    """Angular distance (deg) from direction (az, el) to the box az_lo..az_hi x el_lo..el_hi.

    For any elevation, the nearest azimuth in the box is the one nearest ``az``
    (the cosine term only grows as the azimuth gap shrinks). Along that meridian the
    cosine of the distance is a sinusoid in elevation, so its largest value over
    el_lo..el_hi is at the unconstrained best elevation clamped into the range, or
    at an end (when the range holds the sinusoid's minimum instead): the nearest of
    those three is the nearest point.
    """
    gap = np.radians(azimuth_gap(az, az_lo, az_hi))
    e = np.radians(np.asarray(el, dtype=float))
    cos_gap = np.cos(gap)
    candidates = [np.clip(np.degrees(np.arctan2(np.sin(e), np.cos(e) * cos_gap)), el_lo, el_hi), el_lo, el_hi]
    return np.min([angular_distance(0.0, el, np.degrees(gap), c) for c in candidates], axis=0)


def cos_distance_to_box(cos_az, sin_az, sin_el, cos_el, box) -> np.ndarray:
    """Cosine of ``distance_to_box`` for many directions given by the sines and cosines
    of their azimuth and elevation: only products, no trigonometry on the arrays.

    With the box's azimuth centre c and half-width h, and d = az - c, the azimuth gap
    is |d| - h outside the box, so cos(gap) = cos d cos h + |sin d| sin h there, 1 inside.
    """
    az_lo, az_hi, el_lo, el_hi = box
    half = np.radians(min((az_hi - az_lo) / 2.0, 180.0))
    c = np.radians((az_lo + az_hi) / 2.0)
    cos_d = cos_az * np.cos(c) + sin_az * np.sin(c)
    sin_d = sin_az * np.cos(c) - cos_az * np.sin(c)
    cos_gap = np.where(cos_d >= np.cos(half), 1.0, cos_d * np.cos(half) + np.abs(sin_d) * np.sin(half))
    if el_lo == el_hi:
        e = np.radians(el_lo)
        return sin_el * np.sin(e) + cos_el * np.cos(e) * cos_gap
    lo, hi = np.radians(el_lo), np.radians(el_hi)
    best = np.clip(np.arctan2(sin_el, cos_el * cos_gap), lo, hi)
    at = [sin_el * np.sin(e) + cos_el * np.cos(e) * cos_gap for e in (best, lo, hi)]
    return np.maximum(np.maximum(at[0], at[1]), at[2])


def cos_distance_to_arcs(cos_az, sin_az, sin_el, cos_el, az_lo, az_hi, el) -> np.ndarray:
    """``cos_distance_to_box`` for one arc per direction (arrays az_lo, az_hi, el)."""
    half = np.radians(np.minimum((np.asarray(az_hi) - az_lo) / 2.0, 180.0))
    c = np.radians((np.asarray(az_lo) + az_hi) / 2.0)
    cos_c, sin_c = np.cos(c), np.sin(c)
    cos_d = cos_az * cos_c + sin_az * sin_c
    sin_d = sin_az * cos_c - cos_az * sin_c
    cos_gap = np.where(cos_d >= np.cos(half), 1.0, cos_d * np.cos(half) + np.abs(sin_d) * np.sin(half))
    e = np.radians(el)
    return sin_el * np.sin(e) + cos_el * np.cos(e) * cos_gap


def cos_distance_to_box_at(az: float, el: float, box) -> float:
    """``cos_distance_to_box`` for one direction, in plain floats: on a single value
    numpy's per-call overhead would cost far more than the arithmetic."""
    az_lo, az_hi, el_lo, el_hi = box
    width = az_hi - az_lo
    if width >= 360.0:
        cos_gap = 1.0
    else:
        past = (az - az_lo) % 360.0
        cos_gap = math.cos(math.radians(max(min(past - width, 360.0 - past), 0.0)))
    e = math.radians(el)
    sin_e, cos_e = math.sin(e), math.cos(e)
    lo, hi = math.radians(el_lo), math.radians(el_hi)
    across = cos_e * cos_gap
    best = min(max(math.atan2(sin_e, across), lo), hi)
    return max(
        sin_e * math.sin(best) + across * math.cos(best),
        sin_e * math.sin(lo) + across * math.cos(lo),
        sin_e * math.sin(hi) + across * math.cos(hi),
    )
