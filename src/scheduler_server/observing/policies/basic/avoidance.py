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
from scheduler_server.observing.sky.geometry import cos_distance_to_box, cos_distance_to_box_at, distance_to_box

Box = tuple[float, float, float, float]  # az_lo, az_hi, el_lo, el_hi
MARGIN_DEG = 0.1


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
