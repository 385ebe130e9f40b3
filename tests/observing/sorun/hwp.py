"""The HWP supervisor sorunlib's ``hwp`` module commands, with the state its ``monitor`` process reports.

Operations and parameters are socs' (``socs/agents/hwp_supervisor/agent.py``). The state follows what was
commanded, on the simulated clock: ``pid_to_freq(target_freq)`` spins up for the table's ``pid_to_freq``
seconds (a positive frequency is ccw seen from the sky, as the supervisor's docstring says), ``brake`` and
``pmx_off`` spin down for theirs; while spinning up or down ``is_spinning`` is true, as the supervisor's
``pid_current_freq > tolerance`` is. Like the real supervisor it refuses a spin-up while the gripper grips,
and, when the platform gives it an ACU elevation range (``--acu-min-el``/``--acu-max-el``), a spin-up with
the telescope outside it. It does not refuse a new frequency of the other sign while spinning (neither does
socs: it sets the PID direction), but the harness notes that as a hazard.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ocs_sim import REQUIRED, Agent, Op, Param

F, B = float, bool


def p(type=None, default=REQUIRED, choices=None, check=None) -> Param:
    return Param(type, default, choices, check)


@dataclass
class HwpState:
    """What the supervisor's ``monitor`` reports as ``hwp_state`` (the fields sorunlib and the preamble read)."""

    spinning: bool = False
    direction: str | None = None  # 'cw' | 'ccw' while spinning
    target_freq: float = 0.0
    grip_state: str = "ungripped"
    moving: str | None = None  # 'spin_up' | 'spin_down' while an operation runs
    until: float = 0.0  # when that operation ends

    def lane_state(self) -> str:
        return self.moving or ("spinning" if self.spinning else "stopped")


class HWPSupervisor(Agent):
    agent_class = "HWPSupervisor"

    def __init__(self, instance_id, harness, platform):
        super().__init__(instance_id, harness)
        self.platform = platform
        spinning = platform.hwp_direction is not None
        freq = {None: 0.0, "ccw": 2.0, "cw": -2.0}[platform.hwp_direction]
        self.state = HwpState(spinning, platform.hwp_direction, freq, platform.hwp_grip_state)
        took = self.harness.durations.seconds
        tol = {"freq_tol": p(F, None), "freq_tol_duration": p(F, None)}
        self.add(Op("pid_to_freq", "task", {"target_freq": p(F), **tol}, lambda _: took("pid_to_freq"),
                    self._can_spin_up, self._spin_up))  # fmt: skip
        brake = {**tol, "brake_voltage": p(F, None), "max_brake_duration": p(F, None)}
        self.add(Op("brake", "task", brake, lambda _: took("brake"), on_start=self._spin_down))
        pmx_off = {"wait_stop": p(B, False), **tol}
        self.add(Op("pmx_off", "task", pmx_off, self._pmx_off_seconds, on_start=self._spin_down))
        for name in ("enable_driver_board", "disable_driver_board", "grip_hwp", "ungrip_hwp", "abort_action"):
            self.add(Op(name, "task", None))  # no @param in socs
        self.process("monitor", {"test_mode": p(B, False)})
        self.harness.lane("hwp", self.state.lane_state(), direction=self.state.direction)

    def _pmx_off_seconds(self, params) -> float:
        return self.harness.durations.seconds("pmx_off") if params["wait_stop"] else 0.0

    def now_state(self) -> HwpState:
        """The state at the simulated clock's time: an operation that has run its course has done its work."""
        s = self.state
        if s.moving and self.harness.clock.now >= s.until:
            if s.moving == "spin_down":
                s.spinning, s.direction, s.target_freq = False, None, 0.0
            s.moving = None
            self.harness.lane("hwp", s.lane_state(), at=s.until, direction=s.direction)
        return s

    def _can_spin_up(self, params) -> str | None:
        s = self.now_state()
        if s.grip_state != "ungripped":
            return f"Spinup attempted while grip state is: {s.grip_state}"
        el_range = self.platform.hwp_el
        if el_range is not None:
            el = self.harness.acu.el
            if not el_range[0] <= el <= el_range[1]:
                return f"ACU elevation is {el} deg, outside of allowed range ({el_range[0]}, {el_range[1]})"
        return None

    def _spin_up(self, params) -> None:
        s = self.now_state()
        direction = "ccw" if params["target_freq"] >= 0 else "cw"
        if s.spinning and s.direction not in (None, direction):
            self.harness.hazard(f"HWP commanded to {direction} while spinning {s.direction} (not spun down first)")
        s.spinning, s.direction, s.target_freq = True, direction, params["target_freq"]
        s.moving, s.until = "spin_up", self.ops["pid_to_freq"].end
        self.harness.lane("hwp", "spin_up", direction=direction)

    def _spin_down(self, params) -> None:
        s = self.now_state()
        if not s.spinning:
            return  # already stopped: the task has nothing to do
        name = "brake" if "brake_voltage" in params else "pmx_off"  # pmx_off(wait_stop=False): it still slows down
        s.moving, s.until = "spin_down", self.harness.clock.now + self.harness.durations.seconds(name)
        self.harness.lane("hwp", "spin_down", direction=s.direction)

    def refresh(self, op):
        if op.name == "monitor":
            s = self.now_state()
            op.session["data"] = {
                "timestamp": self.harness.clock.now,
                "hwp_state": {
                    "is_spinning": s.spinning,
                    "direction": s.direction,
                    "pid_target_freq": abs(s.target_freq),
                    "gripper": {"grip_state": s.grip_state, "brake": [1, 1, 1]},
                    "supervisor_control_state": {"state_type": "Idle" if not s.moving else s.moving},
                },
                "acu": {"request_block_motion": False},
            }
        return super().refresh(op)
