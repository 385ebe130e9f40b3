"""Fixtures shared by every test. Sub-folders add their own conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for devtools/

from scheduler_server.config import Settings  # noqa: E402


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Embedded defaults, with all state under a fresh temporary data directory."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def app(settings):
    """The app; its pipeline service (whose dispatcher a pipeline request starts) is closed after the test,
    so no dispatcher is left to stop, and log, at interpreter exit once pytest has closed its capture."""
    from scheduler_server.app import create_app

    made = create_app(settings)
    yield made
    pipelines = made.extensions.get("pipelines")
    if pipelines is not None:
        pipelines.service.close()


@pytest.fixture
def client(app):
    return app.test_client()


#: Files whose tests bound elapsed times (fail-over, wake-ups, lock waits, slow clients, worker
#: respawns). scripts/test.sh runs them after the parallel part, one at a time, so that another test
#: file's processes do not share the cores with them: the bounds then mean what they say.
TIMING_FILES = frozenset(
    {
        "tests/e2e/test_serve_workers.py",
        "tests/e2e/test_slow_clients.py",
        "tests/pipelines/test_frozen_locks.py",
        "tests/pipelines/test_leadership.py",
        "tests/pipelines/test_leadership_races.py",
        "tests/pipelines/test_replicas.py",
        "tests/pipelines/test_urgent_first.py",
        "tests/pipelines/test_wake.py",
        "tests/pipelines/test_wake_bursts.py",
    }
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.fspath).resolve().relative_to(REPO).as_posix() in TIMING_FILES:
            item.add_marker(pytest.mark.timing)
