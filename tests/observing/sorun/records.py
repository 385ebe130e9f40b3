"""What a run reports: operations, waits and scans on the simulated clock, refusals, and the error if any."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def iso(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass
class OpRecord:
    agent: str
    op: str
    params: dict
    start: float
    end: float | None  # None: still running when the script ended
    ok: bool | None
    line: int | None  # the script line that led to it


@dataclass
class RunRecord:
    """A sorunlib procedure the script called that is neither a scan nor a wait (a wiregrid calibration)."""

    line: int | None
    name: str  # e.g. 'wiregrid.calibrate'
    start: float
    end: float | None = None


@dataclass
class LaneRecord:
    lane: str  # 'hwp' | 'boresight'
    at: float
    state: str
    detail: dict


# SMuRF operation -> the detectors lane's state (the policy's events shape)
DETECTOR_STATES = {"uxm_relock": "relock", "uxm_setup": "setup", "take_iv": "iv", "bias_dets": "bias",
                   "take_bias_steps": "bias_step", "take_noise": "noise"}  # fmt: skip


@dataclass
class WaitRecord:
    line: int | None
    target: float
    called: float  # the simulated time wait_until was called
    tolerance: float | str | None

    @property
    def late(self) -> float:
        """Seconds the script reached this wait_until after its target (0 if on time)."""
        return max(0.0, self.called - self.target)


@dataclass
class ScanRecord:
    line: int | None
    description: str
    called: float
    waited_for: float | None  # the target of the last wait_until before it
    wait_late: float  # how late the script reached that wait_until: what the scan lost to running late
    stop_time: float
    min_duration: float | None
    started: float | None = None  # when the ACU's generate_scan started
    stopped: float | None = None
    endpoints: tuple[float, float] | None = None
    skipped: str | None = None  # why sorunlib's seq.scan returned without scanning

    def close(self, now: float) -> None:
        if self.started is not None:
            return
        if self.called > self.stop_time:
            self.skipped = f"stop time {iso(self.stop_time)} had passed at {iso(self.called)}"
        elif self.min_duration is not None and self.called > self.stop_time - self.min_duration:
            self.skipped = f"less than min_duration={self.min_duration} s left at {iso(self.called)}"
        else:
            self.skipped = "no scan started (script error?)"

    @property
    def lost(self) -> float:
        """Seconds from the moment the script waited for to the scan's start: setup plus lateness."""
        if self.started is None or self.waited_for is None:
            return 0.0
        return max(0.0, self.started - self.waited_for)


@dataclass
class Report:
    ops: list[OpRecord] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    scans: list[ScanRecord] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # what an agent refused, and why
    hazards: list[str] = field(default_factory=list)  # what agents accepted that an operator would not want
    lanes: list[LaneRecord] = field(default_factory=list)  # the HWP's and the boresight's state changes
    runs: list[RunRecord] = field(default_factory=list)  # wiregrid calibrations and time-constant runs
    running: list[str] = field(default_factory=list)  # operations the script started and left running at its end
    error: str | None = None  # what stopped the script, with its line
    calls: int = 0  # HTTP calls through the bridge
    output: str = ""  # what sorunlib printed
    end: float = 0.0

    @property
    def ok(self) -> bool:
        """The script ran to its end, no agent refused anything, and it left no operation running."""
        return self.error is None and not self.faults and not self.running

    def late_waits(self, allowance: float = 0.0) -> list[WaitRecord]:
        return [w for w in self.waits if w.late > allowance]

    def skipped_scans(self) -> list[ScanRecord]:
        return [s for s in self.scans if s.skipped]

    def shortened_scans(self, allowance: float = 0.0) -> list[ScanRecord]:
        """Scans that started late because the script reached their wait_until late; sorunlib still stops them
        at their stop_time, so they are shorter than planned by that much."""
        return [s for s in self.scans if not s.skipped and s.wait_late > allowance]

    def lane(self, name: str) -> list[dict]:
        """The ``name`` lane ('hwp', 'boresight' or 'detectors') as intervals on the simulated clock, in the shape
        of a policy's events (t0/t1 POSIX seconds): what the simulated agents did, to compare with what was planned."""
        if name == "detectors":
            runs = {(DETECTOR_STATES[op.op], op.start, op.end) for op in self.ops if op.op in DETECTOR_STATES}
            return [{"lane": name, "t0": t0, "t1": t1 if t1 is not None else self.end, "state": state}
                    for state, t0, t1 in sorted(runs, key=lambda r: (r[1], r[0]))]  # fmt: skip
        changes = sorted((r for r in self.lanes if r.lane == name), key=lambda r: r.at)
        out: list[dict] = []
        for record, after in zip(changes, [*changes[1:], None], strict=True):
            t1 = self.end if after is None else after.at
            if out and out[-1]["state"] == record.state and out[-1]["t1"] == record.at:
                same = {k: out[-1].get(k) for k in record.detail} == record.detail
                if same:
                    out[-1]["t1"] = max(t1, out[-1]["t1"])
                    continue
            if t1 > record.at or after is None:
                out.append(
                    {"lane": name, "t0": record.at, "t1": max(t1, record.at), "state": record.state, **record.detail}
                )
        return out

    def summary(self, limit: int = 10) -> str:
        lines = [f"error: {self.error}"] if self.error else []
        lines += [f"fault: {f}" for f in self.faults[:limit]]
        lines += [f"hazard: {h}" for h in self.hazards[:limit]]
        lines += [f"running: {r}" for r in self.running[:limit]]
        lines += [f"late: line {w.line} by {w.late:.0f} s (target {iso(w.target)})" for w in self.late_waits()[:limit]]
        lines += [f"skipped: line {s.line} {s.description}: {s.skipped}" for s in self.skipped_scans()[:limit]]
        lines += [
            f"shortened: line {s.line} {s.description} by {s.wait_late:.0f} s" for s in self.shortened_scans()[:limit]
        ]
        return "\n".join(lines) or "ok"
