"""The pipeline database's schema, versioned with Alembic.

``versions/`` holds one revision per schema change, oldest first; ``0001_baseline``
is the schema from before versioning. Revisions spell out their tables and never
import ``models.py`` (the models move; a migration must keep meaning what it meant).
A new model change needs a new revision here (``tests/pipelines/test_migrations.py``
fails until the migrated schema equals the models').

``upgrade.prepare`` runs at every start, under ``schema_lock``.
"""

from scheduler_server.pipelines.storage.migrations.upgrade import (
    BASELINE_REVISION,
    SchemaError,
    current,
    head,
    is_known,
    prepare,
    upgrade,
)

__all__ = ["BASELINE_REVISION", "SchemaError", "current", "head", "is_known", "prepare", "upgrade"]
