"""Persistence: one SQLAlchemy engine, sessions for reading and writing, the dispatcher lease.

SQLite is the default (a file in the data directory, WAL journal so readers
never wait for the writer); any SQLAlchemy URL works, PostgreSQL included.

Opening a store brings the schema up to date first (``migrations.prepare``,
once, under the schema lock) and checks that the database takes a write, so a
read-only, full or corrupt database stops the start with one line. Later, a
driver error that means the database is unusable becomes ``StoreUnavailable``.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: pysqlite's
default deferred BEGIN takes the write lock only at the first write, and two
threads upgrading at once make one fail with "database is locked" without
waiting for ``busy_timeout``. Reads keep a plain BEGIN.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from scheduler_server.pipelines.models import ACTIVE_STATES, QUEUED, Lease, Meta, Pipeline
from scheduler_server.pipelines.storage import lease as fencing
from scheduler_server.pipelines.storage import migrations
from scheduler_server.pipelines.storage.errors import StoreUnavailable, is_lock_wait, unavailable_reason
from scheduler_server.pipelines.storage.health import WriteHealth
from scheduler_server.pipelines.storage.lease import DISPATCHER_LEASE
from scheduler_server.pipelines.storage.queries import ListFilter, ordered, summary

log = logging.getLogger(__name__)

#: The meta row the health probe writes (never read back).
HEALTH_PROBE_KEY = "health_probe"
#: The PostgreSQL advisory lock key of ``Store.lock_assignments`` (any fixed 64-bit number).
ASSIGNMENT_LOCK = 0x5C4ED01E
#: PostgreSQL ends a session left idle inside a transaction this long (seconds): a process frozen
#: (SIGSTOP) mid-transaction must not keep its locks, the lease row's share lock among them, for ever.
FROZEN_TRANSACTION_TIMEOUT = 3.0
#: PostgreSQL gives up a lock wait this long (seconds; below FROZEN_TRANSACTION_TIMEOUT): a frozen
#: process's transactions that were waiting for a lock (the assignment lock, while holding the lease
#: row's share lock) end by then, instead of being granted it, one after the other, as each holder
#: before them times out, and so keeping the lease from being taken over for many timeouts in a row.
LOCK_WAIT_TIMEOUT = 2.0


def default_url(data_path: Path) -> str:
    return f"sqlite:///{data_path / 'pipelines.sqlite'}"


#: libpq: give up connecting after 5 s; TCP keepalives and a 15 s user timeout, so a renewal or release
#: on a connection whose server vanished fails in seconds (not the kernel's ~2 min, or 15 min of retransmits).
POSTGRES_CONNECT = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_session(dbapi_connection, _record) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET idle_in_transaction_session_timeout = {int(FROZEN_TRANSACTION_TIMEOUT * 1000)}")
        cursor.execute(f"SET lock_timeout = {int(LOCK_WAIT_TIMEOUT * 1000)}")
    dbapi_connection.commit()  # a session setting: kept after the pool's rollbacks


class Store:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
            writer = self.engine.execution_options(sqlite_immediate=True)
        else:
            postgres = url.startswith("postgresql")
            self.engine = create_engine(url, pool_pre_ping=True, connect_args=POSTGRES_CONNECT if postgres else {})
            if self.engine.dialect.name == "postgresql":
                event.listen(self.engine, "connect", _postgres_session)
            writer = self.engine
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(writer, expire_on_commit=False)
        self.health = WriteHealth(self._probe_write)
        try:
            migrations.prepare(url)
            self._probe_write()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self._reader() as session:
                yield session
        except DBAPIError as exc:
            raise self._unavailable(exc) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on leaving the block (rolls back on an exception).

        StoreUnavailable if the database cannot take the write (read-only, full, corrupt, down).
        Run as leader (``lease.fenced``): LeaseLost, writing nothing, unless this process holds the lease."""
        fence = fencing.current()
        if fence is not None:
            fence.check_local()  # past the local deadline: not even a connection
        try:
            with self._writer() as session, session.begin():
                if fence is not None:
                    fence.check(session)
                yield session
        except DBAPIError as exc:
            raise self._unavailable(exc) from None
        self.health.succeeded()

    def write_problem(self) -> str | None:
        """None if the database takes writes now, else why not (cheap: see ``store_health``)."""
        return self.health.problem()

    def _unavailable(self, exc: DBAPIError) -> Exception:
        reason = unavailable_reason(exc, self.url)
        if reason is None:
            return exc  # a bug, not the database's state: raised as it was
        if not is_lock_wait(exc):  # a lock wait given up: contention, the database takes writes
            self.health.failed(reason)
        return StoreUnavailable(reason)

    def _probe_write(self) -> None:
        value = repr(time.time())
        try:
            with self.write() as session:
                changed = session.execute(update(Meta).where(Meta.key == HEALTH_PROBE_KEY).values(value=value)).rowcount
                if not changed:
                    session.add(Meta(key=HEALTH_PROBE_KEY, value=value))
        except IntegrityError:
            # Another process inserted the row between our update and insert (PostgreSQL does not
            # serialize writers as SQLite does): its write went through, so the database takes writes.
            self.health.succeeded()

    def update_pipeline(self, pipeline_id: int, change, attempts: int = 5):
        """Load a pipeline, apply ``change(session, pipeline)`` and commit; retried on concurrent updates.

        Returns what ``change`` returns; ``None`` if the pipeline does not exist.
        """
        for attempt in range(attempts):
            try:
                with self.write() as session:
                    pipeline = session.get(Pipeline, pipeline_id)
                    if pipeline is None:
                        return None
                    return change(session, pipeline)
            except StaleDataError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        return None

    # --- identity -------------------------------------------------------------------

    def scheduler_id(self) -> str:
        """This scheduler's id (tags its instances), created on first use and then fixed."""
        return self.meta_setdefault("scheduler_id", uuid.uuid4().hex[:12])

    def meta_setdefault(self, key: str, value: str) -> str:
        """The meta row ``key``'s value; ``value`` is recorded first if there is none."""
        with self.read() as session:
            row = session.get(Meta, key)
            if row is not None:
                return row.value
        try:
            with self.write() as session:
                row = session.get(Meta, key)
                if row is None:
                    row = Meta(key=key, value=value)
                    session.add(row)
                return row.value
        except IntegrityError:
            # Another process created it between our read and insert (PostgreSQL does not serialize
            # writers as SQLite does, e.g. gunicorn's workers starting at once): theirs is the value.
            with self.read() as session:
                return session.get(Meta, key).value

    # --- serializing assignment -----------------------------------------------------

    def lock_assignments(self, session: Session) -> None:
        """Take, until ``session``'s transaction ends, the lock under which pipelines are put on
        instances and instances change hands (planning, an instance becoming ready, idle expiry).

        On SQLite every write transaction holds the database's write lock already (BEGIN IMMEDIATE).
        Elsewhere two such transactions could each decide on the other's old view (two plans taking
        one queued pipeline or the last instance slot; a boot marking idle an instance just assigned):
        PostgreSQL gets a transaction-scoped advisory lock, other databases a row lock on the lease.
        """
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            return
        if dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ASSIGNMENT_LOCK})
        else:
            session.execute(select(Lease.name).where(Lease.name == DISPATCHER_LEASE).with_for_update())

    # --- the dispatcher lease -------------------------------------------------------

    def acquire_lease(self, holder: str, ttl: float, name: str = DISPATCHER_LEASE) -> bool:
        """Take or renew the lease; True if ``holder`` has it for the next ``ttl`` seconds (``lease.take``)."""
        try:
            with self.write() as session:
                return fencing.take(session, holder, ttl, name)
        except IntegrityError:
            return False  # another process created the lease row between our read and insert: it holds it

    def read_lease(self, name: str = DISPATCHER_LEASE) -> tuple[str, float] | None:
        """(holder, expires_at) of the lease row, None if there is none: a plain read."""
        with self.read() as session:
            row = session.execute(select(Lease.holder, Lease.expires_at).where(Lease.name == name)).first()
            return None if row is None else (row.holder, row.expires_at)

    def release_lease(self, holder: str, name: str = DISPATCHER_LEASE) -> None:
        with self.write() as session:
            session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=0.0))

    # --- queries the API needs ------------------------------------------------------

    def add_pipelines(self, pipelines: Sequence[Pipeline], then=None) -> tuple[list[int], object]:
        """Insert ``pipelines``; ``then(session)``, if given, runs in the same transaction (the
        dispatcher assigns them there). Returns the new ids and what ``then`` returned."""
        with self.write() as session:
            session.add_all(pipelines)
            session.flush()
            return [p.id for p in pipelines], then(session) if then is not None else None

    def get_pipeline(self, pipeline_id: int, *, with_history: bool = False) -> Pipeline | None:
        with self.read() as session:
            options = [selectinload(Pipeline.transitions)] if with_history else []
            return session.get(Pipeline, pipeline_id, options=options)

    def list_pipelines(
        self,
        *,
        statuses: Sequence[str] | None = None,
        project: str | None = None,
        ids: Sequence[int] | None = None,
        offset: int = 0,
        limit: int | None = None,
        with_history: bool = False,
        subject: str | None = None,
        session: str | None = None,
        search: str | None = None,
        sort: str = "id",
    ) -> tuple[list[Pipeline], int]:
        """Pipelines in ``sort`` order (``queries.SORT_KEYS``; submission order by default), and how many match."""
        query = ListFilter(statuses, project, subject, session, search, ids).apply(
            select(Pipeline), self.engine.dialect.name
        )
        with self.read() as db:
            total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
            query = ordered(query, sort).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            if with_history:
                query = query.options(selectinload(Pipeline.transitions))
            return list(db.scalars(query)), total

    def summary(self, now: float, hours: int, bucket_seconds: int) -> dict:
        """``queries.summary`` in one read transaction."""
        with self.read() as db:
            return summary(db, now, hours, bucket_seconds)

    def queue_view(self, now: float, limit: int, session: Session | None = None) -> tuple[int, list[int]]:
        """How many pipelines are active, and the ids of the next queued ones whose backoff has passed
        (highest priority first, then FIFO): what the dispatcher needs to assign, in one read
        (in ``session`` if given, e.g. the transaction that just inserted pipelines)."""
        if session is None:
            with self.read() as own:
                return self.queue_view(now, limit, own)
        active = session.scalar(select(func.count()).where(Pipeline.status.in_(ACTIVE_STATES))) or 0
        query = (
            select(Pipeline.id)
            .where(Pipeline.status == QUEUED, Pipeline.next_attempt_at <= now, Pipeline.cancel_requested.is_(False))
            .order_by(Pipeline.priority.desc(), Pipeline.id)
            .limit(limit)
        )
        return active, list(session.scalars(query))

    def fair_queue_view(
        self, now: float, limit: int, session: Session
    ) -> tuple[dict[str | None, int], list[tuple[int, int, str | None]]]:
        """The active pipelines per project, and (id, priority, project) of the next ``limit`` queued ones
        due now of each project (highest priority first, then FIFO): every project is seen, however many
        pipelines another one queued before it (the planner's fair shares)."""
        by_project = select(Pipeline.project, func.count()).where(Pipeline.status.in_(ACTIVE_STATES))
        active = {project: n for project, n in session.execute(by_project.group_by(Pipeline.project))}
        turn = func.row_number().over(partition_by=Pipeline.project, order_by=(Pipeline.priority.desc(), Pipeline.id))
        due = (
            select(Pipeline.id, Pipeline.priority, Pipeline.project, turn.label("turn"))
            .where(Pipeline.status == QUEUED, Pipeline.next_attempt_at <= now, Pipeline.cancel_requested.is_(False))
            .subquery()
        )
        query = select(due.c.id, due.c.priority, due.c.project).where(due.c.turn <= limit)
        rows = session.execute(query.order_by(due.c.priority.desc(), due.c.id))
        return active, [(id_, priority, project) for id_, priority, project in rows]

    def active_pipelines(self) -> list[Pipeline]:
        with self.read() as session:
            query = select(Pipeline).where(Pipeline.status.in_(ACTIVE_STATES))
            return list(session.scalars(query.order_by(Pipeline.id)))

    def cancel_requested_queued(self) -> list[int]:
        with self.read() as session:
            query = select(Pipeline.id).where(Pipeline.status == QUEUED, Pipeline.cancel_requested.is_(True))
            return list(session.scalars(query))
