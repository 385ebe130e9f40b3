"""The one test behind every sun decision of the policy: may the telescope occupy this box now?

A box (``geometry.distance_to_box``) is unsafe at time t when the sun is, or will
be within ``lookahead`` seconds (``min_sun_time``), closer to it than ``min_angle``.
Samples are ``step`` seconds apart; a small angular ``margin`` covers the sun's
motion between samples (at most 0.05 deg in 10 s) and ``pad`` widens each unsafe
span by the configured buffer. The same test judges scans, slews and waits, so the
independent checker (``observing/safety/checker.py``) should never find what this missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scheduler_server.observing.policies.basic import blocks
from scheduler_server.observing.sky.ephemerides import Samples
from scheduler_server.observing.sky.geometry import (
    cos_distance_to_box,
    cos_distance_to_box_at,
    distance_to_box,
)

Box = tuple[float, float, float, float]  # az_lo, az_hi, el_lo, el_hi
MARGIN_DEG = 0.1
COARSE = 16  # SunGuard.clear_arcs looks at every COARSE-th sample first
# What a coarse sample vouches for is widened by this much (deg), so that rounding in the
# arithmetic can never let it clear what a sample's own test would find too near.
SLACK_DEG = 1e-6


@dataclass(frozen=True)
class SunGuard:
    sun: Samples
    min_angle: float
    lookahead: float = 0.0
    pad: float = 0.0

    def unsafe(self, box: Box, t_from: float, t_to: float) -> np.ndarray:
        """Intervals within [t_from, t_to] when occupying ``box`` is unsafe."""
        if self._surely_clear(box, t_from, t_to + self.lookahead):
            return blocks.empty()
        t, _, el, trig = self.sun.window_with_trig(t_from, t_to + self.lookahead)
        if self._clear_below(box, el):
            return blocks.empty()
        bad = cos_distance_to_box(*trig, box) > self._cos_limit
        found = blocks.pad(
            blocks.from_mask(t, bad), self.lookahead + self.pad + self.sun.step, self.pad + self.sun.step
        )
        return blocks.overlaps(int(np.floor(t_from)), int(np.ceil(t_to)), found)

    def safe(self, box: Box, t_from: float, t_to: float, look_ahead: bool = True) -> bool:
        """Whether ``box`` may be occupied over [t_from, t_to]; a slew, which only passes
        through, is judged without the look-ahead (``look_ahead=False``)."""
        if t_to < t_from:
            return True
        reach = self.sun.step + self.pad
        start, stop = t_from - reach, t_to + (self.lookahead if look_ahead else 0.0) + reach
        if self._surely_clear(box, start, stop):
            return True
        _, _, el, trig = self.sun.window_with_trig(start, stop)
        return self._clear_below(box, el) or not bool(np.any(cos_distance_to_box(*trig, box) > self._cos_limit))

    def surely_clear(self, box: Box, t_from: float, t_to: float) -> bool:
        """True when ``unsafe(box, t_from, t_to)`` is settled empty from one sample (False: not settled)."""
        return self._surely_clear(box, t_from, t_to + self.lookahead)

    def clear_arcs(self, az_lo, az_hi, el, starts, stops) -> np.ndarray:
        """For each arc k (az_lo[k]..az_hi[k] at el[k]): whether no sun sample that
        ``window_with_trig(starts[k], stops[k])`` returns is nearer than the limit.

        The same samples and the same arithmetic as testing each arc on its own (``unsafe``'s
        numpy path), as arrays over all arcs: the samples of the whole span are fetched once;
        each arc is first looked at every ``COARSE``-th sample, which vouches for the samples
        within COARSE/2 of it when it is farther than the limit plus the sun's motion over them
        (``_surely_clear``'s argument); an arc not settled so is tested at its nearest coarse
        sample inside its span (near the sun most fail there), and the few left at every sample.
        """
        if len(starts) == 0:
            return np.zeros(0, dtype=bool)
        first, step = self.sun.t[0], self.sun.step
        i0 = np.ceil((starts - first) / step).astype(np.int64)
        i1 = np.maximum(np.floor((stops - first) / step).astype(np.int64) + 1, i0 + 1)
        _, _, _, trig = self.sun.window_with_trig(float(starts.min()), float(stops.max()))
        arcs = _Arcs(trig, az_lo, az_hi, el)
        lo, hi = i0 - i0.min(), i1 - i0.min()
        owner, sample = _coarse_pairs(lo, hi, trig.shape[1])
        cos_d = arcs.cos(owner, sample)
        vouch = self.min_angle + MARGIN_DEG + COARSE // 2 * _largest_step(trig) + SLACK_DEG
        near = cos_d >= math.cos(math.radians(min(vouch, 180.0)))
        clear = np.bincount(owner, weights=near, minlength=len(starts)) == 0
        inside = near & (sample >= lo[owner]) & (sample < hi[owner])
        best = np.full(len(starts), -2.0)
        np.maximum.at(best, owner[inside], cos_d[inside])
        left = np.flatnonzero(~clear & (best <= self._cos_limit))  # no coarse sample of its own span too near
        if len(left):
            counts = hi[left] - lo[left]
            every = np.repeat(left, counts)
            span = (
                np.arange(int(counts.sum()))
                - np.repeat(np.cumsum(counts) - counts, counts)
                + np.repeat(lo[left], counts)
            )
            bad = arcs.cos(every, span) > self._cos_limit
            clear[left] = np.bincount(every, weights=bad, minlength=len(starts))[left] == 0
        return clear

    def _surely_clear(self, box: Box, start: float, stop: float) -> bool:
        """A shortcut that decides as the sampled test would, when it can: the middle
        sample of [start, stop] is farther from the box than the limit by at least
        as far as the sun moves from it to either end (``Samples.max_move`` per
        sample), so no sample in between can be too near. Most spans are settled
        this way (at night, or far from the sun) in a few microseconds."""
        span = self.sun.indices(start, stop)
        if span is None:
            return False
        i0, i1 = span
        middle = (i0 + i1 - 1) // 2
        bound = self.min_angle + MARGIN_DEG + max(middle - i0, i1 - 1 - middle) * self.sun.max_move
        if bound >= 180.0:
            return False
        cos_d = cos_distance_to_box_at(float(self.sun.az[middle]), float(self.sun.el[middle]), box)
        return cos_d < math.cos(math.radians(bound))

    @property
    def _cos_limit(self) -> float:
        return float(np.cos(np.radians(self.min_angle + MARGIN_DEG)))

    def _clear_below(self, box: Box, sun_el: np.ndarray) -> bool:
        # Angular distance is at least the difference in elevation: a sun low enough
        # under the box is far enough, and most of a schedule is at night.
        return box[2] - sun_el.max() >= self.min_angle + MARGIN_DEG

    def closest(self, box: Box, t_from: float, t_to: float) -> tuple[float, float]:
        """Smallest sun distance to ``box`` over the span, and when."""
        t, az, el = self.sun.window(t_from, t_to)
        d = distance_to_box(az, el, *box)
        i = int(np.argmin(d))
        return float(d[i]), float(t[i])


def _coarse_pairs(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(arc, sample) pairs: for each arc the multiples of COARSE around its span [lo, hi) (and the last
    sample n - 1 in their stead past it), so each sample of the span is within COARSE/2 of one of them."""
    m0, m1 = lo // COARSE, (hi - 1 + COARSE - 1) // COARSE
    counts = m1 - m0 + 1
    owner = np.repeat(np.arange(len(lo)), counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.minimum((np.repeat(m0, counts) + offset) * COARSE, n - 1)


def _largest_step(trig: np.ndarray) -> float:
    """The largest angle (deg) the sun moves between consecutive samples here, a little rounded up."""
    if trig.shape[1] < 2:
        return 0.0
    cos_az, sin_az, sin_el, cos_el = trig
    cos_move = sin_el[1:] * sin_el[:-1] + cos_el[1:] * cos_el[:-1] * (
        cos_az[1:] * cos_az[:-1] + sin_az[1:] * sin_az[:-1]
    )
    return float(np.degrees(np.arccos(np.clip(cos_move.min(), -1.0, 1.0)))) * 1.01 + 1e-6


class _Arcs:
    """Arcs against sun samples: ``cos_distance_to_box``'s one-elevation branch step for step (so the
    same values), with each arc's trigonometry done once per arc instead of once per sample."""

    def __init__(self, trig: np.ndarray, az_lo, az_hi, el):
        half = np.radians(np.minimum((az_hi - az_lo) / 2.0, 180.0))
        c = np.radians((az_lo + az_hi) / 2.0)
        e = np.radians(el)
        self.trig = trig
        self.cos_c, self.sin_c, self.cos_h, self.sin_h = np.cos(c), np.sin(c), np.cos(half), np.sin(half)
        self.sin_e, self.cos_e = np.sin(e), np.cos(e)

    def cos(self, arc: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """Cosine of the distance from sun sample ``sample[j]`` to arc ``arc[j]``."""
        cos_az, sin_az, sin_el, cos_el = self.trig[:, sample]
        cos_c, sin_c, cos_h = self.cos_c[arc], self.sin_c[arc], self.cos_h[arc]
        cos_d = cos_az * cos_c + sin_az * sin_c
        sin_d = sin_az * cos_c - cos_az * sin_c
        cos_gap = np.where(cos_d >= cos_h, 1.0, cos_d * cos_h + np.abs(sin_d) * self.sin_h[arc])
        return sin_el * self.sin_e[arc] + cos_el * self.cos_e[arc] * cos_gap
