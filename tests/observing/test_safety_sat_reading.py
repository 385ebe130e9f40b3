"""The checker's reader on the sequencer's shape: the sat policy's own scripts and schedlib's layout are read the
same line by line as by the syntax tree, and judged safe."""

from __future__ import annotations

from datetime import UTC

from scheduler_server.observing.safety.script_reader import _read_ast, _read_simple
from tests.observing.test_safety_sat import BODY, T0, check, iso, line_of, preamble, scan


def test_the_sat_policys_scripts_are_read_the_same_both_ways_and_pass():
    from datetime import datetime

    from scheduler_server.observing.service import PolicyRequest, run_schedule

    t0, t1 = datetime(2023, 12, 1, tzinfo=UTC), datetime(2023, 12, 2, tzinfo=UTC)
    config = {
        "cmb_plan": "sample_cmb.txt",
        "cal_plan": "sample_cal_targets.txt",
        "wiregrid_plan": "sample_wiregrid.txt",
    }
    text = run_schedule(t0, t1, PolicyRequest("sat", config, preset="satp3")).commands
    fast = _read_simple(text)
    assert fast is not None and fast.calls == _read_ast(text).calls and fast.shape == "run"
    names = {c.name for c in fast.calls}
    assert {"assert", "run.hwp.spin_up", "run.seq.scan", "run.smurf.iv_curve", "run.wiregrid.calibrate"} <= names
    report = check(text, start=t0.timestamp())
    assert report.safe and report.platform == "satp3", report.lines()


def test_schedlibs_own_layout_is_read_the_same_both_ways():
    # schedlib's tel.preamble imports inside disable_trace and writes seq.scan over several lines.
    head = preamble().replace(
        "import numpy as np\nimport sorunlib as run\nfrom nextline import disable_trace\nimport socket\nimport time\n\n"
        "with disable_trace():\n    run.initialize()\n",
        "from nextline import disable_trace\nimport time\nimport socket\n\nwith disable_trace():\n"
        "    import numpy as np\n    import sorunlib as run\n    from ocs.ocs_client import OCSClient\n"
        "    run.initialize()\n",
    )
    multi = (
        "run.seq.scan(\n    description='cmb',\n    stop_time='{stop}',\n    width=40.0, az_drift=0,\n"
        "    el_amp=0.0,\n    scan_type=1,\n    subtype='cmb', tag='x',\n    min_duration=600,\n)"
    )
    body = BODY.replace(scan(T0 + 7200), multi.format(stop=iso(T0 + 7200)))
    body = body.replace("run.hwp.spin_up(freq=-2)", "print('spinning up')\nrun.hwp.spin_up(freq=-2)")
    body += f"run.wait_until('{iso(T0 + 11000)}')\nacu.stop_and_clear()\n"  # schedlib's wrap_up
    # satp1's detector setup as schedlib writes it: the IV over two lines, its cool_wait as arithmetic.
    body = body.replace(
        "run.smurf.iv_curve(concurrent=True, iv_kwargs={'run_serially': False, 'cool_wait': 300})",
        "run.smurf.iv_curve(concurrent=True, \n    iv_kwargs={'run_serially': False, 'cool_wait': 60*5})",
    )
    text = head + body
    fast = _read_simple(text)
    assert fast is not None and fast.calls == _read_ast(text).calls and fast.shape == "run"
    report = check(text)
    assert report.safe, report.lines()
    (first,) = [c for c in fast.calls if c.name == "run.seq.scan" and c.kwargs["description"] == "cmb"]
    assert first.line == line_of(text, "run.seq.scan(") and first.kwargs["min_duration"] == 600
    (iv,) = [c for c in fast.calls if c.name == "run.smurf.iv_curve"]
    assert iv.kwargs["iv_kwargs"] == {"run_serially": False, "cool_wait": 300}
    for bad in ("2**3", "1/0", "{**x}", "x*2"):
        report = check(text + f"run.smurf.iv_curve(iv_kwargs={{'cool_wait': {bad}}})\n")
        assert any("arguments must be literal values" in p for p in report.problems), bad


def test_a_mangled_script_is_judged_never_crashes():
    import random

    rng = random.Random(13)
    lines = (preamble() + BODY).splitlines()
    junk = [
        "run.seq.scan(",
        ")",
        "    width=3,",
        "assert",
        "run.acu.move_to(az='x', el=1)",
        "time.sleep(-1)",
        "run.wait_until('2023-11-05T02:00:00', tolerance=[1])",
        "acu = run.CLIENTS['acu']",
        "x = (1,",
        "run.hwp.spin_up(freq=0)",
        "run.wiregrid.time_constant(num_repeats=0)",
        "# platform: satp2",
        "run.seq.scan(description='a', stop_time='2023-11-05T02:00:00+05:00', width=1)",
        "with disable_trace():",
    ]
    judged = 0
    for _ in range(150):
        mangled = list(lines)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(mangled))
            action = rng.choice(["del", "dup", "swap", "cut", "junk"])
            if action == "del":
                del mangled[i]
            elif action == "dup":
                mangled.insert(i, mangled[i])
            elif action == "swap":
                j = rng.randrange(len(mangled))
                mangled[i], mangled[j] = mangled[j], mangled[i]
            elif action == "cut":
                mangled[i] = mangled[i][: rng.randrange(len(mangled[i]) + 1)]
            else:
                mangled.insert(i, rng.choice(junk))
        report = check("\n".join(mangled) + "\n")
        judged += not report.safe
        assert all(isinstance(line, str) for line in report.lines())
    assert judged > 50  # most manglings are refused, each with a reason


def test_absurd_numbers_and_times_are_problems_not_crashes():
    cases = {
        "time.sleep(1e400)\n": "seconds must be finite",
        "run.acu.move_to(az=1e400, el=50)\n": "az must be finite",
        f"run.wait_until('{iso(T0 + 130 * 86400)}')\n": "more than the 116 the checker judges at once every 10 s",
    }
    for snippet, problem in cases.items():
        report = check(preamble() + BODY + snippet)
        assert not report.safe and any(problem in p for p in report.problems), (snippet, report.problems)
    late = "run.wait_until('2099-06-01T00:00:00')\nrun.acu.move_to(az=100.0, el=50.0)\nrun.smurf.bias_step()\n"
    report = check(preamble() + late, start=None)
    assert not report.safe and any("outside the ephemeris" in p for p in report.problems), report.problems
    # Hazards at times beyond what datetime can write still print.
    twice = "run.wait_until('9999-12-31T23:59:59')\nrun.acu.set_boresight(1.0)\nrun.acu.set_boresight(2.0)\n"
    lines = check(preamble(hwp=True) + twice, start=None).lines()
    assert any("(at 9999-12-31T23:59:59+00:00)" in line for line in lines)
    assert any("(at POSIX 253402300859)" in line for line in lines), lines
