"""OCS agents as the crossbar HTTP bridge sees them: sessions, the ops handler, parameter checks.

What an agent answers follows ``ocs.ocs_agent.OCSAgent`` (ocs 0.12.1): ``start`` pre-screens the parameters
as ``ocs_agent.param`` does (an unexpected key, a wrong type or a value outside ``choices`` is refused with
``ERROR`` and an empty session), ``wait`` on an operation that never ran answers ``OK, 'Idle.', {}``, a
running operation cannot be started again, and a session is encoded with its ``op_code`` (ocs.base.OpCode).
Time is the simulated clock: a task ends ``duration`` seconds after it starts, and ``wait`` moves the clock
to that end (or by ``timeout``, answering ``TIMEOUT``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OK, ERROR, TIMEOUT = 0, -1, 1  # ocs.base.ResponseCode
STARTING, RUNNING, SUCCEEDED, FAILED = 2, 3, 5, 6  # ocs.base.OpCode
REQUIRED = object()  # no default: ocs's ``ParamError`` default, the parameter must be given and not None


@dataclass(frozen=True)
class Param:
    """One ``@ocs_agent.param``: its type (None: anything), allowed values, and default (REQUIRED: none)."""

    type: type | None = None
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None  # ``check=``: a validity test, after type and choices

    def get(self, key: str, given: dict) -> tuple[str | None, Any]:
        """As ``ocs.ocs_agent.ParamHandler.get``: None is missing, an int is a float, then type, choices, check."""
        value = given.get(key)
        if value is None:
            if self.default is REQUIRED:
                return f"Param '{key}' is required and must not be None", None
            value = self.default
        if value is None:
            return None, None
        if self.type is float and isinstance(value, int):
            value = float(value)
        if self.type is not None and not isinstance(value, self.type):
            return f"Param '{key}'={value} is not of required type ({self.type})", None
        if self.choices is not None and value not in self.choices:
            return f"Param '{key}'={value} is not in allowed set ({list(self.choices)})", None
        if self.check is not None and not self.check(value):
            return f"Param '{key}' failed validity check (see docs?).", None
        return None, value


@dataclass
class Op:
    name: str
    kind: str  # 'task' or 'process'
    params: dict[str, Param] | None  # None: the operation takes any params (no @param decorator)
    seconds: Callable[[dict], float] = lambda params: 0.0
    # What the operation's body checks once running (e.g. the ACU's limits): a reason to fail, or None.
    check: Callable[[dict], str | None] = lambda params: None
    on_start: Callable[[dict], None] = lambda params: None
    on_stop: Callable[[], None] = lambda: None
    session: dict = field(default_factory=dict)
    end: float = 0.0

    def screen(self, given: dict) -> tuple[str | None, dict]:
        if self.params is None:
            return None, dict(given)
        full = {}
        for key, spec in self.params.items():
            if key == "_":  # ``@param('_')``: no params; ocs's batch gets nothing for it
                continue
            problem, full[key] = spec.get(key, given)
            if problem:
                return problem, {}
        unexpected = [k for k in given if k not in self.params or k == "_"]  # ocs checks for strays last
        if unexpected:
            return f"params included unexpected values: {unexpected}", {}
        return None, full


class Agent:
    """A healthy agent: every operation it has works, unless its own checks say otherwise."""

    agent_class = "Agent"

    def __init__(self, instance_id: str, harness):
        self.instance_id = instance_id
        self.harness = harness
        self.ops: dict[str, Op] = {}
        self._sessions = 0

    def add(self, op: Op) -> None:
        self.ops[op.name] = op

    def process(self, name: str, params: dict[str, Param] | None = None) -> None:
        """A process already running when the script starts (a monitor, a data acquisition), as a site runs it."""
        self.add(Op(name, "process", params))
        self.ops[name].session = {"session_id": 0, "op_name": name, "op_code": RUNNING, "status": "running",
                                  "success": None, "start_time": 0.0, "end_time": None, "data": {},
                                  "messages": [], "degraded": False}  # fmt: skip

    def api(self) -> dict:
        def listed(kind):
            return [
                (op.name, op.session, {"docstring": f"{op.name} (simulated)", "op_type": kind})
                for op in self.ops.values()
                if op.kind == kind
            ]

        return {
            "agent_class": self.agent_class,
            "instance_hostname": "sim",
            "instance_pid": 0,
            "feeds": [],
            "processes": listed("process"),
            "tasks": listed("task"),
            "access_control": None,
        }

    def handle(self, action: str, op_name: str, params=None, timeout=None, password=None):
        op = self.ops.get(op_name)
        if op is None:
            return (ERROR, f'Unknown operation "{op_name}".', {})
        if action == "start":
            return self.start(op, params or {})
        if action == "wait":
            return self.wait(op, timeout)
        if action == "status":
            return (OK, f'Current status of "{op_name}".', self.refresh(op))
        if action in ("stop", "abort"):
            return self.stop(op, action)
        return (ERROR, f'No implementation for "{op_name}"', {})

    def refresh(self, op: Op) -> dict:
        s = op.session
        failing = bool(s.get("_fail"))
        if s and s["status"] == "running" and (op.kind == "task" or failing) and self.harness.clock.now >= op.end:
            self.finish(op, s.pop("_fail", None))
        return {k: v for k, v in s.items() if not k.startswith("_")}

    def finish(self, op: Op, failure: str | None) -> None:
        s = op.session
        s.update(status="done", success=failure is None, op_code=SUCCEEDED if failure is None else FAILED)
        s["end_time"] = max(self.harness.clock.now, op.end)
        if failure:
            s["messages"].append([s["end_time"], failure])
        self.harness.finished(self.instance_id, op.name, s)

    def start(self, op: Op, given: dict):
        if op.session and self.refresh(op)["status"] in ("starting", "running"):
            self.harness.fault(f"{self.instance_id}.{op.name}: started while already running")
            return (ERROR, f'Operation "{op.name}" already in progress.', self.refresh(op))
        problem, params = op.screen(given)
        if problem:
            self.harness.fault(f"{self.instance_id}.{op.name}({given}): {problem}")
            return (ERROR, problem, {})
        now = self.harness.clock.now
        self._sessions += 1
        failure = op.check(params)
        if failure:
            self.harness.fault(f"{self.instance_id}.{op.name}({given}): {failure}")
        op.end = now + (0.0 if failure else op.seconds(params))
        op.session = {"session_id": self._sessions, "op_name": op.name, "op_code": RUNNING, "status": "running",
                      "success": None, "start_time": now, "end_time": None, "data": {}, "messages": [], "degraded": False,
                      "_fail": failure}  # fmt: skip
        self.harness.started(self.instance_id, op.name, params, now)
        if not failure:
            op.on_start(params)
        return (OK, f"Started {op.kind} {op.name!r}.", self.refresh(op))

    def wait(self, op: Op, timeout):
        if not op.session:
            return (OK, "Idle.", {})
        session = self.refresh(op)
        if session["status"] == "done":
            return (OK, "Operation has already completed.", session)
        if op.kind == "process":
            if timeout is None:
                raise RuntimeError(f"{self.instance_id}.{op.name}: waited for forever on a running process")
            self.harness.clock.sleep(timeout)
            return (TIMEOUT, "Timed out.", self.refresh(op))
        if timeout is not None and op.end - self.harness.clock.now > timeout:
            self.harness.clock.sleep(timeout)
            return (TIMEOUT, "Timed out.", self.refresh(op))
        self.harness.clock.advance_to(op.end)
        return (OK, "Operation complete.", self.refresh(op))

    def stop(self, op: Op, action: str):
        if op.kind != ("process" if action == "stop" else "task"):
            return (ERROR, f"No {action} for {op.kind} {op.name!r}.", {})
        if not op.session or self.refresh(op)["status"] == "done":
            return (ERROR, f"Operation {op.name!r} is not running.", self.refresh(op))
        op.end = self.harness.clock.now
        op.on_stop()
        self.finish(op, op.session.pop("_fail", None))
        return (OK, f"Requested {action} on {op.name!r}.", self.refresh(op))
