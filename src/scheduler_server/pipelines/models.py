"""Pipelines and instances as stored, their states and the transitions allowed between them.

Times are UTC epoch seconds (floats): the dispatcher does arithmetic on them on
every tick, and they mean the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, object_session, relationship


class InvalidTransition(Exception):
    """A state change the lifecycle does not allow (e.g. cancelling a finished pipeline, reusing a deleted instance)."""


# --- pipeline lifecycle ----------------------------------------------------------------

QUEUED, PROVISIONING, STAGING, RUNNING = "queued", "provisioning", "staging", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
PIPELINE_STATES = (QUEUED, PROVISIONING, STAGING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (PROVISIONING, STAGING, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)

#: from -> allowed targets. Going back to QUEUED is a retry (automatic or asked for).
ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({PROVISIONING, CANCELLED, FAILED}),
    PROVISIONING: frozenset({STAGING, QUEUED, FAILED, CANCELLED}),
    STAGING: frozenset({RUNNING, QUEUED, FAILED, CANCELLED, SUCCEEDED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, QUEUED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset({QUEUED}),
    CANCELLED: frozenset({QUEUED}),
}

# --- instance lifecycle ----------------------------------------------------------------


class InstanceState(StrEnum):
    """An instance row's state, stored as its value (the strings the database has always held)."""

    BOOTING = "booting"
    IDLE = "idle"
    BUSY = "busy"
    DELETING = "deleting"
    DELETED = "deleted"
    BROKEN = "broken"  # booting failed


LIVE_INSTANCE_STATES = (InstanceState.BOOTING, InstanceState.IDLE, InstanceState.BUSY, InstanceState.DELETING)

#: from -> allowed targets. ``booting -> idle <-> busy -> deleting -> deleted``; any live instance can
#: be marked deleting, a failed boot ends broken, and a row whose server is gone becomes deleted at once.
#: Staying in a state is always allowed (a second "delete it" is not an error).
INSTANCE_MOVES: dict[InstanceState, frozenset[InstanceState]] = {
    InstanceState.BOOTING: frozenset(
        {InstanceState.IDLE, InstanceState.BUSY, InstanceState.DELETING, InstanceState.DELETED, InstanceState.BROKEN}
    ),
    InstanceState.IDLE: frozenset({InstanceState.BUSY, InstanceState.DELETING, InstanceState.DELETED}),
    InstanceState.BUSY: frozenset({InstanceState.IDLE, InstanceState.DELETING, InstanceState.DELETED}),
    InstanceState.DELETING: frozenset({InstanceState.DELETED, InstanceState.BROKEN}),
    InstanceState.BROKEN: frozenset({InstanceState.DELETED}),
    InstanceState.DELETED: frozenset(),
}


class _InstanceStateColumn(TypeDecorator):
    """The state as the plain string in the database, an InstanceState in Python."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else InstanceState(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else InstanceState(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32), default="xnat")
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The request minus its secret: what the task type needs to build the command.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Searchable copies of the seed's fields.
    project: Mapped[str | None] = mapped_column(String(255), index=True)
    subject: Mapped[str | None] = mapped_column(String(255))
    session: Mapped[str | None] = mapped_column(String(255))
    script: Mapped[str] = mapped_column(String(1024))
    secret: Mapped[str | None] = mapped_column(Text, doc="Fernet token of the password; never the plain text.")
    token_id: Mapped[int | None] = mapped_column(
        Integer, index=True, doc="The XnatToken (a listed host's alias token) whose secret is ``secret``."
    )
    timeout: Mapped[float | None] = mapped_column(Float)
    workflow_id: Mapped[int | None] = mapped_column(Integer, doc="XNAT's wrk_workflowData_id of its workflow entry.")
    workflow_status: Mapped[str | None] = mapped_column(
        String(32), index=True, doc="XNAT workflow status last written; None: no entry kept (xnat/workflows.py)."
    )
    workflow_at: Mapped[float | None] = mapped_column(
        Float, index=True, doc="updated_at when the workflow was last written; None: an update is due."
    )

    attempt: Mapped[int] = mapped_column(Integer, default=0, doc="Attempts started so far (1 = first).")
    attempts_base: Mapped[int] = mapped_column(Integer, default=0, doc="attempt at the last manual retry.")
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    instance_id: Mapped[str | None] = mapped_column(String(255), index=True)
    job_dir: Mapped[str | None] = mapped_column(String(1024))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    instance_ready_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    transitions: Mapped[list[Transition]] = relationship(
        back_populates="pipeline", order_by="Transition.id", cascade="all, delete-orphan", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (Index("ix_pipelines_queue", "status", "priority", "id"),)

    def move(self, to: str, reason: str, now: float | None = None) -> None:
        """Change status, recording the transition; raise InvalidTransition if not allowed."""
        if to not in ALLOWED[self.status]:
            raise InvalidTransition(f"pipeline {self.id} is {self.status}; it cannot become {to}")
        now = time.time() if now is None else now
        # Added through the session, not the collection, so a status change never loads the whole history.
        object_session(self).add(
            Transition(
                pipeline_id=self.id, at=now, from_status=self.status, to_status=to, attempt=self.attempt, reason=reason
            )
        )
        self.status = to
        self.reason = reason
        self.updated_at = now
        if self.workflow_status is not None:
            self.workflow_at = None  # its XNAT workflow entry has an update due (xnat/workflows.py)

    def attempts_used(self) -> int:
        """Attempts since the pipeline was (re)submitted; MAX_ATTEMPTS bounds this."""
        return self.attempt - self.attempts_base


class Transition(Base):
    __tablename__ = "pipeline_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)

    pipeline: Mapped[Pipeline] = relationship(back_populates="transitions")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(255), primary_key=True, doc="Our name for it, also passed to provision().")
    backend: Mapped[str] = mapped_column(String(32))
    state: Mapped[InstanceState] = mapped_column(_InstanceStateColumn(), default=InstanceState.BOOTING, index=True)
    info: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), doc="InstanceInfo.to_dict() once provision() returned."
    )
    uses: Mapped[int] = mapped_column(Integer, default=0, doc="Pipelines assigned to it so far (VIRTUAL_SERVER_TTL).")
    pipeline_id: Mapped[int | None] = mapped_column(Integer, doc="The pipeline holding it, if any.")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    ready_at: Mapped[float | None] = mapped_column(Float)
    idle_since: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)

    def move(self, to: InstanceState) -> None:
        """Change state; raise InvalidTransition if the lifecycle does not allow it."""
        current = InstanceState(self.state) if self.state is not None else InstanceState.BOOTING
        if to != current and to not in INSTANCE_MOVES[current]:
            raise InvalidTransition(f"instance {self.id} is {current}; it cannot become {to}")
        self.state = to


class Lease(Base):
    """Who runs the dispatcher: one row per lease name, renewed by its holder."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[float] = mapped_column(Float)


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AbandonedAttempt(Base):
    """An attempt given up on while its process may still run (its instance unreachable past the
    retry window, a kill not confirmed, a launch whose outcome is unknown). It never counts; the
    dispatcher kills what is left of it when its instance answers again, then deletes the row.
    Also an attempt that ended, from its end's commit until its job directory is removed."""

    __tablename__ = "abandoned_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[int] = mapped_column(Integer, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str] = mapped_column(String(255), doc="Our instance row's id.")
    info: Mapped[dict[str, Any]] = mapped_column(JSON, doc="InstanceInfo.to_dict(): how to reach it.")
    job_dir: Mapped[str] = mapped_column(String(1024))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    next_try_at: Mapped[float] = mapped_column(Float, default=0.0)
    tries: Mapped[int] = mapped_column(Integer, default=0)


class XnatToken(Base):
    """An XNAT alias token held for the pipelines of one submission (or launch, or renewal): the script's
    credentials in place of a password. The secret is a Fernet token; the password is never stored.
    ``pipelines``: how many pipelines were given it. ``issued``: the scheduler issued it (so invalidates
    it when done); a token a single-sign-on user handed over is left to its owner. ``released_at``: when
    its last pipeline ended and it was invalidated (or let go); a retry after that needs fresh credentials."""

    __tablename__ = "xnat_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(1024), doc="The server's normalised base URL.")
    user: Mapped[str | None] = mapped_column(String(255), doc="The XNAT user it belongs to.")
    alias: Mapped[str] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(Text, doc="Fernet token of the token's secret.")
    expires_at: Mapped[float | None] = mapped_column(Float, doc="XNAT's estimate; None if it gave none.")
    pipelines: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    renewed_by: Mapped[int | None] = mapped_column(Integer, doc="The token that took over its queued pipelines.")
    released_at: Mapped[float | None] = mapped_column(Float, index=True)


class XnatWorkflowKey(Base):
    """A claimed XNAT workflow key: XNAT names an entry by (session, pipeline name, launch time to the second), so
    two pipelines of one script on one session in the same second would share one entry. Each claims its key here,
    in its own short transaction before its entry is written; the unique constraint makes a second claimant take
    the next second (pipelines/xnat/workflows.py). A claim whose submission then created nothing stays (harmless)."""

    __tablename__ = "xnat_workflow_keys"
    __table_args__ = (
        UniqueConstraint("host", "session_id", "pipeline_name", "launch_time", name="uq_xnat_workflow_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(1024), doc="The server's normalised base URL.")
    session_id: Mapped[str] = mapped_column(String(255), doc="The session's XNAT ID.")
    pipeline_name: Mapped[str] = mapped_column(String(1024), doc="The script.")
    launch_time: Mapped[int] = mapped_column(Integer, doc="The entry's launch time, UTC epoch seconds.")
