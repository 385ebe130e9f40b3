"""``scheduler-server xnat launch ...``: launch a script on every session of an XNAT project, from a shell.

As ``pipelines submit``, it works on the configured database directly (a running server's dispatcher picks the
pipelines up); it asks the XNAT server of ``xnat.servers`` as ``POST /api/v1/xnat/launch`` does. The password is
never an argument (it would show in the process table): it is read from ``$XNAT_PASSWORD`` or prompted for
without echo; an SSO user gives ``--alias`` and the secret in ``$XNAT_SECRET`` (or at the prompt).
"""

from __future__ import annotations

import json
import os
import sys

import click

from scheduler_server.commands.common import config_option
from scheduler_server.commands.pipelines import fail, service_for


@click.group("xnat")
def command() -> None:
    """Work with the XNAT servers of xnat.servers."""


@command.command("launch")
@click.option("--host", required=True, help="The XNAT server's base URL (one of xnat.servers).")
@click.option("--user", default=None, help="XNAT user; the password comes from $XNAT_PASSWORD or a prompt.")
@click.option("--alias", default=None, help="An alias token's alias (SSO); its secret from $XNAT_SECRET or a prompt.")
@click.option("--project", required=True, help="XNAT project.")
@click.option("--script", required=True, help="Script to run, relative to LOCAL_SCRIPTS_FOLDER.")
@click.option("--subject", default=None, help="Only subjects whose label matches this glob.")
@click.option("--session", default=None, help="Only sessions whose label matches this glob.")
@click.option("--session-type", default=None, help="Only sessions of this xsiType (e.g. xnat:mrSessionData).")
@click.option("--skip-succeeded", is_flag=True, help="Skip sessions with a succeeded pipeline of this script.")
@click.option("--dry-run", is_flag=True, help="List what would be launched and skipped; create nothing.")
@click.option("--file", "files", multiple=True, help="More files from LOCAL_SCRIPTS_FOLDER (repeatable).")
@click.option("--option", "options", multiple=True, help="An extra argument for the script (repeatable).")
@click.option("--priority", type=int, default=None)
@click.option("--timeout", type=float, default=None, help="Seconds each script may run.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as the API gives it.")
@config_option
def launch(as_json, config_path, **fields) -> None:
    """One pipeline per session of PROJECT that the filters match; all queued together, or none."""
    from scheduler_server.pipelines.errors import PipelineError
    from scheduler_server.pipelines.xnat.launch import launch as launch_project

    body = _body(fields)
    service = service_for(config_path)
    try:
        result = launch_project(service, body)
    except PipelineError as exc:
        raise fail(exc) from None
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps(result.view(), indent=2))
    else:
        _print(result)


def _body(fields: dict) -> dict:
    body = {k: v for k, v in fields.items() if v not in (None, False, ())}
    body["files"], body["options"] = list(fields["files"]), list(fields["options"])
    if fields["alias"] is not None:
        body["secret"] = os.environ.get("XNAT_SECRET") or click.prompt("XNAT alias token secret", hide_input=True)
    elif fields["user"] is not None:
        body["pwd"] = os.environ.get("XNAT_PASSWORD") or click.prompt(
            f"XNAT password of {fields['user']}", hide_input=True
        )
    else:
        raise click.UsageError("give --user (password from $XNAT_PASSWORD or a prompt) or --alias (SSO)")
    return body


def _print(result) -> None:
    verb = "would queue" if result.dry_run else "queued"
    for entry in result.pipelines:
        where = f"{entry['subject']}/{entry['session']} ({entry['session_id']}, {entry['xsiType']})"
        click.echo(f"{verb} {where}" + (f" as pipeline {entry['id']}" if "id" in entry else ""))
    for entry in result.skipped:
        click.echo(f"skipped {entry['subject']}/{entry['session']}: {entry['reason']}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    count = len(result.pipelines)
    click.echo(f"{count} pipeline(s) {verb}, {len(result.skipped)} session(s) skipped of {result.listed} listed")
    sys.stdout.flush()
