"""``scheduler-server config-template``: print the documented default configuration."""

from __future__ import annotations

import click


@click.command("config-template")
def command() -> None:
    """Print config.yaml.template: every key with its default and meaning."""
    from scheduler_server.config_template import render_template

    click.echo(render_template(), nl=False)
