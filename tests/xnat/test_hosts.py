"""xnat.servers: host normalisation and matching, the section's validation, and the client against the simulator
(tokens, the archive's lookups, redirects never followed, faults as 503 reasons without secrets)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scheduler_server.config import load_settings
from scheduler_server.pipelines.xnat.client import XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatNotFound, XnatUnavailable
from scheduler_server.pipelines.xnat.hosts import HostError, match, normalise
from scheduler_server.pipelines.xnat.settings import XnatServer, XnatSettings
from scheduler_server.startup_error import ConfigError

from .conftest import XNAT_USERS


@pytest.mark.parametrize(
    "given, normal",
    [
        ("https://XNAT.Example.org", "https://xnat.example.org"),
        ("HTTPS://xnat.example.org:443/", "https://xnat.example.org"),
        ("http://xnat.example.org:80//", "http://xnat.example.org"),
        ("http://xnat.example.org:8080/xnat/", "http://xnat.example.org:8080/xnat"),
        ("https://xnat.example.org:80", "https://xnat.example.org:80"),
        ("  https://[::1]:8443/  ", "https://[::1]:8443"),
    ],
)
def test_normalise(given, normal):
    assert normalise(given) == normal


@pytest.mark.parametrize(
    "bad, words",
    [
        ("xnat.example.org", "give the scheme"),
        ("ftp://xnat.example.org", "http or https"),
        ("https://user:pw@xnat.example.org", "credentials"),
        ("https://xnat.example.org/?a=1", "no query"),
        ("https://xnat.example.org:99999", "not a URL"),
        ("https:///path", "names no host"),
    ],
)
def test_normalise_refuses(bad, words):
    with pytest.raises(HostError, match=words):
        normalise(bad)


def test_match_after_normalising_both():
    settings = XnatSettings(servers=[{"url": "https://XNAT.example.org:443/"}, {"url": "http://127.0.0.1:8080/x"}])
    assert settings.servers[0].url == "https://xnat.example.org"
    assert match(settings, "https://xnat.EXAMPLE.org/").url == "https://xnat.example.org"
    assert match(settings, "http://127.0.0.1:8080/x/").url == "http://127.0.0.1:8080/x"
    assert match(settings, "http://xnat.example.org") is None  # another scheme is another server
    assert match(settings, "http://127.0.0.1:8080") is None  # another base path too
    assert match(settings, "not a url") is None
    assert match(XnatSettings(), "https://xnat.example.org") is None


def test_config_section(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("xnat:\n  servers:\n    - url: https://xnat.example.org/\n      timeout: 3\n  workflows: true\n")
    settings = load_settings(config, env={})
    server = settings.xnat.servers[0]
    assert (server.url, server.timeout, server.verify, server.ca_file) == ("https://xnat.example.org", 3, True, None)
    assert server.session_types == ["xnat:mrSessionData", "xnat:petSessionData", "xnat:ctSessionData"]
    assert settings.xnat.workflows and settings.xnat.token_renew_before == 6 * 3600
    (tmp_path / "empty.yaml").write_text("")
    assert load_settings(tmp_path / "empty.yaml", env={}).xnat.servers == []  # nothing configured: the seed's way
    for text, words in [
        ("xnat:\n  servers:\n    - url: xnat.example.org\n", "xnat.servers.0.url"),
        ("xnat:\n  servers: [{url: 'https://a'}, {url: 'https://A/'}]\n", "listed twice"),
        ("xnat:\n  workflow_permission: ignore\n", "xnat.workflow_permission"),
        ("xnat:\n  servers: [{url: 'https://a', timeout: 0}]\n", "xnat.servers.0.timeout"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=words):
            load_settings(config, env={})


# --- the client against the simulator -----------------------------------------------------


def client_of(url: str, **options) -> XnatClient:
    return XnatClient(XnatServer(url=url, **options))


def test_tokens_issue_validate_invalidate(xnat_sim):
    client = client_of(xnat_sim.url)
    token = client.issue_token("alice", XNAT_USERS["alice"])
    assert token.secret not in repr(token)
    assert token.expires_at is not None and token.expires_at > 47 * 3600 + __import__("time").time()
    assert client.token_user(token.alias, token.secret) == "alice"
    assert client.token_user(token.alias, token.secret + "x") is None
    renewed = client.issue_token(token.alias, token.secret)  # a token's own credentials issue a new one
    assert renewed.alias != token.alias and client.validate_token(renewed.alias, renewed.secret)
    assert client.invalidate_token(token.alias, token.secret) is True
    invalidation = xnat_sim.state.requests_seen("GET", "/invalidate/")[-1]
    assert invalidation["path"] == f"/data/services/tokens/invalidate/{token.alias}"  # no secret in the URL
    assert not client.validate_token(token.alias, token.secret)
    assert client.invalidate_token(token.alias, token.secret) is False  # already gone: nothing to do
    with pytest.raises(XnatAuthError) as refused:
        client.issue_token("alice", "wrong")
    assert refused.value.field == "pwd" and "wrong" not in refused.value.message
    with pytest.raises(XnatAuthError) as refused:
        client.issue_token(token.alias, token.secret, field="secret")
    assert refused.value.field == "secret"


def test_archive_lookups(xnat_sim):
    client = client_of(xnat_sim.url)
    auth = ("alice", XNAT_USERS["alice"])
    found = client.experiment("test", "S01", "S01_MR1", auth)
    assert (found["ID"], found["label"], found["xsiType"]) == ("XNAT_E00001", "S01_MR1", "xnat:mrSessionData")
    assert client.experiment("test", "S01", "XNAT_E00001", auth)["label"] == "S01_MR1"
    cases = [
        (("nope", "S01", "S01_MR1"), "project", "project: no project 'nope'"),
        (("test", "S99", "S01_MR1"), "subject", "subject: no subject 'S99' in project 'test'"),
        (("test", "S01", "ncrc_S0132"), "session", "session: no experiment 'ncrc_S0132' in project 'test'"),
        (("test", "S02", "S01_MR1"), "session", "session: no experiment 'S01_MR1' in project 'test'"),
        (("test", "S02", "XNAT_E00001"), "session", "session: no experiment 'XNAT_E00001' in project 'test'"),
    ]
    for args, field, words in cases:
        with pytest.raises(XnatNotFound) as missing:
            client.experiment(*args, auth)
        assert missing.value.field == field and missing.value.message.startswith(words)
    rows = client.list_experiments("test", auth)
    assert {r["label"] for r in rows} == {"S01_MR1", "S01_MR2", "S02_PET1", "S03_MR1", "S03_CT1"}
    assert set(rows[0]) >= {"ID", "label", "subject_label", "xsiType", "project"}
    pets = client.list_experiments("test", auth, xsi_type="xnat:petSessionData")
    assert [r["label"] for r in pets] == ["S02_PET1"]
    with pytest.raises(XnatNotFound, match="project: no project 'nope'"):
        client.list_experiments("nope", auth)
    with pytest.raises(XnatAuthError):
        client.experiment("test", "S01", "S01_MR1", ("alice", "wrong"))


def test_faults_are_503_reasons(make_xnat_sim):
    sim = make_xnat_sim(faults={"fail_500": "^/data/services/tokens"})
    client = client_of(sim.url, timeout=0.3)
    with pytest.raises(XnatUnavailable, match="answered the token issue with HTTP 500 Internal Server Error"):
        client.issue_token("alice", XNAT_USERS["alice"])
    sim.faults.fail_500 = None
    token = client.issue_token("alice", XNAT_USERS["alice"])
    sim.faults.slow = 1.0
    with pytest.raises(XnatUnavailable, match="did not answer the token check within 0.3 s") as slow:
        client.validate_token(token.alias, token.secret)
    assert token.secret not in str(slow.value)
    sim.stop()
    with pytest.raises(XnatUnavailable, match="cannot connect to .* for the token invalidation") as down:
        client.invalidate_token(token.alias, token.secret)
    assert token.secret not in str(down.value)


class _Redirect(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Redirect.seen.append(self.path)
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data?x=1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirects_are_never_followed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = client_of(f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(XnatUnavailable, match="redirects are not followed") as redirected:
            client.issue_token("alice", "pw")
        assert "169.254.169.254" in str(redirected.value) and "meta-data" not in str(redirected.value)
        assert _Redirect.seen == ["/data/services/tokens/issue"]
    finally:
        server.shutdown()
        server.server_close()
