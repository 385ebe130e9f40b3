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
