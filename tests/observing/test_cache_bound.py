"""The disk cache stays bounded however many sites or generator configs requests ask for."""

from __future__ import annotations

import os
import time
from datetime import UTC

from scheduler_server.observing.sky import cache


def test_prune_keeps_the_most_recently_written_entries(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path))
    root = tmp_path / "master"
    for i in range(20):
        entry = root / f"key{i:02d}"
        entry.mkdir(parents=True)
        (entry / "2024-01.npz").write_bytes(b"x")
        stamp = time.time() - 1000 + i  # key19 is the newest
        os.utime(entry, (stamp, stamp))
    cache.prune("master", keep=5)
    assert sorted(p.name for p in root.iterdir()) == [f"key{i}" for i in range(15, 20)]
    cache.prune("nothing-here", keep=1)  # a missing directory is not an error


def test_requests_with_ever_new_generator_configs_do_not_grow_the_cache_without_bound(tmp_path, monkeypatch):
    from datetime import datetime

    from scheduler_server.observing.master import generate as master_generate
    from scheduler_server.observing.master.patches import GeneratorConfig
    from scheduler_server.observing.sky.ephemerides import ATACAMA

    monkeypatch.setenv(cache.ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.setattr(master_generate, "CACHED_SPECS", 2)
    monkeypatch.setattr(
        master_generate, "plan_month", lambda m0, m1, spec, site: []
    )  # the planning itself is tested elsewhere
    start = int(datetime(2030, 1, 5, tzinfo=UTC).timestamp())
    for angle in (50.0, 51.0, 52.0, 53.0):
        master_generate.generate(start, start + 3600, GeneratorConfig(sun_avoidance_angle=angle), ATACAMA)
    assert len(list((tmp_path / "master").iterdir())) == 2
