"""Replicas on one database share the password key: its fingerprint is recorded, a differing key refuses to start."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete

from scheduler_server.config import Settings
from scheduler_server.pipelines.models import Meta
from scheduler_server.pipelines.secrets import FINGERPRINT_KEY, SecretError
from scheduler_server.pipelines.service import PipelineService
from scheduler_server.pipelines.storage.store import Store

from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite'}"
    return request.getfixturevalue("postgres_url")


def _service(tmp_path, name: str, database_url: str, key: str | None = None) -> PipelineService:
    values = {"database_url": database_url, "local_scripts_folder": str(tmp_path)}
    if key is not None:
        values["secret_key"] = key
    settings = Settings(data_dir=tmp_path / name, pipelines=values)
    return PipelineService(settings.pipelines, settings.data_path)


def test_a_replica_with_another_key_refuses_to_start_and_names_the_setting(tmp_path, database_url):
    key = Fernet.generate_key().decode()
    first = _service(tmp_path, "one", database_url, key)
    try:
        with first.store.read() as session:
            recorded = session.get(Meta, FINGERPRINT_KEY).value
        assert recorded == first.secrets.fingerprint and key not in recorded and len(recorded) == 16
        with pytest.raises(SecretError) as refused:
            _service(tmp_path, "two", database_url)  # no key configured: it generates its own
        message = str(refused.value)
        assert "\n" not in message and recorded in message
        assert "pipelines.secret_key" in message and "SCHEDULER_SERVER__PIPELINES__SECRET_KEY" in message
        other = Fernet.generate_key().decode()
        with pytest.raises(SecretError, match="not the one"):
            _service(tmp_path, "three", database_url, other)
        assert key not in message and other not in str(refused.value)
        same = _service(tmp_path, "four", database_url, key)  # the shared key: starts
        same.close()
    finally:
        first.close()


def test_a_database_without_a_fingerprint_records_the_first_key_it_sees(tmp_path, database_url):
    first = _service(tmp_path, "one", database_url)  # its data directory's generated key
    with first.store.write() as session:
        session.execute(delete(Meta).where(Meta.key == FINGERPRINT_KEY))  # as before this version
    first.close()
    again = _service(tmp_path, "one", database_url)
    try:
        assert again.store.meta_setdefault(FINGERPRINT_KEY, "unused") == again.secrets.fingerprint
    finally:
        again.close()


def test_a_refused_replica_closes_the_store_it_opened(tmp_path, database_url, monkeypatch):
    opened, closed = [], []
    real_init, real_close = Store.__init__, Store.close
    monkeypatch.setattr(Store, "__init__", lambda self, *a, **k: (real_init(self, *a, **k), opened.append(self))[0])
    monkeypatch.setattr(Store, "close", lambda self: (closed.append(self), real_close(self))[1])
    first = _service(tmp_path, "one", database_url, Fernet.generate_key().decode())
    try:
        with pytest.raises(SecretError):
            _service(tmp_path, "two", database_url)
        assert len(opened) == 2 and closed == [opened[1]], "the refused one's store, and only it, closed"
    finally:
        first.close()
