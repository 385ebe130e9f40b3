"""Schedule API under load: a dummy schedule against the seed's gunicorn line and against `scheduler-server serve`.

Prints requests/s and latency percentiles. Latency at concurrency 1 comes from a
Python client (one new connection per request, as gunicorn's sync worker closes
each); throughput comes from wrk (Debian package `wrk`) when it is installed,
otherwise from Python client processes. A second table opens connections that
stall mid-request (headers sent, one byte of a 100-byte body) and times one
ordinary request beside them.

    .venv/bin/python bench/bench_schedule_api.py [--seconds 10] [--server NAME ...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.sshd import free_port  # noqa: E402

BODY = json.dumps({"t0": "2022-01-01 12:00", "t1": "2022-01-01 14:00", "policy": '{"policy": "dummy", "config": {}}'})
BIN = Path(sys.executable).parent
SERVERS = {
    "gunicorn, 1 worker": ["gunicorn", "--bind", "localhost:{port}", "--workers", "1", "scheduler_server.app:app"],
    "gunicorn, 2 workers": ["gunicorn", "--bind", "localhost:{port}", "--workers", "2", "scheduler_server.app:app"],
    "serve (waitress)": ["scheduler-server", "serve", "--port", "{port}"],
    "serve --workers 2": ["scheduler-server", "serve", "--port", "{port}", "--workers", "2"],
}


def start_server(name: str, port: int, home: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_SERVER")}
    env.update(HOME=home, PATH=f"{BIN}:{env['PATH']}")
    # the access log would dominate the serve rows; gunicorn's line logs no accesses either
    env["SCHEDULER_SERVER__LOGGING__LEVEL"] = "WARNING"
    proc = subprocess.Popen(
        [arg.format(port=port) for arg in SERVERS[name]],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            one_request(port)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def stalled_probe(port: int, stalled: int) -> str:
    """Seconds one request takes beside ``stalled`` connections stuck mid-body (or 'no answer in 10 s')."""
    socks = []
    for _ in range(stalled):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"POST /api/v1/schedule/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        socks.append(sock)
    try:
        time.sleep(0.2)
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/api/v1/schedule/", BODY, {"Content-Type": "application/json"})
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return "no answer in 10 s"
        return f"{(time.perf_counter() - start) * 1000:.1f} ms ({status})"
    finally:
        for sock in socks:
            sock.close()


def one_request(port: int) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/api/v1/schedule/", BODY, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200 or b'"ok"' not in data:
        raise RuntimeError(f"bad answer {response.status}: {data[:200]!r}")
    return time.perf_counter() - start


def latency(port: int, seconds: float) -> list[float]:
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(one_request(port))
    return sorted(samples)


def pct(samples: list[float], p: float) -> float:
    return samples[min(len(samples) - 1, int(p / 100 * len(samples)))] * 1000


def wrk_throughput(port: int, seconds: float, connections: int) -> tuple[float, float, float]:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[{BODY}]]\n')
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/api/v1/schedule/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out and "connect 0, read 0, write 0, timeout 0" not in out:
        raise RuntimeError(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rps, ms("50"), ms("99")


def _client(port, seconds, queue):
    queue.put(latency(port, seconds))


def python_throughput(port: int, seconds: float, clients: int) -> tuple[float, float, float]:
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(port, seconds, queue)) for _ in range(clients)]
    for p in procs:
        p.start()
    samples = sorted(s for _ in procs for s in queue.get())
    for p in procs:
        p.join()
    return len(samples) / seconds, pct(samples, 50), pct(samples, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--server", action="append", choices=list(SERVERS), help="only these rows (repeatable)")
    args = parser.parse_args()
    rows, stalls = [], []
    home = tempfile.mkdtemp(prefix="bench-home-")
    for name in args.server or SERVERS:
        port = free_port()
        proc = start_server(name, port, home)
        if "--workers" in SERVERS[name]:
            time.sleep(3)  # the first worker answered; let the others finish starting too
        try:
            for _ in range(200):
                one_request(port)  # warm up
            seq = latency(port, args.seconds)
            rows.append((name, "python, sequential", 1, len(seq) / args.seconds, pct(seq, 50), pct(seq, 99)))
            if shutil.which("wrk"):
                for connections in (1, 2, 4):
                    rps, p50, p99 = wrk_throughput(port, args.seconds, connections)
                    rows.append((name, "wrk", connections, rps, p50, p99))
            else:
                rps, p50, p99 = python_throughput(port, args.seconds, 2)
                rows.append((name, "python, 2 processes", 2, rps, p50, p99))
            for stalled in (4, 50):
                stalls.append((name, stalled, stalled_probe(port, stalled)))
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"{'server':<20} | {'client':<20} | {'conc.':>5} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7}")
    print("-" * 84)
    for name, client, conc, rps, p50, p99 in rows:
        print(f"{name:<20} | {client:<20} | {conc:>5} | {rps:>8.0f} | {p50:>7.2f} | {p99:>7.2f}")
    print()
    print(f"{'server':<20} | {'stalled connections':>19} | one request beside them")
    print("-" * 72)
    for name, stalled, result in stalls:
        print(f"{name:<20} | {stalled:>19} | {result}")


if __name__ == "__main__":
    main()
