"""`scheduler-server serve` keeps answering while clients stall mid-request, and drops them after request_timeout."""

from __future__ import annotations

import socket
import subprocess
import time

import requests

from devtools.sshd import free_port
from tests.e2e.conftest import wait_for_http

STALLED = 40  # far more than the 2 request threads configured below


def _serve(tmp_path, env, **server):
    port = free_port()
    config = tmp_path / "config.yaml"
    lines = "".join(f"  {key}: {value}\n" for key, value in server.items())
    config.write_text(f"data_dir: {tmp_path / 'data'}\nserver:\n{lines}")
    proc = subprocess.Popen(
        ["scheduler-server", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_http(f"http://127.0.0.1:{port}/", proc)
    return proc, port


def _stall(port: int, kind: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind == "body":  # whole headers, one byte of a 100-byte body
        sock.sendall(
            b"POST /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n["
        )
    elif kind == "headers":  # half a header block
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    elif kind == "chunked":  # a chunked body that never ends
        sock.sendall(b"POST /api/v1/schedule/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
    return sock  # "idle": connected, nothing sent


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_stalled_clients_neither_block_others_nor_stay_forever(tmp_path, isolated_env):
    proc, port = _serve(tmp_path, isolated_env, threads=2, request_timeout=2, idle_timeout=4)
    base = f"http://127.0.0.1:{port}"
    kinds = ["body", "headers", "chunked", "idle"]
    stalled = [(kinds[i % len(kinds)], _stall(port, kinds[i % len(kinds)])) for i in range(STALLED)]
    try:
        for _ in range(3):
            # a slowloris keeps its connections "active" (no idle timeout) with a byte now and then
            for kind, sock in stalled:
                if kind in ("body", "headers"):
                    sock.sendall(b"x")
            started = time.monotonic()
            health = requests.get(base + "/", timeout=5)
            body = {
                "t0": "2022-01-01 12:00",
                "t1": "2022-01-01 14:00",
                "policy": {"policy": "dummy", "config": {"seed": 1}},
            }
            schedule = requests.post(base + "/api/v1/schedule/", json=body, timeout=5)
            took = time.monotonic() - started
            assert health.status_code == 200 and schedule.status_code == 200
            assert took < 1.0, f"two requests took {took:.2f} s beside {STALLED} stalled connections"
            time.sleep(0.3)
        # Every stalled request is cut once request_timeout (2 s) has passed since its first byte;
        # the idle connections once idle_timeout (4 s) has.
        for kind, sock in stalled:
            assert _closed_by_server(sock, within=6.0), f"a stalled {kind!r} connection was left open"
        assert requests.get(base + "/", timeout=5).status_code == 200
    finally:
        for _, sock in stalled:
            sock.close()
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out[-2000:]
    assert "its request was not complete after 2 s" in out


def test_a_chunked_body_over_the_limit_is_refused_before_the_app(tmp_path, isolated_env):
    proc, port = _serve(tmp_path, isolated_env, max_body_bytes=2048)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        chunk = b'{"a": "' + b"x" * 4000 + b'"}'
        sock.sendall(
            b"POST /api/v1/schedule/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n0\r\n\r\n"
        )
        answer = sock.recv(65536).decode(errors="replace")
        sock.close()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        # Even a route that takes no body says so in the document, since the server refuses it first.
        big = requests.get(f"http://127.0.0.1:{port}/", data=b"x" * 4096, timeout=10)
        assert big.status_code == 413
        document = requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=10).json()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert "413" in operation["responses"], f"{method.upper()} {path} does not list 413"
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
