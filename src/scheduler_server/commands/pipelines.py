"""``scheduler-server pipelines ...``: the pipeline store from a shell.

They work on the configured database directly, with or without a running
server; a running server's dispatcher picks up what they queue or cancel
within one poll interval. No dispatcher is started here.
"""

from __future__ import annotations

import json
import sys

import click

from scheduler_server.commands.common import config_option, settings_or_exit, start_failure
from scheduler_server.startup_error import ConfigError


def service_for(config_path: str | None):
    from scheduler_server.pipelines.backend_errors import BackendConfigError
    from scheduler_server.pipelines.secrets import SecretError
    from scheduler_server.pipelines.service import PipelineService

    try:
        settings = settings_or_exit(config_path)
        return PipelineService(settings.pipelines, settings.data_path, settings.xnat)
    except (BackendConfigError, SecretError, ConfigError) as exc:
        raise start_failure(exc) from None


def fail(exc) -> click.ClickException:
    return click.ClickException(getattr(exc, "message", str(exc)))


@click.group("pipelines")
def command() -> None:
    """Submit, list, inspect, cancel and retry pipelines."""


@command.command("submit")
@click.argument("file", type=click.File("r"))
@config_option
def submit(file, config_path) -> None:
    """Queue the pipelines in FILE (JSON: one object or a list, as POST /pipeline takes; '-' for stdin)."""
    try:
        body = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    items = body if isinstance(body, list) else [body]
    service = service_for(config_path)
    try:
        results = service.submit(items)
    finally:
        service.close()
    for result in results:
        if result.accepted:
            click.echo(f"#{result.index}: queued as pipeline {result.id}")
        else:
            click.echo(f"#{result.index}: rejected: {result.error.message}", err=True)
    if not any(r.accepted for r in results):
        sys.exit(1)


@command.command("list")
@click.option("--status", default=None, help="Comma-separated statuses (default: all).")
@click.option("--project", default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API would.")
@config_option
def list_(status, project, limit, as_json, config_path) -> None:
    """List pipelines, oldest first."""
    from scheduler_server.pipelines.redacted import pipeline_view

    service = service_for(config_path)
    try:
        statuses = [s.strip() for s in status.split(",")] if status else None
        found, total = service.store.list_pipelines(statuses=statuses, project=project, limit=limit)
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps([pipeline_view(p) for p in found], indent=2))
        return
    click.echo(f"{'id':>6}  {'status':<12} {'attempt':>7}  {'project':<16} {'script':<24} reason")
    for p in found:
        click.echo(
            f"{p.id:>6}  {p.status:<12} {p.attempt:>7}  {(p.project or '-'):<16} {p.script:<24} {p.reason or ''}"
        )
    click.echo(f"({len(found)} of {total})")


@command.command("show")
@click.argument("pipeline_id", type=int)
@config_option
def show(pipeline_id, config_path) -> None:
    """Print one pipeline with its status history (password masked)."""
    from scheduler_server.pipelines.errors import PipelineError
    from scheduler_server.pipelines.redacted import pipeline_view

    service = service_for(config_path)
    try:
        click.echo(json.dumps(pipeline_view(service.get(pipeline_id), history=True), indent=2))
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()


@command.command("cancel")
@click.argument("pipeline_id", type=int)
@config_option
def cancel(pipeline_id, config_path) -> None:
    """Cancel a pipeline: dequeued at once, or killed by the running server's dispatcher."""
    from scheduler_server.pipelines.errors import PipelineError

    service = service_for(config_path)
    try:
        pipeline = service.cancel(pipeline_id)
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()
    click.echo(
        f"pipeline {pipeline_id}: {pipeline.status}{' (cancel requested)' if pipeline.status != 'cancelled' else ''}"
    )


@command.command("retry")
@click.argument("pipeline_id", type=int)
@config_option
def retry(pipeline_id, config_path) -> None:
    """Queue a failed or cancelled pipeline again."""
    from scheduler_server.pipelines.errors import PipelineError

    service = service_for(config_path)
    try:
        service.retry(pipeline_id)
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()
    click.echo(f"pipeline {pipeline_id}: queued")


@command.command("logs")
@click.argument("pipeline_id", type=int)
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), default="stdout", show_default=True)
@config_option
def logs(pipeline_id, stream, config_path) -> None:
    """Print the current (or last) attempt's log, password masked."""
    from scheduler_server.pipelines.errors import PipelineError

    service = service_for(config_path)
    try:
        chunk = service.logs(pipeline_id, stream, 0, 64 << 20)
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()
    click.echo(chunk.data, nl=False)
