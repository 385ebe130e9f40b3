"""Hostile and careless inputs against a real server: a clear 4xx naming the field, never a 5xx.

The probes of issue 10, item 5 (the client-mistake part), against
`scheduler-server serve` and, for bodies without a Content-Length, also the
seed's plain gunicorn line (which hands chunked bodies to the application).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devtools.sshd import free_port
from tests.pipelines.server import ServeProcess, clean_env

TOKEN = "inputs-token"
MAX_BODY = 64 * 1024
JSON_ROUTES = [
    ("post", "/api/v1/schedule/"),
    ("post", "/pipeline"),
    ("post", "/api/v1/pipelines"),
    ("get", "/pipeline"),
]


def _config(home: Path) -> Path:
    scripts = home / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "ok.sh").write_text("echo ok\n")
    (home / "tokens").write_text(TOKEN + "\n")
    config = home / "config.yaml"
    config.write_text(
        f"data_dir: {home / 'data'}\nserver:\n  max_body_bytes: {MAX_BODY}\n"
        f"pipelines:\n  local_scripts_folder: {scripts}\n  tokens_file: {home / 'tokens'}\n"
    )
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("inputs")
    serve = ServeProcess(home, _config(home)).start()
    try:
        yield serve.url
    finally:
        serve.stop()


@pytest.fixture(scope="module")
def seed_gunicorn(tmp_path_factory):
    """The seed's launch line, configured through $SCHEDULER_SERVER_CONFIG."""
    home = tmp_path_factory.mktemp("inputs-gunicorn")
    env = {**clean_env(home), "SCHEDULER_SERVER_CONFIG": str(_config(home))}
    port = free_port()
    log = open(home / "gunicorn.log", "ab")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "scheduler_server.app:app"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        from tests.waiting import wait_until

        wait_until(lambda: _answers(url), timeout=30, message="gunicorn")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/", timeout=5)
        return True
    except requests.RequestException:
        return False


def call(url: str, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return requests.request(method, url + path, headers=headers, timeout=30, **kwargs)


def message(response: requests.Response) -> str:
    body = response.json()
    return body.get("message") or body.get("content")


BIG = str(2**63)


@pytest.mark.parametrize(
    "path, field",
    [
        (f"/api/v1/pipelines?offset={BIG}", "offset"),
        (f"/api/v1/pipelines?limit={BIG}", "limit"),
        ("/api/v1/pipelines?offset=" + "9" * 5000, "offset"),
        (f"/api/v1/pipelines/{BIG}", "id"),
        ("/api/v1/pipelines/" + "9" * 5000, "id"),
        (f"/api/v1/pipelines/1/logs?since={BIG}", "since"),
        (f"/api/v1/pipelines/1/logs?max_bytes={BIG}", "max_bytes"),
        ("/api/v1/pipelines/%C2%B3", "id"),  # '³'.isdigit() is True, int('³') fails
        ("/api/v1/pipelines/%D9%A3", "id"),  # Arabic-Indic 3 used to fetch pipeline 3
        ("/api/v1/pipelines/%EF%BC%93", "id"),  # full-width 3
        ("/api/v1/pipelines/0", "id"),
        ("/api/v1/pipelines/1/logs?since=%D9%A3", "since"),
        ("/api/v1/pipelines?offset=%2B5", "offset"),
        ("/api/v1/pipelines?status=anything", "status"),
        ("/api/v1/pipelines?status=queued,", "status"),
    ],
)
def test_numbers_and_filters_in_paths_and_queries_get_400_naming_the_field(server, path, field):
    r = call(server, "get", path)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["field"] == field and message(r).startswith(f"{field}: ")


def test_seed_ids_out_of_range_are_400_or_match_nothing(server):
    assert call(server, "get", f"/pipeline?id={BIG}").status_code == 400
    assert call(server, "get", "/pipeline?id=%D9%A3").status_code == 400
    r = call(server, "get", "/pipeline?id=9999999999")  # 10 digits, above the id range: no such pipeline
    assert r.status_code == 200 and r.json()["content"] == []
    r = call(server, "get", "/pipeline", json={"id": 2**63})
    assert r.status_code == 400 and "not a pipeline id" in message(r)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**31, "5", True, 5.5])
@pytest.mark.parametrize("path", ["/pipeline", "/api/v1/pipelines"])
def test_priority_is_a_strict_bounded_integer(server, path, value):
    r = call(server, "post", path, json={"type": "script", "script": "ok.sh", "priority": value})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "priority"


def test_integral_float_is_an_integer_as_json_schema_says(server):
    r = call(server, "post", "/api/v1/pipelines", json={"type": "script", "script": "ok.sh", "priority": 5.0})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("method, path", JSON_ROUTES)
def test_a_5000_digit_integer_is_400_not_500(server, method, path):
    r = call(
        server, method, path, data='{"priority": ' + "1" * 5000 + "}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "digits" in message(r)


@pytest.mark.parametrize("method, path", JSON_ROUTES)
def test_deep_nesting_is_400_on_every_json_route(server, method, path):
    r = call(server, method, path, data="[" * 10_000 + "]" * 10_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested deeper" in message(r)


def test_deep_nesting_inside_a_policy_string_is_400(server):
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00", "policy": "[" * 10_000}
    r = call(server, "post", "/api/v1/schedule/", json=body)
    assert r.status_code == 400 and r.json()["field"] == "policy"


@pytest.mark.parametrize("method, path", JSON_ROUTES[:3])
def test_nan_and_infinity_are_not_json(server, method, path):
    r = call(server, method, path, data='{"x": NaN, "y": -Infinity}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in message(r)


@pytest.mark.parametrize("path", ["/pipeline", "/api/v1/pipelines"])
def test_an_empty_list_is_refused_as_the_document_says(server, path):
    r = call(server, "post", path, json=[])
    assert r.status_code == 400
    doc = requests.get(server + "/api/v1/openapi.json", timeout=10).json()
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    lists = [s for s in doc["components"]["schemas"][body]["anyOf"] if s.get("type") == "array"]
    assert lists and lists[0]["minItems"] == 1


def test_schedule_policy_empty_string_and_time_forms(server):
    base = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00"}
    r = call(server, "post", "/api/v1/schedule/", json={**base, "policy": ""})
    assert r.status_code == 400 and r.json()["field"] == "policy"
    r = call(
        server,
        "post",
        "/api/v1/schedule/",
        json={**base, "t0": "0001-01-01 00:00+01:00", "policy": {"policy": "dummy"}},
    )
    assert r.status_code == 400 and r.json()["field"] == "t0"  # OverflowError once
    doc = requests.get(server + "/api/v1/openapi.json", timeout=10).json()
    spec = doc["components"]["schemas"]["PolicySpec"]["properties"]["policy"]
    assert set(spec["enum"]) >= {"dummy", "basic"}


def test_file_names_the_file_system_cannot_look_up_are_400(server):
    r = call(server, "post", "/api/v1/pipelines", json={"type": "script", "script": "ok.sh", "files": ["0" * 1000]})
    assert r.status_code == 400 and r.json()["field"] == "files.0"


def _chunked(url: str, path: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length), in 8 KiB chunks; (status, answer body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            for start in range(0, len(body), 8192):
                part = body[start : start + 8192]
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered 413 and closed before reading the rest
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


VALID = b'{"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00", "policy": {"policy": "dummy"}}'


@pytest.mark.parametrize("which", ["server", "seed_gunicorn"])
def test_chunked_body_over_the_limit_is_413_not_cut_and_parsed(request, which):
    url = request.getfixturevalue(which)
    # Valid JSON up to the limit, garbage after it: a server that cuts at the limit would answer 200.
    padded = VALID + b" " * (MAX_BODY - len(VALID)) + b"garbage" * 2000
    status, _ = _chunked(url, "/api/v1/schedule/", padded)
    assert status == 413
    status, answer = _chunked(url, "/api/v1/schedule/", VALID)
    assert status == 200 and b'"status":"ok"' in answer.replace(b" ", b"")
    status, _ = _chunked(
        url, "/api/v1/pipelines", b'{"type": "script", "script": "ok.sh", "args": ["' + b"a" * MAX_BODY + b'"]}'
    )
    assert status == 413


def test_seed_gunicorn_line_refuses_the_same_integers(seed_gunicorn):
    assert call(seed_gunicorn, "get", "/api/v1/pipelines/%C2%B3").status_code == 400
    assert call(seed_gunicorn, "get", f"/api/v1/pipelines?offset={BIG}").status_code == 400


def test_request_id_header_is_echoed_only_when_ascii(server):
    # WSGI hands headers over as latin-1 text: 'ª' (0xAA) is alphanumeric to str.isalnum but not ASCII.
    assert (
        requests.get(server + "/", headers={"X-Request-ID": "abc123"}, timeout=10).headers["X-Request-ID"] == "abc123"
    )
    echoed = requests.get(server + "/", headers={"X-Request-ID": "ab\xaa"}, timeout=10).headers["X-Request-ID"]
    assert echoed != "ab\xaa" and echoed.isascii() and echoed.isalnum()


@pytest.mark.parametrize(
    "method, path, style",
    [
        ("get", "/pipeline?foo=1", "seed"),
        ("get", "/api/v1/pipelines/1?sort=id", "rest"),
        ("post", "/api/v1/schedule/?debug=1", "rest"),
        ("get", "/api/v1/policies?x=", "rest"),
        ("get", "/?verbose=1", "rest"),
    ],
)
def test_a_query_parameter_the_document_does_not_list_is_400(server, method, path, style):
    r = call(server, method, path)
    assert r.status_code == 400, r.text
    assert "unknown query parameter" in message(r)
    assert ("request" in r.json()) == (style == "seed")


def test_documented_query_parameters_are_taken(server):
    assert call(server, "get", f"/pipeline?token={TOKEN}&id=1", headers={"Authorization": ""}).status_code == 200
    assert call(server, "delete", "/instance?dry_run=true&all=false").status_code == 200


def test_project_filter_takes_no_control_characters(server):
    # PostgreSQL refuses a NUL inside a query parameter: it must not get that far.
    r = call(server, "get", "/api/v1/pipelines?project=a%00b")
    assert r.status_code == 400 and r.json()["field"] == "project"
    assert call(server, "get", "/api/v1/pipelines?project=" + "p" * 256).status_code == 400
    assert call(server, "get", "/api/v1/pipelines?project=lab%20one").status_code == 200


def test_instance_ids_in_paths_are_plain_text_within_the_column(server):
    r = call(server, "delete", "/api/v1/instances/a%00b")
    assert r.status_code == 400 and r.json()["field"] == "id"
    assert call(server, "delete", "/api/v1/instances/" + "i" * 256).status_code == 400
    assert call(server, "delete", "/api/v1/instances/no-such-instance").status_code == 404


def test_oversized_body_answer_is_one_the_document_lists(server):
    r = call(
        server,
        "post",
        "/api/v1/pipelines",
        data=b"[" + b" " * MAX_BODY + b"]",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    doc = requests.get(server + "/api/v1/openapi.json", timeout=10).json()
    listed = doc["paths"]["/api/v1/pipelines"]["post"]["responses"]["413"]["content"]
    assert r.headers["Content-Type"].split(";")[0] in listed
