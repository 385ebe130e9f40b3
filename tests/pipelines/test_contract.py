"""The seed's argument contract, shell quoting, path confinement and secrets, on the real local backend."""

from __future__ import annotations

import os
import sqlite3

import pytest

from scheduler_server.pipelines.tasks import TASK_TYPES, PathError, resolve_in_folder

from .conftest import script, submit_ok, wait_status, wait_until, xnat

HOSTILE = [
    "a b",
    "$(touch PWNED)",
    "`touch PWNED`",
    "x; touch PWNED",
    "x' ; touch PWNED; echo '",
    'x" ; touch PWNED; echo "',
    "x && touch PWNED",
    "x | touch PWNED",
    "*",
    "$HOME",
    "-pwd",
    "\\",
    "ünïcödé ✓",
    "",
]


def _found(root, name: str) -> bool:
    # os.walk, unlike Path.rglob, shrugs off sandboxes deleted while it walks.
    return any(name in files for _, _, files in os.walk(root))


def _stdout(service, pipeline_id: int) -> list[str]:
    return service.logs(pipeline_id, "stdout", 0, 1 << 20).data.split("\n")[:-1]


def test_seed_argument_contract_in_order(make_service):
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="args.sh", options=["--fast", "-n", "3"], pwd="hunter2"))
    done = wait_status(service, pid, ("succeeded", "failed"))
    assert done.status == "succeeded", done.reason
    # The password is masked in the log the API serves, even though the script printed it.
    assert _stdout(service, pid) == [
        "-project",
        "p",
        "-subject",
        "s",
        "-session",
        "e",
        "-host",
        "http://xnat",
        "-user",
        "u",
        "-pwd",
        "********",
        "--fast",
        "-n",
        "3",
    ]


@pytest.mark.parametrize("field", ["project", "subject", "session", "host", "user", "pwd"])
def test_shell_metacharacters_in_every_field_arrive_verbatim(make_service, field, tmp_path):
    service = make_service()
    # An empty password, or one made of '*' only (the mask would show it), is refused: tested elsewhere.
    values = [v for v in HOSTILE if field != "pwd" or v.strip("*")]
    ids = submit_ok(
        service, *[xnat(script="args.sh", **{field: value}) for value in values if value != "" or field == "pwd"]
    )
    for pid, value in zip(ids, values):
        done = wait_status(service, pid, ("succeeded", "failed"))
        assert done.status == "succeeded", done.reason
        if field != "pwd":
            args = _stdout(service, pid)
            assert args[args.index(f"-{field}") + 1] == value
    # Nothing was executed: no PWNED file anywhere the script could have run.
    assert not _found(tmp_path / "data", "PWNED")


def test_options_string_is_split_like_a_shell_and_quoted(make_service, tmp_path):
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="args.sh", options="-a 'two words' -b $(touch PWNED)"))
    assert wait_status(service, pid, ("succeeded", "failed")).status == "succeeded"
    assert _stdout(service, pid)[-5:] == ["-a", "two words", "-b", "$(touch", "PWNED)"]
    assert not _found(tmp_path / "data", "PWNED")


def test_password_with_env_mode_is_not_an_argument(make_service, scripts):
    (scripts / "env.sh").write_text(
        'printf "%s\\n" "$@"; echo "PW=$XNAT_PASSWORD"; cat /proc/$$/cmdline | tr "\\0" " "; echo\n'
    )
    service = make_service(xnat_credentials="env")
    (pid,) = submit_ok(service, xnat(script="env.sh", pwd="pa$$ w0rd'\""))
    assert wait_status(service, pid, ("succeeded", "failed")).status == "succeeded"
    log_path = service.log_dir(pid, 1) / "stdout.log"
    lines = log_path.read_text().splitlines()
    assert "-pwd" not in lines
    assert "PW=********" in lines  # the script saw it in its environment; the stored log is masked
    assert all("pa$$" not in line for line in lines)


def test_password_never_stored_in_plain_text(make_service, tmp_path):
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="sleep.sh", pwd="plaintext-canary-42"))
    wait_status(service, pid, "running")
    db = tmp_path / "data" / "pipelines.sqlite"
    for path in [db, *db.parent.glob("pipelines.sqlite-*")]:
        assert b"plaintext-canary-42" not in path.read_bytes()
    sandbox_files = [p for p in (tmp_path / "data" / "instances").rglob("*") if p.is_file()]
    assert sandbox_files and all(b"plaintext-canary-42" not in p.read_bytes() for p in sandbox_files)
    rows = sqlite3.connect(db).execute("select secret from pipelines").fetchall()
    assert rows[0][0].startswith("gAAAA")  # a Fernet token
    key = tmp_path / "data" / "pipelines.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_a_running_local_job_is_private_to_the_service_user(make_service, tmp_path):
    # A job's raw log holds what the script printed, the password included, until it is masked.
    (tmp_path / "data" / "instances").mkdir(parents=True, mode=0o755)  # as an earlier version left it
    os.chmod(tmp_path / "data" / "instances", 0o755)
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="sleep.sh"))
    wait_status(service, pid, "running")
    sandboxes = tmp_path / "data" / "instances"
    assert oct(sandboxes.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o700" for p in sandboxes.iterdir() if p.is_dir())


def test_password_not_in_any_process_command_line_in_env_mode(make_service, scripts):
    (scripts / "wait.sh").write_text("sleep 30\n")
    service = make_service(xnat_credentials="env")
    (pid,) = submit_ok(service, xnat(script="wait.sh", pwd="ps-canary-77"))
    wait_status(service, pid, "running")
    wait_until(
        lambda: any(b"wait.sh" in _cmdline(p) for p in os.listdir("/proc") if p.isdigit()), message="script process"
    )
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            assert b"ps-canary-77" not in _cmdline(proc)
    service.cancel(pid)
    wait_status(service, pid, "cancelled")


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../outside.sh", "leaves LOCAL_SCRIPTS_FOLDER"),
        ("sub/../../outside.sh", "leaves LOCAL_SCRIPTS_FOLDER"),
        ("/etc/passwd", "is absolute"),
        ("~/x.sh", "is absolute"),
        ("missing.sh", "does not exist"),
        ("link.sh", "outside LOCAL_SCRIPTS_FOLDER"),
        ("a\nb.sh", "control characters"),
    ],
)
def test_script_names_are_confined(make_service, scripts, tmp_path, name, problem):
    (tmp_path / "outside.sh").write_text("echo escaped\n")
    (scripts / "link.sh").symlink_to(tmp_path / "outside.sh")
    service = make_service(start=False)
    for item in (xnat(script=name), xnat(files=[name])):
        (result,) = service.submit([item])
        assert not result.accepted
        assert problem in result.error.message
        assert result.error.field in ("script", "files.0")


def test_files_are_uploaded_next_to_the_script(make_service, scripts):
    (scripts / "data").mkdir()
    (scripts / "data" / "input.txt").write_text("payload\n")
    (scripts / "cat.sh").write_text("cat data/input.txt\n")
    service = make_service()
    (pid,) = submit_ok(service, xnat(script="cat.sh", files=["data/input.txt"]))
    assert wait_status(service, pid, ("succeeded", "failed")).status == "succeeded"
    assert _stdout(service, pid) == ["payload"]


def test_resolve_in_folder_follows_symlinks_inside(tmp_path):
    (tmp_path / "real.sh").write_text("")
    (tmp_path / "alias.sh").symlink_to(tmp_path / "real.sh")
    assert resolve_in_folder(tmp_path, "alias.sh") == (tmp_path / "real.sh").resolve()
    with pytest.raises(PathError):
        resolve_in_folder(tmp_path, "nope.sh")


def test_script_type_passes_args_and_env(make_service, scripts):
    (scripts / "envargs.sh").write_text('printf "%s\\n" "$@" "$PIPELINE_GREETING"\n')
    service = make_service()
    (pid,) = submit_ok(service, script("envargs.sh", "one", "$(two)", env={"PIPELINE_GREETING": "hi there"}))
    assert wait_status(service, pid, ("succeeded", "failed")).status == "succeeded"
    assert _stdout(service, pid) == ["one", "$(two)", "hi there"]


def test_request_validation_names_the_field(make_service):
    service = make_service(start=False)
    cases = [
        ({k: v for k, v in xnat().items() if k != "session"}, "session: missing (required)"),
        (xnat(colour="red"), "colour: unknown field"),
        (xnat(priority="high"), "priority:"),
        (xnat(type="docker"), "type: unknown pipeline type"),
        (xnat(options="-a 'unbalanced"), "options:"),
        (xnat(project=""), "project:"),
        (script("ok.sh", env={"BAD NAME": "x"}), "not a valid environment variable name"),
        (42, "must be a JSON object"),
    ]
    results = service.submit([item for item, _ in cases])
    for result, (_, expected) in zip(results, cases):
        assert not result.accepted
        assert expected in result.error.message, result


def test_task_types_are_registered():
    assert set(TASK_TYPES) == {"xnat", "script"}


def test_local_jobs_do_not_inherit_the_services_settings(make_service, scripts, monkeypatch):
    monkeypatch.setenv("SCHEDULER_SERVER__PIPELINES__SECRET_KEY", "must-not-leak")
    (scripts / "env.sh").write_text("env\n")
    service = make_service()
    (pid,) = submit_ok(service, script("env.sh"))
    assert wait_status(service, pid, ("succeeded", "failed")).status == "succeeded"
    assert "must-not-leak" not in service.logs(pid, "stdout", 0, 1 << 20).data


def test_run_script_refuses_to_start_without_its_stdin_line(tmp_path):
    import subprocess

    from scheduler_server.pipelines.jobdir import render_run_script
    from scheduler_server.pipelines.tasks import Command

    (tmp_path / "s.sh").write_text("touch RAN\n")
    (tmp_path / "run.sh").write_text(render_run_script("s.sh", Command(argv=["a"])))
    subprocess.run(["bash", "./run.sh"], cwd=tmp_path, input=b"", check=False)  # the launcher died: no line
    assert not (tmp_path / "RAN").exists() and not (tmp_path / "exit_code").exists() and (tmp_path / "pid").exists()
    subprocess.run(["bash", "./run.sh"], cwd=tmp_path, input=b"secret\n", check=True)
    assert (tmp_path / "RAN").exists() and (tmp_path / "exit_code").read_text() == "0\n"


def test_the_service_refuses_by_kind_and_only_web_knows_the_status(make_service):
    from scheduler_server.pipelines.errors import Conflict, InvalidInput, NotFound, Unavailable
    from scheduler_server.web.errors import status_of

    service = make_service(start=False)
    with pytest.raises(NotFound) as missing:
        service.get(999)
    assert missing.value.field == "id" and not hasattr(missing.value, "status")
    (pid,) = submit_ok(service, xnat())
    with pytest.raises(Conflict):
        service.retry(pid)  # queued: only failed or cancelled pipelines are retried
    assert service.cancel(pid).status == "cancelled"
    with pytest.raises(Conflict):
        service.cancel(pid)
    with pytest.raises(NotFound):
        service.delete_instance("no-such-instance")
    (refused,) = service.submit([42])
    assert isinstance(refused.error, InvalidInput) and refused.id is None and not refused.accepted
    assert [status_of(kind("m")) for kind in (InvalidInput, NotFound, Conflict, Unavailable)] == [400, 404, 409, 503]
