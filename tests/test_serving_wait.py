"""devtools.serving.wait_until_serving: a server that accepts but does not answer yet (a worker still
loading, a loaded machine) is "not yet", like one that refuses, until the deadline."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from devtools.serving import wait_until_serving


@pytest.fixture
def silent_server():
    """A loopback server that holds every connection unanswered until ``answer_after`` s have passed."""
    listener = socket.create_server(("127.0.0.1", 0))
    state = {"answer_after": float("inf"), "held": [], "stop": False}
    started = time.monotonic()

    def serve():
        listener.settimeout(0.1)
        while not state["stop"]:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            if time.monotonic() - started < state["answer_after"]:
                state["held"].append(connection)  # accepted, never answered
                continue
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", state
    state["stop"] = True
    thread.join()
    for connection in state["held"]:
        connection.close()
    listener.close()


@pytest.fixture
def process():
    made = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield made
    made.kill()
    made.wait()


def test_a_read_timeout_is_not_yet(silent_server, process, tmp_path):
    url, state = silent_server
    state["answer_after"] = 1.5
    wait_until_serving(url, process, tmp_path / "serve.log", timeout=10)
    assert state["held"], "at least one try was accepted and not answered (a ReadTimeout)"


def test_nothing_answering_by_the_deadline_is_one_clear_error(silent_server, process, tmp_path):
    url, _ = silent_server
    with pytest.raises(RuntimeError, match=r"did not answer .* within 1.5 s \(last: ReadTimeout\)"):
        wait_until_serving(url, process, tmp_path / "serve.log", timeout=1.5)
