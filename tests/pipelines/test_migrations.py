"""Schema versioning: a database from before versioning is recognised, stamped and upgraded with
nothing lost; new databases get exactly the models' schema; unknown schemas are refused; `db` commands.

The old database is built from the SQL that ``Base.metadata.create_all`` emitted at commit 653972d
(``fixtures/schema_653972d.*.sql``), then filled through reflected tables, without today's models.
Each test runs on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, inspect, text

from scheduler_server.pipelines.models import FINAL_STATES, Base, Instance
from scheduler_server.pipelines.secrets import SecretBox
from scheduler_server.pipelines.storage import migrations
from scheduler_server.pipelines.storage.store import Store

from .conftest import wait_status
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        return f"sqlite:///{tmp_path / 'db' / 'pipelines.sqlite'}"
    return request.getfixturevalue("postgres_url")


def create_old_schema(url: str) -> None:
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    sql = (FIXTURES / f"schema_653972d.{dialect}.sql").read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            connection.exec_driver_sql(statement)
    engine.dispose()


OLD_SPEC = {
    "script": "ok.sh",
    "files": [],
    "type": "xnat",
    "project": "p",
    "subject": "s",
    "session": "e",
    "host": "http://xnat",
    "user": "u",
    "options": [],
}
OLD_PATH = [("queued", "provisioning"), ("provisioning", "staging"), ("staging", "running"), ("running", "succeeded")]


def fill_old_database(url: str, box: SecretBox) -> dict:
    """Queued, running and finished pipelines with their history, an instance, the identity and a lease."""
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    now = time.time()
    history = _old_history(now)
    with engine.begin() as connection:
        connection.execute(tables.tables["pipelines"].insert(), _old_pipelines(now, box))
        connection.execute(tables.tables["pipeline_transitions"].insert(), history)
        connection.execute(tables.tables["instances"].insert(), [_old_instance(now)])
        connection.execute(tables.tables["meta"].insert(), [dict(key="scheduler_id", value="0ld5ched1d00")])
        connection.execute(
            tables.tables["leases"].insert(), [dict(name="dispatcher", holder="gone:1:x", expires_at=now - 1)]
        )
    engine.dispose()
    return {"transitions": [(h["pipeline_id"], h["from_status"], h["to_status"], h["reason"]) for h in history]}


def _old_pipelines(now: float, box: SecretBox) -> list[dict]:
    def pipeline(pid, status, secret, **extra):
        row = dict(
            id=pid,
            type="xnat",
            status=status,
            priority=pid,
            spec=OLD_SPEC,
            project="p",
            subject="s",
            session="e",
            script="ok.sh",
            secret=box.encrypt(secret) if secret else None,
            timeout=None,
            attempt=1 if status != "queued" else 0,
            attempts_base=0,
            next_attempt_at=0.0,
            instance_id=None,
            job_dir=None,
            exit_code=None,
            reason=None,
            cancel_requested=False,
            created_at=now - 100 + pid,
            instance_ready_at=None,
            started_at=None,
            finished_at=None,
            updated_at=now,
            version=3,
        )
        row.update(extra)
        return row

    return [
        pipeline(
            1,
            "succeeded",
            "pw-finished",
            exit_code=0,
            started_at=now - 80,
            finished_at=now - 70,
            instance_id="local-old1",
        ),
        pipeline(2, "running", "pw-running", instance_id="local-old2", job_dir="/tmp/job-2", started_at=now - 40),
        pipeline(3, "queued", "pw-queued"),
    ]


def _old_history(now: float) -> list[dict]:
    history = [
        dict(pipeline_id=1, at=now - 90 + i, from_status=a, to_status=b, attempt=1, reason=f"step {i}")
        for i, (a, b) in enumerate(OLD_PATH)
    ]
    history += [
        dict(pipeline_id=2, at=now - 50 + i, from_status=a, to_status=b, attempt=1, reason=None)
        for i, (a, b) in enumerate(OLD_PATH[:3])
    ]
    return history


def _old_instance(now: float) -> dict:
    return dict(
        id="local-old2",
        backend="local",
        state="busy",
        info={"id": "local-old2", "address": "127.0.0.1"},
        uses=1,
        pipeline_id=2,
        error=None,
        created_at=now - 45,
        ready_at=now - 44,
        idle_since=None,
        updated_at=now,
    )


def schema_differences(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    return [d for d in diffs if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_a_new_database_gets_exactly_the_models_schema(database_url):
    Store(database_url).close()
    assert migrations.current(database_url) == migrations.head()
    # Fails when a model changes without a migration of its own.
    assert schema_differences(database_url) == []


def test_a_database_from_before_versioning_is_upgraded_with_every_pipeline_history_row_and_secret(
    make_service, database_url, tmp_path, caplog
):
    create_old_schema(database_url)
    box = SecretBox.from_config(None, tmp_path / "data")  # the key file the service will find
    old = fill_old_database(database_url, box)
    assert migrations.current(database_url) is None

    with caplog.at_level("INFO"):
        service = make_service(start=False, database_url=database_url)
    assert "a database from before schema versioning; recording it as revision 0001_baseline" in caplog.text
    assert migrations.current(database_url) == migrations.head()
    assert schema_differences(database_url) == []

    pipelines, total = service.store.list_pipelines(with_history=True)
    assert total == 3
    by_id = {p.id: p for p in pipelines}
    assert [by_id[i].status for i in (1, 2, 3)] == ["succeeded", "running", "queued"]
    assert [service.secrets.decrypt(by_id[i].secret) for i in (1, 2, 3)] == ["pw-finished", "pw-running", "pw-queued"]
    assert by_id[1].exit_code == 0 and by_id[2].job_dir == "/tmp/job-2" and by_id[3].priority == 3
    assert by_id[3].spec["host"] == "http://xnat" and by_id[2].version == 3
    transitions = [(t.pipeline_id, t.from_status, t.to_status, t.reason) for p in pipelines for t in p.transitions]
    assert transitions == old["transitions"]
    assert service.scheduler_id == "0ld5ched1d00"  # its instances are still recognised as ours
    with service.store.read() as session:
        instance = session.get(Instance, "local-old2")
        assert instance.state == "busy" and instance.pipeline_id == 2 and instance.info["address"] == "127.0.0.1"

    # And the upgraded database works: the queued pipeline runs with its stored password.
    service.ensure_started()
    assert wait_status(service, 3, FINAL_STATES).status == "succeeded"


def test_a_database_newer_than_the_code_is_refused_on_one_line(database_url):
    Store(database_url).close()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(migrations.SchemaError) as refused:
        Store(database_url)
    message = str(refused.value)
    assert "schema revision 9999_from_the_future is newer than this scheduler-server knows" in message
    assert f"its newest is {migrations.head()}" in message and "\n" not in message


def test_an_unversioned_schema_that_is_not_the_baseline_is_left_untouched(database_url):
    create_old_schema(database_url)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE leases"))
    engine.dispose()
    with pytest.raises(
        migrations.SchemaError, match=r"unrecognised schema without a version table \(table leases missing\)"
    ):
        Store(database_url)
    engine = create_engine(database_url)
    assert "alembic_version" not in inspect(engine).get_table_names()
    engine.dispose()


def test_db_upgrade_and_db_current_commands(database_url, tmp_path):
    from scheduler_server.cli import main

    create_old_schema(database_url)
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\npipelines:\n  database_url: '{database_url}'\n")
    runner = CliRunner()
    before = runner.invoke(main, ["db", "current", "--config", str(config)])
    assert before.exit_code == 0, before.output
    assert "no version table" in before.output and f"this code's newest: {migrations.head()}" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade", "--config", str(config)])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"0001_baseline -> {migrations.head()}" in upgraded.output
    after = runner.invoke(main, ["db", "current", "--config", str(config)])
    assert f"revision {migrations.head()} (up to date)" in after.output
    again = runner.invoke(main, ["db", "upgrade", "--config", str(config)])
    assert again.exit_code == 0 and "already at" in again.output


def test_a_sqlite_table_rebuild_on_the_migration_connection_keeps_the_history(make_service, tmp_path):
    """Batch mode rebuilds a table by copy, drop and rename; on a connection with foreign keys on
    (as the store's), dropping `pipelines` cascade-deletes every history row. Migrations run on one
    with them off."""
    import sqlalchemy as sa
    from alembic.operations import Operations

    from scheduler_server.pipelines.storage.migrations.upgrade import locked_connection

    from .conftest import script, submit_ok

    service = make_service()
    (pid,) = submit_ok(service, script("ok.sh"))
    assert wait_status(service, pid, FINAL_STATES).status == "succeeded"
    service.close()
    url = service.store.url
    count = "SELECT count(*) FROM pipeline_transitions"

    def rebuild(connection):
        with Operations(MigrationContext.configure(connection, opts={"render_as_batch": True})).batch_alter_table(
            "pipelines", recreate="always"
        ) as batch:
            batch.alter_column("project", type_=sa.String(300))

    with locked_connection(url) as connection, connection.begin():
        before = connection.exec_driver_sql(count).scalar()
        rebuild(connection)
        assert connection.exec_driver_sql(count).scalar() == before == 4
    # The control: the same rebuild with foreign keys on loses the history (so the check above means something).
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
        with connection.begin():
            rebuild(connection)
            assert connection.exec_driver_sql(count).scalar() == 0
            connection.rollback()
    engine.dispose()


def test_migrations_do_not_import_the_application_models(tmp_path):
    """The models move in a later issue; a migration must keep meaning what it meant."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'pipelines.sqlite'}"
    code = (
        "import sys\n"
        "from scheduler_server.pipelines.storage import migrations\n"
        f"print(migrations.prepare({url!r}))\n"
        "assert 'scheduler_server.pipelines.models' not in sys.modules, 'models imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert migrations.head() in done.stdout
