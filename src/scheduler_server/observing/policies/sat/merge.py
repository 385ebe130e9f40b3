"""From the plans' rows to one time-ordered list of visits: overrides, sun cuts, priority, min-duration.

As schedlib's SAT policy (``apply`` and ``seq2cmd``): calibration and wiregrid runs beat CMB scans where they
overlap (a CMB block is cut around them), a wiregrid run that overlaps a calibration scan is dropped, no-obs
blocks give way to both, CMB blocks longer than ``max_cmb_scan_duration`` are divided, and ``min-duration``
drops the CMB pieces left too short. Every cut is said in the visit's ``cuts`` (the block's reasons).
Unlike schedlib, the division is deterministic (equal pieces, no random first piece): the same request
gives the same script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scheduler_server.observing.policies.sat.steps import Visit

MASTER, CALIBRATION, WIREGRID, NOOBS = "master", "calibration", "wiregrid", "noobs"
PRIORITY = {CALIBRATION: 2, WIREGRID: 1, MASTER: 0, NOOBS: 0}
MIN_PIECE_SECONDS = 15 * 60  # schedlib's divide_blocks: no piece shorter than this
STRETCH = 1.25  # a block up to this many times max_cmb_scan_duration stays whole (schedlib: 75 of 60 min)


@dataclass(frozen=True)
class Item:
    visit: Visit
    cuts: tuple[str, ...] = ()

    def trimmed(self, t0: float, t1: float, reason: str) -> Item:
        v = self.visit
        az = v.az + v.az_drift * (t0 - v.t0)
        return Item(replace(v, t0=t0, t1=t1, az=az), (*self.cuts, reason))


def hhmm(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M")


def window(items: list[Item], a: float, b: float, keep_partial: bool = True) -> list[Item]:
    """The items touching [a, b], trimmed to it."""
    kept = []
    for item in items:
        v = item.visit
        if v.t1 <= a or v.t0 >= b:
            continue
        if v.t0 < a or v.t1 > b:
            if not keep_partial:
                continue
            item = item.trimmed(max(v.t0, a), min(v.t1, b), "trimmed to the requested window")
        kept.append(item)
    return kept


def divide(items: list[Item], longest: float | None) -> list[Item]:
    """CMB items longer than ``STRETCH * longest`` in pieces of about ``longest`` (none under 15 min)."""
    if longest is None:
        return items
    out = []
    for item in items:
        v = item.visit
        span = v.t1 - v.t0
        if v.kind != MASTER or span <= STRETCH * longest:
            out.append(item)
            continue
        n = max(1, math.ceil(span / longest))
        if span / n < MIN_PIECE_SECONDS:
            n = max(1, int(span // MIN_PIECE_SECONDS))
        edges = [round(v.t0 + span * k / n) for k in range(n + 1)]
        for e0, e1 in zip(edges, edges[1:], strict=False):
            out.append(Item(replace(v, t0=e0, t1=e1, az=v.az + v.az_drift * (e0 - v.t0)), item.cuts))
    return out


def subtract(item: Item, spans: list[tuple[float, float]], reason: str) -> list[Item]:
    """``item`` without the time spans given (sorted or not), each remaining piece saying why."""
    pieces = [item]
    for s0, s1 in sorted(spans):
        nxt = []
        for p in pieces:
            v = p.visit
            if s1 <= v.t0 or s0 >= v.t1:
                nxt.append(p)
                continue
            if s0 > v.t0:
                nxt.append(p.trimmed(v.t0, s0, reason) if s0 < v.t1 else p)
            if s1 < v.t1:
                nxt.append(p.trimmed(s1, v.t1, reason))
        pieces = nxt
    return pieces


def by_priority(
    cmb: list[Item], cal: list[Item], wiregrid: list[Item], lead: float, dropped: list[tuple[Item, str]]
) -> list[Item]:
    """Calibration beats wiregrid beats CMB; CMB and no-obs blocks are cut ``lead`` s before and after each."""
    cal = _first_come(sorted(cal, key=lambda i: i.visit.t0), dropped)
    wiregrid = sorted(wiregrid, key=lambda i: i.visit.t0)
    for w in wiregrid:
        if _overlaps(w, cal):
            dropped.append((w, "overlaps a calibration scan"))
    wiregrid = _first_come([w for w in wiregrid if not _overlaps(w, cal)], dropped)
    fixed = sorted(cal + wiregrid, key=lambda i: i.visit.t0)
    out = list(fixed)
    for item in cmb:
        spans = [
            (f.visit.t0 - lead, f.visit.t1 + lead)
            for f in fixed
            if f.visit.t0 - lead < item.visit.t1 and f.visit.t1 + lead > item.visit.t0
        ]
        if not spans:
            out.append(item)
            continue
        names = ", ".join(sorted({f"{f.visit.kind} {f.visit.name}" for f in fixed if _near(f, item, lead)}))
        out += subtract(item, spans, f"cut for {names}")
    return sorted(out, key=lambda i: (i.visit.t0, i.visit.t1))


def min_duration(items: list[Item], least: float | None, dropped: list[tuple[Item, str]]) -> list[Item]:
    """CMB items shorter than ``least`` seconds are dropped (into ``dropped``, with the reason)."""
    if not least:
        return items
    kept = []
    for item in items:
        v = item.visit
        if v.kind == MASTER and v.t1 - v.t0 < least:
            dropped.append((item, f"min-duration: {v.t1 - v.t0:g} s left, at least {least:g} s needed"))
            continue
        kept.append(item)
    return kept


def _overlaps(item: Item, others: list[Item]) -> bool:
    return any(o.visit.t0 < item.visit.t1 and item.visit.t0 < o.visit.t1 for o in others)


def _near(fixed: Item, item: Item, lead: float) -> bool:
    return fixed.visit.t0 - lead < item.visit.t1 and fixed.visit.t1 + lead > item.visit.t0


def _first_come(items: list[Item], dropped: list[tuple[Item, str]]) -> list[Item]:
    kept: list[Item] = []
    for item in items:
        if kept and item.visit.t0 < kept[-1].visit.t1:
            dropped.append((item, f"overlaps {kept[-1].visit.kind} {kept[-1].visit.name}, planned first"))
            continue
        kept.append(item)
    return kept
