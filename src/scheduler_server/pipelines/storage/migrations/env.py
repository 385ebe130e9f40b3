"""Alembic's environment for the pipeline database, driven from code (no alembic.ini).

``upgrade.py`` passes an open connection in ``config.attributes["connection"]``;
it holds the schema lock and, on SQLite, has foreign keys off (see there).
Batch mode lets SQLite, which cannot ALTER most things, recreate a table instead.
No ``target_metadata``: migrations never import the application's models.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
