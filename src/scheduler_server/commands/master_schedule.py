"""``scheduler-server master-schedule``: generate a toast ground schedule from sky patches."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scheduler_server.observing.sky.timeparse import TimeFormatError, parse_time


@click.command("master-schedule")
@click.option("--start", required=True, help='First moment, "YYYY-MM-DD HH:MM" (UTC) or ISO 8601.')
@click.option("--stop", required=True, help="Last moment, same formats.")
@click.option(
    "--patches",
    "patches_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML file with the patches and generator settings (default: the bundled patches).",
)
@click.option("-o", "--output", default="-", show_default=True, help="File to write; '-' is standard output.")
def command(start: str, stop: str, patches_path: str | None, output: str) -> None:
    """Write the master schedule for [START, STOP) in toast's ground-schedule format.

    The same generator makes the default schedule of the `basic` policy, month by
    month, so a window of this output matches what the policy uses for the same
    patches and settings.
    """
    from scheduler_server.observing.master.generate import generate
    from scheduler_server.observing.master.patches import GeneratorConfig, PatchesFile, load_patches_file
    from scheduler_server.observing.master.toast import format_schedule

    try:
        t0, t1 = parse_time(start), parse_time(stop)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc)) from None
    if t1 <= t0:
        raise click.BadParameter("must be later than --start", param_hint="--stop")
    try:
        spec = load_patches_file(patches_path) if patches_path else PatchesFile()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--patches") from None
    generator = GeneratorConfig.model_validate(spec.model_dump(exclude={"site"}))
    schedule = generate(int(t0.timestamp()), int(t1.timestamp()), generator, spec.site.to_site())
    text = format_schedule(schedule)
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(schedule.scans)} scans to {output}", err=True)
