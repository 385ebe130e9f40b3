"""The planner on its own: queue + instances + limits -> Plan, with no database and no backend."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler_server.pipelines.models import Instance, InstanceState
from scheduler_server.pipelines.scheduling.planner import Assignment, Limits, Plan, plan

IDLE, BOOTING, BUSY, DELETING = InstanceState.IDLE, InstanceState.BOOTING, InstanceState.BUSY, InstanceState.DELETING


@dataclass
class Row:
    id: str
    state: InstanceState
    pipeline_id: int | None = None
    uses: int = 0


def limits(max_active: int = 10, max_instances: int = 10, ttl: int = 5) -> Limits:
    return Limits(max_active=max_active, max_instances=max_instances, ttl=ttl)


def test_an_empty_queue_plans_nothing():
    assert plan([], 0, [Row("a", IDLE)], limits()) == Plan()


def test_idle_instances_first_then_spares_booting_then_new_ones():
    instances = [Row("spare", BOOTING), Row("idle", IDLE), Row("taken", BUSY, pipeline_id=9)]
    decided = plan([1, 2, 3], 1, instances, limits())
    assert decided.assignments == (
        Assignment(1, "idle", ready=True),
        Assignment(2, "spare", ready=False),
        Assignment(3, None, ready=False),
    )
    assert decided.spares == 0


def test_never_more_than_max_active_pipelines():
    decided = plan([1, 2, 3, 4], 2, [Row("a", IDLE), Row("b", IDLE)], limits(max_active=3))
    assert [a.pipeline_id for a in decided.assignments] == [1]
    full = plan([1, 2], 3, [Row("a", IDLE)], limits(max_active=3))
    assert full.assignments == ()


def test_never_more_than_max_instances_and_every_live_one_counts():
    instances = [Row("a", BUSY, pipeline_id=7), Row("b", DELETING)]
    decided = plan([1, 2, 3], 1, instances, limits(max_instances=3))
    assert decided.assignments == (Assignment(1, None, ready=False),)
    assert decided.spares == 0  # three live: no room to boot ahead for 2 and 3
    assert plan([1], 1, instances, limits(max_instances=2)) == Plan()


def test_look_ahead_boots_spares_for_the_pipelines_still_waiting():
    # One may run now; the other three wait, and find an instance ready when their turn comes.
    decided = plan([1, 2, 3, 4], 0, [], limits(max_active=1, max_instances=10))
    assert decided.assignments == (Assignment(1, None, ready=False),)
    assert decided.spares == 3


def test_look_ahead_counts_spares_and_idle_instances_already_there_and_stops_at_max_instances():
    instances = [Row("running", BUSY, pipeline_id=8), Row("spare", BOOTING), Row("idle", IDLE)]
    waiting = plan([1, 2, 3, 4, 5], 1, instances, limits(max_active=1, max_instances=10))
    assert waiting.assignments == () and waiting.spares == 3  # five wait; two instances are there for them
    capped = plan([1, 2, 3, 4, 5], 1, instances, limits(max_active=1, max_instances=4))
    assert capped.spares == 1


def test_an_instance_that_has_run_its_ttl_is_not_reused():
    instances = [Row("used-up", IDLE, uses=3), Row("fresh", IDLE, uses=2)]
    decided = plan([1, 2], 0, instances, limits(ttl=3, max_instances=3))
    assert decided.assignments == (Assignment(1, "fresh", ready=True), Assignment(2, None, ready=False))


def test_an_idle_instance_still_held_by_a_pipeline_and_a_spare_booting_for_one_are_not_handed_out():
    instances = [Row("idle", IDLE, pipeline_id=5), Row("booting", BOOTING, pipeline_id=6)]
    decided = plan([1], 0, instances, limits(max_instances=2))
    assert decided == Plan()


def test_held_pipelines_are_skipped_but_still_wait_for_the_look_ahead():
    decided = plan([1, 2, 3], 0, [Row("idle", IDLE)], limits(max_active=2, max_instances=5), held={1})
    assert decided.assignments == (Assignment(2, "idle", ready=True), Assignment(3, None, ready=False))
    assert decided.spares == 1  # pipeline 1 waits: an instance is booted ahead for it


def test_instance_rows_plan_as_well():
    rows = [Instance(id="a", state=InstanceState.IDLE, uses=0, pipeline_id=None)]
    assert plan([1], 0, rows, limits()).assignments == (Assignment(1, "a", ready=True),)
