"""The ``scheduler-server`` command.

Sub-commands are small modules under ``commands/``; this file only gathers them.
"""

from __future__ import annotations

import click

from scheduler_server.commands import register_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scheduler-server")
def main() -> None:
    """Observing schedules and XNAT pipelines behind one HTTP API."""


register_commands(main)
