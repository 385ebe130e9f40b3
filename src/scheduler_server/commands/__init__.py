"""Sub-commands of ``scheduler-server``, one module each."""

from __future__ import annotations

import click


def register_commands(group: click.Group) -> None:
    from scheduler_server.commands import (
        check_script,
        config_check,
        config_template,
        db,
        instances,
        master_schedule,
        pipelines,
        schedule,
        serve,
        xnat,
    )

    for module in (
        serve,
        schedule,
        config_check,
        config_template,
        pipelines,
        instances,
        master_schedule,
        check_script,
        db,
        xnat,
    ):
        group.add_command(module.command)
