"""The planner on its own: queue + instances + limits -> Plan, with no database and no backend."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler_server.pipelines.models import Instance, InstanceState
from scheduler_server.pipelines.scheduling.planner import (
    Assignment,
    Limits,
    Plan,
    ProjectLimits,
    Queued,
    fair_order,
    plan,
)

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


# --- fair shares between projects (pipelines.project_limits, round-robin at one priority) -------------------


def shares(default: int | None = None, **projects: int) -> Limits:
    return Limits(max_active=3, max_instances=10, ttl=5, projects=ProjectLimits(default, projects))


def test_one_labs_big_launch_does_not_starve_another_labs_single_pipeline():
    # Lab A launched 400 sessions before lab B queued one: B's goes in the first free lane.
    queue = [Queued(i, 0, "lab_a") for i in range(1, 401)] + [Queued(401, 0, "lab_b")]
    decided = plan(queue, 0, [], shares())
    assert [a.pipeline_id for a in decided.assignments] == [1, 401, 2]
    # Lab A already runs two: B's goes first, then A's next.
    again = plan(queue[2:], 2, [], Limits(4, 10, 5), active_by_project={"lab_a": 2})
    assert [a.pipeline_id for a in again.assignments] == [401, 3]


def test_projects_take_turns_in_order_of_their_oldest_pipeline():
    queue = [Queued(1, 0, "a"), Queued(2, 0, "a"), Queued(3, 0, "a"), Queued(4, 0, "b"), Queued(5, 0, "c")]
    assert [q.id for q in fair_order(queue, {})] == [1, 4, 5, 2, 3]
    decided = plan(queue, 0, [], Limits(5, 10, 5))
    assert [a.pipeline_id for a in decided.assignments] == [1, 4, 5, 2, 3]


def test_priority_still_goes_first_and_turns_are_taken_within_one_priority():
    queue = [Queued(3, 5, "a"), Queued(4, 5, "a"), Queued(1, 0, "b"), Queued(2, 0, "c")]
    decided = plan(queue, 0, [], Limits(3, 10, 5))
    assert [a.pipeline_id for a in decided.assignments] == [3, 4, 1]


def test_a_project_limit_caps_its_active_pipelines_and_boots_no_spare_for_the_rest():
    queue = [Queued(i, 0, "lab_a") for i in range(1, 6)] + [Queued(6, 0, "lab_b"), Queued(7, 0, "lab_b")]
    decided = plan(queue, 0, [], Limits(10, 10, 5, ProjectLimits(default=2, projects={"lab_b": 1})))
    assert sorted(a.pipeline_id for a in decided.assignments) == [1, 2, 6]
    assert decided.spares == 0  # the four still waiting wait for their project's limit, not for an instance
    # Lab A's two running count against its limit: none of its queued ones goes.
    running = plan(queue[2:], 2, [], Limits(10, 10, 5, ProjectLimits(2)), active_by_project={"lab_a": 2})
    assert [a.pipeline_id for a in running.assignments] == [6, 7]
    # Pipelines of no project (type script) have no project limit.
    free = plan([Queued(8), Queued(9)], 0, [], shares(1))
    assert [a.pipeline_id for a in free.assignments] == [8, 9]


def test_a_project_at_its_limit_does_not_take_another_projects_lane_or_instances():
    queue = [Queued(1, 0, "a"), Queued(2, 0, "a"), Queued(3, 0, "b")]
    instances = [Row("idle", IDLE)]
    decided = plan(queue, 1, instances, shares(1), active_by_project={"a": 1})
    assert decided.assignments == (Assignment(3, "idle", ready=True),)


def test_turns_go_round_across_plans_one_lane_at_a_time():
    # One lane: each plan assigns one; the project served longest ago goes next, never-served first.
    queue, turns, served = [Queued(i, 0, "a") for i in range(1, 4)] + [Queued(4, 0, "b")], {}, []
    for tick in range(1, 5):
        (chosen,) = plan(queue, 0, [], Limits(1, 10, 5), last_turn=turns).assignments
        served.append(chosen.pipeline_id)
        turns[next(q.project for q in queue if q.id == chosen.pipeline_id)] = tick
        queue = [q for q in queue if q.id != chosen.pipeline_id]
    assert served == [1, 4, 2, 3]
