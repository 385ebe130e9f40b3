"""How long each simulated operation takes, and where each figure comes from.

Two tables. ``Durations.of_model()`` (the default) takes the figures of the policy's own telescope model
(``observing/telescope.py``, ``TelescopeModel``): a script run with them shows whether the policy keeps to
its own plan. ``Durations.schedlib_sat()`` takes what the observatory's scheduler assumes (schedlib, its SAT
policy, ``src/schedlib/policies/tel.py`` and ``sat.py`` at commit af0e811): an independent check. Figures
neither source gives are in ``OTHERS``, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler_server.observing.telescope import TelescopeModel

# SMuRF operation -> the TelescopeModel field that gives its nominal duration
MODEL_FIELDS = {
    "uxm_setup": "uxm_setup_seconds",
    "take_iv": "iv_curve_seconds",
    "bias_dets": "bias_dets_seconds",
    "take_bias_steps": "bias_step_seconds",
}
# operation -> (seconds, source)
SCHEDLIB_SAT: dict[str, tuple[float, str]] = {
    "uxm_setup": (900.0, "tel.py RELOCK_DURATION = 15 min (schedlib plans a relock this long)"),
    "take_iv": (
        1200.0,
        "tel.py det_setup_duration = 20 min, for IV + bias_dets + sleep(180) + bias step: all given to the IV, an upper bound",
    ),
    "bias_dets": (180.0, "tel.py det_setup: time.sleep(180) after bias_dets, the detectors' settling"),
    "take_bias_steps": (60.0, "tel.py bias_step: 60 s"),
}
OTHERS: dict[str, tuple[float, str]] = {
    "take_noise": (30.0, "sorunlib smurf.take_noise docstring: 'a short, 30 second, timestream'"),
    "take_bgmap": (5.0, "socs SmurfFileEmulator.take_bgmap: 5 s of fake data (no field figure known)"),
    "uxm_relock": (900.0, "schedlib tel.py RELOCK_DURATION = 15 min"),
    "pid_to_freq": (420.0, "schedlib sat.py HWP_SPIN_UP = 7 min"),
    "brake": (900.0, "schedlib sat.py HWP_SPIN_DOWN = 15 min"),
    "pmx_off": (900.0, "schedlib sat.py HWP_SPIN_DOWN = 15 min (no brake: at least as long)"),
    "set_boresight": (60.0, "schedlib sat.py BORESIGHT_DURATION = 1 min"),
    "wiregrid_insert": (60.0, "an estimate: socs moves the grid 920 mm at speedrate 1.0; no field figure found"),
    "wiregrid_eject": (60.0, "an estimate, as wiregrid_insert"),
    "wiregrid_step": (
        2.0,
        "an estimate: socs' 8 feedback pulses of 0.18-0.30 s per 22.5 deg step, beside its stopped_time",
    ),
}


SAT_BIAS_DETS = 60.0  # an estimate: neither schedlib nor socs gives bias_dets its own time (schedlib counts it in
#                      the 20 min detector setup)


@dataclass
class Durations:
    seconds_of: dict[str, float] = field(default_factory=dict)
    az_speed: float = 1.0  # slews, deg/s
    el_speed: float = 0.5
    settle: float = 10.0  # after each move, s

    @classmethod
    def of_model(cls, model: TelescopeModel | None = None) -> Durations:
        """The policy's own telescope model: its nominal command durations, slew speeds and settling."""
        model = model or TelescopeModel()
        seconds = {k: v for k, (v, _) in OTHERS.items()} | {op: getattr(model, f) for op, f in MODEL_FIELDS.items()}
        return cls(seconds, model.az_speed, model.el_speed, model.settle_seconds)

    @classmethod
    def schedlib_sat(cls) -> Durations:
        """schedlib's SAT figures for the SMuRF operations; slews as the model has them (schedlib has no slew time)."""
        base = cls.of_model()
        base.seconds_of |= {k: v for k, (v, _) in SCHEDLIB_SAT.items()}
        return base

    @classmethod
    def of_sat(cls, ops, model: TelescopeModel) -> Durations:
        """The sat policy's own figures (its ``OpsConfig`` and slew model), laid on the operations sorunlib runs.

        A relock (the policy's ``relock_duration``) is the script's own sleep after zero_biases and the
        uxm_relock; a detector setup (``det_setup_duration``) is the IV, bias_dets (``SAT_BIAS_DETS``), the
        script's settling sleep, a bias step and the noise (OTHERS), the IV taking what is left.
        """
        base = cls.of_model(model)
        relock = ops.relock_duration - (ops.relock.settle if ops.relock.zero_biases else 0.0)
        noise = base.seconds_of["take_noise"] if ops.det_setup.take_noise else 0.0
        iv = ops.det_setup_duration - SAT_BIAS_DETS - ops.det_setup.settle - ops.bias_step_duration - noise
        base.seconds_of |= {
            "uxm_relock": relock, "take_iv": iv, "bias_dets": SAT_BIAS_DETS, "take_bias_steps": ops.bias_step_duration,
            "pid_to_freq": ops.hwp_spin_up, "brake": ops.hwp_spin_down, "pmx_off": ops.hwp_spin_down,
            "set_boresight": ops.boresight_duration,
        }  # fmt: skip
        return base

    @classmethod
    def instant(cls) -> Durations:
        """Every operation takes no time: what a script asks for, apart from how long it takes."""
        return cls({k: 0.0 for k in (*MODEL_FIELDS, *OTHERS)}, float("inf"), float("inf"), 0.0)

    def with_seconds(self, **seconds: float) -> Durations:
        """This table with some operations' seconds replaced."""
        return Durations(self.seconds_of | seconds, self.az_speed, self.el_speed, self.settle)

    def seconds(self, op: str) -> float:
        return self.seconds_of[op]

    def slew(self, az0: float, el0: float, az1: float, el1: float) -> float:
        if (az0, el0) == (az1, el1):
            return 0.0
        return max(abs(az1 - az0) / self.az_speed, abs(el1 - el0) / self.el_speed) + self.settle
