"""``scheduler-server config-check``: validate the configuration and show it."""

from __future__ import annotations

import click
import yaml

from scheduler_server.commands.common import config_option, settings_or_exit


@click.command("config-check")
@config_option
def command(config_path: str | None) -> None:
    """Validate the configuration and print the effective settings (secrets masked)."""
    settings = settings_or_exit(config_path)
    click.echo(f"# configuration OK (from {settings.source or 'built-in defaults'})")
    click.echo(yaml.safe_dump(settings.public_dict(), sort_keys=False), nl=False)
