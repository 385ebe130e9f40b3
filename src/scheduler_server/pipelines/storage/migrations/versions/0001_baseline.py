"""Baseline: the pipeline database as it was before schema versioning (commit 653972d).

Spelled out here rather than taken from ``models.py``: a migration is a frozen
record of one step, so it must not change when the models do. Databases created
before versioning already have exactly these tables; they are stamped with this
revision instead of running it (see ``baseline_check``).

Revision ID: 0001_baseline
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("project", sa.String(255)),
        sa.Column("subject", sa.String(255)),
        sa.Column("session", sa.String(255)),
        sa.Column("script", sa.String(1024), nullable=False),
        sa.Column("secret", sa.Text()),
        sa.Column("timeout", sa.Float()),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempts_base", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("job_dir", sa.String(1024)),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("reason", sa.Text()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("instance_ready_at", sa.Float()),
        sa.Column("started_at", sa.Float()),
        sa.Column("finished_at", sa.Float()),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_pipelines_status", "pipelines", ["status"])
    op.create_index("ix_pipelines_queue", "pipelines", ["status", "priority", "id"])
    op.create_index("ix_pipelines_project", "pipelines", ["project"])
    op.create_index("ix_pipelines_instance_id", "pipelines", ["instance_id"])

    op.create_table(
        "instances",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("info", sa.JSON(none_as_null=True)),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ready_at", sa.Float()),
        sa.Column("idle_since", sa.Float()),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_instances_state", "instances", ["state"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )

    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )

    op.create_table(
        "pipeline_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline_id", sa.Integer(), sa.ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text()),
    )
    op.create_index("ix_pipeline_transitions_pipeline_id", "pipeline_transitions", ["pipeline_id"])


def downgrade() -> None:
    for table in ("pipeline_transitions", "meta", "leases", "instances", "pipelines"):
        op.drop_table(table)
