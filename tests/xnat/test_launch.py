"""Launching a whole XNAT project (POST /api/v1/xnat/launch, ``scheduler-server xnat launch``): one request lists
the project's experiments, the filters pick sessions, one pipeline per session is queued in one transaction with
one shared alias token; skipped sessions say why; dry_run creates nothing; refusals name their field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from devtools.xnat_sim import default_seed
from scheduler_server.cli import main
from scheduler_server.config import Settings
from scheduler_server.pipelines.models import Pipeline
from tests.waiting import wait_until

from .conftest import XNAT_USERS
from .test_verify import make_app, scripts, service_of, tokens_of, wait_done  # noqa: F401  (fixtures)

PWD = XNAT_USERS["alice"]


def body(sim, **fields) -> dict:
    base = {"host": sim.url, "user": "alice", "pwd": PWD, "project": "test", "script": "args.sh"}
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def pipelines_of(client) -> list[Pipeline]:
    with service_of(client).store.read() as session:
        return list(session.query(Pipeline).order_by(Pipeline.id))


def _bytes(path) -> bytes:
    try:
        return path.read_bytes() if path.is_file() else b""  # not the leader's wake-up socket (storage/wake.py)
    except FileNotFoundError:  # an ended instance's directory, deleted meanwhile
        return b""


def launch(client, sim, **fields):
    return client.post("/api/v1/xnat/launch", json=body(sim, **fields))


def test_a_project_becomes_one_pipeline_per_session_sharing_one_token(make_app, xnat_sim, tmp_path, caplog):
    caplog.set_level("DEBUG")
    client = make_app([{"url": xnat_sim.url}])
    answer = launch(client, xnat_sim, options=["-x", "1"], priority=7, timeout=600, files=["env.sh"])
    assert answer.status_code == 201, answer.json
    got = answer.json
    assert got["created"] == 5 and got["listed"] == 5 and got["skipped"] == [] and not got["dry_run"]
    sessions = [(p["subject"], p["session"]) for p in got["pipelines"]]
    assert sessions == [
        ("S01", "S01_MR1"),
        ("S01", "S01_MR2"),
        ("S02", "S02_PET1"),
        ("S03", "S03_CT1"),
        ("S03", "S03_MR1"),
    ]
    # One listing request with XNAT's columns; one token issue with the password, nothing else asked.
    listing = xnat_sim.state.requests_seen("GET", "^/data/projects/test/experiments$")
    assert len(listing) == 1 and listing[0]["auth"] == "token"
    assert len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$")) == 1
    (token,) = tokens_of(client)
    assert token.pipelines == 5 and token.issued and token.user == "alice"
    rows = pipelines_of(client)
    assert [r.id for r in rows] == [p["id"] for p in got["pipelines"]]
    assert {r.token_id for r in rows} == {token.id} and {r.project for r in rows} == {"test"}
    assert all(r.type == "xnat" and r.spec["xnat_token"] and r.spec["user"] == "alice" for r in rows)
    assert [(r.subject, r.session) for r in rows] == sessions
    assert {(r.priority, r.timeout, r.script, r.type) for r in rows} == {(7, 600.0, "args.sh", "xnat")}
    assert all(r.spec["files"] == ["env.sh"] and r.spec["options"] == ["-x", "1"] for r in rows)
    assert [(r.spec["subject"], r.spec["session"]) for r in rows] == sessions
    views = [wait_done(client, r.id) for r in rows]
    assert [v["status"] for v in views] == ["succeeded"] * 5
    log = client.get(f"/api/v1/pipelines/{rows[0].id}/logs").json["data"].splitlines()
    assert log[-10:] == ["-project", "test", "-subject", "S01", "-session", "S01_MR1", "-host", xnat_sim.url, "-x", "1"]
    # No password anywhere it could be kept or shown.
    dumped = json.dumps(got) + json.dumps([r.spec for r in rows]) + "".join(r.secret or "" for r in rows)
    assert PWD not in dumped and PWD not in caplog.text
    # The database, its WAL, the kept logs, the job files (os.walk: ended instances' directories go meanwhile).
    stored = [Path(top, name) for top, _, names in os.walk(tmp_path / "data") for name in names]
    assert any(f.name.startswith("pipelines.sqlite") for f in stored)
    assert not [f for f in stored if PWD.encode() in _bytes(f)]
    # The queue sees their project, as any xnat pipeline's.
    assert client.get("/api/v1/pipelines?project=test").json["total"] == 5
    # Every pipeline ended: the shared token is invalidated at XNAT.
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token to be released")
    assert xnat_sim.state.live_token(token.alias) is None


def test_filters_pick_sessions_and_the_skipped_say_why(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    answer = launch(client, xnat_sim, subject="S0[13]", session="*_MR*", dry_run=True)
    assert answer.status_code == 200, answer.json
    got = answer.json
    assert got["dry_run"] and got["created"] == 0 and got["listed"] == 5
    assert [p["session"] for p in got["pipelines"]] == ["S01_MR1", "S01_MR2", "S03_MR1"]
    assert all("id" not in p for p in got["pipelines"])
    reasons = {s["session"]: s["reason"] for s in got["skipped"]}
    assert reasons == {
        "S02_PET1": "subject 'S02' does not match 'S0[13]'",
        "S03_CT1": "session 'S03_CT1' does not match '*_MR*'",
    }
    # A dry run creates nothing and keeps no token: the one it issued is invalidated at once.
    assert pipelines_of(client) == [] and tokens_of(client) == []
    assert len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$")) == 1
    assert len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/invalidate/")) == 1
    # session_type goes to XNAT as its xsiType parameter.
    typed = launch(client, xnat_sim, session_type="xnat:ctSessionData").json
    assert [p["session_id"] for p in typed["pipelines"]] == ["XNAT_E00005"] and typed["listed"] == 1
    query = xnat_sim.state.requests_seen("GET", "^/data/projects/test/experiments$")[-1]["query"]
    assert query.get("xsiType") == "xnat:ctSessionData" and "subject_label" in query.get("columns", "")
    # A server whose session types leave out PET skips it, saying so.
    narrow = make_app([{"url": xnat_sim.url, "session_types": ["xnat:mrSessionData", "xnat:ctSessionData"]}])
    skipped = launch(narrow, xnat_sim, dry_run=True).json["skipped"]
    assert [(s["session"], s["reason"].split(" is not ")[0]) for s in skipped] == [("S02_PET1", "xnat:petSessionData")]


def test_skip_succeeded_leaves_out_sessions_this_script_already_did(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    first = launch(client, xnat_sim, session="S01_*").json
    done = [wait_done(client, p["id"]) for p in first["pipelines"]]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    again = launch(client, xnat_sim, skip_succeeded=True)
    assert again.status_code == 201, again.json
    assert [p["session"] for p in again.json["pipelines"]] == ["S02_PET1", "S03_CT1", "S03_MR1"]
    ids = {p["session"]: p["id"] for p in first["pipelines"]}
    assert {s["session"]: s["reason"] for s in again.json["skipped"]} == {
        name: f"pipeline {pid} of args.sh already succeeded on it" for name, pid in ids.items()
    }
    # Another script has not run there: nothing skipped.
    other = launch(client, xnat_sim, script="env.sh", skip_succeeded=True, dry_run=True).json
    assert len(other["pipelines"]) == 5 and other["skipped"] == []
    # Everything done already: a filter that matches nothing, named.
    for p in again.json["pipelines"]:
        wait_done(client, p["id"])
    none_left = launch(client, xnat_sim, skip_succeeded=True)
    assert none_left.status_code == 400 and none_left.json["field"] == "skip_succeeded", none_left.json
    assert "every matching session of project 'test' has a succeeded pipeline of args.sh" in none_left.json["message"]


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"subject": "S9*"}, "subject", "subject 'S9*' matches none of the 5 experiments of project 'test'"),
        ({"subject": "S01", "session": "*PET*"}, "session", "session '*PET*' matches none of the 5"),
        ({"session_type": "xnat:petmrSessionData"}, "session_type", "is not a session type of"),
        ({"project": "nope"}, "project", "project: no project 'nope'"),
        ({"pwd": "wrong"}, "pwd", "pwd: "),
        ({"pwd": None}, "pwd", "pwd: required"),
        ({"user": None}, "user", "user: required with pwd"),
        ({"script": "missing.sh"}, "script", "script: "),
        ({"subject": ""}, "subject", "subject: "),
        ({"dry_run": "yes"}, "dry_run", "dry_run: "),
        ({"sessions": "x"}, "sessions", "sessions: "),
        ({"options": ["--pwd", PWD]}, "pwd", "must not occur in options.1"),
        ({"host": "http://elsewhere.example"}, "host", "is not an XNAT server to launch on"),
    ],
)
def test_refusals_name_their_field_and_create_nothing(make_app, xnat_sim, fields, field, words):
    client = make_app([{"url": xnat_sim.url}])
    answer = launch(client, xnat_sim, **fields)
    assert answer.status_code == 400, answer.json
    assert answer.json["field"] == field and words in answer.json["message"], answer.json
    assert PWD not in json.dumps(answer.json)
    assert pipelines_of(client) == [] and tokens_of(client) == []
    issued = len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$"))
    invalidated = len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/invalidate/"))
    assert issued - (fields.get("pwd") == "wrong") == invalidated  # no token left alive
    if field in ("script", "host", "user", "dry_run", "sessions", "session_type") or "pwd" in fields:
        if fields.get("pwd") != "wrong":
            assert xnat_sim.state.requests_seen() == []  # refused before XNAT was asked


def test_a_body_that_is_no_object_and_xnat_down(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    listed = client.post("/api/v1/xnat/launch", json=[body(xnat_sim)])
    assert listed.status_code == 400 and "must be a JSON object" in listed.json["message"]
    xnat_sim.faults.fail_500 = "^/data/projects/"
    down = launch(client, xnat_sim)
    assert down.status_code == 503 and "XNAT unavailable" in down.json["message"], down.json
    assert "500" in down.json["message"] and PWD not in down.json["message"]
    assert pipelines_of(client) == [] and tokens_of(client) == []
    assert len(xnat_sim.state.requests_seen("GET", "^/data/services/tokens/invalidate/")) == 1


def test_more_sessions_than_max_launch_is_refused_with_the_count(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], max_launch=999)
    answer = launch(client, xnat_sim, project="big")
    assert answer.status_code == 400 and answer.json["field"] == "max_launch", answer.json
    assert "1000 sessions match, more than xnat.max_launch (999)" in answer.json["message"]
    assert pipelines_of(client) == [] and tokens_of(client) == []
    narrowed = launch(client, xnat_sim, project="big", subject="big_S000*", dry_run=True).json
    assert len(narrowed["pipelines"]) == 90 and len(narrowed["skipped"]) == 910


def test_one_session_that_cannot_be_a_pipeline_stops_the_whole_launch(make_app, make_xnat_sim):
    seed = default_seed()
    long_label = "S02_" + "M" * 260  # longer than a pipeline's session may be
    seed["projects"]["test"]["subjects"]["S02"]["experiments"].append(
        {"label": long_label, "ID": "XNAT_E00900", "xsiType": "xnat:mrSessionData"}
    )
    sim = make_xnat_sim(seed)
    client = make_app([{"url": sim.url}])
    answer = launch(client, sim)
    assert answer.status_code == 400 and answer.json["field"] == "session", answer.json
    assert pipelines_of(client) == [] and tokens_of(client) == []  # all or none
    assert len(sim.state.requests_seen("GET", "^/data/services/tokens/invalidate/")) == 1


def test_single_sign_on_alias_and_secret(make_app, xnat_sim):
    token = xnat_sim.state.issue_token("alice")
    client = make_app([{"url": xnat_sim.url}])
    sso = {"user": None, "pwd": None, "alias": token.alias, "secret": token.secret, "session": "S01_MR1"}
    answer = launch(client, xnat_sim, **sso)
    assert answer.status_code == 201, answer.json
    (row,) = tokens_of(client)
    assert not row.issued and row.user == "alice" and row.alias == token.alias and row.pipelines == 1
    assert xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$") == []
    assert token.secret not in json.dumps(answer.json)
    wrong = launch(client, xnat_sim, **{**sso, "secret": "not-it"})
    assert wrong.status_code == 400 and wrong.json["field"] == "secret", wrong.json


def test_the_cli_verb(make_app, xnat_sim, tmp_path, scripts):
    settings = Settings(
        data_dir=tmp_path / "cli-data",
        pipelines={"local_scripts_folder": str(scripts)},
        xnat={"servers": [{"url": xnat_sim.url}]},
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    runner = CliRunner()
    args = ["xnat", "launch", "--host", xnat_sim.url, "--user", "alice", "--project", "test", "--script", "args.sh"]
    args += ["--subject", "S03", "--config", str(config)]
    dry = runner.invoke(main, [*args, "--dry-run", "--json"], env={"XNAT_PASSWORD": PWD})
    assert dry.exit_code == 0, dry.output
    assert [p["session"] for p in json.loads(dry.output)["pipelines"]] == ["S03_CT1", "S03_MR1"]
    done = runner.invoke(main, [*args, "--session-type", "xnat:mrSessionData"], input=PWD + "\n")
    assert done.exit_code == 0, done.output
    assert "queued S03/S03_MR1 (XNAT_E00004, xnat:mrSessionData) as pipeline 1" in done.output
    assert "1 pipeline(s) queued, 2 session(s) skipped of 3 listed" in done.output and PWD not in done.output
    refused = runner.invoke(main, [*args, "--session", "nope*"], env={"XNAT_PASSWORD": PWD})
    assert refused.exit_code == 1 and "session: session 'nope*' matches none" in refused.output
    anonymous = [a for a in args if a not in ("--user", "alice")]
    assert runner.invoke(main, anonymous).exit_code == 2  # neither --user nor --alias


def test_with_workflows_each_session_gets_its_entry_and_bob_is_refused_or_warned(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}], workflows=True)
    answer = launch(client, xnat_sim, subject="S01")
    assert answer.status_code == 201, answer.json
    puts = xnat_sim.state.requests_seen("PUT", "^/data/workflows$")
    assert len(puts) >= 1 and puts[0]["query"]["wrk:workflowData/id"] == "XNAT_E00001"  # the first, at launch
    ids = [p["id"] for p in answer.json["pipelines"]]
    for pid in ids:
        wait_done(client, pid)

    def complete():
        entries = [w for w in xnat_sim.state.workflows if w["pipeline_name"] == "args.sh"]
        return entries if sorted(w["status"] for w in entries) == ["Complete", "Complete"] else None

    entries = wait_until(complete, 15, message="both sessions' entries Complete")
    assert sorted(w["id"] for w in entries) == ["XNAT_E00001", "XNAT_E00002"]  # one each, never a second
    bob = {"user": "bob", "pwd": XNAT_USERS["bob"]}
    refused = launch(client, xnat_sim, **bob)
    assert refused.status_code == 400 and refused.json["field"] == "workflows", refused.json
    assert len(pipelines_of(client)) == 2 and XNAT_USERS["bob"] not in refused.get_data(as_text=True)
    warned_app = make_app([{"url": xnat_sim.url}], workflows=True, workflow_permission="warn")
    warned = launch(warned_app, xnat_sim, **bob, subject="S02")
    assert warned.status_code == 201 and any(w.startswith("workflows:") for w in warned.json["warnings"])
    row = pipelines_of(warned_app)[-1]  # the apps share one data directory
    assert row.session == "S02_PET1" and row.workflow_status is None and "xnat_workflow" not in row.spec


def test_xnat_too_slow_to_list_is_a_503_and_nothing_is_left(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url, "timeout": 1.5}])  # the token issue answers in time even under load
    xnat_sim.faults.slow, xnat_sim.faults.slow_paths = 3.0, "^/data/projects/test/experiments$"
    answer = launch(client, xnat_sim)
    assert answer.status_code == 503 and "did not answer the experiment listing within 1.5 s" in answer.json["message"]
    assert pipelines_of(client) == [] and tokens_of(client) == []
    xnat_sim.faults.slow = 0.0
    wait_until(lambda: xnat_sim.state.requests_seen("GET", "^/data/services/tokens/invalidate/"), 5)
    (issued,) = xnat_sim.state.tokens.values()
    assert xnat_sim.state.live_token(issued.alias) is None  # the launch's token was invalidated
