"""The pipeline seed's own experiment, scaled down 100x, on the OpenStack simulator.

The seed ran 10 pipelines with MAX_ACTIVE_PIPELINES 2 and VIRTUAL_SERVER_TTL 1
on servers that took ~240 s to boot and ~80 s to work, and measured ~1,660 s.
Scaled: boot 2.4 s, work 0.8 s, seed 16.6 s. With look-ahead provisioning the
floor is one boot plus five pipelines back to back per lane: 2.4 + 5 x 0.8 = 6.4 s.

Everything is real except the cloud: `scheduler-server serve` as its own
process, openstacksdk over HTTP to the simulator (its own process), one sshd
per server, the runner staging and running the script over SSH. The status
poll of booting servers is scaled down with the times (0.05 s instead of
seconds); poll_interval stays at its default (a job's end is heard, not polled).

The heat group runs the seed's row with ``provisioning: heat`` (each instance a stack
of the simulator's Orchestration API): on the simulator a stack costs what its server
costs, so the difference from the nova row is our own overhead (calls and polling).

Prints one table: scenario, makespan, floor, makespan / floor, servers (or stacks)
created, API requests the service made (and how many of them were status polls).

Usage: .venv/bin/python bench/bench_openstack.py [--only seed|large|heat]
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devtools.openstack_sim.process import SimProcess  # noqa: E402
from devtools.sshd import free_port, generate_keypair  # noqa: E402

BOOT, WORK = 2.4, 0.8
STARTUP = 2.0  # seconds given to the service to finish starting before the submission
SCRIPT = "#!/bin/bash\nsleep {work}\n"


def config(
    root: Path, sim: SimProcess, key: Path, *, max_active: int, ttl: int, max_instances: int | None, provisioning: str
) -> Path:
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "work.sh").write_text(SCRIPT.format(work=WORK))
    pipelines = {
        "backend": "openstack",
        "max_active_pipelines": max_active,
        "virtual_server_ttl": ttl,
        "max_instances": max_instances,
        "local_scripts_folder": str(scripts),
        "remote_base_folder": str(root / "remote"),
        "ssh_user": getpass.getuser(),
        "ssh_key_file": str(key),
        "connection_retry_interval": 0.2,
        "poll_interval": 0.5,
        "backend_threads": 32,
        "openstack": {
            "credentials_file": str(sim.openrc),
            "image_id": "ubuntu-22.04",
            "flavor": "m1.small",
            "network_id": "private",
            "auth_keyname": "bench",
            "ssh_port": sim.info["ssh_port"],
            "status_poll_interval": 0.05,
            "max_parallel_provisioning": 100,
            "provisioning": provisioning,
        },
    }
    path = root / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(root / "data"),
                "logging": {"level": os.environ.get("BENCH_LOG_LEVEL", "WARNING")},
                "pipelines": pipelines,
            }
        )
    )
    return path


def serve(config_path: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_SERVER", "OS_"))}
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "scheduler-server"), "serve", "--config", str(config_path), "--port", str(port)],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/pipeline", timeout=1).raise_for_status()
            # Let it finish starting (Keystone token, service catalog, image/flavor/network lookups,
            # reconciliation): a running service did that long before a burst of submissions.
            time.sleep(STARTUP)
            return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"service did not start; see {log}")


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def submit_and_wait(url: str, pipelines: int) -> list[int]:
    """Submit ``pipelines`` seed requests in one POST and wait until none is unfinished; their ids."""
    item = {
        "project": "p",
        "subject": "s",
        "session": "e",
        "host": "http://xnat",
        "user": "u",
        "pwd": "bench-secret",
        "script": "work.sh",
    }
    answer = requests.post(
        f"{url}/pipeline", json=[dict(item, session=f"e{n}") for n in range(pipelines)], timeout=30
    ).json()
    ids = [r["id"] for r in answer["content"]]
    deadline = time.monotonic() + 300
    # One light request per 0.25 s: polling every pipeline would load the 2 cores the run shares.
    unfinished = f"{url}/api/v1/pipelines?status=queued,provisioning,staging,running&limit=1"
    while requests.get(unfinished, timeout=10).json()["total"]:
        if time.monotonic() > deadline:
            raise RuntimeError("pipelines did not finish within 300 s")
        time.sleep(0.25)
    return ids


def scenario(
    root: Path,
    key: Path,
    *,
    pipelines: int,
    max_active: int,
    ttl: int,
    max_instances: int | None,
    provisioning: str = "nova",
) -> dict:
    root.mkdir(parents=True)
    with SimProcess(
        root / "sim",
        keypairs={"bench": key.with_suffix(".pub") if key.with_suffix(".pub").exists() else Path(str(key) + ".pub")},
        boot_delay=BOOT,
        max_servers=200,
        delete_delay=0.05,
    ) as sim:
        proc, url = serve(
            config(
                root, sim, key, max_active=max_active, ttl=ttl, max_instances=max_instances, provisioning=provisioning
            ),
            root / "service.log",
        )
        try:
            ids = submit_and_wait(url, pipelines)
            views = [requests.get(f"{url}/api/v1/pipelines/{i}", timeout=10).json() for i in ids]
            failed = [v for v in views if v["status"] != "succeeded"]
            if failed:
                raise RuntimeError(f"{len(failed)} pipeline(s) did not succeed: {failed[0]['reason']}")
            start = min(seconds(v["timings"]["queued"]) for v in views)
            end = max(seconds(v["timings"]["finished"]) for v in views)
            return {
                "makespan": end - start,
                "views": views,
                "start": start,
                **api_use(sim.requests_log(), provisioning),
            }
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def api_use(log: list[dict], provisioning: str) -> dict:
    """Servers (or stacks) created, the service's API requests, and how many of those were status polls."""
    made = "/stacks" if provisioning == "heat" else "/servers"
    polls = ("/stacks", "/stacks/") if provisioning == "heat" else ("/servers/detail", "/servers/")
    calls = [r for r in log if not r["path"].startswith("/_sim")]
    return {
        "servers": sum(1 for r in calls if r["method"] == "POST" and r["path"].endswith(made) and r["status"] < 300),
        "calls": len(calls),
        "polls": sum(1 for r in calls if r["method"] == "GET" and any(p in r["path"] for p in polls)),
    }


SCENARIOS = {
    "seed": [
        (
            "seed, TTL 1, MAX_INSTANCES default (TTL 1: 5 x 2 = 10)",
            dict(pipelines=10, max_active=2, ttl=1, max_instances=None),
            BOOT + 5 * WORK,
        ),
        ("seed, TTL 1, MAX_INSTANCES 3 (active + 1)", dict(pipelines=10, max_active=2, ttl=1, max_instances=3), None),
        ("seed, TTL 1, MAX_INSTANCES 8", dict(pipelines=10, max_active=2, ttl=1, max_instances=8), BOOT + 5 * WORK),
        ("seed, TTL 10, MAX_INSTANCES 2", dict(pipelines=10, max_active=2, ttl=10, max_instances=2), BOOT + 5 * WORK),
    ],
    "heat": [
        (
            "heat, seed, TTL 1, MAX_INSTANCES default",
            dict(pipelines=10, max_active=2, ttl=1, max_instances=None, provisioning="heat"),
            BOOT + 5 * WORK,
        ),
    ],
    "large": [
        (
            "100 pipelines, 20 servers, TTL 5",
            dict(pipelines=100, max_active=20, ttl=5, max_instances=20),
            BOOT + 5 * WORK,
        ),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="run one group of scenarios")
    args = parser.parse_args()
    groups = [args.only] if args.only else list(SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="bench-openstack-") as tmp:
        key = generate_keypair(Path(tmp) / "id_ed25519")
        print(f"boot {BOOT} s, work {WORK} s; the seed measured 16.6 s (scaled) for its 10 pipelines\n")
        print(f"{'scenario':<44} {'makespan':>9} {'floor':>7} {'ratio':>6} {'servers':>8} {'calls (polls)':>14}")
        for n, (name, params, floor) in enumerate(s for g in groups for s in SCENARIOS[g]):
            result = scenario(Path(tmp) / f"run{n}", key, **params)
            floor_text = f"{floor:6.1f}s" if floor else "      -"
            ratio = f"{result['makespan'] / floor:6.2f}" if floor else "     -"
            use = f"{result['calls']} ({result['polls']})"
            print(
                f"{name:<44} {result['makespan']:8.2f}s {floor_text} {ratio} {result['servers']:8d} {use:>14}",
                flush=True,
            )


if __name__ == "__main__":
    main()
