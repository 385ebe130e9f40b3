"""``scheduler-server db upgrade|current``: the pipeline database's schema version from the shell.

A start migrates by itself (under the schema lock); ``db upgrade`` does the same
step on its own, e.g. before starting several workers or hosts of a new version.
"""

from __future__ import annotations

import click

from scheduler_server.commands.common import config_option, settings_or_exit


def _database(config_path: str | None) -> tuple[str, str]:
    from scheduler_server.pipelines.storage.errors import database_name
    from scheduler_server.pipelines.storage.store import default_url

    settings = settings_or_exit(config_path)
    url = settings.pipelines.database_url or default_url(settings.data_path)
    return url, database_name(url)


def _failure(exc: Exception) -> click.ClickException:
    return click.ClickException(getattr(exc, "reason", None) or str(exc))


@click.group("db")
def command() -> None:
    """The pipeline database's schema: upgrade it, or show its revision."""


@command.command("upgrade")
@config_option
def upgrade(config_path: str | None) -> None:
    """Bring the schema to this version's newest revision (what a start does)."""
    from scheduler_server.pipelines.storage import migrations
    from scheduler_server.pipelines.storage.errors import StoreUnavailable

    url, name = _database(config_path)
    try:
        before, after = migrations.upgrade(url)
    except (migrations.SchemaError, StoreUnavailable) as exc:
        raise _failure(exc) from None
    if before == after:
        click.echo(f"{name}: already at revision {after}")
    else:
        click.echo(f"{name}: {before or 'new database'} -> {after}")


@command.command("current")
@config_option
def current(config_path: str | None) -> None:
    """Print the database's schema revision and this version's newest."""
    from scheduler_server.pipelines.storage import migrations
    from scheduler_server.pipelines.storage.errors import StoreUnavailable

    url, name = _database(config_path)
    try:
        revision = migrations.current(url)
    except StoreUnavailable as exc:
        raise _failure(exc) from None
    head = migrations.head()
    if revision is None:
        click.echo(
            f"{name}: no version table (a new database, or one from before versioning); this code's newest: {head}"
        )
    elif revision == head:
        click.echo(f"{name}: revision {revision} (up to date)")
    elif migrations.is_known(revision):
        click.echo(f"{name}: revision {revision}; this code's newest: {head} (run `scheduler-server db upgrade`)")
    else:
        click.echo(f"{name}: revision {revision}, newer than this code (its newest is {head})")
