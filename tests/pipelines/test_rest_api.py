"""/api/v1/pipelines and /api/v1/instances, token auth, and hostile requests, through the Flask app."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import wait_until, xnat


def _wait(client, pid, statuses=("succeeded", "failed", "cancelled")):
    return wait_until(
        lambda: (p := client.get(f"/api/v1/pipelines/{pid}").json)["status"] in statuses and p,
        message=f"pipeline {pid}",
    )


def test_submit_list_filter_paginate(make_client):
    client = make_client(max_active_pipelines=2)
    answer = client.post(
        "/api/v1/pipelines",
        json=[xnat(project="a"), xnat(project="b"), xnat(project="a", script="fail.sh"), xnat(script="/x")],
    )
    assert answer.status_code == 201
    assert (answer.json["accepted"], answer.json["rejected"]) == (3, 1)
    ids = [r["id"] for r in answer.json["pipelines"] if r["request"] == "success"]
    for pid in ids:
        _wait(client, pid)
    page = client.get("/api/v1/pipelines?project=a").json
    assert page["total"] == 2 and [p["id"] for p in page["items"]] == [ids[0], ids[2]]
    assert client.get("/api/v1/pipelines?status=failed").json["items"][0]["id"] == ids[2]
    two = client.get("/api/v1/pipelines?status=succeeded,failed&limit=2&offset=1").json
    assert two["total"] == 3 and [p["id"] for p in two["items"]] == ids[1:]
    for bad, field in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("colour=red", "colour"),
    ]:
        answer = client.get(f"/api/v1/pipelines?{bad}")
        assert answer.status_code == 400 and answer.json["field"] == field, bad


def test_single_submit_and_detail_with_history(make_client):
    client = make_client()
    answer = client.post("/api/v1/pipelines", json=xnat(priority=3))
    assert answer.status_code == 201
    pid = answer.json["pipelines"][0]["id"]
    done = _wait(client, pid)
    assert done["priority"] == 3 and done["pwd"] == "********"
    assert [h["to"] for h in done["history"]] == ["provisioning", "staging", "running", "succeeded"]
    assert client.get("/api/v1/pipelines/999").status_code == 404
    assert client.get("/api/v1/pipelines/abc").status_code == 400  # not an id at all: a client mistake naming the field
    rejected = client.post("/api/v1/pipelines", json=xnat(session=None))
    assert rejected.status_code == 400 and rejected.json["field"] == "session"


def test_cancel_retry_and_conflicts(make_client):
    client = make_client()
    pid = client.post("/api/v1/pipelines", json=xnat(script="sleep.sh")).json["pipelines"][0]["id"]
    wait_until(lambda: client.get(f"/api/v1/pipelines/{pid}").json["status"] == "running", message="running")
    assert client.post(f"/api/v1/pipelines/{pid}/retry").status_code == 409
    answer = client.post(f"/api/v1/pipelines/{pid}/cancel")
    assert answer.status_code == 202 and answer.json["cancel_requested"]
    assert _wait(client, pid)["status"] == "cancelled"
    assert client.post(f"/api/v1/pipelines/{pid}/cancel").status_code == 409
    assert client.post(f"/api/v1/pipelines/{pid}/retry").status_code == 202
    assert client.post("/api/v1/pipelines/12345/cancel").status_code == 404


def test_logs_endpoint(make_client, scripts):
    (scripts / "talk.sh").write_text('echo "out $3"; echo err >&2; echo "pw was $12"\n')
    client = make_client()
    pid = client.post("/api/v1/pipelines", json=xnat(script="talk.sh", pwd="leaky")).json["pipelines"][0]["id"]
    _wait(client, pid)
    out = client.get(f"/api/v1/pipelines/{pid}/logs").json
    assert out["data"] == "out -subject\npw was ********\n" or out["data"].startswith("out ")
    assert "leaky" not in out["data"] and out["complete"]
    err = client.get(f"/api/v1/pipelines/{pid}/logs?stream=stderr&since=1").json
    assert err["data"] == "rr\n" and err["offset"] == 1 and err["next"] == 4
    assert client.get(f"/api/v1/pipelines/{pid}/logs?stream=stdin").status_code == 400


def test_instances_api(make_client):
    client = make_client(virtual_server_ttl=5, idle_timeout=3600)
    pid = client.post("/api/v1/pipelines", json=xnat(script="sleep.sh")).json["pipelines"][0]["id"]
    running = wait_until(
        lambda: (p := client.get(f"/api/v1/pipelines/{pid}").json)["status"] == "running" and p, message="running"
    )
    items = client.get("/api/v1/instances").json["items"]
    assert running["instance"] in [i["id"] for i in items]
    busy = client.delete(f"/api/v1/instances/{running['instance']}")
    assert busy.status_code == 409 and "cancel it first" in busy.json["message"]
    client.post(f"/api/v1/pipelines/{pid}/cancel")
    _wait(client, pid)
    wait_until(lambda: any(i["state"] == "idle" for i in client.get("/api/v1/instances").json["items"]), message="idle")
    assert client.delete(f"/api/v1/instances/{running['instance']}").json == {"deleted": running["instance"]}
    assert client.delete(f"/api/v1/instances/{running['instance']}").status_code == 404


@pytest.fixture
def secured(make_client, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# lab tokens\nalpha-token-1\n\nbeta-token-2\n")
    return make_client(tokens_file=str(tokens)), tokens


@pytest.mark.parametrize(
    "path, method",
    [
        ("/pipeline", "get"),
        ("/pipeline", "post"),
        ("/instance", "get"),
        ("/instance", "delete"),
        ("/config", "get"),
        ("/config", "put"),
        ("/api/v1/pipelines", "get"),
        ("/api/v1/pipelines", "post"),
        ("/api/v1/instances", "get"),
        ("/api/v1/pipelines/1", "get"),
    ],
)
def test_every_pipeline_route_needs_a_token(secured, path, method):
    client, _ = secured
    for headers, query in [
        ({}, ""),
        ({"Authorization": "Bearer wrong"}, ""),
        ({}, "?token=alpha-token"),
        ({"Authorization": "Basic alpha-token-1"}, ""),
    ]:
        answer = client.open(path + query, method=method.upper(), headers=headers, json=xnat())
        assert answer.status_code == 401, (path, method, headers, query)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "alpha" not in answer.get_data(as_text=True)


def test_good_tokens_pass_and_health_is_open(secured):
    client, tokens = secured
    assert client.get("/").status_code == 200
    assert client.get("/pipeline", headers={"Authorization": "Bearer alpha-token-1"}).status_code == 200
    assert client.get("/pipeline?token=beta-token-2").status_code == 200
    assert client.get("/api/v1/pipelines", headers={"Authorization": "bearer beta-token-2"}).status_code == 200
    # The file is re-read when it changes: a revoked token stops working.
    time.sleep(0.01)
    tokens.write_text("beta-token-2\n")
    import os

    os.utime(tokens, (time.time() + 5, time.time() + 5))
    assert client.get("/pipeline?token=alpha-token-1").status_code == 401
    assert client.get("/pipeline?token=beta-token-2").status_code == 200


def test_missing_tokens_file_refuses_everything(make_client, tmp_path):
    client = make_client(tokens_file=str(tmp_path / "absent"))
    assert client.get("/pipeline?token=anything").status_code == 401


def test_ten_megabyte_body_is_refused_in_seed_style(make_client):
    client = make_client()
    body = b'{"project": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    seed = client.post("/pipeline", data=body, content_type="application/json")
    assert seed.status_code == 413 and seed.json["request"] == "error" and "larger than" in seed.json["content"]
    rest = client.post("/api/v1/pipelines", data=body, content_type="application/json")
    assert rest.status_code == 413 and rest.json["status"] == "error"


@pytest.fixture
def short_dir():
    # Fields are at most 255 characters: a path under pytest's tmp_path (longer under xdist) repeated
    # three times would not fit.
    path = Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_hostile_fields_over_http_are_harmless(make_client, short_dir):
    client = make_client()
    tmp_path = short_dir
    hostile = f"$(touch {tmp_path}/PWNED); `touch {tmp_path}/PWNED`; touch {tmp_path}/PWNED | x && y > z"
    assert len(hostile) <= 255
    item = {k: hostile for k in ("project", "subject", "session", "host", "user")}
    item.update(pwd="pw " + hostile, script="args.sh", options=[hostile, "'", '"'])
    pid = client.post("/pipeline", json=item).json["content"]["id"]
    done = wait_until(
        lambda: (c := client.get(f"/pipeline?id={pid}").json["content"][0])["status"] == "succeeded" and c,
        message="done",
    )
    assert done["subject"] == hostile
    args = client.get(f"/api/v1/pipelines/{pid}/logs").json["data"].split("\n")[:-1]
    assert args.count(hostile) == 6 and args[-2:] == ["'", '"']
    assert args[args.index("-pwd") + 1] == "********"  # the script got it; the log shows it masked
    assert not (tmp_path / "PWNED").exists()
    for bad in ("../x.sh", "/bin/sh", "..", "a/../../b.sh"):
        answer = client.post("/pipeline", json=xnat(script=bad))
        assert answer.status_code == 400 and answer.json["field"] == "script", bad
