"""The job-on-instance protocol: the job directory, its files, ``run.sh`` and the launchers.

Every executor (``clouds/*``) and the scheduling above it use this one module; it imports
neither: it talks to an instance through anything with an ``Executor``'s methods
(``JobHost``) and the task renders its own part of ``run.sh`` (``Command.shell_words``).

Every attempt has its own job directory on the instance,
``<REMOTE_BASE_FOLDER>/job-<pipeline id>-<attempt>``, holding the uploaded
script and files, a generated ``run.sh``, and the files through which the
attempt outlives the service:

``launched``  created exclusively at launch (holding the launcher's pid): an attempt is started at
              most once. Stopping an attempt claims it too (``fenced``), so a launch still on its
              way never starts.
``pid``       the pid of ``run.sh``, which leads its own session and process group
              (written by the launcher and again by ``run.sh`` itself, so a launcher
              cut off right after the fork still leaves it).
``exit_code`` written when the script ends; its absence with ``run.sh`` gone means lost.
``killed``    written before a cancel or timeout kills the process group.
``stdout.log`` / ``stderr.log``  the script's output, tailed while it runs.

The password is given to the launcher on stdin and handed to ``run.sh`` on a
pipe (a bash here-string), so it is never in a command line or a file.

Exit codes of the launchers and of ``run.sh`` before the script starts (the script's own
code is what ``exit_code`` holds):

==  ========================================================================
91  the job directory cannot be entered (or made)
92  ``launched`` exists: launched (or fenced) before; nothing starts (``ALREADY_LAUNCHED``)
93  the job's files could not be unpacked
94  the waiting launcher got a malformed message (its size field)
95  ``run.sh`` got no complete secret line: its launcher died before handing it over
96  the launcher got no complete secret line: the connection was cut mid-message
97  ``run.sh`` found ``killed``: stopped before it started
==  ========================================================================
"""

from __future__ import annotations

import logging
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scheduler_server.pipelines.backend_errors import InstanceUnreachable

log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
LAUNCHED = "launched"
PID = "pid"
EXIT_CODE = "exit_code"
RUN_SCRIPT = "run.sh"
#: The prefix of every job directory's name (see ``job_dir``).
JOB_PREFIX = "job-"
#: A launcher's exit code when ``launched`` was there already.
ALREADY_LAUNCHED = 92


class CommandOutcome(Protocol):
    """What ``JobHost.run`` returns (an executor's ``CommandResult``)."""

    exit_code: int
    stderr: bytes

    @property
    def ok(self) -> bool: ...

    def text(self) -> str: ...


@dataclass(frozen=True)
class JobFile:
    """A file of a job: ``name`` relative to the job directory, content from ``path`` or ``data``."""

    name: str
    mode: int
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def content(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()


class JobHost(Protocol):
    """What the protocol needs of an instance: the methods of a ``clouds.executor.Executor``."""

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = 60.0) -> CommandOutcome: ...

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes: ...

    def stage_and_launch(
        self, directory: str, files: list[JobFile], script: str, stdin: bytes, on_exit=None
    ) -> int: ...


class ShellCommand(Protocol):
    """What ``run.sh`` needs of a task's command (a ``tasks.Command``)."""

    def shell_words(self, secret_word: str) -> tuple[str, str]: ...


@dataclass(frozen=True)
class JobState:
    """What the job directory says: "not_started" | "starting" | "running" | "exited" | "killed" | "lost" | "missing".

    "starting": ``launched`` exists but no pid yet, and its launcher (or another process) still works
    in the directory: a launch under way, to be looked at again rather than repeated or given up."""

    state: str
    exit_code: int | None = None


def job_dir(remote_base: str, pipeline_id: int, attempt: int) -> str:
    return posixpath.join(remote_base.rstrip("/") or ".", f"{JOB_PREFIX}{pipeline_id}-{attempt}")


def render_run_script(script_name: str, command: ShellCommand) -> str:
    """``run.sh``: record the pid, run ``bash <script> <args>`` with output to the logs, record the exit code.

    It is started in the job directory and uses only shell builtins before the
    script, so the script starts one process creation after ``run.sh`` does.
    """
    env, args = command.shell_words('"$secret"')
    return (
        "#!/bin/bash\n"
        "# Generated by scheduler-server: runs one pipeline attempt. See jobdir.py.\n"
        "echo $$ > pid\n"
        # No complete line on stdin: the launcher died before handing over the secret; do not run without it.
        "IFS= read -r secret || exit 95\n"
        # Stopped before it started (a given-up attempt reaped, a cancel during the launch): never run.
        "[ -e killed ] && exit 97\n"
        "exec 0</dev/null\n"
        f"{env}{' ' if env else ''}bash ./{shlex.quote(script_name)} {args} > stdout.log 2> stderr.log\n"
        "rc=$?\n"
        'echo "$rc" > exit_code.tmp && mv exit_code.tmp exit_code\n'
    )


# The secret line is read here and handed on through a bash here-string (a pipe for
# small strings), so it is never in a command line or a file.
_ENTER = """\
cd -- "$dir" || exit 91
( set -C; echo "$$" > launched ) 2>/dev/null || { echo already-launched; exit 92; }
"""
# No complete secret line: the connection was cut mid-message; start nothing (the job is then "lost").
_START = """\
IFS= read -r line || exit 96
setsid bash "./$script" <<< "$line" > /dev/null 2>&1 &
unset line
echo $! > pid
echo $!
"""
_LAUNCH = _ENTER + _START


def launcher(directory: str, script: str) -> str:
    """The launcher for a job known now: directory and script are part of the command."""
    return f"dir={shlex.quote(directory)}; script={shlex.quote(script)}\n{_LAUNCH}"


#: The same launcher started before its job is known (see ``SSHExecutor.prepare_launcher``). It
#: reads ``<dir>\0<script>\0<n>\0<watch>\0`` from stdin, then ``n`` bytes of a tar archive of the job's
#: files (n may be 0: staged already), then the secret line; on EOF it does nothing. The archive
#: is unpacked only once ``launched`` is created, so a job launched before is never overwritten.
#: After printing the pid it stays (if ``watch`` is 1), waiting for the job, and prints ``ended <rc>``
#: (``rc`` from ``exit_code``, empty if there is none) when it has: the service hears of the end at
#: once instead of at its next poll (the job never depends on it). ``head`` must be GNU's: it reads exactly ``n`` bytes from a pipe.
WAITING_LAUNCHER = (
    'IFS= read -r -d "" dir || exit 0\nIFS= read -r -d "" script || exit 0\nIFS= read -r -d "" size || exit 0\n'
    'IFS= read -r -d "" watch || exit 0\ncase "$size" in ""|*[!0-9]*) exit 94;; esac\n'
    'if [ "$size" -gt 0 ]; then mkdir -p -- "$dir" || exit 91; fi\n'
    + _ENTER
    + 'if [ "$size" -gt 0 ]; then head -c "$size" | tar -x --no-same-owner -f - || { echo staging-failed; exit 93; }; fi\n'
    + _START
    + '[ "$watch" = 1 ] || exit 0\nwait "$!" 2>/dev/null\nrc=\nIFS= read -r rc < exit_code 2>/dev/null\necho "ended $rc"\n'
)


#: The program of a spare local shell (``clouds/local/spare_shells.py``), started before its job is
#: known: it reads ``<dir>\0<script>\0`` from stdin, then sources the script (``run.sh``) in the job
#: directory in the same process, so ``$$``, the process group and ``/proc/<pid>/cwd`` are what a freshly
#: started ``bash run.sh`` has; the rest of stdin is the script's (the secret line). Exit 0 on EOF:
#: the service went away before using this spare.
SPARE_SHELL = (
    'IFS= read -r -d "" dir || exit 0\nIFS= read -r -d "" script || exit 0\ncd -- "$dir" || exit 91\n. "./$script"\n'
)


def launch_result(result: CommandOutcome, directory: str) -> int:
    """The pid a launcher printed; FileExistsError if the job had been launched before."""
    text = result.text().strip()
    if result.exit_code == ALREADY_LAUNCHED:
        raise FileExistsError(f"{directory}/{LAUNCHED}")
    if not result.ok or not text.isdigit():
        detail = " ".join(filter(None, (text, result.stderr.decode(errors="replace").strip())))[:500]
        raise InstanceUnreachable(f"launcher exited {result.exit_code}: {detail}")
    return int(text)


#: Shell functions the checks below share. ``$dir`` is the job directory.
_COMMON = r"""
cd -- "$dir" 2>/dev/null || { echo missing; exit 0; }
here=$(pwd -P)
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(readlink "/proc/$1/cwd")" = "$here" ]; }
# Processes (other than this shell) working in the job directory: a launcher or a run.sh caught
# before it wrote its pid, or a script's child that left its process group. Use it as
# $(others_here) only: that subshell leaves the directory before it looks, so it is not among them.
others_here() {
  cd / || return
  pattern=$(printf '%s' "$here" | sed 's/[][*?\\]/\\&/g')
  find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$pattern" -printf '%h\n' 2>/dev/null | sed 's|^/proc/||' | grep -vx "$$"
}
"""

STATUS = (
    _COMMON
    + r"""
if [ -f exit_code ]; then echo "exited $(cat exit_code)"; exit 0; fi
if [ -f killed ]; then echo killed; exit 0; fi
if [ ! -f launched ]; then echo not_started; exit 0; fi
pid=$(cat pid 2>/dev/null)
if alive "$pid"; then echo running; exit 0; fi
if [ -f exit_code ]; then echo "exited $(cat exit_code)"; exit 0; fi
# No pid file yet: the launch may still be under way (the launcher's pid is in launched).
if [ -z "$pid" ]; then
  IFS= read -r launcher < launched 2>/dev/null
  if alive "$launcher" || [ -n "$(others_here)" ]; then echo starting; exit 0; fi
fi
echo lost
"""
)

#: Stops an attempt for good: a launch that has not happened yet never will (``launched`` is
#: claimed, in a directory made for the purpose if need be), a run.sh not yet past its secret
#: stops (``killed``), the process group gets SIGTERM and, after the grace ticks, SIGKILL; then
#: whatever still works in the directory is killed. Prints ``clear`` when nothing is left there.
KILL = (
    'mkdir -p -- "$dir" 2>/dev/null\n'
    + _COMMON
    + r"""
( set -C; echo fenced > launched ) 2>/dev/null
: > killed
pid=$(cat pid 2>/dev/null)
if alive "$pid"; then
  kill -TERM -- -"$pid" 2>/dev/null
  for i in $(seq "$ticks"); do kill -0 -- -"$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -"$pid" 2>/dev/null
fi
for round in 1 2 3 4 5; do
  left=$(others_here)
  [ -z "$left" ] && { echo clear; exit 0; }
  for p in $left; do kill -KILL -- -"$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  sleep 0.1
done
echo busy
"""
)


def _with_dir(directory: str, script: str, **values) -> str:
    assigned = "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in values.items())
    return f"dir={shlex.quote(directory)}\n{assigned}{script}"


class LaunchError(Exception):
    """The launcher refused or failed (the attempt had already been launched, or run.sh did not start)."""


def stage_and_launch(
    executor: JobHost,
    directory: str,
    script: tuple[str, Path],
    files: list[tuple[str, Path]],
    command: ShellCommand,
    secret: str | None,
    on_exit=None,
) -> int:
    """Put the script, its files and ``run.sh`` into the job directory and start ``run.sh`` detached in
    its own session; return its pid (also its process group).

    ``on_exit``: see ``Executor.launch_detached`` (a hint that the job may have ended)."""
    name, local = script
    job = [JobFile(name, 0o755, path=local)]
    job += [JobFile(file_name, 0o644, path=file_path) for file_name, file_path in files]
    job.append(JobFile(RUN_SCRIPT, 0o700, data=render_run_script(name, command).encode()))
    try:
        return executor.stage_and_launch(directory, job, RUN_SCRIPT, ((secret or "") + "\n").encode(), on_exit)
    except FileExistsError:
        raise LaunchError("already launched") from None


def exit_code_if_done(executor: JobHost, directory: str) -> int | None:
    """The cheap check made on every poll: the exit code if ``exit_code`` exists."""
    try:
        data = executor.read_file(posixpath.join(directory, EXIT_CODE), max_bytes=32)
    except FileNotFoundError:
        return None
    text = data.decode().strip()
    return int(text) if text.lstrip("-").isdigit() else None


def status(executor: JobHost, directory: str) -> JobState:
    """The full check: is ``run.sh`` still alive, did it finish, was it ever launched."""
    result = executor.run(_with_dir(directory, STATUS), timeout=30)
    words = result.text().split()
    if not result.ok or not words:
        raise InstanceUnreachable(f"status check failed (exit {result.exit_code})")
    if words[0] == "exited":
        return JobState("exited", int(words[1]) if len(words) > 1 and words[1].lstrip("-").isdigit() else None)
    return JobState(words[0])


def kill(executor: JobHost, directory: str, grace: float) -> bool:
    """Stop the attempt for good (see ``KILL``): SIGTERM its process group, SIGKILL after ``grace``
    seconds. True when nothing is left running in its job directory (or it does not exist)."""
    ticks = max(1, int(grace * 10))
    result = executor.run(_with_dir(directory, KILL, ticks=ticks), timeout=grace + 30)
    return result.ok and result.text().split()[:1] in (["clear"], ["missing"])


def read_log(executor: JobHost, directory: str, stream: str, offset: int, max_bytes: int) -> bytes:
    try:
        return executor.read_file(posixpath.join(directory, f"{stream}.log"), offset=offset, max_bytes=max_bytes)
    except FileNotFoundError:
        return b""


def fetch_logs(executor: JobHost, directory: str, destination: Path, max_bytes: int = 64 << 20) -> None:
    """Copy both logs into ``destination`` (on this machine) so they outlive the instance."""
    destination.mkdir(parents=True, exist_ok=True)
    for stream in STREAMS:
        (destination / f"{stream}.log").write_bytes(read_log(executor, directory, stream, 0, max_bytes))
