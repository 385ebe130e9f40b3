"""Recognise a database created before schema versioning (no ``alembic_version`` table).

Those databases were made by ``Base.metadata.create_all`` at commit 653972d:
exactly the tables and columns below, which ``0001_baseline`` also creates. A
database with all of them is stamped as that revision; one with none of them is
new; anything in between is refused, since migrating a schema we do not know
could lose data. Tables that are not ours (a shared PostgreSQL database) are ignored.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

BASELINE_TABLES: dict[str, frozenset[str]] = {
    "pipelines": frozenset(
        "id type status priority spec project subject session script secret timeout attempt attempts_base"
        " next_attempt_at instance_id job_dir exit_code reason cancel_requested created_at instance_ready_at"
        " started_at finished_at updated_at version".split()
    ),
    "pipeline_transitions": frozenset("id pipeline_id at from_status to_status attempt reason".split()),
    "instances": frozenset(
        "id backend state info uses pipeline_id error created_at ready_at idle_since updated_at".split()
    ),
    "leases": frozenset("name holder expires_at".split()),
    "meta": frozenset("key value".split()),
}

EMPTY, BASELINE = "empty", "baseline"


class UnrecognisedSchema(Exception):
    """The tables are neither absent nor the baseline's; the message says what differs."""


def unversioned_state(connection: Connection) -> str:
    """EMPTY or BASELINE for a database without a version table; UnrecognisedSchema otherwise."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names()) & set(BASELINE_TABLES)
    if not present:
        return EMPTY
    problems = [f"table {name} missing" for name in sorted(set(BASELINE_TABLES) - present)]
    for name in sorted(present):
        columns = {column["name"] for column in inspector.get_columns(name)}
        problems += [f"column {name}.{c} missing" for c in sorted(BASELINE_TABLES[name] - columns)]
        problems += [f"unknown column {name}.{c}" for c in sorted(columns - BASELINE_TABLES[name])]
    if problems:
        raise UnrecognisedSchema(", ".join(problems))
    return BASELINE
