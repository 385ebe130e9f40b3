"""A fake XNAT whose every page echoes the request's credentials (plain, URL-encoded, the basic auth header, its
reason phrase, a redirect's path): no message the client raises holds any of them, on every path (the token
issue's 401 and 5xx, the archive's 401/403, put_workflow, the listings); urllib3's DEBUG line of a token check
has its secret masked."""

from __future__ import annotations

import base64
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from scheduler_server.pipelines.xnat.client import XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatNotFound, XnatUnavailable
from scheduler_server.pipelines.xnat.settings import XnatServer

PWD = "Zq7-Pw/4c1e9b+secret"
STATUS = {"code": 500}


class _Echo(BaseHTTPRequestHandler):
    def _answer(self):
        header = self.headers.get("Authorization", "")
        pwd = base64.b64decode(header.split()[1]).decode().split(":", 1)[1] if " " in header else ""
        body = f"<h3>{'x' * 190} {pwd}</h3><b>Message</b> {quote(pwd, safe='')} {header}</p>{self.path}"
        code = STATUS["code"]
        self.send_response(code, f"denied {pwd}")
        if 300 <= code < 400:
            self.send_header("Location", f"http://elsewhere.example/{quote(pwd)}?p={pwd}")
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield XnatServer(url=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


def _forms(secret: str) -> list[str]:
    encoded = base64.b64encode(f"alice:{secret}".encode()).decode()
    return [secret[:4], secret[-4:], quote(secret, safe="")[:6], encoded[:8], "Pw", "4c1e"]


CALLS = {
    "issue": lambda c: c.issue_token("alice", PWD),
    "check": lambda c: c.token_user("alias", PWD),
    "invalidate": lambda c: c.invalidate_token("alias", PWD),
    "session": lambda c: c.experiment("p", "s", "e", ("alice", PWD)),
    "listing": lambda c: c.list_experiments("p", ("alice", PWD)),
    "put_workflow": lambda c: c.put_workflow(("alice", PWD), {"id": "E1", "status": "Queued"}),
    "workflows_of": lambda c: c.workflows_of(("alice", PWD), "E1", "args.sh"),
}


@pytest.mark.parametrize("code", [500, 401, 403, 400, 404, 302])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_no_error_message_quotes_a_credential(echo, call, code):
    STATUS["code"] = code
    with XnatClient(echo) as client:
        try:
            CALLS[call](client)
        except (XnatUnavailable, XnatAuthError, XnatNotFound) as exc:
            message = str(exc) + str(getattr(exc, "reason", "")) + str(getattr(exc, "message", ""))
        else:
            return  # taken as an answer (e.g. a token check's 401: "not valid"), nothing to say
    leaked = [form for form in _forms(PWD) if form in message]
    assert not leaked, (leaked, message)


def test_urllib3_debug_line_of_a_token_check_masks_the_secret(echo, caplog):
    STATUS["code"] = 404
    with caplog.at_level(logging.DEBUG, logger="urllib3"), XnatClient(echo) as client:
        assert client.token_user("an-alias", "s3cr3t-of-the-token") is None
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/tokens/validate/an-alias/********" in line for line in lines), lines
    assert not any("s3cr3t" in line for line in lines), lines
