"""The sun guard's shortcut (one sample vouching for its neighbours) decides exactly as sampling every point."""

from __future__ import annotations

import numpy as np

from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples
from tests.observing.conftest import constructed_sky


def _decisions(guard: SunGuard, cases, shortcut: bool, monkeypatch):
    if not shortcut:
        monkeypatch.setattr(SunGuard, "_surely_clear", lambda *a: False)
    out = []
    for box, t_from, t_to in cases:
        out.append(
            (
                guard.safe(box, t_from, t_to),
                guard.safe(box, t_from, t_to, look_ahead=False),
                guard.unsafe(box, t_from, t_to).tolist(),
            )
        )
    monkeypatch.undo()
    return out


def _cases(rng, t0: float, t1: float, n: int):
    cases = []
    for _ in range(n):
        az, el = rng.uniform(-30, 360), rng.uniform(0, 90)
        box = (az, az + rng.choice([0.0, rng.uniform(0, 40), 400.0]), el, el + rng.choice([0.0, rng.uniform(0, 30)]))
        start = rng.uniform(t0, t1)
        cases.append((box, start, start + rng.choice([0.0, rng.uniform(0, 600), rng.uniform(0, 6 * 3600)])))
    return cases


def test_the_shortcut_changes_no_decision_on_the_real_sun(monkeypatch):
    t0 = 1709510400.0  # 2024-03-04
    sun = Samples("sun", ATACAMA, t0 - 3600, t0 + 2 * 86400, 10)
    guard = SunGuard(sun, 41.0, 1980.0, 30.0)
    cases = _cases(np.random.default_rng(3), t0, t0 + 86400, 600)
    fast = _decisions(guard, cases, True, monkeypatch)
    assert fast == _decisions(guard, cases, False, monkeypatch)
    assert any(not safe for safe, _, _ in fast) and any(safe for safe, _, _ in fast)  # both answers occur


def test_the_shortcut_holds_for_a_sun_moving_unphysically_fast(monkeypatch):
    # A constructed sky may move far faster than the real sun: the bound comes from the samples.
    sun = constructed_sky("sun", 1.7e9, 6, 10, 90.0, 10.0, daz_per_min=3.0, del_per_min=0.5)
    guard = SunGuard(sun, 20.0, 300.0, 0.0)
    cases = _cases(np.random.default_rng(4), 1.7e9, 1.7e9 + 5 * 3600, 400)
    assert _decisions(guard, cases, True, monkeypatch) == _decisions(guard, cases, False, monkeypatch)
