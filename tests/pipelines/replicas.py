"""Several ``scheduler-server serve`` replicas on one PostgreSQL database, for the replica tests and bench.

Each replica has its own home and data directory and port; all share the database, the secret key,
the scripts folder and (on the ssh backend) the hosts. Each connects with its own PostgreSQL
``application_name`` (``replica-N``), and ``install_audit`` adds triggers that record, for every row
written to the pipeline tables, which replica wrote it and when (the database's clock), so a test can
tell who started what, and that a fenced replica wrote nothing.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from .server import ServeProcess

AUDITED = ("pipelines", "pipeline_transitions", "instances")

_AUDIT_SQL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.writes (
    id bigserial PRIMARY KEY, at double precision NOT NULL, app text NOT NULL,
    tab text NOT NULL, op text NOT NULL, row_data jsonb
);
CREATE OR REPLACE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.writes (at, app, tab, op, row_data) VALUES (
        extract(epoch FROM clock_timestamp()), current_setting('application_name'), TG_TABLE_NAME, TG_OP,
        CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END);
    RETURN NULL;
END $$;
"""


@dataclass
class Replica:
    """One replica: a ``serve`` process with its own home, named ``replica-<n>`` in the database."""

    n: int
    server: ServeProcess
    frozen: bool = False

    @property
    def name(self) -> str:
        return f"replica-{self.n}"

    @property
    def url(self) -> str:
        return self.server.url

    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def pids(self) -> list[int]:
        return self.server.service_pids()

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        self.frozen = sig == signal.SIGSTOP

    def log_text(self) -> str:
        return self.server.log.read_text(errors="replace") if self.server.log.exists() else ""


@dataclass
class Cluster:
    """The replicas and the database they share (``url``: SQLAlchemy URL without an application name)."""

    url: str
    replicas: list[Replica] = field(default_factory=list)

    def engine(self):
        return create_engine(self.url, pool_pre_ping=True)

    def leader(self, engine) -> Replica | None:
        """The live replica holding an unexpired dispatcher lease (None: nobody holds one now)."""
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT holder FROM leases WHERE expires_at > extract(epoch FROM clock_timestamp())")
            ).first()
        if row is None:
            return None
        pid = int(row.holder.split(":")[1])
        return next((r for r in self.replicas if r.alive() and pid in r.pids()), None)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.frozen:
                replica.signal(signal.SIGCONT)
            replica.server.stop()


def replica_settings(database_url: str, scripts: Path, n: int, key: str, **pipelines) -> dict:
    """The pipelines section of replica ``n``'s config."""
    return {
        "database_url": f"{database_url}?application_name=replica-{n}",
        "secret_key": key,
        "local_scripts_folder": str(scripts),
        **pipelines,
    }


def start_cluster(tmp_path: Path, database_url: str, scripts: Path, count: int = 3, **pipelines) -> Cluster:
    """Start ``count`` replicas one after the other (the first creates the schema); stopped by ``Cluster.stop``."""
    key = Fernet.generate_key().decode()
    cluster = Cluster(database_url)
    try:
        for n in range(1, count + 1):
            home = tmp_path / f"replica-{n}"
            home.mkdir(parents=True, exist_ok=True)
            config = home / "config.yaml"
            section = replica_settings(database_url, scripts, n, key, **pipelines)
            config.write_text(json.dumps({"data_dir": str(home / "data"), "pipelines": section}))  # JSON is YAML
            cluster.replicas.append(Replica(n, ServeProcess(home, config)))
            cluster.replicas[-1].server.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def install_audit(engine) -> None:
    """Triggers recording every row written to the pipeline tables: who (application_name), when, what."""
    with engine.begin() as connection:
        connection.exec_driver_sql(_AUDIT_SQL)
        for table in AUDITED:
            connection.exec_driver_sql(
                f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION audit.record()"
            )


def writes(engine, *, app: str | None = None, after: float = 0.0, table: str | None = None) -> list[dict]:
    """Audited writes since ``after`` (epoch seconds), oldest first, optionally only one replica's or table's."""
    query = "SELECT at, app, tab, op, row_data FROM audit.writes WHERE at > :after"
    params: dict = {"after": after}
    if app is not None:
        query, params["app"] = query + " AND app = :app", app
    if table is not None:
        query, params["tab"] = query + " AND tab = :tab", table
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(text(query + " ORDER BY id"), params)]


def first_start(engine, app: str, after: float) -> float | None:
    """When ``app`` first moved a pipeline to running after ``after`` (None: not yet)."""
    for write in writes(engine, app=app, after=after, table="pipeline_transitions"):
        if write["op"] == "INSERT" and write["row_data"]["to_status"] == "running":
            return write["at"]
    return None
