"""xnat_workflow_keys: the XNAT workflow keys claimed, so no two pipelines share one entry.

XNAT names a workflow entry by (session, pipeline name, launch time to the second); a submission and
a launch (or two submissions) of one script on one session in the same second would otherwise write
the same entry. Each pipeline claims its key (host, session_id, pipeline_name, launch_time in epoch
seconds) here before its entry is written; the unique constraint sends a second claimant to the next
second (pipelines/xnat/workflows.py).

Revision ID: 0006_xnat_workflow_keys
Revises: 0005_workflow_due_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_xnat_workflow_keys"
down_revision = "0005_workflow_due_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xnat_workflow_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(1024), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("pipeline_name", sa.String(1024), nullable=False),
        sa.Column("launch_time", sa.Integer(), nullable=False),
        sa.UniqueConstraint("host", "session_id", "pipeline_name", "launch_time", name="uq_xnat_workflow_key"),
    )


def downgrade() -> None:
    op.drop_table("xnat_workflow_keys")
