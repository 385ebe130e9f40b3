"""The ssh backend and SSHExecutor against a real OpenSSH server on a loopback port."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from devtools.sshd import SSHD
from scheduler_server.pipelines.backend_errors import InstanceUnreachable
from scheduler_server.pipelines.clouds.ssh_transport import tcp as ssh_socket
from scheduler_server.pipelines.clouds.ssh_transport.executor import SSHExecutor
from scheduler_server.pipelines.models import FINAL_STATES

from .conftest import script, submit_ok, wait_status, wait_until, xnat

pytestmark = pytest.mark.skipif(
    not Path(SSHD).exists(), reason=f"{SSHD} missing: run scripts/setup.sh test (installs openssh-server)"
)


@pytest.fixture
def ssh_settings(sshd, key, tmp_path):
    remote = tmp_path / "remote"  # absolute REMOTE_BASE_FOLDER keeps the test out of the real home
    return {
        "backend": "ssh",
        "ssh_hosts": [{"address": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(key), "slots": 2}],
        "remote_base_folder": str(remote),
        "max_active_pipelines": 4,
    }


def test_executor_commands_and_files(sshd, key, tmp_path):
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key)
    try:
        result = executor.run("cat; echo out; echo err >&2; exit 7", stdin=b"in\n")
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"in\nout\n", b"err\n")
        target = str(tmp_path / "deep" / "dir" / "file.bin")
        executor.write_file(target, b"0123456789", 0o600)
        assert executor.read_file(target, offset=4, max_bytes=3) == b"456"
        assert oct(os.stat(target).st_mode & 0o777) == "0o600"
        local = tmp_path / "local.sh"
        local.write_text("echo uploaded\n")
        executor.upload(local, str(tmp_path / "up" / "x.sh"), 0o755)
        assert executor.run(f"bash {tmp_path}/up/x.sh").stdout == b"uploaded\n"
        with pytest.raises(FileNotFoundError):
            executor.read_file(str(tmp_path / "absent"))
        executor.remove_tree(str(tmp_path / "deep"))
        assert not (tmp_path / "deep").exists()
        with pytest.raises(InstanceUnreachable):
            executor.run("sleep 5", timeout=0.5)
    finally:
        executor.close()


def test_run_returns_all_output_and_does_not_wait_long_for_a_lingering_child(sshd, key):
    """Output is read to EOF (sshd may send the exit status before the last output), but a
    background child that keeps stdout open does not hold the call beyond a short grace."""
    import time

    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key)
    try:
        for _ in range(20):
            result = executor.run("head -c 200000 /dev/zero; echo $$")
            assert len(result.stdout) > 200000 and result.stdout.strip(b"\0\n").isdigit()
        started = time.monotonic()
        result = executor.run("sleep 30 & echo $!", timeout=20)
        assert result.ok and result.text().strip().isdigit() and time.monotonic() - started < 5
        executor.run(f"kill {result.text().strip()}")
    finally:
        executor.close()


def test_launch_detached_is_exactly_once_and_outlives_the_connection(sshd, key, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "run.sh").write_text('IFS= read -r s; echo "$s" > got; sleep 30\n')
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key)
    pid = executor.launch_detached(str(job), "run.sh", b"from-stdin\n")
    executor.close()  # the connection goes; the process stays
    wait_until(
        lambda: (job / "got").exists() and (job / "got").read_text() == "from-stdin\n", message="stdin delivered"
    )
    assert int((job / "pid").read_text()) == pid and os.getpgid(pid) == pid
    with pytest.raises(FileExistsError):
        SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key).launch_detached(str(job), "run.sh", b"\n")
    os.killpg(pid, 9)


def test_a_launcher_prepared_ahead_launches_once_with_the_secret_only_on_stdin(sshd, key, tmp_path):
    job = tmp_path / "job $(id) 'q'"  # the directory travels on stdin, NUL-terminated: any name works
    job.mkdir()
    (job / "run.sh").write_text('IFS= read -r s; echo "$s" > got; sleep 30\n')
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key, relaunch_ahead=False)
    try:
        executor.prepare_launcher()
        waiting = executor._launcher
        pid = executor.launch_detached(str(job), "run.sh", b"pw-on-stdin\n")
        assert (
            executor._launcher is None and waiting.active
        )  # the prepared session did the launch and now waits for its end
        wait_until(
            lambda: (job / "got").exists() and (job / "got").read_text() == "pw-on-stdin\n", message="stdin delivered"
        )
        assert int((job / "pid").read_text()) == pid and os.getpgid(pid) == pid
        for proc in Path("/proc").iterdir():  # in no command line on the host
            if proc.name.isdigit():
                try:
                    assert b"pw-on-stdin" not in (proc / "cmdline").read_bytes()
                except OSError:
                    continue
        executor.prepare_launcher()
        with pytest.raises(FileExistsError):  # exactly once, through a prepared launcher too
            executor.launch_detached(str(job), "run.sh", b"\n")
        os.killpg(pid, 9)
    finally:
        executor.close()


def test_a_launch_refills_the_prepared_launcher_and_close_ends_it(sshd, key, tmp_path):
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key)
    jobs = []
    try:
        for n in range(2):
            job = tmp_path / f"job-{n}"
            job.mkdir()
            (job / "run.sh").write_text("echo ran > out\n")
            jobs.append(job)
            executor.launch_detached(str(job), "run.sh", b"\n")
            wait_until(lambda: executor._launcher is not None, message="a launcher prepared for the next job")
        wait_until(lambda: all((j / "out").exists() for j in jobs), message="both ran")
    finally:
        executor.close()
    assert executor._launcher is None
    with pytest.raises(InstanceUnreachable):
        executor.prepare_launcher()


def test_unreachable_host_raises(key):
    executor = SSHExecutor("127.0.0.1", 1, "nobody", key_file=key, connect_timeout=2)
    with pytest.raises(InstanceUnreachable):
        executor.run("true")


def _exchange(client, server):
    """The server speaks first, then the client answers: the pattern after SSH authentication."""
    for _ in range(5):  # Linux goes into delayed-ACK ("pingpong") mode after 1 or 3 such turns, by version
        server.sendall(b"x" * 100)
        client.recv(100)
        client.send(b"y" * 10)
        server.recv(10)


def test_the_ssh_socket_acks_promptly_where_a_plain_one_would_delay(tmp_path):
    # The suite runs on Linux only (Debian packages, sshd), where TCP_QUICKACK exists.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        plain = socket.create_connection(("127.0.0.1", port))
        peer, _ = listener.accept()
        _exchange(plain, peer)
        # The control: after answering, Linux delays its next ACK (what sshd's replies waited for).
        assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
        plain.close(), peer.close()
        tuned = ssh_socket.connect("127.0.0.1", port, timeout=5)
        peer, _ = listener.accept()
        assert tuned.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # before any SSH byte
        _exchange(tuned, peer)
        assert tuned.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
        tuned.close(), peer.close()


def test_ssh_connections_use_the_tuned_socket(sshd, key):
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key)
    try:
        assert executor.run("true").exit_code == 0
        sock = executor._transport().sock
        assert isinstance(sock, ssh_socket.PromptAckSocket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        executor.close()


def test_pipelines_run_over_ssh(make_service, ssh_settings):
    service = make_service(**ssh_settings, xnat_credentials="env")
    hostile = "$(id); `id` 'quoted' \"double\""
    ids = submit_ok(service, xnat(script="args.sh", subject=hostile), xnat(script="fail.sh"))
    ok, failed = [wait_status(service, pid, FINAL_STATES) for pid in ids]
    assert ok.status == "succeeded", ok.reason
    args = service.logs(ids[0], "stdout", 0, 1 << 16).data.split("\n")
    assert args[args.index("-subject") + 1] == hostile and "-pwd" not in args
    assert (failed.status, failed.exit_code) == ("failed", 3)
    assert ok.instance_id and service.pool.get(ok.instance_id).info["address"] == "127.0.0.1"


def test_slots_bound_concurrency(make_service, ssh_settings, scripts, tmp_path):
    live, peak = tmp_path / "live", tmp_path / "peak"
    live.mkdir()
    (scripts / "count.sh").write_text(f"touch {live}/$$; ls {live} | wc -l >> {peak}; sleep 0.5; rm {live}/$$\n")
    service = make_service(**ssh_settings, virtual_server_ttl=10)
    ids = submit_ok(service, *[script("count.sh") for _ in range(5)])
    assert all(wait_status(service, pid, FINAL_STATES, timeout=60).status == "succeeded" for pid in ids)
    assert max(int(n) for n in peak.read_text().split()) == 2  # two slots, although four may be active


def test_cancel_kills_the_remote_process_group(make_service, ssh_settings, scripts, tmp_path):
    pids = tmp_path / "pids"
    (scripts / "tree.sh").write_text(f"sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait\n")
    service = make_service(**ssh_settings)
    (pid,) = submit_ok(service, script("tree.sh"))
    wait_status(service, pid, "running")
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, message="processes")
    service.cancel(pid)
    assert wait_status(service, pid, FINAL_STATES).status == "cancelled"

    def gone(p):
        try:
            os.kill(p, 0)
        except ProcessLookupError:
            return True
        return open(f"/proc/{p}/stat").read().split()[2] == "Z"

    wait_until(lambda: all(gone(int(p)) for p in pids.read_text().split()), message="remote processes killed")


def test_restarted_service_reattaches_over_ssh(make_settings, ssh_settings, scripts, tmp_path):
    from scheduler_server.pipelines.service import PipelineService

    marker = tmp_path / "marker"
    (scripts / "once.sh").write_text(f"echo ran >> {marker}; sleep 1.5\n")
    settings = make_settings(**ssh_settings)
    first = PipelineService(settings.pipelines, settings.data_path)
    first.ensure_started()
    (pid,) = submit_ok(first, script("once.sh"))
    wait_status(first, pid, "running")
    first.close()  # the service goes away; the script keeps running on the host
    settings = make_settings(**ssh_settings)
    second = PipelineService(settings.pipelines, settings.data_path)
    second.ensure_started()
    try:
        done = wait_status(second, pid, FINAL_STATES, timeout=30)
        assert done.status == "succeeded" and done.attempt == 1
        assert marker.read_text() == "ran\n"
        assert any("re-attached" in (t.reason or "") for t in second.get(pid).transitions) or done.started_at
    finally:
        second.close()


def test_host_down_is_an_infrastructure_failure_then_retried(make_service, ssh_settings, sshd):
    sshd.stop()
    service = make_service(**ssh_settings, max_attempts=5, retry_backoff=0.3)
    (pid,) = submit_ok(service, xnat())
    wait_until(
        lambda: any(t.to_status == "queued" for t in service.get(pid).transitions),
        timeout=30,
        message="a failed attempt",
    )
    sshd.start()
    done = wait_status(service, pid, FINAL_STATES, timeout=60)
    assert done.status == "succeeded" and done.attempt >= 2


def test_a_job_that_ends_is_seen_at_once_not_at_the_next_poll(make_service, ssh_settings):
    """The launcher session stays until the job ends and says so: with polls 30 s apart,
    a 0.3 s script still finishes within seconds, on every job of a reused host."""
    service = make_service(**{**ssh_settings, "max_active_pipelines": 1}, poll_interval=30, virtual_server_ttl=10)
    for _ in range(2):  # the first launch opens its launcher session, the second finds one opened ahead
        (pid,) = submit_ok(service, script("sleep.sh", "0.3"))
        done = wait_status(service, pid, FINAL_STATES, timeout=10)
        assert done.status == "succeeded", done.reason
        assert done.finished_at - done.started_at < 3.0


@pytest.mark.parametrize("inline_limit", [1 << 20, 0], ids=["with-the-launch", "over-sftp"])
def test_stage_and_launch_writes_every_file_once_and_never_over_a_launched_job(
    sshd, key, tmp_path, monkeypatch, inline_limit
):
    from scheduler_server.pipelines.clouds.ssh_transport import executor as ssh_exec
    from scheduler_server.pipelines.jobdir import JobFile

    monkeypatch.setattr(ssh_exec, "INLINE_STAGING_MAX", inline_limit)
    job = tmp_path / "base" / "job 'x' $(id)"  # made by the launcher (or SFTP), any name
    blob = bytes(range(256)) * 64
    local = tmp_path / "data.bin"
    local.write_bytes(blob)
    files = [
        JobFile("work.sh", 0o755, data=b'cat sub/data.bin | md5sum > sum; IFS= read -r s; echo "$s" > got\n'),
        JobFile("sub/data.bin", 0o644, path=local),
        JobFile("run.sh", 0o700, data=b"bash ./work.sh\necho 7 > exit_code\n"),
    ]
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key, relaunch_ahead=False)
    try:
        ended, codes = threading.Event(), []
        executor.stage_and_launch(
            str(job), files, "run.sh", b"pw-on-stdin\n", on_exit=lambda code: (codes.append(code), ended.set())
        )
        assert ended.wait(10) and codes == [7]  # the launcher said the job ended, and how
        assert (job / "got").read_text() == "pw-on-stdin\n"
        assert (job / "sub" / "data.bin").read_bytes() == blob
        assert (job / "sum").read_text().split()[0] == hashlib.md5(blob).hexdigest()
        assert {name: oct(os.stat(job / name).st_mode & 0o777) for name in ("work.sh", "run.sh", "sub/data.bin")} == {
            "work.sh": "0o755",
            "run.sh": "0o700",
            "sub/data.bin": "0o644",
        }
        changed = [JobFile("work.sh", 0o755, data=b"echo overwritten > got\n"), files[2]]
        with pytest.raises(FileExistsError):
            executor.stage_and_launch(str(job), changed, "run.sh", b"\n")
        if inline_limit:  # with the launch, nothing is unpacked once launched exists
            assert (job / "work.sh").read_bytes() == files[0].data
    finally:
        executor.close()


def test_a_job_whose_files_cannot_be_unpacked_fails_with_the_reason(sshd, key, tmp_path):
    from scheduler_server.pipelines.jobdir import JobFile

    base = tmp_path / "base"
    base.mkdir()
    job = base / "job-1-1"
    job.mkdir()
    (job / "sub").write_text("a file where the job wants a directory")
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key, relaunch_ahead=False)
    try:
        with pytest.raises(InstanceUnreachable, match="launcher exited 93: staging-failed .*sub"):
            executor.stage_and_launch(str(job), [JobFile("sub/x.sh", 0o644, data=b"true\n")], "sub/x.sh", b"\n")
        assert not (job / "pid").exists()  # nothing was started
    finally:
        executor.close()


def test_beyond_max_watched_a_job_is_launched_without_holding_a_session(sshd, key, tmp_path, monkeypatch):
    """Every watched job holds an SSH session until it ends; sshd allows only so many per connection."""
    from scheduler_server.pipelines.clouds.ssh_transport import executor as ssh_exec
    from scheduler_server.pipelines.jobdir import JobFile

    monkeypatch.setattr(ssh_exec, "MAX_WATCHED", 1)
    executor = SSHExecutor(sshd.host, sshd.port, sshd.user, key_file=key, relaunch_ahead=False)
    ends = [threading.Event(), threading.Event()]
    try:
        for n, ended in enumerate(ends):
            job = tmp_path / f"job-{n}"
            run = JobFile("run.sh", 0o700, data=b"IFS= read -r s; sleep 0.5; echo done > out\n")
            executor.stage_and_launch(str(job), [run], "run.sh", b"\n", on_exit=lambda code, e=ended: e.set())
        assert executor._watching == 1
        wait_until(lambda: all((tmp_path / f"job-{n}" / "out").exists() for n in range(2)), message="both jobs ran")
        assert ends[0].wait(5) and not ends[1].is_set()  # only the first was heard ending
        wait_until(lambda: executor._watching == 0, message="the watch released")
    finally:
        executor.close()
