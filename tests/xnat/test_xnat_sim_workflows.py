"""The XNAT simulator's workflows (PUT /data/workflows, a session's history), its faults, what it logs, and its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from devtools.xnat_sim import default_seed
from devtools.xnat_sim.process import XnatSimProcess

from .conftest import XNAT_USERS

ALICE = ("alice", XNAT_USERS["alice"])
BOB = ("bob", XNAT_USERS["bob"])
REPO = Path(__file__).resolve().parents[2]
W = "wrk:workflowData/"


def _put(sim, auth=ALICE, wid: int | None = None, **fields) -> requests.Response:
    path = "/data/workflows" + (f"/{wid}" if wid is not None else "")
    return requests.put(sim.url + path, params={W + k: v for k, v in fields.items()}, auth=auth, timeout=10)


def _history(sim, experiment: str, name: str = "scheduler", display: str = "ALL") -> list[dict]:
    answer = requests.get(
        f"{sim.url}/data/services/workflows/{name}",
        params={"experiment": experiment, "display": display, "format": "json"},
        auth=ALICE,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["ResultSet"]["Result"]


ENTRY = {
    "id": "XNAT_E00001",
    "pipeline_name": "scheduler/run.sh",
    "launch_time": "2024-05-01T10:00:00",
    "data_type": "xnat:mrSessionData",
    "status": "Queued",
}


def test_a_workflow_put_twice_is_one_entry_updated_in_place(xnat_sim):
    assert _put(xnat_sim, **ENTRY).status_code == 200
    assert _put(xnat_sim, **{**ENTRY, "status": "Running", "step_description": "on cloud"}).status_code == 200
    (row,) = _history(xnat_sim, "XNAT_E00001")
    assert row["status"] == "Running" and row["step_description"] == "on cloud"
    assert row["launch_time"] == "2024-05-01 10:00:00.0" and row["ExternalID"] == "test"
    assert _put(xnat_sim, wid=int(row["wrk_workflowData_id"]), status="Complete").status_code == 200
    item = requests.get(
        f"{xnat_sim.url}/data/workflows/{row['wrk_workflowData_id']}?format=json", auth=ALICE, timeout=10
    )
    assert item.json()["items"][0]["data_fields"]["status"] == "Complete"
    assert _put(xnat_sim, **{**ENTRY, "launch_time": "2024-05-02 10:00:00"}).status_code == 200
    assert [r["launch_time"][:10] for r in _history(xnat_sim, "XNAT_E00001")] == ["2024-05-02", "2024-05-01"]
    latest = requests.get(
        f"{xnat_sim.url}/data/services/workflows/scheduler?experiment=XNAT_E00001&format=json", auth=ALICE, timeout=10
    )
    assert latest.json()["items"][0]["data_fields"]["launch_time"].startswith("2024-05-02")
    assert len(xnat_sim.state.workflows) == 2
    keyed = {W + k: ENTRY[k] for k in ("id", "pipeline_name", "launch_time")}
    found = requests.get(xnat_sim.url + "/data/workflows", params={**keyed, "format": "json"}, auth=ALICE, timeout=10)
    assert found.json()["items"][0]["data_fields"]["status"] == "Complete"
    keyed[W + "launch_time"] = "2024-05-03T10:00:00"
    assert requests.get(xnat_sim.url + "/data/workflows", params=keyed, auth=ALICE, timeout=10).status_code == 404


def test_workflow_refusals(xnat_sim):
    bob = _put(xnat_sim, auth=BOB, **ENTRY)
    assert bob.status_code == 403 and "not allowed to make changes" in bob.text
    missing = _put(xnat_sim, **{k: v for k, v in ENTRY.items() if k != "data_type"})
    assert missing.status_code == 400 and "data_type" in missing.text
    assert _put(xnat_sim, **{**ENTRY, "id": "XNAT_E99999"}).status_code == 404
    assert _put(xnat_sim, **{**ENTRY, "launch_time": "yesterday"}).status_code == 400
    bare = requests.put(xnat_sim.url + "/data/workflows", params={"status": "Queued"}, auth=ALICE, timeout=10)
    assert bare.status_code == 400 and "status" in bare.text
    assert _put(xnat_sim, wid=99, status="Failed").status_code == 404
    xml = requests.put(xnat_sim.url + "/data/workflows", data="<wrk:Workflow/>", auth=ALICE, timeout=10)
    assert xml.status_code == 501
    assert xnat_sim.state.workflows == []


# --- faults ------------------------------------------------------------------------------


def test_fail_500_hits_only_matching_paths_and_slow_delays(xnat_sim):
    xnat_sim.faults.fail_500 = r"^/data/projects/test/experiments$"
    failing = requests.get(xnat_sim.url + "/data/projects/test/experiments?format=json", auth=ALICE, timeout=10)
    assert failing.status_code == 500
    assert requests.get(xnat_sim.url + "/data/projects?format=json", auth=ALICE, timeout=10).status_code == 200
    xnat_sim.faults.fail_500 = None
    xnat_sim.faults.slow, xnat_sim.faults.slow_paths = 0.4, "^/data/projects$"
    t0 = time.monotonic()
    requests.get(xnat_sim.url + "/data/projects?format=json", auth=ALICE, timeout=10)
    assert time.monotonic() - t0 >= 0.4
    try:
        requests.get(xnat_sim.url + "/data/projects?format=json", auth=ALICE, timeout=0.1)
        raise AssertionError("a slow XNAT should time a short-timeout client out")
    except requests.Timeout:
        pass


def test_refused_logins_401_credentials_but_keep_open_sessions(xnat_sim):
    sid = requests.get(xnat_sim.url + "/data/JSESSION", auth=ALICE, timeout=10).text
    xnat_sim.faults.refuse_logins = True
    assert requests.get(xnat_sim.url + "/data/projects", auth=ALICE, timeout=10).status_code == 401
    assert requests.get(xnat_sim.url + "/data/projects", cookies={"JSESSIONID": sid}, timeout=10).status_code == 200


def test_no_password_or_secret_in_the_request_log(xnat_sim):
    token = requests.get(xnat_sim.url + "/data/services/tokens/issue", auth=ALICE, timeout=10).json()
    requests.get(
        f"{xnat_sim.url}/data/services/tokens/validate/{token['alias']}/{token['secret']}", auth=ALICE, timeout=10
    )
    requests.get(xnat_sim.url + "/data/projects", auth=(token["alias"], token["secret"]), timeout=10)
    requests.get(xnat_sim.url + "/data/projects", auth=("alice", "a-wrong-Pw-123"), timeout=10)
    logged = json.dumps(list(xnat_sim.state.requests)) + json.dumps(xnat_sim.state.snapshot())
    for secret in (XNAT_USERS["alice"], token["secret"], "a-wrong-Pw-123"):
        assert secret not in logged
    assert f"/data/services/tokens/validate/{token['alias']}/***" in logged


# --- the command line --------------------------------------------------------------------


def test_the_cli_serves_a_seed_file_and_keeps_passwords_out_of_its_argv(tmp_path):
    seed = {**default_seed(), "generate": []}
    with XnatSimProcess(tmp_path, seed, fail_500="^/data/experiments$", token_lifetime=60) as sim:
        listing = requests.get(sim.url + "/data/projects?format=json", auth=ALICE, timeout=10).json()
        assert [p["ID"] for p in listing["ResultSet"]["Result"]] == ["test"]
        assert requests.get(sim.url + "/data/experiments", auth=ALICE, timeout=10).status_code == 500
        token = requests.get(sim.url + "/data/services/tokens/issue", auth=ALICE, timeout=10).json()
        assert token["estimatedExpirationTime"] - token["created"] == 60_000
        assert [t["user"] for t in sim.state()["tokens"]] == ["alice"]
        argv = Path(f"/proc/{sim.proc.pid}/cmdline").read_bytes().decode()
        assert all(password not in argv for password in XNAT_USERS.values())
    assert sim.proc.returncode == 0
    logged = (tmp_path / "xnat_sim.log").read_text()
    assert all(password not in logged for password in XNAT_USERS.values()) and token["secret"] not in logged
    assert oct((tmp_path / "seed.yaml").stat().st_mode & 0o777) == "0o600"


def test_the_cli_refuses_a_bad_seed_naming_it(tmp_path):
    seed = tmp_path / "bad.yaml"
    seed.write_text("users: [{name: x}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "devtools.xnat_sim", "--seed", str(seed)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert done.returncode == 2 and "users[0]" in done.stderr


def test_the_process_fixture_serves_the_default_seed(xnat_sim_process):
    found = requests.get(xnat_sim_process.url + "/data/experiments/XNAT_E00005?format=json", auth=BOB, timeout=10)
    assert found.json()["items"][0]["data_fields"]["label"] == "S03_CT1"
    assert xnat_sim_process.state()["tokens"] == []


def test_tls_serves_https_trusted_only_through_its_ca_file(make_xnat_sim):
    sim = make_xnat_sim(tls=True)
    assert sim.url.startswith("https://127.0.0.1:")
    answer = requests.get(sim.url + "/data/projects?format=json", auth=ALICE, verify=str(sim.ca_file), timeout=10)
    assert answer.status_code == 200
    try:
        requests.get(sim.url + "/data/projects?format=json", auth=ALICE, verify=True, timeout=10)
        raise AssertionError("a self-signed certificate must not pass the system's trust store")
    except requests.exceptions.SSLError:
        pass


def test_the_redirect_fault_sends_matching_paths_elsewhere(xnat_sim):
    xnat_sim.faults.redirect = "^/data/services/tokens/"
    answer = requests.get(xnat_sim.url + "/data/services/tokens/issue", auth=ALICE, allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"] == "http://169.254.169.254/latest/meta-data/"
    assert requests.get(xnat_sim.url + "/data/projects", auth=ALICE, timeout=10).status_code == 200
