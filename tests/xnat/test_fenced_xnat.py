"""XNAT side effects of the leader's sweeps (a workflow update, a token invalidated or renewed) are fenced:
a leader whose lease lapsed (frozen, then thawed) contacts no XNAT server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scheduler_server.pipelines.storage.lease import Fence, LeaseLost, clock, fenced
from scheduler_server.pipelines.xnat import tokens as tokens_module
from scheduler_server.pipelines.xnat import workflows as workflows_module


class Recorder:
    calls: list[str] = []

    def __init__(self, server):
        self.calls.append(f"connect {server}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append(name)


@pytest.fixture
def xnat(monkeypatch):
    Recorder.calls = []
    monkeypatch.setattr(tokens_module, "XnatClient", Recorder)
    monkeypatch.setattr(tokens_module, "match", lambda settings, host: host)
    monkeypatch.setattr(workflows_module, "XnatClient", Recorder)
    monkeypatch.setattr(workflows_module, "match", lambda settings, host: host)
    monkeypatch.setattr(workflows_module, "enabled", lambda settings: True)
    monkeypatch.setattr(workflows_module, "fields", lambda pipeline, settings: {"status": "Running"})
    secrets = SimpleNamespace(decrypt=lambda value: "secret")
    tokens = tokens_module.Tokens(store=None, secrets=secrets, settings=lambda: None)
    tokens.credentials = lambda pipeline_id: ("alias", "secret")
    return tokens


def test_a_lapsed_leader_sends_nothing_to_xnat(xnat):
    lapsed = Fence("us", clock() - 0.01)
    token = SimpleNamespace(id=1, host="https://xnat.example", issued=True, expires_at=None, alias="a", secret="s")
    pipeline = SimpleNamespace(id=7, spec={"host": "https://xnat.example", "xnat_workflow": {}}, workflow_id=3)
    workflows = workflows_module.Workflows(store=None, tokens=xnat)
    with fenced(lapsed):
        with pytest.raises(LeaseLost):
            xnat.release(token, now=0.0)
        with pytest.raises(LeaseLost):
            xnat.renew(token, now=0.0)
        with pytest.raises(LeaseLost):
            workflows._write(None, pipeline)
    assert Recorder.calls == []
    workflows._mark = lambda *args: None
    with fenced(Fence("us", clock() + 30)):  # a live lease: the calls go out
        assert workflows._write(None, pipeline) == 1
    assert Recorder.calls == ["connect https://xnat.example", "put_workflow"]
