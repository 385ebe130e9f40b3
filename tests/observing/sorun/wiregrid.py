"""The wiregrid's agents sorunlib's ``wiregrid`` module commands: actuator, Kikusui power supply, encoder, LabJack.

Operation names and parameters are socs' (``socs/agents/wiregrid_actuator``, ``wiregrid_kikusui``,
``wiregrid_encoder``, ``labjack``): ``insert``/``eject`` (speedrate checked to (0, 5]), ``motor_on``/``motor_off``,
``set_v`` (0..12 V), ``set_c`` (0..4.9 A), ``set_on``/``set_off``, ``stepwise_rotation`` (no ``@param``: it reads
``num_laps`` and ``stopped_time`` itself, 16 steps a lap). Their ``acq`` processes report fresh timestamps on the
simulated clock (sorunlib refuses data older than 5 s), the motor state and the grid's position, the encoder's
last update and the LabJack's temperatures (warm enough unless the platform says otherwise). The actuator
refuses to move with its motor off, as its driver does not move then.
"""

from __future__ import annotations

from .ocs_sim import REQUIRED, Agent, Op, Param

F, B = float, bool


def p(type=None, default=REQUIRED, check=None) -> Param:
    return Param(type, default, None, check)


SPEED = {"speedrate": p(F, 1.0, lambda x: 0.0 < x <= 5.0), "high_speed": p(B, False)}
STEPS_PER_LAP = 16  # 22.5 deg steps (socs: range(int(num_laps * 16.)))


class WiregridActuator(Agent):
    agent_class = "WiregridActuatorAgent"

    def __init__(self, instance_id, harness, platform):
        super().__init__(instance_id, harness)
        self.motor, self.position = 0, platform.wiregrid_position
        took = self.harness.durations.seconds
        self.add(Op("insert", "task", SPEED, lambda _: took("wiregrid_insert"), self._motor_needed, self._to("inside")))
        self.add(Op("eject", "task", SPEED, lambda _: took("wiregrid_eject"), self._motor_needed, self._to("outside")))
        self.add(Op("motor_on", "task", None, on_start=lambda _: setattr(self, "motor", 1)))
        self.add(Op("motor_off", "task", None, on_start=lambda _: setattr(self, "motor", 0)))
        self.process("acq")

    def _motor_needed(self, params) -> str | None:
        return None if self.motor == 1 else "the actuator's motor is off: it does not move"

    def _to(self, position: str):
        def move(params) -> None:
            hwp = self.harness.hwp
            if position == "inside" and hwp is not None and not hwp.now_state().spinning:
                self.harness.hazard("wiregrid inserted with the HWP not spinning (its calibration needs it spinning)")
            self.position = position

        return move

    def refresh(self, op):
        if op.name == "acq":
            op.session["data"] = {"timestamp": self.harness.clock.now,
                                  "fields": {"motor": self.motor, "position": self.position}}  # fmt: skip
        return super().refresh(op)


class WiregridKikusui(Agent):
    agent_class = "WiregridKikusuiAgent"

    def __init__(self, instance_id, harness):
        super().__init__(instance_id, harness)
        self.add(Op("set_v", "task", {"volt": p(F, 12.0, lambda x: 0.0 <= x <= 12.0)}))
        self.add(Op("set_c", "task", {"current": p(F, 0.0, lambda x: 0.0 <= x <= 4.9)}))
        self.add(Op("set_on", "task", None))
        self.add(Op("set_off", "task", None))
        self.add(Op("stepwise_rotation", "task", None, self._stepwise_seconds))
        self.process("IV_acq")

    def _stepwise_seconds(self, params) -> float:
        steps = int(params.get("num_laps", 1) * STEPS_PER_LAP)
        return steps * (params.get("stopped_time", 10) + self.harness.durations.seconds("wiregrid_step"))

    def refresh(self, op):
        if op.name == "IV_acq":
            op.session["data"] = {"timestamp": self.harness.clock.now, "fields": {"kikusui": {}}}
        return super().refresh(op)


class WiregridEncoder(Agent):
    agent_class = "WiregridEncoderAgent"

    def __init__(self, instance_id, harness):
        super().__init__(instance_id, harness)
        self.process("acq")

    def refresh(self, op):
        if op.name == "acq":
            now = self.harness.clock.now
            op.session["data"] = {"timestamp": now, "fields": {"encoder_data": {"last_updated": now},
                                                               "irig_data": {"last_updated": now}}}  # fmt: skip
        return super().refresh(op)


class LabJack(Agent):
    agent_class = "LabJackAgent"

    def __init__(self, instance_id, harness, temperatures=None):
        super().__init__(instance_id, harness)
        self.temperatures = temperatures or {"AIN0C": 15.0, "AIN1C": 15.0, "AIN2C": 20.0}
        self.process("acq")

    def refresh(self, op):
        if op.name == "acq":
            op.session["data"] = {"block_name": "sens", "timestamp": self.harness.clock.now,
                                  "data": dict(self.temperatures)}  # fmt: skip
        return super().refresh(op)


def wiregrid_agents(harness, platform) -> list[Agent]:
    """The four agents, by the instance ids the harness's sorunlib.yaml names (the LabJack's: ``wiregrid.labjack``)."""
    return [WiregridActuator("wg-actuator", harness, platform), WiregridKikusui("wg-kikusui", harness),
            WiregridEncoder("wg-encoder", harness), LabJack("wg-labjack", harness)]  # fmt: skip
