"""Verified submissions: a pipeline naming a host of xnat.servers is checked with that XNAT before anything is
queued (credentials -> one alias token per request, project/subject/session, the session's type); unlisted hosts
are refused once servers are listed; the script gets the token through its environment only."""

from __future__ import annotations

import json

import pytest

from scheduler_server.app import create_app
from scheduler_server.config import Settings
from scheduler_server.pipelines.models import XnatToken
from tests.pipelines.conftest import ARGS_SCRIPT, _clean_up
from tests.waiting import wait_until

from .conftest import XNAT_USERS

ENV_SCRIPT = (
    'for n in XNAT_HOST XNAT_USER XNAT_ALIAS XNAT_PASSWORD XNAT_SECRET; do printf "%s=%s\\n" "$n" "${!n}"; done\n'
)


@pytest.fixture
def scripts(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "args.sh").write_text(ARGS_SCRIPT)
    (folder / "env.sh").write_text(ENV_SCRIPT + ARGS_SCRIPT)
    return folder


@pytest.fixture
def make_app(tmp_path, scripts):
    apps = []

    def make(servers: list, **xnat):
        pipelines = {"local_scripts_folder": str(scripts), "poll_interval": 0.05, "max_active_pipelines": 4}
        settings = Settings(data_dir=tmp_path / "data", pipelines=pipelines, xnat={"servers": servers, **xnat})
        app = create_app(settings)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        _clean_up(app.extensions["pipelines"].service)


def item(host: str, **fields) -> dict:
    base = {"project": "test", "subject": "S01", "session": "S01_MR1", "host": host, "script": "args.sh"}
    return {**base, "user": "alice", "pwd": XNAT_USERS["alice"], **fields}


def service_of(client):
    return client.application.extensions["pipelines"].service


def tokens_of(client) -> list[XnatToken]:
    with service_of(client).store.read() as session:
        return list(session.query(XnatToken).order_by(XnatToken.id))


def wait_done(client, pid: int) -> dict:
    def done():
        view = client.get(f"/api/v1/pipelines/{pid}").json
        return view if view["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, 20, message=f"pipeline {pid} to end")


def log_of(client, pid: int) -> str:
    return client.get(f"/api/v1/pipelines/{pid}/logs").json["data"]


def test_one_token_per_request_shared_and_given_through_the_environment(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url + "/"}])
    host = xnat_sim.url.replace("http://127.0.0.1", "HTTP://127.0.0.1") + "/"  # matched after normalising
    items = [item(host, script="env.sh"), item(host, session="S01_MR2"), item(host, subject="S03", session="S03_CT1")]
    answer = client.post("/api/v1/pipelines", json=items)
    assert answer.status_code == 201 and answer.json["accepted"] == 3, answer.json
    issued = xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue$")
    assert len(issued) == 1 and issued[0]["auth"] == "password"  # one token for the request's three
    (token,) = tokens_of(client)
    assert token.pipelines == 3 and token.issued and token.user == "alice" and token.host == xnat_sim.url
    ids = [r["id"] for r in answer.json["pipelines"]]
    views = [wait_done(client, pid) for pid in ids]
    assert [v["status"] for v in views] == ["succeeded"] * 3
    lines = log_of(client, ids[0]).splitlines()
    live = next(t for t in xnat_sim.state.tokens.values() if t.alias == token.alias)
    assert f"XNAT_HOST={xnat_sim.url}" in lines and f"XNAT_USER={live.alias}" in lines
    assert f"XNAT_ALIAS={live.alias}" in lines and "XNAT_PASSWORD=********" in lines  # the secret, masked
    assert "XNAT_SECRET=********" in lines and "-user" not in lines and "-pwd" not in lines
    assert lines[-8:] == ["-project", "test", "-subject", "S01", "-session", "S01_MR1", "-host", xnat_sim.url]
    # The lookups used the token, never the password again.
    lookups = xnat_sim.state.requests_seen("GET", "^/data/projects/")
    assert len(lookups) == 3 and {r["auth"] for r in lookups} == {"token"}
    # Every pipeline ended: the token is invalidated at XNAT and released here.
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token to be released")
    assert xnat_sim.state.live_token(token.alias) is None


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"project": "nope"}, "project", "project: no project 'nope'"),
        ({"subject": "S99"}, "subject", "subject: no subject 'S99' in project 'test'"),
        ({"session": "ncrc_S0132"}, "session", "session: no experiment 'ncrc_S0132' in project 'test'"),
        ({"subject": "S02", "session": "S02_PET1"}, None, None),  # a PET session is a configured type
        ({"pwd": "wrong"}, "pwd", "pwd: "),
        ({"user": None, "pwd": None}, "pwd", "pwd: required (or alias and secret"),
    ],
)
def test_bad_fields_are_400s_naming_them(make_app, xnat_sim, fields, field, words):
    client = make_app([{"url": xnat_sim.url, "session_types": ["xnat:mrSessionData", "xnat:petSessionData"]}])
    answer = client.post("/api/v1/pipelines", json={k: v for k, v in item(xnat_sim.url, **fields).items() if v})
    if field is None:
        assert answer.status_code == 201, answer.json
        return
    assert answer.status_code == 400 and answer.json["field"] == field, answer.json
    assert answer.json["message"].startswith(words), answer.json
    assert "wrong" not in json.dumps(answer.json) or field != "pwd" or "'wrong'" not in answer.json["message"]
    assert service_of(client).store.list_pipelines()[1] == 0
    # A token issued for a request that queued nothing is invalidated at once.
    assert all(xnat_sim.state.live_token(t.alias) is None for t in list(xnat_sim.state.tokens.values()))


def test_session_type_not_configured(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url + "/", "session_types": ["xnat:mrSessionData"]}])
    answer = client.post("/api/v1/pipelines", json=item(xnat_sim.url, subject="S03", session="S03_CT1"))
    assert answer.status_code == 400 and answer.json["field"] == "session"
    assert "is a xnat:ctSessionData, not a session (xnat:mrSessionData)" in answer.json["message"]
    assert client.post("/api/v1/pipelines", json=item(xnat_sim.url)).status_code == 201


def test_a_list_keeps_its_good_items(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    items = [item(xnat_sim.url), item(xnat_sim.url, session="nope"), item(xnat_sim.url, pwd="wrong")]
    reports = client.post("/api/v1/pipelines", json=items).json["pipelines"]
    assert [r["request"] for r in reports] == ["success", "error", "error"]
    assert [r.get("field") for r in reports] == [None, "session", "pwd"]
    (token,) = tokens_of(client)
    assert token.pipelines == 1


def test_unlisted_hosts_are_refused_and_nothing_configured_is_the_seed(make_app, xnat_sim, tmp_path):
    client = make_app([{"url": xnat_sim.url}])
    answer = client.post("/api/v1/pipelines", json=item("http://169.254.169.254"))
    assert answer.status_code == 400 and answer.json["field"] == "host", answer.json
    assert xnat_sim.state.requests_seen() == []  # nothing contacted
    seed = make_app([])
    answer = seed.post("/api/v1/pipelines", json=item("http://xnat.invalid"))
    assert answer.status_code == 201  # passed through, never contacted
    pid = answer.json["pipelines"][0]["id"]
    assert wait_done(seed, pid)["status"] == "succeeded"
    assert "-pwd" in log_of(seed, pid).splitlines() and tokens_of(seed) == []
    answer = seed.post(
        "/api/v1/pipelines", json=item("http://xnat.invalid", user=None, pwd=None, alias="a", secret="b")
    )
    assert answer.status_code == 400 and answer.json["field"] == "secret"


@pytest.mark.parametrize("fault", [{"fail_500": "^/data/projects"}, {"slow": 2.0}, "down"])
def test_xnat_unavailable_is_503_and_nothing_queued(make_app, make_xnat_sim, fault):
    sim = make_xnat_sim(faults=None if fault == "down" else fault)
    client = make_app([{"url": sim.url, "timeout": 0.5}])
    if fault == "down":
        sim.stop()
    answer = client.post("/api/v1/pipelines", json=[item(sim.url), item(sim.url, session="S01_MR2")])
    assert answer.status_code == 503, answer.json
    assert answer.json["message"].startswith("XNAT unavailable: ")
    assert XNAT_USERS["alice"] not in json.dumps(answer.json)
    assert service_of(client).store.list_pipelines()[1] == 0 and tokens_of(client) == []
    if fault != "down":
        sim.faults.fail_500, sim.faults.slow = None, 0.0
        assert all(sim.state.live_token(t.alias) is None for t in list(sim.state.tokens.values()))


def test_single_sign_on_alias_and_secret(make_app, xnat_sim):
    client = make_app([{"url": xnat_sim.url}])
    own = xnat_sim.state.issue_token("alice")  # as if from XNAT's "manage alias tokens" page
    sso = item(xnat_sim.url, user=None, pwd=None, alias=own.alias, secret=own.secret, script="env.sh")
    answer = client.post("/api/v1/pipelines", json={k: v for k, v in sso.items() if v is not None})
    assert answer.status_code == 201, answer.json
    pid = answer.json["pipelines"][0]["id"]
    assert xnat_sim.state.requests_seen("GET", "^/data/services/tokens/issue") == []  # no password, no issue
    (token,) = tokens_of(client)
    assert token.alias == own.alias and not token.issued and token.user == "alice"
    assert wait_done(client, pid)["status"] == "succeeded"
    assert f"XNAT_USER={own.alias}" in log_of(client, pid).splitlines()
    wait_until(lambda: tokens_of(client)[0].released_at, 10, message="the token to be released")
    assert xnat_sim.state.live_token(own.alias) is not None  # not ours to invalidate
    view = client.get(f"/api/v1/pipelines/{pid}").json
    assert own.secret not in json.dumps(view) and own.alias not in json.dumps(view)
    bad = {**{k: v for k, v in sso.items() if v is not None}, "secret": "not-it"}
    answer = client.post("/api/v1/pipelines", json=bad)
    assert answer.status_code == 400 and answer.json["field"] == "secret"
    both = {**bad, "pwd": "x", "user": "alice"}
    answer = client.post("/api/v1/pipelines", json=both)
    assert answer.status_code == 400 and answer.json["field"] in ("secret", "user")


def test_a_reload_takes_the_new_servers(make_app, xnat_sim, scripts, tmp_path):
    client = make_app([{"url": xnat_sim.url}])
    assert client.post("/api/v1/pipelines", json=item("http://xnat.invalid")).status_code == 400
    config = tmp_path / "reloaded.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\npipelines:\n  local_scripts_folder: {scripts}\nxnat: {{}}\n")
    client.application.config["SETTINGS"].source = str(config)
    assert client.put("/config").status_code == 200
    assert client.post("/api/v1/pipelines", json=item("http://xnat.invalid")).status_code == 201  # the seed's way
