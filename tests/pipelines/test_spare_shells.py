"""Local launches through shells started ahead of time (clouds/local/spare_shells.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler_server.pipelines.clouds.local.backend import LocalBackend, LocalExecutor
from scheduler_server.pipelines.clouds.local.spare_shells import SpareShells
from scheduler_server.pipelines.jobdir import render_run_script
from scheduler_server.pipelines.tasks import SECRET, Command

from .conftest import wait_until


def _job(tmp_path: Path, name: str) -> Path:
    job = tmp_path / "sandbox" / name
    job.mkdir(parents=True)
    # XNAT_CREDENTIALS: env: the secret reaches the script in its environment, in no argv at all.
    probe = 'echo "$$ $PPID $PW $1" > seen; cat /proc/$PPID/cmdline /proc/$$/cmdline | tr "\\0" " " > argvs; sleep 30\n'
    (job / "probe.sh").write_text(probe)
    command = Command(argv=["x y"], env={"PW": SECRET})
    (job / "run.sh").write_text(render_run_script("probe.sh", command))
    return job


def test_a_spare_runs_run_sh_as_a_fresh_launch_would_and_keeps_the_secret_off_argv(tmp_path):
    spares = SpareShells(lambda: {"PATH": os.environ["PATH"]}, keep=1)
    spares.refill()
    executor = LocalExecutor(tmp_path / "sandbox", spares)
    job = _job(tmp_path, "job-1-1")
    try:
        ready = spares._spares[0].pid
        pid = executor.launch_detached(str(job), "run.sh", b"s3cret-pw\n")
        assert pid == ready  # the shell made ahead ran it
        wait_until(lambda: (job / "seen").exists() and (job / "argvs").exists(), message="script started")
        assert int((job / "pid").read_text()) == pid and os.getpgid(pid) == pid and os.getsid(pid) == pid
        assert os.readlink(f"/proc/{pid}/cwd") == str(job.resolve())  # what the status check looks at
        _, parent, secret, last = (job / "seen").read_text().split(" ", 3)
        assert int(parent) == pid and secret == "s3cret-pw" and last.strip() == "x y"
        assert "s3cret-pw" not in (job / "argvs").read_text()
        with pytest.raises(FileExistsError):  # exactly once
            executor.launch_detached(str(job), "run.sh", b"again\n")
        wait_until(lambda: len(spares._spares) == 1, message="a new spare")
    finally:
        os.killpg(int((job / "pid").read_text()), 9)
        spares.close()


def test_without_a_spare_ready_a_launch_starts_a_shell_and_unused_spares_exit_on_close(tmp_path):
    spares = SpareShells(lambda: {"PATH": os.environ["PATH"]}, keep=2)
    job = _job(tmp_path, "job-2-1")
    pid = LocalExecutor(tmp_path / "sandbox", spares).launch_detached(str(job), "run.sh", b"\n")
    try:
        wait_until(lambda: (job / "seen").exists(), message="script started")
        wait_until(lambda: len(spares._spares) == 2, message="spares refilled")
        waiting = list(spares._spares)
        spares.close()
        assert all(spare.poll() == 0 for spare in waiting)  # read EOF, ran nothing
    finally:
        os.killpg(pid, 9)


def test_the_local_backend_closes_its_spares(tmp_path):
    from scheduler_server.pipelines.settings import PipelineSettings

    backend = LocalBackend(PipelineSettings(), scheduler_id="t", data_dir=tmp_path)
    backend._spares.refill()
    spares = list(backend._spares._spares)
    assert spares
    backend.close()
    assert all(spare.poll() is not None for spare in spares)
