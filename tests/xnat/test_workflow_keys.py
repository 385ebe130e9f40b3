"""XNAT names a workflow entry by (session, pipeline name, launch time to the second): pipelines of one script on one
session in the same second claim distinct keys in xnat_workflow_keys (review of issue 15, finding 3), whether they
are submitted at once from several threads or one is a launch's; the table's migration goes up and down."""

from __future__ import annotations

import importlib
import threading

from alembic import command
from sqlalchemy import create_engine, inspect

from scheduler_server.pipelines.models import Pipeline
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.xnat import workflows
from tests.waiting import wait_until

from .test_launch import body
from .test_verify import item, make_app, scripts, service_of  # noqa: F401  (fixtures)

migrations = importlib.import_module("scheduler_server.pipelines.storage.migrations.upgrade")  # not its upgrade()
SECOND = 1_800_000_000.25  # every pipeline of a test created in this one second


def _one_second(client):
    """Every pipeline the service builds is created in SECOND: the collision made certain, not left to timing."""
    service = service_of(client)
    build = service._build

    def built_in_one_second(*args, **kwargs):
        pipeline, *rest = build(*args, **kwargs)
        pipeline.created_at = SECOND
        return (pipeline, *rest)

    service._build = built_in_one_second


def _keys(client) -> list[tuple]:
    with service_of(client).store.read() as session:
        pipelines = session.query(Pipeline).order_by(Pipeline.id)
        return [tuple(sorted(p.spec["xnat_workflow"].items())) for p in pipelines]


def _entries(sim, session_id="XNAT_E00001"):
    return {(w["id"], w["pipeline_name"], w["launch_time"]) for w in sim.state.workflows if w["id"] == session_id}


def test_concurrent_submissions_of_one_script_on_one_session_keep_one_entry_each(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    _one_second(client)
    start = threading.Barrier(6)
    answers = []

    def submit():
        start.wait()
        answers.append(client.application.test_client().post("/api/v1/pipelines", json=item(xnat_sim.url)))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a.status_code for a in answers] == [201] * 6, [a.json for a in answers]
    keys = _keys(client)
    assert len(keys) == 6 and len(set(keys)) == 6, keys
    assert len(_entries(xnat_sim)) == 6, xnat_sim.state.workflows  # the six Queued entries, written at submit


def test_a_launch_and_a_submission_in_the_same_second_keep_distinct_entries(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    _one_second(client)
    first = client.post("/api/v1/pipelines", json=item(xnat_sim.url))  # S01_MR1, XNAT_E00001
    assert first.status_code == 201, first.json
    launched = client.post("/api/v1/xnat/launch", json=body(xnat_sim, subject="S01"))  # S01_MR1 and S01_MR2
    assert launched.status_code == 201 and launched.json["created"] == 2, launched.json
    after = client.post("/api/v1/pipelines", json=item(xnat_sim.url, session="S01_MR2"))  # XNAT_E00002
    assert after.status_code == 201, after.json
    keys = _keys(client)
    assert len(keys) == 4 and len(set(keys)) == 4, keys
    wait_until(lambda: len(_entries(xnat_sim)) == 2 and len(_entries(xnat_sim, "XNAT_E00002")) == 2, 15)


def test_the_migration_goes_up_and_down(tmp_path):
    url = f"sqlite:///{tmp_path / 'pipelines.sqlite'}"
    Store(url).close()
    tables = lambda: inspect(create_engine(url)).get_table_names()  # noqa: E731
    assert "xnat_workflow_keys" in tables()
    for step, revision, there in [
        (command.downgrade, "0005_workflow_due_index", False),
        (command.upgrade, "head", True),
    ]:
        with migrations.locked_connection(url) as connection, connection.begin():
            migrations._run(connection, step, revision)
        assert ("xnat_workflow_keys" in tables()) is there
    engine = create_engine(url)
    (unique,) = inspect(engine).get_unique_constraints("xnat_workflow_keys")
    assert unique["column_names"] == ["host", "session_id", "pipeline_name", "launch_time"]
    engine.dispose()


def test_a_launchs_bulk_claim_takes_the_next_free_second_of_each_conflicting_key(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'pipelines.sqlite'}")
    keys = [(f"XNAT_E{n:05}", "args.sh", 100) for n in range(1000)]
    try:
        assert workflows.claim(store, "http://xnat", "XNAT_E00003", "args.sh", 100) == 100  # a submission's
        seconds = workflows.claim_all(store, "http://xnat", keys)
        assert seconds[3] == 101 and seconds[:3] + seconds[4:] == [100] * 999
        assert workflows.claim_all(store, "http://xnat", keys) == [101] * 3 + [102] + [101] * 996  # relaunched
        assert workflows.claim_all(store, "http://other", keys) == [100] * 1000  # another host's keys are its own
    finally:
        store.close()
