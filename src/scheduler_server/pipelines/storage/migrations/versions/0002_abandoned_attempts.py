"""abandoned_attempts: attempts given up on while their process may still run (exactly once on SSH hosts).

The dispatcher kills what is left of each when its instance answers again, then
deletes the row. No foreign key: the row outlives its pipeline's.

Revision ID: 0002_abandoned_attempts
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_abandoned_attempts"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abandoned_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("job_dir", sa.String(1024), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_try_at", sa.Float(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
    )
    op.create_index("ix_abandoned_attempts_pipeline_id", "abandoned_attempts", ["pipeline_id"])


def downgrade() -> None:
    op.drop_index("ix_abandoned_attempts_pipeline_id", table_name="abandoned_attempts")
    op.drop_table("abandoned_attempts")
