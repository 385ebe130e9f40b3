"""Bring the pipeline database to this code's schema, once, under the schema lock.

``prepare(url)`` runs at every start (``Store``): it creates a new database,
stamps a pre-versioning one as the baseline, applies pending migrations, and
refuses a database it cannot vouch for (an unknown revision, i.e. written by a
newer version, or unversioned tables it does not recognise). ``upgrade`` and
``current`` back ``scheduler-server db upgrade|current``.

SQLite runs the whole step in one ``BEGIN IMMEDIATE`` transaction with foreign
keys off: batch mode rebuilds a table by copy, drop and rename, and with
foreign keys on, dropping ``pipelines`` would cascade-delete every history row.
``PRAGMA foreign_key_check`` then verifies nothing dangles before the commit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

# Before alembic's first import, which announces each of its plug-ins at INFO.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import Connection, Engine, make_url  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from scheduler_server.pipelines.storage.errors import StoreUnavailable, database_name, unavailable_reason  # noqa: E402
from scheduler_server.pipelines.storage.migrations.baseline_check import BASELINE, UnrecognisedSchema, unversioned_state  # noqa: E402
from scheduler_server.pipelines.storage.migrations.schema_lock import advisory_lock, file_lock, lock_file_of  # noqa: E402

log = logging.getLogger(__name__)


class _QuietAlembic(logging.Filter):
    """Alembic announces its dialect on every run; keep only what it changes ("Running upgrade ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_QuietAlembic())

BASELINE_REVISION = "0001_baseline"


class SchemaError(Exception):
    """The database's schema is not one this code may use or migrate; one line saying why."""


def _config() -> Config:
    """A new one each time: a run's connection travels in its attributes, and two threads may migrate two databases."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return _scripts().get_current_head()


def prepare(url: str) -> tuple[str | None, str]:
    """Make the database at ``url`` current; returns its revision before (None: new) and after."""
    with locked_connection(url) as connection:
        return _migrate(connection, url)


def upgrade(url: str) -> tuple[str | None, str]:
    """``scheduler-server db upgrade``: the same as a start does."""
    return prepare(url)


def current(url: str) -> str | None:
    """The database's revision; None if it has no version table (new, or from before versioning)."""
    with _connection(url) as connection, connection.begin():
        return MigrationContext.configure(connection).get_current_revision()


def _migrate(connection: Connection, url: str) -> tuple[str | None, str]:
    name = database_name(url)
    target = head()
    with connection.begin():
        before = MigrationContext.configure(connection).get_current_revision()
        if before is None:
            try:
                state = unversioned_state(connection)
            except UnrecognisedSchema as exc:
                raise SchemaError(
                    f"pipelines database {name}: unrecognised schema without a version table ({exc}); left untouched"
                ) from None
            if state == BASELINE:
                log.info(
                    "%s: a database from before schema versioning; recording it as revision %s", name, BASELINE_REVISION
                )
                _run(connection, command.stamp, BASELINE_REVISION)
                before = BASELINE_REVISION
            else:
                log.info("%s: creating the pipeline schema (revision %s)", name, target)
        elif not is_known(before):
            raise SchemaError(
                f"pipelines database {name}: schema revision {before} is newer than this scheduler-server knows"
                f" (its newest is {target}); run the version that wrote it, or restore a backup"
            )
        if before != target:
            if before is not None:
                log.info("%s: upgrading the schema from revision %s to %s", name, before, target)
            _run(connection, command.upgrade, target)
            _check_foreign_keys(connection, name)
    return before, target


def is_known(revision: str) -> bool:
    """True if this code has a migration file for ``revision`` (False: a newer version wrote it)."""
    try:
        return _scripts().get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for a revision it has no file for
        return False


def _run(connection: Connection, step, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    step(config, revision)


def _check_foreign_keys(connection: Connection, name: str) -> None:
    if connection.dialect.name != "sqlite":
        return
    dangling = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
    if dangling:
        raise SchemaError(
            f"pipelines database {name}: the migration left {len(dangling)} rows without their parent; rolled back"
        )


@contextlib.contextmanager
def locked_connection(url: str) -> Iterator[Connection]:
    """The connection migrations run on, holding the schema lock (on SQLite: foreign keys off, BEGIN IMMEDIATE)."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        # The file lock first: the empty-file check and the first connection belong under it.
        with file_lock(lock_file_of(sqlite_file)):
            _note_empty_file(sqlite_file)
            with _connection(url) as connection:
                yield connection
        return
    with _connection(url) as connection:
        if connection.dialect.name == "postgresql":
            with advisory_lock(connection):
                yield connection
        else:
            yield connection


@contextlib.contextmanager
def _connection(url: str) -> Iterator[Connection]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    except DBAPIError as exc:
        reason = unavailable_reason(exc, url)
        if reason is None:
            raise
        raise StoreUnavailable(reason) from None
    finally:
        engine.dispose()


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):  # a server that never answers: give up connecting after 5 s
        return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5} if "postgres" in url else {})
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # BEGIN below, so DDL is inside the transaction too
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # Under the lock, before any store connects: switching to WAL needs the file to itself, and
        # stores that each switched on connect found it busy ("database is locked") when they started together.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _note_empty_file(path: Path) -> None:
    # In WAL mode a new database's first pages can sit in -wal while the main file is still 0 bytes.
    wal = path.with_name(path.name + "-wal")
    if path.exists() and path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        log.warning("%s is an empty (0-byte) file: initialising it as a new pipeline database", path)
