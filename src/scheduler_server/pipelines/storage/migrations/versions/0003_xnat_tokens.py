"""xnat_tokens and pipelines.token_id: the alias tokens held for pipelines on listed XNAT hosts.

A pipeline on a host of ``xnat.servers`` keeps its token's secret (encrypted) in
``pipelines.secret`` and names the token row in ``token_id``; the row holds what
renewing and invalidating need (pipelines/xnat/tokens.py). No foreign key: SQLite
cannot add one to an existing table without a rebuild, and the rows are only ever
read by id.

Revision ID: 0003_xnat_tokens
Revises: 0002_abandoned_attempts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_xnat_tokens"
down_revision = "0002_abandoned_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xnat_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(1024), nullable=False),
        sa.Column("user", sa.String(255)),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float()),
        sa.Column("pipelines", sa.Integer(), nullable=False),
        sa.Column("issued", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("renewed_by", sa.Integer()),
        sa.Column("released_at", sa.Float()),
    )
    op.create_index("ix_xnat_tokens_released_at", "xnat_tokens", ["released_at"])
    op.add_column("pipelines", sa.Column("token_id", sa.Integer()))
    op.create_index("ix_pipelines_token_id", "pipelines", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_pipelines_token_id", table_name="pipelines")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("token_id")
    op.drop_index("ix_xnat_tokens_released_at", table_name="xnat_tokens")
    op.drop_table("xnat_tokens")
