"""``scheduler-server check-script``: the independent sun-safety check of a command script."""

from __future__ import annotations

import sys

import click

from scheduler_server.commands.common import config_option, settings_or_exit
from scheduler_server.commands.schedule import _parse_set
from scheduler_server.observing.sky.timeparse import TimeFormatError, parse_time


@click.command("check-script")
@click.argument("script", type=click.File("r", encoding="utf-8"))
@click.option(
    "--start", default=None, help="When the script starts (UTC); without it, checking begins at the first wait_until."
)
@click.option(
    "--min-angle",
    type=float,
    default=None,
    help="Least allowed sun distance, deg (default: the basic policy's sun-avoidance min_angle).",
)
@click.option(
    "--step", type=click.IntRange(1, 60), default=10, show_default=True, help="Seconds between checked moments."
)
@click.option("--preset", default=None, help="A preset of the basic policy whose site and telescope model to use.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a basic-policy config value (dotted key), e.g. telescope.az_speed=2.",
)
@config_option
def command(script, start, min_angle, step, preset, settings, config_path) -> None:
    """Check SCRIPT ('-' for standard input); exit 1 listing every unsafe moment."""
    from scheduler_server.observing.safety import checker as safety
    from scheduler_server.observing.service import build_config, lookup_policy
    from scheduler_server.observing.types import ScheduleInputError

    site_settings = settings_or_exit(config_path)
    try:
        config = build_config(
            "basic", lookup_policy("basic"), _parse_set(settings), preset, site_settings.observing.presets, trusted=True
        )
    except ScheduleInputError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        begin = parse_time(start).timestamp() if start else None
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    angle = config.rules.sun_avoidance.min_angle if min_angle is None else min_angle
    report = safety.check_script(script.read(), angle, config.telescope, config.site.to_site(), start=begin, step=step)
    if not report.safe:
        for line in report.lines():
            click.echo(line)
        click.echo(f"UNSAFE: {report.summary()}", err=True)
        sys.exit(1)
    closest = f"; closest approach {report.closest:.1f} deg" if report.closest is not None else ""
    click.echo(f"safe: {report.spans} spans checked against {report.limit_deg:g} deg{closest}")
