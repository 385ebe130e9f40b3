"""The agents behind sorunlib's clients: the registry, the ACU and the SMuRFs (the HWP supervisor: hwp.py,
the wiregrid's agents: wiregrid.py).

Operation names and parameters are those of socs 0.6.4 (``socs/agents/acu/agent.py``,
``smurf_file_emulator/agent.py``, ``pysmurf_controller/agent.py``), decorator by
decorator: ``p()`` with no default is a required parameter, as ``@ocs_agent.param`` without one is; ``None``
(ops) marks an operation with no ``@param`` at all, which ocs starts with any params. The registry answers as
``ocs``'s RegistryAgent ``main`` process does (``session.data`` keyed by agent address, each with
``agent_class`` and ``expired``).
"""

from __future__ import annotations

import numpy as np

from scheduler_server.observing.sky.ephemerides import altaz
from scheduler_server.observing.sky.site import ATACAMA

from .ocs_sim import REQUIRED, Agent, Op, Param
from .platforms import SunPolicy

F, B, S = float, bool, str


def p(type=None, default=REQUIRED, choices=None, check=None) -> Param:
    """``@ocs_agent.param(key, type=, default=, choices=, check=)``: required unless a default (None too) is given."""
    return Param(type, default, choices, check)


N = None  # an explicit ``default=None``


class Registry(Agent):
    agent_class = "RegistryAgent"

    def __init__(self, instance_id, harness, root: str, agents: list[Agent]):
        super().__init__(instance_id, harness)
        self.add(Op("main", "process", {"test_mode": p(B, False)}))
        data = {f"{root}.{a.instance_id}": {"expired": False, "agent_class": a.agent_class,
                                             "agent_address": f"{root}.{a.instance_id}", "op_codes": {}}
                for a in agents}  # fmt: skip
        self.ops["main"].session = {"session_id": 0, "op_name": "main", "op_code": 3, "status": "running",
                                    "success": None, "start_time": 0.0, "end_time": None, "data": data,
                                    "messages": [], "degraded": False}  # fmt: skip


GO_TO = {"az": p(F, N), "el": p(F, N), "end_stop": p(B, True)}  # socs: None leaves that axis where it is
TURNAROUND = (None, "standard", "standard_gen", "three_leg", "two_leg")
SCAN = {
    "az_endpoint1": p(F), "az_endpoint2": p(F), "az_speed": p(F, N), "az_accel": p(F, N),
    "el_endpoint1": p(F, N), "el_endpoint2": p(F, N), "el_speed": p(F, 0.0), "el_freq": p(F, N),
    "el_mode": p(None, N, ("stop", "preset", "programtrack")), "num_scans": p(F, N), "start_time": p(F, N),
    "wait_to_start": p(F, N), "step_time": p(F, N),
    "az_start": p(None, "end", ("end", "mid", "az_endpoint1", "az_endpoint2", "mid_inc", "mid_dec")),
    "az_drift": p(F, N), "scan_type": p(None, 1, (1, 2, 3)), "az_vel_ref": p(F, N),
    "turnaround_method": p(None, N, TURNAROUND), "scan_upload_length": p(F, N), "type": p(None, N, (1, 2, 3)),
}  # fmt: skip
SCAN_PARAMS = {"az_speed": p(F, N), "az_accel": p(F, N), "el_freq": p(F, N),
               "el_mode": p(None, N, ("stop", "preset", "programtrack", "")),
               "turnaround_method": p(S, N, TURNAROUND), "reset": p(B, False)}  # fmt: skip


class ACU(Agent):
    """A satp ACU: ``go_to`` slews at the configured speeds within the motion limits; ``generate_scan`` scans;
    ``set_boresight`` turns the third axis; ``monitor`` and ``monitor_sun`` report as socs' do.

    With the platform's ``hwp_el`` set, the ACU applies HWP interlocks as socs' ``hwp_interlocks`` rules do:
    az and el motion within ``hwp_el`` whatever the HWP does, anywhere when it is stopped and ungripped, and
    the boresight only while the HWP is not spinning.
    """

    agent_class = "ACUAgent"

    def __init__(self, instance_id, harness, platform):
        super().__init__(instance_id, harness)
        self.platform = platform
        self.az, self.el = platform.park
        self.boresight = platform.boresight
        self.add(Op("go_to", "task", GO_TO, self._slew_seconds, self._limits, self._arrive))
        self.add(Op("generate_scan", "process", SCAN, check=self._scan_limits, on_start=self._sweep,
                    on_stop=self._stop_sweep))  # fmt: skip
        self.add(Op("set_scan_params", "task", SCAN_PARAMS, on_start=self._scan_params))
        self.scan_params = {"az_speed": 1.0}  # socs' satp INIT_DEFAULT_SCAN_PARAMS
        self.sweeping: tuple | None = None
        took = self.harness.durations.seconds
        self.add(Op("set_boresight", "task", {"target": p(F), "end_stop": p(B, True)}, lambda _: took("set_boresight"),
                    self._boresight_limits, self._turn))  # fmt: skip
        self.add(Op("stop_and_clear", "task", {"all_axes": p(B, False)}))
        self.add(Op("clear_faults", "task", {"_": p(None, None)}))
        self.process("monitor")  # no @param in socs
        self.process("monitor_sun", {"_": p(None, None)})
        self.harness.lane("boresight", "fixed", angle=self.boresight)

    def refresh(self, op):
        if op.name == "monitor":
            op.session["data"] = {"StatusDetailed": {"Azimuth current position": self.az,
                                                     "Elevation current position": self.el,
                                                     "Boresight current position": self.boresight,
                                                     "Azimuth commanded position": self.az,
                                                     "Elevation commanded position": self.el,
                                                     "Boresight commanded position": self.boresight,
                                                     "timestamp_agent": self.harness.clock.now}}  # fmt: skip
        elif op.name == "monitor_sun":
            sun = self.platform.sun or SunPolicy()
            lo, hi = self.platform.az_limits
            policy = {"exclusion_radius": sun.exclusion_radius, "min_sun_time": sun.min_sun_time,
                      "el_horizon": 10, "min_az": lo, "max_az": hi, "min_el": self.platform.el_limits[0],
                      "max_el": self.platform.el_limits[1]}  # fmt: skip
            op.session["data"] = {"timestamp": self.harness.clock.now, "active_avoidance": self.platform.sun is not None,
                                  "policy": policy}  # fmt: skip
        return super().refresh(op)

    def _limits(self, params) -> str | None:
        for axis, (lo, hi) in (("az", self.platform.az_limits), ("el", self.platform.el_limits)):
            target = params[axis]
            if target is not None and not lo <= target <= hi:
                return f"{axis}={target} not in accepted range, [{lo}, {hi}]."
        az = self.az if params["az"] is None else params["az"]
        el = self.el if params["el"] is None else params["el"]
        axes = [name for name, a, b in (("az", self.az, az), ("el", self.el, el)) if abs(a - b) > 0.1]
        return self.hwp_safe(self.el, el, axes) or self._sun(np.array([az]), el, "Requested position")

    def hwp_safe(self, el1: float, el2: float, axes: list[str]) -> str | None:
        """socs' ``_check_hwpsafe``: each moving axis must be allowed over [el1, el2] in the HWP's state."""
        hwp, el_range = self.harness.hwp, self.platform.hwp_el
        if hwp is None or el_range is None or not axes:
            return None
        state = hwp.now_state()
        spin = "spinning" if state.spinning else "not_spinning"
        lo, hi = min(el1, el2), max(el1, el2)
        tol = 0.1
        free = spin == "not_spinning" and state.grip_state == "ungripped"
        allowed = {"az": True, "el": True, "third": free}
        inside = el_range[0] - tol <= lo and hi <= el_range[1] + tol
        for axis in axes:
            if not (allowed[axis] and (free or inside)):
                return (f"Motion not HWP-safe: Motion in {axis} not permitted due to HWP rules for "
                        f"{{'el_range': [{el1}, {el2}], 'grip_state': '{state.grip_state}', 'spin_state': '{spin}'}}.")  # fmt: skip
        return None

    def _boresight_limits(self, params) -> str | None:
        problem = self.hwp_safe(self.el, self.el, ["third"])
        lo, hi = self.platform.boresight_limits
        if problem is None and not lo <= params["target"] <= hi:
            problem = f"boresight={params['target']} not in accepted range, [{lo}, {hi}]."
        return problem

    def _turn(self, params) -> None:
        self.harness.lane("boresight", "rotating", angle=params["target"])
        self.boresight = params["target"]
        self.harness.lane("boresight", "fixed", at=self.ops["set_boresight"].end, angle=self.boresight)

    def _sun(self, azs, el, what: str) -> str | None:
        """socs' Sun avoidance, its destination test: no pointing within exclusion_radius for min_sun_time."""
        policy = self.platform.sun
        if policy is None:
            return None
        now = self.harness.clock.now
        times = now + np.arange(0.0, policy.min_sun_time + 60.0, 60.0)
        sun_az, sun_el = altaz("sun", ATACAMA, times)
        a, e, sa, se = map(np.radians, (azs[:, None], el, sun_az[None, :], sun_el[None, :]))
        cos = np.sin(e) * np.sin(se) + np.cos(e) * np.cos(se) * np.cos(a - sa)
        near = np.degrees(np.arccos(np.clip(cos, -1, 1))) < policy.exclusion_radius
        if near.any():
            when = times[np.argmax(near.any(axis=0))]
            return f"{what} is not Sun-safe: within {policy.exclusion_radius} deg of the sun {when - now:.0f} s after {now:.0f}"
        return None

    def _slew_seconds(self, params) -> float:
        az = self.az if params["az"] is None else params["az"]
        el = self.el if params["el"] is None else params["el"]
        return self.harness.durations.slew(self.az, self.el, az, el)

    def _arrive(self, params) -> None:
        self.harness.moved(self.az, self.el, params)
        self.az = self.az if params["az"] is None else params["az"]
        self.el = self.el if params["el"] is None else params["el"]

    def _scan_params(self, params) -> None:
        self.scan_params = {"az_speed": 1.0} if params["reset"] else self.scan_params
        if params["az_speed"] is not None:
            self.scan_params["az_speed"] = params["az_speed"]

    def _sweep(self, params) -> None:
        speed = params["az_speed"] or self.scan_params["az_speed"]
        els = [e for e in (params["el_endpoint1"], params["el_endpoint2"]) if e is not None]
        el = sum(els) / len(els) if els else self.el
        middle = params["az_start"] in ("mid", "mid_inc", "mid_dec")
        self.sweeping = (self.harness.clock.now, params["az_endpoint1"], params["az_endpoint2"], speed,
                         params["az_drift"] or 0.0, el, middle)  # fmt: skip
        self.harness.scan_started(params)

    def _stop_sweep(self) -> None:
        """Where the sweep has got to when it stops: a triangle at az_speed between the (drifting) endpoints."""
        t0, e1, e2, speed, drift, el, middle = self.sweeping
        elapsed = self.harness.clock.now - t0
        width = abs(e2 - e1)
        travelled = (elapsed * speed + (width / 2 if middle else 0.0)) % (2 * width) if width else 0.0
        offset = travelled if travelled <= width else 2 * width - travelled
        self.az = min(e1, e2) + offset + drift * elapsed
        self.el, self.sweeping = el, None
        self.harness.scan_stopped()

    def _scan_limits(self, params) -> str | None:
        lo, hi = self.platform.az_limits
        ends = (params["az_endpoint1"], params["az_endpoint2"])
        if not all(lo <= az <= hi for az in ends):
            return f"scan endpoints {ends} outside the azimuth limits [{lo}, {hi}]"
        elo, ehi = self.platform.el_limits
        els = [e for e in (params["el_endpoint1"], params["el_endpoint2"]) if e is not None]
        if not all(elo <= e <= ehi for e in els):
            return f"scan elevation {els} outside the elevation limits [{elo}, {ehi}]"
        el1, el2 = (min(els), max(els)) if els else (self.el, self.el)
        axes = ["az", "el"] if el1 != el2 else ["az"]
        return self.hwp_safe(el1, el2, axes) or self._sun(
            np.linspace(min(ends), max(ends), 16), els[0] if els else self.el, "Scan"
        )


# SMuRF operations that leave the detectors biased (True) or not (False): a relock or setup retunes them unbiased
BIASING = {"uxm_setup": False, "uxm_relock": False, "zero_biases": False, "bias_dets": True, "set_biases": True}


def tracks_bias(agent: Agent) -> None:
    """The agent knows whether its detectors are biased: as the platform says at the start, then as commanded."""
    agent.biased = agent.harness.platform.detectors_biased
    for name, biased in BIASING.items():
        if name in agent.ops:
            agent.ops[name].on_start = lambda _, biased=biased: setattr(agent, "biased", biased)


class SmurfFileEmulator(Agent):
    """What ``initialize(test_mode=True)`` finds in place of a pysmurf-controller."""

    agent_class = "SmurfFileEmulator"

    def __init__(self, instance_id, harness):
        super().__init__(instance_id, harness)
        took = self.harness.durations.seconds
        self.add(Op("uxm_setup", "task", {"sleep": p(None, True)}, lambda _: took("uxm_setup")))
        self.add(Op("uxm_relock", "task", None, lambda _: took("uxm_relock")))  # no @param
        self.add(
            Op(
                "take_iv",
                "task",
                {"wait": p(None, True), "kwargs": p(None, N), "tag": p(None, N)},
                lambda _: took("take_iv"),
            )
        )
        bias_step = {"wait": p(None, True), "tag": p(None, N)}
        self.add(Op("take_bias_steps", "task", bias_step, lambda _: took("take_bias_steps")))
        self.add(Op("take_bgmap", "task", bias_step, lambda _: took("take_bgmap")))
        self.add(Op("take_noise", "task", {"tag": p(None, N)}, lambda _: took("take_noise")))
        self.add(Op("bias_dets", "task", None, lambda _: took("bias_dets")))  # no @param
        stream = {"duration": p(None, N), "kwargs": p(None, N), "use_stream_between": p(B, False),
                  "start_offset": p(F, 0.0), "subtype": p(None, N), "tag": p(None, N)}  # fmt: skip
        self.add(Op("stream", "process", stream, on_start=self._stream_on))
        tracks_bias(self)

    def _stream_on(self, params) -> None:
        self.ops["stream"].session["data"] = {"stream_on": True}


class PysmurfController(Agent):
    """What ``initialize(test_mode=False)`` finds: the real controller's operations and parameters."""

    agent_class = "PysmurfController"

    def __init__(self, instance_id, harness):
        super().__init__(instance_id, harness)
        took = self.harness.durations.seconds
        common = {"kwargs": p(None, N), "tag": p(None, N), "run_in_main_process": p(B, False)}
        tasks = {
            "uxm_setup": {
                "bands": p(None, N),
                "kwargs": p(None, N),
                "run_in_main_procsess": p(None, False),
            },  # sic, socs 0.6.4
            "uxm_relock": {"bands": p(None, N), "kwargs": p(None, N), "run_in_main_process": p(B, False)},
            "take_noise": {"duration": p(F, 30.0), **common},
            "take_bgmap": common,
            "take_iv": common,
            "take_bias_steps": {"rfrac_range": p(None, (0.2, 0.9)), **common},
            "bias_dets": {"rfrac": p(None, N), "kwargs": p(None, N)},
        }
        for name, params in tasks.items():
            self.add(Op(name, "task", params, lambda _, name=name: took(name)))
        self.add(Op("set_biases", "task", {"bias": p(), "bgs": p(None, N)}))
        self.add(Op("zero_biases", "task", {"bgs": p(None, N)}))
        stream = {"duration": p(F, N), "kwargs": p(None, N), "load_tune": p(B, True),
                  "stream_type": p(None, "obs", ("obs", "oper")), "subtype": p(None, N), "tag": p(None, N),
                  "test_mode": p(B, False)}  # fmt: skip
        self.add(Op("stream", "process", stream, on_start=self._stream_on))
        tracks_bias(self)

    def _stream_on(self, params) -> None:
        self.ops["stream"].session["data"] = {"stream_on": True}


class IBootBar(Agent):
    """An iBoot PDU (socs ``ibootbar``): its ``acq`` reports every outlet on (``outletStatus_<i>``: status 1)."""

    agent_class = "ibootbarAgent"

    def __init__(self, instance_id, harness):
        super().__init__(instance_id, harness)
        self.process("acq", {"test_mode": p(B, False)})
        self.ops["acq"].session["data"] = {f"outletStatus_{i}": {"status": 1} for i in range(8)}
