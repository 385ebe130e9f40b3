"""``scheduler-server schedule``: print the script the Schedule API would return, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from scheduler_server.commands.common import config_option, settings_or_exit
from scheduler_server.observing.service import PolicyRequest, deep_merge, run_schedule
from scheduler_server.observing.sky.timeparse import TimeFormatError, parse_time
from scheduler_server.observing.types import PolicyFailure, ScheduleInputError, WindowError


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--set")
        node = overrides
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{key!r} sets inside a value that is not a mapping", param_hint="--set")
        # Values are YAML scalars or flow collections: 42, 1.5, true, [a, b], {x: 1}.
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return overrides


def _read_policy_file(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--policy-file") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a mapping with 'policy' and 'config'", param_hint="--policy-file")
    return data


@click.command("schedule")
@click.option("--t0", required=True, help='Window start, "YYYY-MM-DD HH:MM" (UTC) or ISO 8601.')
@click.option("--t1", required=True, help="Window end, same formats.")
@click.option("--policy", "policy_name", default=None, help="Policy name (default: the policy file's, else 'dummy').")
@click.option("--preset", default=None, help="A named preset of the policy.")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override one config value (dotted key); repeatable."
)
@click.option(
    "--policy-file", type=click.Path(exists=True, dir_okay=False), help="JSON/YAML file: {policy, config, preset}."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["script", "json"]),
    default="script",
    help="'json' prints the API's JSON answer with blocks.",
)
@config_option
def command(t0, t1, policy_name, preset, settings, policy_file, fmt, config_path) -> None:
    """Print the command script for [T0, T1] as POST /api/v1/schedule/ would return it."""
    try:
        start, stop = parse_time(t0), parse_time(t1)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc)) from None
    spec = _read_policy_file(policy_file) if policy_file else {}
    config = deep_merge(dict(spec.get("config") or {}), _parse_set(settings))
    name = policy_name or spec.get("policy") or "dummy"
    request = PolicyRequest(name, config, preset or spec.get("preset"), trusted=True)
    observing = settings_or_exit(config_path).observing
    try:
        result = run_schedule(start, stop, request, observing.presets, observing.max_window_hours)
    except WindowError as exc:  # the service's window checks, as the API makes them; said as a bad option
        raise click.BadParameter(exc.problem, param_hint=f"--{exc.field}") from None
    except ScheduleInputError as exc:
        raise click.ClickException(str(exc)) from None
    except PolicyFailure as exc:
        raise click.ClickException(f"policy {name!r} could not schedule this window: {exc}") from None
    if fmt == "json":
        answer = {"status": "ok", "commands": result.commands, "message": "Success"}
        answer["blocks"] = [b.to_json() for b in result.blocks or []]
        answer["events"] = result.events  # the policy's state lanes, as the API answers them (None: none)
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(result.commands, nl=False)
