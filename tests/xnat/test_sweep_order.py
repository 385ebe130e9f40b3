"""The workflow sweep's order (review of issue 15): ended pipelines' updates go first, then running, then
queued ones, oldest change first within each, so a launch's many Queued entries never starve a finished
pipeline's last update (which also lets its token go)."""

from __future__ import annotations

from types import SimpleNamespace

from scheduler_server.pipelines.models import Pipeline
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.xnat import workflows


def _row(n: int, status: str) -> Pipeline:
    return Pipeline(
        status=status,
        project="p",
        subject="s",
        session=f"e{n}",
        script="args.sh",
        spec={},
        created_at=1000.0 + n,
        updated_at=1000.0 + n,
        workflow_status="Queued",
        workflow_at=None,
    )


def test_ended_then_running_then_queued_whatever_the_queued_backlog(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'p.sqlite'}")
    try:
        statuses = ["queued"] * 250 + ["running", "succeeded", "queued", "failed", "cancelled"]
        ids, _ = store.add_pipelines([_row(n, status) for n, status in enumerate(statuses)])
        sweep = workflows.Workflows(store, SimpleNamespace(settings=None))
        written: list[int] = []
        sweep._write = lambda settings, pipeline: written.append(pipeline.id) or 1
        monkeypatch.setattr(workflows, "BATCH", 5)
        assert sweep.sweep() == 5
        assert written == [ids[251], ids[253], ids[254], ids[250], ids[0]]
    finally:
        store.close()
