"""pipelines.workflow_id, workflow_status, workflow_at: the XNAT workflow entry a pipeline keeps up to date.

With ``xnat.workflows`` a pipeline on a listed host has a ``wrk:workflowData`` entry on its session
(pipelines/xnat/workflows.py). ``workflow_status``: the XNAT status last written (NULL: no entry is kept);
``workflow_at``: the pipeline's ``updated_at`` when it was written (NULL: an update is due; 0005 indexes
it); ``workflow_id``: XNAT's ``wrk_workflowData_id``.

Revision ID: 0004_xnat_workflows
Revises: 0003_xnat_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_xnat_workflows"
down_revision = "0003_xnat_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipelines", sa.Column("workflow_id", sa.Integer()))
    op.add_column("pipelines", sa.Column("workflow_status", sa.String(32)))
    op.add_column("pipelines", sa.Column("workflow_at", sa.Float()))
    op.create_index("ix_pipelines_workflow_status", "pipelines", ["workflow_status"])


def downgrade() -> None:
    op.drop_index("ix_pipelines_workflow_status", table_name="pipelines")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("workflow_at")
        batch.drop_column("workflow_status")
        batch.drop_column("workflow_id")
