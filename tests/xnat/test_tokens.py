"""The alias tokens' lifecycle against the simulator: renewed while queued (a new token issued with the old one's
credentials, the queued pipelines moved to it, the running one keeping its own), released and invalidated when
the last pipeline ended (or held by the workflow hook), a retry after that needs fresh credentials, a token that
died while queued fails its pipeline with that reason, a pipeline that may outlive its token is warned about;
and the password greps: the scheduler and the simulator as separate processes, a script reading its session
with the token, then no response, log, database file or process list holding the password."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from sqlalchemy import update

from devtools.xnat_sim import default_seed
from scheduler_server.pipelines.models import XnatToken
from tests.pipelines.server import ServeProcess
from tests.waiting import wait_until

from .conftest import XNAT_USERS
from .test_verify import item, make_app, scripts, service_of, tokens_of, wait_done  # noqa: F401  (fixtures)

SLEEP = 'echo "user=$XNAT_USER"; sleep "${@: -1}"\n'


@pytest.fixture
def sleepy(scripts):
    (scripts / "sleep.sh").write_text(SLEEP)
    return scripts


def test_renewed_while_queued_then_released(make_app, xnat_sim, sleepy):
    client = make_app([{"url": xnat_sim.url}])
    service = service_of(client)
    service.settings = service.settings.model_copy(update={"max_active_pipelines": 1})
    first = item(xnat_sim.url, script="sleep.sh", options=["3"])
    answer = client.post("/api/v1/pipelines", json=[first, item(xnat_sim.url, script="sleep.sh", options=["0"])])
    running, queued = [r["id"] for r in answer.json["pipelines"]]
    wait_until(lambda: client.get(f"/api/v1/pipelines/{running}").json["status"] == "running", 10)
    (old,) = tokens_of(client)
    # As if 47 h had passed: within token_renew_before (6 h) of the 48 h expiry, with a pipeline queued.
    service.tokens.sweep(now=time.time() + 47 * 3600)
    old, new = tokens_of(client)
    assert old.renewed_by == new.id and new.pipelines == 1 and new.user == "alice"
    renewal = xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$")[-1]
    assert renewal["auth"] == "token" and renewal["alias"] == old.alias  # issued with the old token's credentials
    assert service.store.get_pipeline(queued).token_id == new.id
    assert service.store.get_pipeline(running).token_id == old.id
    assert xnat_sim.state.live_token(old.alias) is not None  # its running pipeline still uses it
    assert [wait_done(client, pid)["status"] for pid in (running, queued)] == ["succeeded"] * 2
    assert client.get(f"/api/v1/pipelines/{queued}/logs").json["data"].startswith(f"user={new.alias}")
    wait_until(lambda: all(t.released_at for t in tokens_of(client)), 10, message="both tokens released")
    assert xnat_sim.state.live_token(old.alias) is None and xnat_sim.state.live_token(new.alias) is None


def test_retry_after_release_asks_for_fresh_credentials(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    (pid,) = [r["id"] for r in client.post("/api/v1/pipelines", json=item(xnat_sim.url)).json["pipelines"]]
    assert wait_done(client, pid)["status"] == "succeeded"
    client.post(f"/api/v1/pipelines/{pid}/cancel")
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token to be released")
    # A succeeded pipeline cannot be retried at all; fail one to retry it.
    with service_of(client).store.write() as session:
        session.execute(update(type(service_of(client).get(pid))).values(status="failed"))
    answer = client.post(f"/api/v1/pipelines/{pid}/retry")
    assert answer.status_code == 400 and answer.json["field"] == "pwd", answer.json
    assert "released" in answer.json["message"] and "fresh credentials" in answer.json["message"]
    answer = client.post(f"/api/v1/pipelines/{pid}/retry", json={"user": "alice", "pwd": "wrong"})
    assert answer.status_code == 400 and answer.json["field"] == "pwd"
    answer = client.post(f"/api/v1/pipelines/{pid}/retry", json={"user": "alice"})
    assert answer.status_code == 400 and answer.json["field"] == "pwd"
    answer = client.post(f"/api/v1/pipelines/{pid}/retry", json={"user": "alice", "pwd": XNAT_USERS["alice"]})
    assert answer.status_code == 202, answer.json
    assert wait_done(client, pid)["status"] == "succeeded"
    first, second = tokens_of(client)
    assert service_of(client).store.get_pipeline(pid).token_id == second.id and second.pipelines == 1
    wait_until(lambda: tokens_of(client)[1].released_at, 10, message="the new token to be released")


def test_a_token_dead_while_queued_fails_its_pipeline(make_app, xnat_sim, sleepy):
    client = make_app([{"url": xnat_sim.url}])
    service = service_of(client)
    service.settings = service.settings.model_copy(update={"max_active_pipelines": 1})
    blocker = client.post(
        "/api/v1/pipelines",
        json=item(xnat_sim.url, user="bob", pwd=XNAT_USERS["bob"], script="sleep.sh", options=["2"]),
    ).json
    waiting = client.post("/api/v1/pipelines", json=item(xnat_sim.url)).json["pipelines"][0]["id"]
    alice = next(t for t in tokens_of(client) if t.user == "alice")
    xnat_sim.state.invalidate(xnat_sim.state.tokens[alice.alias])  # revoked at XNAT: renewing fails too
    with service.store.write() as session:
        session.execute(update(XnatToken).where(XnatToken.id == alice.id).values(expires_at=time.time() + 0.5))
    view = wait_done(client, waiting)
    assert view["status"] == "failed" and "alias token expired" in view["reason"], view
    assert wait_done(client, blocker["pipelines"][0]["id"])["status"] == "succeeded"
    answer = client.post(f"/api/v1/pipelines/{waiting}/retry")
    assert answer.status_code == 400 and "fresh credentials" in answer.json["message"]


def test_hold_keeps_a_token_until_the_workflow_hook_lets_go(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    held = {"on": True}
    service_of(client).tokens.hold = lambda token_id: held["on"]
    pid = client.post("/api/v1/pipelines", json=item(xnat_sim.url)).json["pipelines"][0]["id"]
    assert wait_done(client, pid)["status"] == "succeeded"
    time.sleep(2.5)  # more than a sweep's period
    assert tokens_of(client)[0].released_at is None
    held["on"] = False
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token to be released")


def test_a_pipeline_that_may_outlive_its_token_is_warned_about(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    reports = client.post(
        "/api/v1/pipelines", json=[item(xnat_sim.url, timeout=60), item(xnat_sim.url, timeout=7 * 86400)]
    ).json["pipelines"]
    assert "warnings" not in reports[0]
    (warning,) = reports[1]["warnings"]
    assert warning.startswith("timeout: the pipeline may run 604800 s, longer than its XNAT alias token")


# --- the password greps ------------------------------------------------------------------

READ_SESSION = """\
sleep 1.5
python3 - "$@" <<'EOF'
import base64, json, os, sys, urllib.request
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
url = f"{os.environ['XNAT_HOST']}/data/projects/{args['-project']}/subjects/{args['-subject']}/experiments?format=json"
auth = base64.b64encode(f"{os.environ['XNAT_USER']}:{os.environ['XNAT_PASSWORD']}".encode()).decode()
request = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
rows = json.load(urllib.request.urlopen(request))["ResultSet"]["Result"]
print("read", [r["label"] for r in rows if args['-session'] in (r["ID"], r["label"])])
EOF
"""


def _argv_holding(words: list[str], root: Path, pids: set[int]) -> list[str]:
    """Command lines holding any of ``words``, of the processes of this test: the scheduler and the simulator
    (``pids``) and whatever runs in ``root`` (the scripts, in their job directories)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        mine = process.info["pid"] in pids or str(process.info.get("cwd") or "").startswith(str(root))
        line = " ".join(process.info.get("cmdline") or [])
        found += [line for word in words if mine and word in line]
    return found


def test_the_password_is_nowhere(tmp_path):
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    (home / "scripts" / "read.sh").write_text(READ_SESSION)
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(default_seed()))
    sim_log = tmp_path / "sim.log"
    sim = psutil.Popen(
        [sys.executable, "-m", "devtools.xnat_sim", "--seed", str(seed)],
        stdout=open(sim_log, "wb"),
        stderr=open(tmp_path / "sim.err", "wb"),
        cwd=Path(__file__).parents[2],
    )
    try:
        url = wait_until(lambda: sim_log.read_text().strip() and json.loads(sim_log.read_text())["url"], 20)
        config = home / "config.yaml"
        settings = {
            "data_dir": str(home / "data"),
            "pipelines": {"local_scripts_folder": str(home / "scripts"), "poll_interval": 0.1},
            "xnat": {"servers": [{"url": url}]},
        }
        config.write_text(yaml.safe_dump(settings))
        server = ServeProcess(home, config).start()
        try:
            _run_and_grep(server, url, tmp_path, {*server.service_pids(), sim.pid})
        finally:
            server.stop()
    finally:
        sim.terminate()
        sim.wait(10)
    password = XNAT_USERS["alice"].encode()
    for path in [*home.rglob("*"), sim_log, tmp_path / "sim.err"]:
        if path.is_file():
            assert password not in path.read_bytes(), path  # logs, the SQLite database and its WAL, job files


def _run_and_grep(server: ServeProcess, url: str, root: Path, pids: set[int]) -> None:
    password = XNAT_USERS["alice"]
    answer = requests.post(server.url + "/api/v1/pipelines", json=item(url, script="read.sh"), timeout=30)
    assert answer.status_code == 201, answer.text
    pid = answer.json()["pipelines"][0]["id"]
    seen_ps: list[str] = []

    def ended():
        seen_ps.extend(_argv_holding([password], root, pids))
        view = requests.get(f"{server.url}/api/v1/pipelines/{pid}", timeout=10).json()
        return view if view["status"] in ("succeeded", "failed") else None

    view = wait_until(ended, 30, interval=0.1)
    assert seen_ps == [], seen_ps  # the scheduler's, the script's (bash, python3) and the simulator's argv
    logs = requests.get(f"{server.url}/api/v1/pipelines/{pid}/logs", timeout=10).json()
    assert view["status"] == "succeeded", (view, logs)
    assert "read ['S01_MR1']" in logs["data"]  # the script read its session with the token it was given
    answers = [answer.text, json.dumps(view), json.dumps(logs)]
    answers.append(requests.get(f"{server.url}/api/v1/pipelines", timeout=10).text)
    answers.append(requests.get(f"{server.url}/pipeline?id={pid}", timeout=10).text)
    bad = requests.post(server.url + "/api/v1/pipelines", json=item(url, session="nope"), timeout=30)
    assert bad.status_code == 400
    answers.append(bad.text)
    assert all(password not in text for text in answers)
