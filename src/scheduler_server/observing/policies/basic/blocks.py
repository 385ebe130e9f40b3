"""Observation blocks (constant-elevation scans) and the interval algebra that cuts them.

Times are whole UTC Unix seconds: a block prints as exact ISO times, and nothing
depends on the host's time zone. Intervals are ``(n, 2)`` int64 arrays of
``[start, stop]`` pairs, sorted and disjoint once normalised by ``union``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from scheduler_server.observing.types import Block

MASTER = "master"
CALIBRATION = "calibration"


@dataclass(frozen=True, slots=True)
class Scan:
    """Point at (az, el), then sweep azimuth az..az+throw at fixed el from t0 to t1."""

    name: str
    kind: str
    t0: int
    t1: int
    az: float
    el: float
    throw: float
    drift: str = ""  # "rising" or "setting" for a calibration scan
    cuts: tuple[str, ...] = ()

    @property
    def duration(self) -> int:
        return self.t1 - self.t0

    @property
    def az_hi(self) -> float:
        return self.az + self.throw

    def replace(self, **changes) -> Scan:
        return dataclasses.replace(self, **changes)

    def to_block(self) -> Block:
        return Block(
            name=self.name,
            kind=self.kind,
            t0=utc(self.t0),
            t1=utc(self.t1),
            az=self.az,
            el=self.el,
            throw=self.throw,
            cuts=list(self.cuts),
        )


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def iso(seconds: float) -> str:
    return utc(seconds).isoformat()


def hhmm(seconds: float) -> str:
    return utc(seconds).strftime("%Y-%m-%d %H:%M:%S")


def empty() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.int64)


def from_mask(times: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Runs of True samples as intervals from the first to the last sample of each run."""
    if not mask.any():
        return empty()
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return np.column_stack((times[starts], times[stops])).astype(np.int64)


def union(intervals: np.ndarray) -> np.ndarray:
    """Sorted, with overlapping or touching intervals merged."""
    if len(intervals) <= 1:
        return np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    iv = intervals[np.argsort(intervals[:, 0], kind="stable")]
    running_stop = np.maximum.accumulate(iv[:, 1])
    new = np.concatenate(([True], iv[1:, 0] > running_stop[:-1]))
    starts = iv[new, 0]
    stops = running_stop[np.concatenate((np.flatnonzero(new)[1:] - 1, [len(iv) - 1]))]
    return np.column_stack((starts, stops)).astype(np.int64)


def pad(intervals: np.ndarray, before: float, after: float) -> np.ndarray:
    """Each interval widened: ``before`` seconds earlier, ``after`` seconds later; merged."""
    if len(intervals) == 0:
        return empty()
    out = intervals.astype(np.int64).copy()
    out[:, 0] -= int(round(before))
    out[:, 1] += int(round(after))
    return union(out)


def subtract(t0: int, t1: int, cuts: np.ndarray) -> list[tuple[int, int]]:
    """Pieces of [t0, t1] outside every interval of ``cuts`` (which are closed)."""
    pieces: list[tuple[int, int]] = []
    start = t0
    for a, b in union(np.asarray(cuts, dtype=np.int64).reshape(-1, 2)):
        if b < start or a > t1:
            continue
        if a > start:
            pieces.append((start, int(a)))
        start = max(start, int(b))
    if start < t1:
        pieces.append((start, t1))
    return [(a, b) for a, b in pieces if b > a]


def overlaps(t0: int, t1: int, cuts: np.ndarray) -> np.ndarray:
    """The intervals of ``cuts`` that meet (t0, t1), clipped to it."""
    cuts = np.asarray(cuts, dtype=np.int64).reshape(-1, 2)
    if len(cuts) == 0:
        return cuts
    hit = (cuts[:, 1] > t0) & (cuts[:, 0] < t1)
    return np.column_stack((np.maximum(cuts[hit, 0], t0), np.minimum(cuts[hit, 1], t1)))


def cut_scan(scan: Scan, cuts: np.ndarray, reason: str) -> list[Scan]:
    """``scan`` without the times in ``cuts``; each piece records what was removed and why."""
    removed = overlaps(scan.t0, scan.t1, cuts)
    if len(removed) == 0:
        return [scan]
    spans = ", ".join(f"{hhmm(a)} to {hhmm(b)}" for a, b in removed)
    note = f"{reason}: removed {spans}"
    return [scan.replace(t0=a, t1=b, cuts=scan.cuts + (note,)) for a, b in subtract(scan.t0, scan.t1, removed)]
