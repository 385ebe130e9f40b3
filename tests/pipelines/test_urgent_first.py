"""Instances a pipeline waits for are reached before spares booted ahead (clouds/urgent_first.py)."""

from __future__ import annotations

import threading
import time

from scheduler_server.pipelines.clouds.openstack.urgent_first import UrgentFirst


def _spare_turn(gate: UrgentFirst, awaited, log: list, started: threading.Event | None = None):
    def run():
        if started:
            started.set()
        with gate.turn(awaited) as urgent:
            log.append(("spare", urgent, time.monotonic()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_spare_waits_while_an_awaited_instance_has_its_turn():
    gate, log = UrgentFirst(max_wait=5), []
    release = threading.Event()
    with gate.turn(lambda: True) as urgent:
        assert urgent
        spare = _spare_turn(gate, lambda: False, log)
        time.sleep(0.3)
        assert log == []  # still waiting
        released_at = time.monotonic()
        release.set()
    spare.join(5)
    assert len(log) == 1 and log[0][1] is False and log[0][2] >= released_at


def test_a_spare_is_never_starved():
    gate, log = UrgentFirst(max_wait=0.3), []
    with gate.turn(lambda: True):
        started = time.monotonic()
        spare = _spare_turn(gate, lambda: False, log)
        spare.join(5)
    assert len(log) == 1 and 0.25 <= log[0][2] - started < 2.0  # went after max_wait, urgent turn still held


def test_a_spare_that_becomes_awaited_goes_at_once_as_urgent():
    gate, log = UrgentFirst(max_wait=5), []
    wanted = threading.Event()
    with gate.turn(lambda: True):
        spare = _spare_turn(gate, wanted.is_set, log)
        time.sleep(0.2)
        assert log == []
        wanted.set()  # a lane freed: a pipeline now waits for this instance
        spare.join(2)
        assert log and log[0][1] is True  # while the other urgent turn is still held


def test_without_awaited_turns_spares_do_not_wait():
    gate, log = UrgentFirst(max_wait=5), []
    started = time.monotonic()
    _spare_turn(gate, lambda: False, log).join(5)
    assert log and log[0][2] - started < 1.0  # not max_wait (5 s)


def test_a_hold_keeps_spares_waiting_after_the_turn_until_released():
    gate, log = UrgentFirst(max_wait=5), []
    with gate.turn(lambda: True):
        gate.hold("server-1", 5)  # its first launch is still to come
    spare = _spare_turn(gate, lambda: False, log)
    time.sleep(0.3)
    assert log == []  # the turn is over, the hold is not
    released_at = time.monotonic()
    gate.release("server-1")
    spare.join(5)
    assert log and log[0][2] >= released_at and log[0][2] - released_at < 1.0  # woken, not after max_wait (5 s)


def test_a_hold_that_is_never_released_ends_at_its_deadline():
    gate, log = UrgentFirst(max_wait=5), []
    gate.hold("server-1", 0.3)  # say, its launch failed and nobody released it
    started = time.monotonic()
    _spare_turn(gate, lambda: False, log).join(5)
    assert log and 0.25 <= log[0][2] - started < 1.0
    gate.release("server-1")  # releasing an expired hold is harmless
