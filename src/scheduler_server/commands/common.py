"""Shared option handling for the sub-commands."""

from __future__ import annotations

import click

from scheduler_server.config import Settings, load_settings
from scheduler_server.startup_error import ConfigError, StartupError

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $SCHEDULER_SERVER_CONFIG, ~/.config/scheduler-server/config.yaml, ~/.pipeline-scheduler/config.yaml).",
)


def settings_or_exit(config_path: str | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


def start_failure(exc: Exception) -> click.ClickException:
    """A start that cannot go on, on one line: a bad configuration, or something it needs is unusable."""
    kind = "cannot start" if isinstance(exc, StartupError) else "bad configuration"
    return click.ClickException(f"{kind}: {exc}")
