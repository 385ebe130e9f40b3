"""The store when another process writes the same row at the same moment (PostgreSQL does not serialize writers)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from scheduler_server.pipelines.storage import lease as fencing
from scheduler_server.pipelines.storage.store import Store


def test_scheduler_id_created_by_another_process_meanwhile_is_taken(tmp_path, monkeypatch):
    """gunicorn's workers start at once on a fresh database: each reads no id and inserts one; the loser of
    the insert takes the winner's id instead of failing to start."""
    url = f"sqlite:///{tmp_path / 'pipelines.sqlite'}"
    ours, theirs = Store(url), Store(url)
    winner = theirs.scheduler_id()  # the other process got there first ...
    real_get = Session.get
    blind = {"left": 2}  # ... after both of our lookups (the read, then the write's) had found nothing

    def get(self, entity, key, *args, **kwargs):
        if key == "scheduler_id" and blind["left"]:
            blind["left"] -= 1
            return None
        return real_get(self, entity, key, *args, **kwargs)

    monkeypatch.setattr(Session, "get", get)
    assert ours.scheduler_id() == winner
    assert blind["left"] == 0
    ours.close()
    theirs.close()


def test_a_lease_row_created_by_another_process_meanwhile_is_theirs(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'pipelines.sqlite'}"
    ours, theirs = Store(url), Store(url)
    assert theirs.acquire_lease("them", ttl=60)
    real_read = fencing._read
    blind = {"left": 1}  # our lookup ran before their insert committed

    def read(session, name, lock=False):
        if blind["left"]:
            blind["left"] -= 1
            return None
        return real_read(session, name, lock)

    monkeypatch.setattr(fencing, "_read", read)
    assert ours.acquire_lease("us", ttl=60) is False
    assert blind["left"] == 0
    assert theirs.acquire_lease("them", ttl=60)  # still theirs
    ours.close()
    theirs.close()
