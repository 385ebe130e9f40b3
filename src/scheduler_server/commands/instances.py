"""``scheduler-server instances ...``: the pipeline scheduler's instances from a shell (see pipelines.py)."""

from __future__ import annotations

import json

import click

from scheduler_server.commands.common import config_option
from scheduler_server.commands.pipelines import fail, service_for


@click.group("instances")
def command() -> None:
    """List instances and delete the ones this scheduler does not track."""


@command.command("list")
@config_option
def instances_list(config_path) -> None:
    """Live instances as the database knows them."""
    from scheduler_server.pipelines.redacted import instance_view

    service = service_for(config_path)
    try:
        rows = [instance_view(i) for i in service.pool.live()]
    finally:
        service.close()
    click.echo(json.dumps(rows, indent=2))


@command.command("delete-untracked")
@click.option("--all", "include_untagged", is_flag=True, help="Also instances this scheduler did not create.")
@click.option("--dry-run", is_flag=True, help="Only list them.")
@config_option
def instances_delete(include_untagged, dry_run, config_path) -> None:
    """DELETE /instance from the shell: delete backend instances this scheduler does not track."""
    from scheduler_server.pipelines.errors import PipelineError
    from scheduler_server.web.pipelines.lifecycle import cleanup_report

    service = service_for(config_path)
    try:
        cleanup = service.delete_untracked(include_untagged=include_untagged, dry_run=dry_run)
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()
    click.echo(json.dumps(cleanup_report(cleanup), indent=2))
