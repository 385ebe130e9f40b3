"""Run an emitted script with sorunlib's own code against simulated agents and a simulated clock.

``run_script(text, start)`` executes the script as the sequencer would (``exec`` of its text, which does
``from sorunlib import *``) and returns a :class:`Report`: every operation with its simulated start and end,
each ``wait_until``'s lateness, each ``seq.scan`` (started, stopped, or skipped by sorunlib and why), the
agents' refusals, and the error that stopped the script, with its line.
"""

from __future__ import annotations

import ast
import copy
import io
import os
import socket
import sys
import tempfile
import time
import types
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .agents import ACU, IBootBar, PysmurfController, Registry, SmurfFileEmulator
from .bridge import SITE_CONFIG, Bridge, bridged
from .clock import SimClock, clock_in
from .durations import Durations
from .hwp import HWPSupervisor
from .platforms import SAT, Platform, SunPolicy
from .records import LaneRecord, OpRecord, Report, RunRecord, ScanRecord, WaitRecord
from .wiregrid import wiregrid_agents

__all__ = ["SAT", "Platform", "SunPolicy", "run_script"]

SCRIPT = "<script>"
# sorunlib 0.1.35's modules that read the clock (``import time`` / ``import datetime as dt``): each must be swapped
NEEDS_CLOCK = ("sorunlib._internal", "sorunlib.acu", "sorunlib.commands", "sorunlib.seq", "sorunlib.smurf",
               "sorunlib.stimulator", "sorunlib.wiregrid")  # fmt: skip
# the script's own clock readings, patched process-wide while it runs (its ``datetime.now()`` cannot be: refused)
TIME_FUNCTIONS = ("time", "sleep", "monotonic")
WALL_CLOCK_CALLS = ("now", "utcnow", "today")
WIREGRID_RUNS = ("calibrate", "time_constant")  # recorded as runs, with when they started and ended


def script_line() -> int | None:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == SCRIPT:
            return frame.f_lineno
        frame = frame.f_back
    return None


@dataclass
class Harness:
    clock: SimClock
    durations: Durations
    platform: Platform
    report: Report = field(default_factory=Report)

    def __post_init__(self):
        self.hwp = HWPSupervisor("hwp-supervisor", self, self.platform) if self.platform.hwp else None
        self.acu = ACU("acu-satp1", self, self.platform)
        smurf = SmurfFileEmulator if self.platform.test_mode else PysmurfController
        self.smurfs = [smurf(f"smurf-{i + 1}", self) for i in range(self.platform.smurfs)]
        agents = [self.acu, *self.smurfs]
        agents += [self.hwp] if self.hwp else []
        agents += wiregrid_agents(self, self.platform) if self.platform.wiregrid else []
        self.registry = Registry("registry", self, "observatory", agents)
        # iBoot PDUs are not looked up through the registry: a script names them (OCSClient('power-iboot-smurf-1'))
        self.bridge = Bridge([self.registry, *agents, *(IBootBar(i, self) for i in self.platform.iboots)])
        self._open: dict[tuple[str, str], OpRecord] = {}

    def lane(self, lane: str, state: str, at: float | None = None, **detail) -> None:
        """A plotted state changes (the HWP's, the boresight's): at ``at``, or now."""
        self.report.lanes.append(LaneRecord(lane, self.clock.now if at is None else at, state, detail))

    def hazard(self, text: str) -> None:
        """What an agent accepts but an operator would not want (an HWP reversed while it spins)."""
        line = script_line()
        self.report.hazards.append(f"line {line}: {text}" if line else text)

    # what the agents tell the harness
    def started(self, agent: str, op: str, params: dict, now: float) -> None:
        record = OpRecord(agent, op, params, now, None, None, script_line())
        self.report.ops.append(record)
        self._open[agent, op] = record

    def finished(self, agent: str, op: str, session: dict) -> None:
        record = self._open.pop((agent, op), None)
        if record is not None:
            record.end, record.ok = session["end_time"], bool(session["success"])

    def left_running(self) -> list[str]:
        """What the script started and did not see end: each one still running once its agent is asked."""
        for agent, op in list(self._open):
            agent_sim = self.bridge.agents[f"observatory.{agent}"]
            agent_sim.refresh(agent_sim.ops[op])
        return [f"{a}.{o} started at {r.start:.0f} (line {r.line}) never ended" for (a, o), r in self._open.items()]

    def fault(self, text: str) -> None:
        line = script_line()
        self.report.faults.append(f"line {line}: {text}" if line else text)

    def moved(self, az0, el0, params) -> None:
        pass

    def scan_started(self, params) -> None:
        unbiased = [s.instance_id for s in self.smurfs if not s.biased]
        if unbiased:
            self.hazard(f"a scan started with the detectors of {', '.join(unbiased)} not biased since their relock")
        if self.report.scans and self.report.scans[-1].started is None:
            self.report.scans[-1].started = self.clock.now
            self.report.scans[-1].endpoints = (params["az_endpoint1"], params["az_endpoint2"])

    def scan_stopped(self) -> None:
        if self.report.scans:
            self.report.scans[-1].stopped = self.clock.now

    # what the script calls, observed on its way to sorunlib
    def watch(self, sorunlib):
        real_wait, real_scan = sorunlib.commands.wait_until, sorunlib.seq.scan

        def wait_until(timestamp, tolerance=None):
            target = datetime.fromisoformat(timestamp)
            target = (target if target.tzinfo else target.replace(tzinfo=UTC)).timestamp()
            self.report.waits.append(WaitRecord(script_line(), target, self.clock.now, tolerance))
            return real_wait(timestamp, tolerance)

        def scan(description, stop_time, width, *args, min_duration=None, **kwargs):
            stop = datetime.fromisoformat(stop_time)
            stop = (stop if stop.tzinfo else stop.replace(tzinfo=UTC)).timestamp()
            last = self.report.waits[-1] if self.report.waits else None
            waited, late = (last.target, last.late) if last else (None, 0.0)
            record = ScanRecord(script_line(), description, self.clock.now, waited, late, stop, min_duration)
            self.report.scans.append(record)
            try:
                return real_scan(description, stop_time, width, *args, min_duration=min_duration, **kwargs)
            finally:
                record.close(self.clock.now)

        def wiregrid(name):
            real = getattr(sorunlib.wiregrid, name)

            def run(*args, **kwargs):
                record = RunRecord(script_line(), f"wiregrid.{name}", self.clock.now)
                self.report.runs.append(record)
                try:
                    return real(*args, **kwargs)
                finally:
                    record.end = self.clock.now

            return run

        return {"wait_until": wait_until, "scan": scan, **{n: wiregrid(n) for n in WIREGRID_RUNS}}


@contextmanager
def patched(obj, name, value):
    saved = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, saved)


@contextmanager
def environment(hostname: str | None, wiregrid: bool):
    with tempfile.TemporaryDirectory(prefix="sorun-") as tmp, ExitStack() as stack:
        Path(tmp, "default.yaml").write_text(SITE_CONFIG)
        sorunlib_config = "registry: registry\nsmurf_failure_threshold: 1\n"
        sorunlib_config += "wiregrid:\n  labjack: wg-labjack\n" if wiregrid else ""  # the labjack is named here
        Path(tmp, "sorunlib.yaml").write_text(sorunlib_config)
        saved = {k: os.environ.get(k) for k in ("OCS_CONFIG_DIR", "SORUNLIB_CONFIG")}
        os.environ.update(OCS_CONFIG_DIR=tmp, SORUNLIB_CONFIG=str(Path(tmp, "sorunlib.yaml")))
        if hostname is not None:
            stack.enter_context(patched(socket, "gethostname", lambda: hostname))
        try:
            yield
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@contextmanager
def cached_config():
    """ocs re-reads the site config (and sorunlib its own) and parses its arguments for every client: a week's
    script, which initializes sorunlib at each relock and detector setup, spends most of its time parsing the
    same files and arguments. While a script runs, ocs.site_config and sorunlib.config parse each file's text
    and each argument list once (a copy each time): they do not change during a run."""
    import ocs.site_config
    import sorunlib.config
    import yaml

    parsed: dict[str, object] = {}
    real_parse_args = ocs.site_config.parse_args
    namespaces: dict[tuple, object] = {}

    def parse_args(agent_class=None, parser=None, args=None):
        if parser is not None or args is None:
            return real_parse_args(agent_class=agent_class, parser=parser, args=args)
        key = (agent_class, tuple(args))
        if key not in namespaces:
            namespaces[key] = real_parse_args(agent_class=agent_class, args=list(args))
        return copy.copy(namespaces[key])

    def safe_load(stream):
        text = stream.read() if hasattr(stream, "read") else stream
        if text not in parsed:
            parsed[text] = yaml.safe_load(text)
        return copy.deepcopy(parsed[text])

    cached = types.SimpleNamespace(safe_load=safe_load)
    with patched(ocs.site_config, "yaml", cached), patched(sorunlib.config, "yaml", cached):
        with patched(ocs.site_config, "parse_args", parse_args):
            yield


def run_script(text: str, start: datetime | float, durations: Durations | None = None,
               platform: Platform | None = None, hostname: str | None = None) -> Report:  # fmt: skip
    """Execute ``text`` from ``start`` (the clock's first reading); never raises for what the script does."""
    import sorunlib
    import sorunlib._internal
    import sorunlib.acu

    t0 = start.timestamp() if isinstance(start, datetime) else float(start)
    harness = Harness(SimClock(t0), durations or Durations.of_model(), platform or Platform())
    modules = [m for name, m in sys.modules.items() if name == "sorunlib" or name.startswith("sorunlib.")]
    watch = harness.watch(sorunlib)
    with ExitStack() as stack:
        stack.enter_context(environment(hostname, harness.platform.wiregrid))
        stack.enter_context(bridged(harness.bridge))
        stack.enter_context(cached_config())
        stack.enter_context(clock_in(modules, harness.clock, NEEDS_CLOCK))
        # the script's own `import time; time.sleep(180)` (schedlib's scripts settle the detectors so), time.time()
        for name in TIME_FUNCTIONS:
            stack.enter_context(patched(time, name, getattr(harness.clock, "time" if name != "sleep" else name)))
        for module in (sorunlib, sorunlib.commands):
            stack.enter_context(patched(module, "wait_until", watch["wait_until"]))
        stack.enter_context(patched(sorunlib.seq, "scan", watch["scan"]))
        for name in WIREGRID_RUNS:
            stack.enter_context(patched(sorunlib.wiregrid, name, watch[name]))
        stack.enter_context(patched(sorunlib, "CLIENTS", None))
        output = stack.enter_context(redirect_stdout(io.StringIO()))
        harness.report.error = execute(text)
        harness.report.running = harness.left_running()
        if harness.hwp is not None:
            harness.hwp.now_state()  # a spin-up or down the script did not wait for ends in the lane too
    harness.report.output = output.getvalue()
    harness.report.calls, harness.report.end = harness.bridge.calls, harness.clock.now
    return harness.report


def execute(text: str) -> str | None:
    try:
        code = compile(text, SCRIPT, "exec")
    except SyntaxError as err:
        return f"line {err.lineno}: {err.msg}"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WALL_CLOCK_CALLS:
            return f"line {node.lineno}: the script reads the wall clock (.{node.func.attr}()), which the harness cannot simulate"
    try:
        exec(code, {"__name__": "__sorun_script__"})
    except Exception as err:  # the report says what stopped the script, and where
        line = next((f.lineno for f in reversed(_frames(err)) if f.filename == SCRIPT), None)
        return f"line {line}: {type(err).__name__}: {err}"
    return None


def _frames(err):
    import traceback

    return traceback.extract_tb(err.__traceback__)
