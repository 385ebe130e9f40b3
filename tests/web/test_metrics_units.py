"""The metrics package in-process: bounded backend_api_* labels, the multiprocess directory's choice,
its sweep of dead masters, an unusable directory as one line, a Schedule API server_error."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openstack import exceptions as os_exceptions
from prometheus_client.parser import text_string_to_metric_families

from devtools.sshd import free_port
from scheduler_server import metrics
from scheduler_server.metrics import directory
from scheduler_server.pipelines.clouds.openstack import calls
from scheduler_server.startup_error import StartupError
from tests.pipelines.server import BIN, clean_env
from tests.web.test_metrics import _home, samples, value

OPENSTACK = Path(calls.__file__).parent


def _fails(status: int, times: int):
    left = [times]

    def fn():
        if left[0] > 0:
            left[0] -= 1
            raise os_exceptions.HttpException(message="boom", http_status=status)
        return "done"

    return fn


def test_backend_api_series_count_retries_and_errors_by_a_closed_list_of_operations(monkeypatch):
    monkeypatch.setattr(calls.time, "sleep", lambda s: None)
    before = samples(metrics.render().decode())
    assert calls.call("create server job-4711-abc", _fails(503, 2), retries=3) == "done"
    with pytest.raises(calls.CloudAPIError):
        calls.call("delete stack job-4711-abc", _fails(409, 1), retries=3)
    with pytest.raises(calls.CloudAPIError):
        calls.call("look up image 'secret-image-name'", _fails(500, 9), retries=1)
    text = metrics.render().decode()
    found = samples(text)
    retries, errors = "scheduler_server_backend_api_retries_total", "scheduler_server_backend_api_errors_total"

    def grew(name: str, op: str) -> float:
        return value(found, name, backend="openstack", operation=op) - value(
            before, name, backend="openstack", operation=op
        )

    assert grew(retries, "create_server") == 2 and grew(errors, "create_server") == 0
    assert grew(errors, "delete_stack") == 1 and grew(retries, "delete_stack") == 0
    assert grew(retries, "find_image") == 1 and grew(errors, "find_image") == 1
    ops = {dict(labels)["operation"] for (name, labels) in found if name in (retries, errors)}
    assert ops and ops <= calls.OPERATION_LABELS | {"connect"}, ops
    assert "job-4711" not in text and "secret-image-name" not in text


def _described_calls():
    """The first argument of every call()/_call() in the OpenStack backend: its text before any {field}."""
    for file in OPENSTACK.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "call",
                "_call",
            ):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield file.name, first.value
                elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
                    yield file.name, first.values[0].value + "x"


def test_every_openstack_call_has_an_operation_of_the_list():
    found = list(_described_calls())
    assert len(found) > 15, found
    assert calls.operation("look up floating IP network 'ext'") == "find_network"
    for kind in ("image", "flavor", "network", "floating IP network"):  # resolve.py: f"look up {kind} {value!r}"
        assert calls.operation(f"look up {kind} 'name'") != "other"
    unlabelled = [(f, what) for f, what in found if calls.operation(what) == "other" and what != "look up x"]
    assert not unlabelled


def _as_gunicorn_worker(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gunicorn.workers.base", sys)
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/27.0.1")  # what its arbiter exports to its workers


def test_a_gunicorn_worker_s_directory_names_its_master_and_when_it_started(tmp_path, monkeypatch):
    monkeypatch.setenv(directory.VARIABLE, "")  # recorded, so that what choose() exports is undone after
    monkeypatch.delenv(directory.VARIABLE)
    monkeypatch.setitem(sys.modules, "gunicorn.workers.base", sys)
    assert directory.choose(tmp_path) is None  # gunicorn imported, but no arbiter started this process
    _as_gunicorn_worker(monkeypatch)
    path = directory.choose(tmp_path)
    master = os.getppid()
    assert path == tmp_path / "metrics" / f"gunicorn-{master}-{directory.start_time(master)}"
    assert directory.start_time(master).isdigit() and directory.start_time(master) != "0"
    assert os.environ[directory.VARIABLE] == str(path)


def test_an_unusable_directory_or_data_dir_is_a_startup_error_naming_it(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(directory.VARIABLE, str(blocker))
    with pytest.raises(StartupError, match=f"{directory.VARIABLE}={blocker}: cannot use it"):
        directory.choose(tmp_path)
    monkeypatch.delenv(directory.VARIABLE)
    _as_gunicorn_worker(monkeypatch)
    with pytest.raises(StartupError, match=str(blocker / "metrics")):
        directory.choose(blocker)


def test_serve_says_so_on_one_line_when_the_multiprocess_directory_is_unusable(tmp_path):
    home, config = _home(tmp_path)
    (tmp_path / "a-file").write_text("")
    env = {**clean_env(home), directory.VARIABLE: str(tmp_path / "a-file")}
    done = subprocess.run(
        [str(BIN / "scheduler-server"), "serve", "--port", str(free_port()), "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=home,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if directory.VARIABLE in line] == [
        line for line in done.stderr.splitlines() if line.strip()
    ][-1:], done.stderr


def test_the_directories_of_masters_that_are_gone_are_swept_by_serve_and_setup(tmp_path, monkeypatch):
    from scheduler_server.workers import metrics_directory

    base = tmp_path / "metrics"
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        started = directory.start_time(live.pid)
        names = {
            f"serve-{gone.pid}": False,
            f"gunicorn-{gone.pid}-{started}": False,
            f"gunicorn-{live.pid}-{int(started) + 1}": False,  # its pid reused by another process
            f"gunicorn-{live.pid}-{started}": True,
            f"serve-{live.pid}": True,
            "something-else": True,
        }
        for name in names:
            (base / name).mkdir(parents=True)
            (base / name / "counter_1.db").write_text("")
        monkeypatch.setenv(directory.VARIABLE, "unset by the master")
        made = metrics_directory(tmp_path)  # serve --workers' master sweeps first
        assert made == base / f"serve-{os.getpid()}" and made.is_dir()
        assert {name for name, kept in names.items() if kept} | {made.name} == {p.name for p in base.iterdir()}
        (base / f"serve-{gone.pid}").mkdir()
        directory.sweep(base)  # what setup calls
        assert not (base / f"serve-{gone.pid}").exists() and made.is_dir()  # its own is kept
    finally:
        live.kill()
        live.wait()


REUSED = """
import os, sys
from pathlib import Path
from scheduler_server import metrics
folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
if sys.argv[1] == "lead":
    metrics.setup(folder)
    metrics.set_leading(True)
else:  # a new process whose pid a dead leader had: its file is there, saying 1
    (folder / f"gauge_liveall_{sys.argv[2]}.db").rename(folder / f"gauge_liveall_{os.getpid()}.db")
    metrics.setup(folder)
    sys.stdout.write(metrics.render().decode())
"""


def test_a_process_that_never_led_shows_0_even_in_a_reused_pid_s_file(tmp_path):
    env = {**os.environ, directory.VARIABLE: str(tmp_path)}
    leader = subprocess.Popen([sys.executable, "-c", REUSED, "lead"], env=env)
    leader.wait()
    assert leader.returncode == 0 and (tmp_path / f"gauge_liveall_{leader.pid}.db").exists()
    shown = subprocess.run(
        [sys.executable, "-c", REUSED, "show", str(leader.pid)], env=env, check=True, capture_output=True, text=True
    ).stdout
    leading = [v for (name, _), v in samples(shown).items() if name == "scheduler_server_dispatcher_leading"]
    assert leading == [0], shown


def test_a_schedule_request_a_policy_fails_in_is_counted_as_server_error(tmp_path, monkeypatch):
    from scheduler_server.app import create_app
    from scheduler_server.config import Settings
    from scheduler_server.observing.policies.dummy import DummyPolicy

    def broken(self, t0, t1, config):
        raise RuntimeError("the policy broke")

    monkeypatch.setattr(DummyPolicy, "schedule", broken)
    client = create_app(Settings(data_dir=tmp_path / "data")).test_client()
    before = samples(metrics.render().decode())
    window = {"t0": "2022-01-01 00:00", "t1": "2022-01-01 01:00", "policy": {"policy": "dummy"}}
    answer = client.post("/api/v1/schedule/", json=window)
    assert answer.status_code == 500 and "Traceback" not in answer.get_data(as_text=True)
    assert client.post("/api/v1/schedule/", json={**window, "t1": "nonsense"}).status_code == 400
    found = samples(metrics.render().decode())
    count = "scheduler_server_schedule_request_duration_seconds_count"
    for policy, outcome in (("dummy", "server_error"), ("none", "client_error")):
        assert (
            value(found, count, policy=policy, outcome=outcome) - value(before, count, policy=policy, outcome=outcome)
            == 1
        )
    assert value(found, count, policy="dummy", outcome="ok") == value(before, count, policy="dummy", outcome="ok")


def test_the_shipped_rules_parse_and_name_real_series_and_prometheus_yml_names_them():
    from types import SimpleNamespace

    import yaml

    from scheduler_server.web import metrics as endpoint

    docs = Path(__file__).resolve().parents[2] / "docs"
    scrape_config = yaml.safe_load((docs / "prometheus.yml").read_text())
    assert scrape_config["rule_files"] == ["scheduler-server-rules.yml"]
    rules = yaml.safe_load((docs / "scheduler-server-rules.yml").read_text())
    (group,) = rules["groups"]
    names = [rule["alert"] for rule in group["rules"]]
    assert names == ["SchedulerNoSingleLeader", "SchedulerQueueNotMoving", "SchedulerBackendErrors"]
    families = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    families |= {"scheduler_server_" + name for name, *_ in endpoint._census(SimpleNamespace(census=lambda: ({}, {})))}
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"} and rule["expr"].count("(") == rule[
            "expr"
        ].count(")")
        named = {
            re.sub(r"_(total|bucket|count|sum)$", "", n) for n in re.findall(r"scheduler_server_\w+", rule["expr"])
        }
        assert named and named <= families, (rule["alert"], named - families)
    moving = group["rules"][1]["expr"]
    assert 'status=~"provisioning|staging|running"' in moving and "pipeline_starts_total" in moving
