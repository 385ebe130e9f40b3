"""Alembic revisions of the pipeline database, oldest first (loaded by Alembic, not imported by the app)."""
