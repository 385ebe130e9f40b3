"""The observing service's own checks, made once for the HTTP route and the CLI alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from scheduler_server.cli import main
from scheduler_server.observing.service import PolicyRequest, check_window, run_schedule
from scheduler_server.observing.types import PolicyNotFound, PresetNotFound, ScheduleInputError, WindowError

T0 = datetime(2022, 1, 1, 12, tzinfo=UTC)
DUMMY = PolicyRequest("dummy", {"seed": 1})


def test_a_window_must_run_forward():
    for t1 in (T0, T0 - timedelta(minutes=1)):
        with pytest.raises(WindowError) as caught:
            run_schedule(T0, t1, DUMMY)
        assert caught.value.field == "t1" and caught.value.problem.startswith("must be later than t0")


def test_the_longest_window_is_checked_only_when_a_limit_is_given():
    check_window(T0, T0 + timedelta(hours=2), 2)
    check_window(T0, T0 + timedelta(days=400))
    with pytest.raises(WindowError) as caught:
        run_schedule(T0, T0 + timedelta(hours=2, seconds=1), DUMMY, max_window_hours=2)
    assert str(caught.value) == "t1: the window t0..t1 is longer than the 2 hours this server allows"


def test_the_window_is_checked_before_the_policy():
    with pytest.raises(WindowError):
        run_schedule(T0, T0, PolicyRequest("no-such-policy", {}))


def test_unknown_names_are_typed_input_errors_naming_their_field():
    with pytest.raises(PolicyNotFound) as caught:
        run_schedule(T0, T0 + timedelta(hours=1), PolicyRequest("no-such-policy", {}))
    assert isinstance(caught.value, ScheduleInputError) and caught.value.field == "policy.policy"
    with pytest.raises(PresetNotFound) as caught:
        run_schedule(T0, T0 + timedelta(hours=1), PolicyRequest("dummy", {}, preset="no-such-preset"))
    assert caught.value.field == "policy.preset"


def test_the_cli_refuses_a_window_longer_than_the_server_allows(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nobserving:\n  max_window_hours: 1\n")
    args = ["schedule", "--t0", "2022-01-01 12:00", "--t1", "2022-01-01 14:00", "--config", str(config)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "--t1" in r.output and "longer than the 1 hours" in r.output
