"""Exactly once on SSH hosts: a launch cut at each step, and a host that goes away and comes back.

A fault-injecting TCP proxy (devtools/tcp_faults.py) sits between the service and a
real sshd. Each counted script appends ``run`` to a file outside its job directory
when it starts and ``done`` when it ends, so the file says how often it ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from devtools.sshd import SSHD
from devtools.tcp_faults import FaultyProxy
from scheduler_server.pipelines.models import RUNNING, SUCCEEDED, AbandonedAttempt

from .conftest import script, submit_ok, wait_status, wait_until

pytestmark = pytest.mark.skipif(
    not Path(SSHD).exists(), reason=f"{SSHD} missing: run scripts/setup.sh test (installs openssh-server)"
)

COUNTED = 'echo "run $PWD" >> "$1"\nsleep "$2"\necho "done $PWD" >> "$1"\n'


def abandoned(service) -> list[AbandonedAttempt]:
    """The attempts given up on while they may still run, as the database holds them for the reaper."""
    with service.store.read() as session:
        return list(session.scalars(select(AbandonedAttempt).order_by(AbandonedAttempt.id)))


@pytest.fixture
def proxy(sshd):
    made = FaultyProxy(sshd.host, sshd.port)
    yield made
    made.close()


@pytest.fixture
def counted(scripts, tmp_path):
    (scripts / "counted.sh").write_text(COUNTED)
    (scripts / "big.bin").write_bytes(os.urandom(300_000))  # several SSH packets: a launch message can be cut inside
    return tmp_path / "runs"


def host(address: str, port: int, sshd, key, slots: int) -> dict:
    return {"address": address, "port": port, "user": sshd.user, "key_file": str(key), "slots": slots}


def runs(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if line.startswith("run ")], [line for line in lines if line.startswith("done ")]


def working_in(base: Path) -> list[int]:
    """Processes whose working directory is under ``base`` (job directories)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == str(base) or cwd.startswith(str(base) + "/"):
                found.append(int(proc.name))
    return found


def slot_of(service, pipeline) -> str:
    """The ssh host slot (``address:port/n``) a pipeline's instance is."""
    return service.pool.get(pipeline.instance_id).info["id"]


def prepared_executor(service):
    """The host's executor once the warm-up left a launcher session waiting for the next job."""
    (executor,) = service.backend._executors.values()
    wait_until(lambda: executor._launcher is not None, message="a launcher prepared ahead")
    time.sleep(0.3)  # the warm-up's last exchanges (its launcher's end, the log copy) are over
    return executor


# (how the proxy cuts, with a big file in the job?, the attempt that runs it)
LAUNCH_CUTS = {
    # The launch message never arrives: the job directory says "not started", the same attempt launches again.
    "before the message": (("up", 0, None), False, 1),
    # Part of the message arrives: launched is claimed, the archive is incomplete, nothing starts; the
    # attempt is lost (never ran) and the next one runs it.
    "inside the message": (("up", 100_000, None), True, 2),
    # The message arrives and the job starts, but the pid never comes back: re-attached from its directory.
    "before the pid answer": (("down", 0, None), False, 1),
    # The pid arrives, then the connection goes (the launcher's end is never heard): polls find the end.
    "after the pid answer": (("down", None, 1), False, 1),
}


@pytest.mark.parametrize("case", list(LAUNCH_CUTS))
def test_a_launch_cut_at_each_step_runs_the_script_exactly_once(
    case, make_service, proxy, sshd, key, tmp_path, counted
):
    (direction, after_bytes, chunks), big, attempt = LAUNCH_CUTS[case]
    remote = tmp_path / "remote"
    service = make_service(
        backend="ssh",
        ssh_hosts=[host(proxy.host, proxy.port, sshd, key, slots=2)],
        remote_base_folder=str(remote),
        virtual_server_ttl=10,
        max_active_pipelines=1,
    )
    (warm_up,) = submit_ok(service, script("ok.sh"))
    wait_status(service, warm_up, SUCCEEDED)
    prepared_executor(service)

    proxy.cut(direction, after_bytes, chunks)
    item = script("counted.sh", str(counted), "1", files=["big.bin"] if big else [])
    (pipeline_id,) = submit_ok(service, item)
    done = wait_status(service, pipeline_id, ("succeeded", "failed", "cancelled"), timeout=40)

    assert proxy.cuts == 1, "the cut happened"
    started, ended = runs(counted)
    assert (done.status, len(started), len(ended)) == (SUCCEEDED, 1, 1), (done.reason, started, ended)
    assert done.attempt == attempt, service.store.get_pipeline(pipeline_id, with_history=True).transitions
    assert started[0].endswith(f"/job-{pipeline_id}-{attempt}")
    wait_until(lambda: not working_in(remote), message="nothing left running in a job directory")
    wait_until(lambda: abandoned(service) == [], message="the ended attempt's directory removed, its note with it")


def test_a_host_that_goes_away_is_given_up_and_its_job_killed_when_it_answers_again(
    make_service, make_settings, proxy, sshd, key, tmp_path, counted
):
    """The job's host stops answering past the retry window: the pipeline runs again on another host.
    The first run must never finish and never count; the service is restarted meanwhile, and the new
    one still stops the first run as soon as its host answers again."""
    remote = tmp_path / "remote"
    settings = dict(
        backend="ssh",
        remote_base_folder=str(remote),
        max_active_pipelines=1,
        max_attempts=3,
        # "away" is the proxy, "other" the same sshd directly: two hosts as the service sees them.
        ssh_hosts=[host(proxy.host, proxy.port, sshd, key, slots=1), host(sshd.host, sshd.port, sshd, key, slots=1)],
    )
    service = make_service(**settings)
    (pipeline_id,) = submit_ok(service, script("counted.sh", str(counted), "6"))
    wait_until(lambda: len(runs(counted)[0]) == 1, timeout=20, message="the first run started")
    first = service.store.get_pipeline(pipeline_id)
    assert slot_of(service, first).startswith(f"{proxy.host}:{proxy.port}/")

    proxy.go_away()
    wait_until(lambda: len(runs(counted)[0]) == 2, timeout=20, message="the second run started")
    second = wait_status(service, pipeline_id, RUNNING)
    assert second.attempt == 2 and slot_of(service, second).startswith(f"{sshd.host}:{sshd.port}/")
    (row,) = abandoned(service)
    assert (row.pipeline_id, row.attempt, row.job_dir) == (pipeline_id, 1, first.job_dir)

    # A late word from the given-up attempt changes nothing.
    service.attempts.finish(pipeline_id, 0, attempt=1)
    assert service.store.get_pipeline(pipeline_id).status == RUNNING

    service.close()  # what was given up is in the database, not only in this process
    service = make_service(**settings)
    proxy.come_back()
    first_dir = Path(first.job_dir)
    wait_until(lambda: not abandoned(service), timeout=20, message="the given-up attempt stopped")
    assert not first_dir.exists()
    assert [pid for pid in working_in(remote) if Path(os.readlink(f"/proc/{pid}/cwd")) == first_dir] == []

    done = wait_status(service, pipeline_id, ("succeeded", "failed"), timeout=30)
    started, ended = runs(counted)
    assert done.status == SUCCEEDED and done.attempt == 2
    assert len(started) == 2 and ended == [f"done {second.job_dir}"], (started, ended)
    wait_until(lambda: not working_in(remote), message="nothing left running in a job directory")


def test_a_cancel_that_cannot_reach_the_host_stops_the_job_when_the_host_answers(
    make_service, proxy, sshd, key, tmp_path, counted
):
    remote = tmp_path / "remote"
    service = make_service(
        backend="ssh", ssh_hosts=[host(proxy.host, proxy.port, sshd, key, slots=1)], remote_base_folder=str(remote)
    )
    (pipeline_id,) = submit_ok(service, script("counted.sh", str(counted), "30"))
    wait_until(lambda: len(runs(counted)[0]) == 1, timeout=20, message="the run started")
    job_dir = Path(service.store.get_pipeline(pipeline_id).job_dir)

    proxy.go_away()
    service.cancel(pipeline_id)
    assert wait_status(service, pipeline_id, ("cancelled", "failed")).status == "cancelled"
    (row,) = abandoned(service)
    assert row.job_dir == str(job_dir) and working_in(remote), "still running while its host is away"

    proxy.come_back()
    wait_until(lambda: not abandoned(service), timeout=20, message="the cancelled job stopped")
    wait_until(lambda: not working_in(remote), message="nothing left running in a job directory")
    assert not job_dir.exists() and runs(counted)[1] == []


def test_a_launch_cut_inside_the_secret_starts_nothing(sshd, key, tmp_path):
    """The launcher's stdin ends before the secret line does (the connection went mid-message): the
    job must not run with part of a password; its directory then says "lost", not "running"."""
    from scheduler_server.pipelines import jobdir as runner
    from scheduler_server.pipelines.clouds.ssh_transport.executor import SSHExecutor

    job = tmp_path / "job"
    job.mkdir()
    (job / "run.sh").write_text('IFS= read -r s; echo "ran with $s" > ../ran\n')
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key, relaunch_ahead=False)
    try:
        channel = executor._open_launcher()  # the waiting launcher: <dir>\0<script>\0<size>\0<watch>\0, then the secret
        channel.sendall(str(job).encode() + b"\0run.sh\x000\x000\0" + b"half-a-pass")
        channel.shutdown_write()  # what sshd does to its stdin when the connection drops
        assert channel.recv_exit_status() == 96
        channel.close()
        assert runner.status(executor, str(job)).state == "lost"
    finally:
        executor.close()
    time.sleep(0.2)
    assert not (tmp_path / "ran").exists() and not (job / "pid").exists()
