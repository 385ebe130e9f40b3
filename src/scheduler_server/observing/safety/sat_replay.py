"""Replaying the sequencer's ``import sorunlib as run`` scripts, with the SAT's hazards.

Besides the pointing and the clock it follows what the script does to the HWP (stopped, spinning,
which way), the boresight and the detectors (biased or not since the last relock), starting from what
the preamble's asserts establish (a failed assert stops the script, so after one its fact holds).
Durations and limits come from the checker's own platform data (``platforms.py``). Each hazard is a
``Violation`` naming its line; see ``findings.HAZARDS``.
"""

from __future__ import annotations

from scheduler_server.observing.safety import platforms
from scheduler_server.observing.safety.findings import Span, Violation
from scheduler_server.observing.safety.replay import Replay
from scheduler_server.observing.safety.script_reader import Call

MAX_TOLERANCE = 3600.0  # s: a wait_until tolerance beyond an hour (or negative) says the script's times mean little
SCAN_LIMITS = "set_scan_params(az_speed={0:g}, az_accel={1:g}): {3} takes az_accel in (0, {2:g}], az_speed > 0"
SMURF = ("tag", "concurrent", "settling_time")
SCAN_PASS_THROUGH = (
    # generate_scan's parameters seq.scan passes on (socs 0.6.4) that change neither where nor how long.
    "az_speed",
    "az_accel",
    "el_freq",
    "el_mode",
    "step_time",
    "az_start",
    "az_vel_ref",
    "turnaround_method",
    "scan_upload_length",
)


class SatReplay(Replay):
    SIGNATURES = {
        "initialize": ("test_mode",),
        "wait_until": ("timestamp", "tolerance"),
        "acu.move_to": ("az", "el"),
        "acu.set_boresight": ("target",),
        "acu.set_scan_params": ("az_speed", "az_accel", "el_freq", "reset"),
        "seq.scan": (
            "description",
            "stop_time",
            "width",
            "az_drift",
            "scan_type",
            "el_amp",
            "tag",
            "subtype",
            "min_duration",
        ),
        "hwp.spin_up": ("freq",),
        "hwp.spin_down": ("active", "brake_voltage"),
        "smurf.uxm_relock": ("test_mode", "concurrent", "settling_time"),
        "smurf.uxm_setup": ("concurrent", "settling_time"),
        "smurf.zero_biases": ("bias_group", "concurrent", "settling_time"),
        "smurf.iv_curve": ("tag", "iv_kwargs", "concurrent", "settling_time"),
        "smurf.bias_dets": ("rfrac", "concurrent", "settling_time"),
        "smurf.bias_step": SMURF,
        "smurf.take_noise": SMURF,
        "wiregrid.calibrate": (
            "continuous",
            "elevation_check",
            "boresight_check",
            "temperature_check",
            "bias_step_before",
            "bias_step_after",
        ),
        "wiregrid.time_constant": ("num_repeats",),
        "time.sleep": ("seconds",),
    }
    REQUIRED = {
        "wait_until": 1,
        "acu.move_to": 2,
        "acu.set_boresight": 1,
        "acu.set_scan_params": 2,
        "seq.scan": 3,
        "hwp.spin_up": 1,
        "time.sleep": 1,
    }
    NUMERIC = {
        "acu.move_to": ("az", "el"),
        "acu.set_boresight": ("target",),
        "acu.set_scan_params": ("az_speed", "az_accel", "el_freq"),
        "seq.scan": ("width", "az_drift", "el_amp", "min_duration"),
        "hwp.spin_up": ("freq",),
        "time.sleep": ("seconds",),
    }
    EXTRA = {"acu.set_scan_params": ("turnaround_method", "el_mode"), "seq.scan": SCAN_PASS_THROUGH}

    def __init__(self, platform: platforms.Platform, start: float | None, report):
        super().__init__(start, report)
        self.platform = platform
        self.hwp: str | None = None  # "stopped" | "spinning"; None: unknown
        self.hwp_dir: str | None = None  # "ccw" | "cw"
        self.boresight: float | None = None
        self.biased: bool | None = None  # None: as the script found them (not judged)
        self.unbiased_by: tuple[int, str] | None = None  # the line and command that left them unbiased
        self.stated: tuple[float, int, str] | None = None  # the latest time the script stated, its line, its call
        # Two clocks: ``clock`` the nominal one the spans are laid on (slews at the platform's speeds), and
        # ``early`` the earliest the script can be there (slews taking no time, as schedlib plans them;
        # every other command its least duration): a wait reached late, or a scan skipped, on it is for sure.
        self.early = start
        self.asserted_az: float | None = None
        self.aliases: dict[str, str] = {}  # names the script bound to reads, and what they read

    def call(self, call: Call) -> None:
        name = call.name
        if name == "assert":
            self._fact(call)
            return
        if name == "print":
            return
        if name == "=":
            self.aliases[call.args[0]] = call.args[1]
            return
        if self._client_call(call):
            return
        if name.startswith("run.") and name[4:] != "time.sleep":
            name = name[4:]
        elif name != "time.sleep":
            name = ""  # only run.* and time.sleep are sorunlib's
        if name not in self.SIGNATURES:
            self.unknown(call, call.name)
            return
        args = self.arguments(call, name, call.name)
        if args is not None:
            getattr(self, "_" + name.replace(".", "_"))(args, call.line)

    def _client_call(self, call: Call) -> bool:
        """``acu.stop_and_clear()`` on the ACU's client (``acu = run.CLIENTS['acu']``), as schedlib ends a
        script: the mount stops where it is and its command stack is cleared; nothing moves."""
        client, _, op = call.name.partition(".")
        if self.aliases.get(client) != "run.CLIENTS['acu']" or op != "stop_and_clear":
            return False
        if call.args or call.kwargs:
            self.problem(call.line, f"{call.name}() takes no arguments")
        return True

    def unknown(self, call: Call, name: str) -> None:
        known = sorted(n if n == "time.sleep" else f"run.{n}" for n in self.SIGNATURES)
        self.problem(call.line, f"unknown command {name or '(expression)'}(); only {', '.join(known)} are understood")

    # --- what the preamble establishes
    def _fact(self, call: Call) -> None:
        key, value = call.args[0], call.args[1] if len(call.args) > 1 else None
        if key == "el":
            self.el = (value, value)
            self._hwp_el(call.line, self.el, "holds")
            if self.az is None and self.asserted_az is not None:
                self.az = (self.asserted_az, self.asserted_az)
        elif key == "az":
            self.asserted_az = value  # with the elevation, the pointing is known: the first slew is judged too
            if self.el is not None and self.az is None:
                self.az = (value, value)
        elif key == "boresight":
            self.boresight = value
        elif key == "hwp_spinning":
            self.hwp = "spinning" if value else "stopped"
            self._hwp_el(call.line, self.el, "holds")
        elif key == "hwp_dir":
            self.hwp_dir = value
        elif key == "hostname" and value != f"daq-{self.platform.name}-sequencer":
            self.problem(
                call.line, f"the hostname check names {value!r}; the header's platform is {self.platform.name}"
            )

    # --- commands
    def _initialize(self, args: dict, line: int) -> None:
        pass

    def _wait_until(self, args: dict, line: int) -> None:
        target = self.time(args["timestamp"], line)
        if target is None:
            return
        self._stated(target, line, "wait_until")
        if self.clock is not None:
            deadline = self._deadline(target, args.get("tolerance"), line)
            if deadline is not None and self.early > deadline:
                self.hazard(
                    line,
                    "time",
                    f"wait_until({args['timestamp']!r}) is reached at least {self.early - target:.0f} s late, beyond"
                    f" its tolerance ({args['tolerance']!r}): sorunlib stops the script there",
                    at=self.early,
                )
            self.hold(line, "waiting", target)
        self.clock = target if self.clock is None else max(self.clock, target)
        self.early = target if self.early is None else max(self.early, target)

    def _deadline(self, target: float, tolerance, line: int) -> float | None:
        if tolerance is None:
            return None
        if isinstance(tolerance, str):
            deadline = self.time(tolerance, line)
        elif isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
            deadline = target + tolerance
        else:
            self.problem(line, "wait_until(): tolerance must be seconds or an ISO time")
            return None
        if deadline is not None and not 0 <= deadline - target <= MAX_TOLERANCE:
            self.problem(line, f"wait_until(): a tolerance of {deadline - target:g} s (0..{MAX_TOLERANCE:g} s sane)")
        return deadline

    def _acu_move_to(self, args: dict, line: int) -> None:
        az, el = float(args["az"]), float(args["el"])
        self._in_range(line, "az", (az, az), f"move_to az {az:g}")
        self._in_range(line, "el", (el, el), f"move_to el {el:g}")
        self._hwp_el(line, (el, el), "moves to")
        self.move(az, el, line, self.platform.slew_seconds)

    def _acu_set_boresight(self, args: dict, line: int) -> None:
        target = float(args["target"])
        self._in_range(line, "boresight", (target, target), f"set_boresight({target:g})")
        if self.hwp != "stopped":
            state = "spins" if self.hwp == "spinning" else "may spin (its state is not asserted before)"
            self.hazard(line, "boresight", f"set_boresight({target:g}) while the HWP {state}")
        self._busy(line, "acu.set_boresight()", platforms.seconds("acu.set_boresight"))
        self.boresight = target

    def _acu_set_scan_params(self, args: dict, line: int) -> None:
        speed, accel, most = float(args["az_speed"]), float(args["az_accel"]), self.platform.scan_az_accel
        if not (0 < accel <= most and speed > 0):
            self.hazard(line, "range", SCAN_LIMITS.format(speed, accel, most, self.platform.name))

    def _seq_scan(self, args: dict, line: int) -> None:
        if self.az is None:
            self.problem(line, "seq.scan() before any acu.move_to(): the pointing is unknown")
            return
        stop = self.time(args["stop_time"], line)
        if stop is None:
            return
        self._stated(stop, line, "stop_time")
        if self.clock is None:
            self.problem(line, "seq.scan() before any wait_until() or start time: when it runs is unknown")
            return
        least = float(args.get("min_duration") or 0.0)
        if self.early > stop - least:
            late = (
                "after its stop_time"
                if self.early > stop
                else f"less than its min_duration {least:g} s before its stop_time"
            )
            self.hazard(
                line, "time", f"seq.scan({args['description']!r}) would be skipped: it starts {late}", at=self.early
            )
            return
        amp = float(args.get("el_amp") or 0.0) if args.get("scan_type", 1) == 3 else 0.0
        el = (self.el[0] - abs(amp), self.el[1] + abs(amp))
        lo, hi = self.sweep(float(args["width"]), float(args.get("az_drift") or 0.0), stop)
        what = f"scan {args['description']!r}"
        self._in_range(line, "az", (lo, hi), f"{what} over az {lo:g}..{hi:g}")
        self._in_range(line, "el", el, f"{what} over el {el[0]:g}..{el[1]:g}")
        self._hwp_el(line, el, "scans at")
        if self.biased is False:
            self.hazard(
                line,
                "bias",
                f"{what} starts with the detectors not biased: smurf.{self.unbiased_by[1]}() on line"
                f" {self.unbiased_by[0]} left them so and no smurf.bias_dets() followed",
            )
        # It runs for sure (the earliest clock leaves it time): from the nominal clock, or if that is past
        # its stop already, from the earliest.
        begin = self.clock if self.clock < stop else self.early
        self.spans.append(Span(line, "scan", begin, stop, (lo, hi), el, str(args["description"])))
        self.clock = self.early = stop
        self.az = (lo, hi)

    def _hwp_spin_up(self, args: dict, line: int) -> None:
        freq = float(args["freq"])
        if freq == 0:
            self.hazard(line, "hwp", "hwp.spin_up(freq=0): a spin-up to no rotation")
            return
        direction = "ccw" if freq > 0 else "cw"
        if self.hwp == "spinning" and self.hwp_dir not in (None, direction):
            self.hazard(line, "hwp", f"hwp.spin_up(freq={freq:g}) reverses the spinning HWP without stopping it")
        self.hwp = "spinning"
        self._hwp_el(line, self.el, "spins up at")
        self._busy(line, "hwp.spin_up()", platforms.seconds("hwp.spin_up"))
        self.hwp_dir = direction

    def _hwp_spin_down(self, args: dict, line: int) -> None:
        if self.hwp != "stopped":
            self._busy(line, "hwp.spin_down()", platforms.seconds("hwp.spin_down"))
        self.hwp = "stopped"

    def _smurf(self, name: str, line: int, biased: bool | None = None) -> None:
        self._busy(line, f"smurf.{name}()", platforms.seconds(f"smurf.{name}"))
        if biased is False:
            self.unbiased_by = (line, name)
        if biased is not None:
            self.biased = biased

    def _smurf_uxm_relock(self, args: dict, line: int) -> None:
        self._smurf("uxm_relock", line, biased=False)

    def _smurf_uxm_setup(self, args: dict, line: int) -> None:
        self._smurf("uxm_setup", line, biased=False)

    def _smurf_zero_biases(self, args: dict, line: int) -> None:
        self._smurf("zero_biases", line, biased=False)

    def _smurf_iv_curve(self, args: dict, line: int) -> None:
        # An IV sweeps the bias and leaves it off the operating point: bias_dets puts it back.
        self._smurf("iv_curve", line, biased=False)

    def _smurf_bias_dets(self, args: dict, line: int) -> None:
        self._smurf("bias_dets", line, biased=True)

    def _smurf_bias_step(self, args: dict, line: int) -> None:
        self._smurf("bias_step", line)

    def _smurf_take_noise(self, args: dict, line: int) -> None:
        self._smurf("take_noise", line)

    def _wiregrid_calibrate(self, args: dict, line: int) -> None:
        self._wiregrid(
            line, "wiregrid.calibrate()", args.get("elevation_check", True), args.get("boresight_check", True)
        )
        self._busy(line, "wiregrid.calibrate()", platforms.seconds("wiregrid.calibrate"))

    def _wiregrid_time_constant(self, args: dict, line: int) -> None:
        repeats = args.get("num_repeats", 1)
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            self.problem(line, "wiregrid.time_constant(): num_repeats must be a whole number from 1")
            return
        self._wiregrid(line, "wiregrid.time_constant()", True, False)
        self._busy(line, "wiregrid.time_constant()", repeats * platforms.seconds("wiregrid.time_constant"))
        if repeats % 2 and self.hwp_dir is not None:
            self.hwp_dir = {"ccw": "cw", "cw": "ccw"}[self.hwp_dir]  # it reverses the HWP (odd repeats)

    def _wiregrid(self, line: int, what: str, elevation_check, boresight_check) -> None:
        if self.hwp != "spinning":
            state = "stopped" if self.hwp == "stopped" else "not known to spin (no assert or spin_up before)"
            self.hazard(line, "wiregrid", f"{what} with the HWP {state}")
        least, off = self.platform.wiregrid_min_el, self.platform.wiregrid_boresight
        if elevation_check and self.el is not None and self.el[0] <= least:
            self.hazard(line, "wiregrid", f"{what} at el {self.el[0]:g}: sorunlib's check needs el above {least:g}")
        if boresight_check and self.boresight is not None and abs(self.boresight) >= off:
            self.hazard(
                line,
                "wiregrid",
                f"{what} at boresight {self.boresight:g}: sorunlib's check needs it within {off:g} of 0",
            )

    def _time_sleep(self, args: dict, line: int) -> None:
        seconds = float(args["seconds"])
        if seconds < 0:
            self.problem(line, "time.sleep(): a negative time")
            return
        self._busy(line, "time.sleep()", seconds)

    # --- helpers
    def _busy(self, line: int, doing: str, seconds: float) -> None:
        """The telescope holds still for ``seconds`` while ``doing`` runs."""
        if self.clock is None:
            return
        self.hold(line, doing, self.clock + seconds)
        self.clock += seconds
        self.early += seconds

    def _stated(self, t: float, line: int, what: str) -> None:
        """Times the script states (waits, stop times) must not go backwards."""
        if self.stated is not None and t < self.stated[0]:
            self.hazard(
                line,
                "time",
                f"time runs backwards: {what} {_iso(t)} is before the {self.stated[2]} {_iso(self.stated[0])}"
                f" on line {self.stated[1]}",
            )
        if self.stated is None or t >= self.stated[0]:
            self.stated = (t, line, what)

    def _in_range(self, line: int, axis: str, values: tuple[float, float], what: str) -> None:
        lo, hi = getattr(self.platform, axis)
        if values[0] < lo - 1e-9 or values[1] > hi + 1e-9:
            self.hazard(line, "range", f"{what} is outside {self.platform.name}'s {axis} range {lo:g}..{hi:g}")

    def _hwp_el(self, line: int, el: tuple[float, float] | None, doing: str) -> None:
        if self.hwp == "stopped" or (self.hwp is None and doing == "holds"):
            return
        lo, hi = self.platform.hwp_el
        state = "spinning" if self.hwp == "spinning" else "possibly spinning (its state is not asserted)"
        if el is None:
            self.hazard(line, "hwp_el", f"the HWP is {state} and the elevation is unknown (no move or assert before)")
        elif el[0] < lo - 1e-9 or el[1] > hi + 1e-9:
            shown = f"{el[0]:g}" if el[0] == el[1] else f"{el[0]:g}..{el[1]:g}"
            self.hazard(
                line, "hwp_el", f"the HWP is {state} as the telescope {doing} el {shown}, outside {lo:g}..{hi:g}"
            )

    def hazard(self, line: int, kind: str, what: str, at: float | None = None) -> None:
        at = self.clock if at is None else at
        self.report.violations.append(Violation(line, what, at, at, kind=kind))


def _iso(t: float) -> str:
    from scheduler_server.observing.safety.findings import iso

    return iso(t)
