"""Why a stack failed, from its events in whatever order the cloud lists them (Heat: newest first)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from devtools.openstack_sim import FaultRule
from scheduler_server.pipelines.clouds.openstack import heat

from .conftest import KEYPAIR
from .test_sim_heat import TEMPLATE


def event(second: int, resource: str, status: str, reason: str = ""):
    return SimpleNamespace(
        id=f"e{second}",
        event_time=f"2026-12-01T10:00:{second:02d}Z",
        resource_name=resource,
        resource_status=status,
        resource_status_reason=reason,
    )


OLDEST_FIRST = [
    event(1, "pipeline-x", "CREATE_IN_PROGRESS"),
    event(2, "port", "CREATE_FAILED", "an older failure"),
    event(3, "server", "CREATE_FAILED", "No valid host was found"),
    event(4, "pipeline-x", "CREATE_FAILED", "Resource CREATE failed"),
]


@pytest.mark.parametrize("listed", [OLDEST_FIRST, OLDEST_FIRST[::-1]], ids=["oldest-first", "newest-first"])
def test_the_newest_failed_resource_event_is_appended_when_the_reason_lacks_it(listed):
    orchestration = SimpleNamespace(stack_events=lambda stack: list(listed))
    stack = SimpleNamespace(status="CREATE_FAILED", status_reason="Resource CREATE failed")
    message = heat.failure(orchestration, stack, "pipeline-x", 0)
    assert message == "stack pipeline-x CREATE_FAILED: Resource CREATE failed (server: No valid host was found)"


def test_a_reason_that_has_the_detail_is_not_repeated():
    orchestration = SimpleNamespace(stack_events=lambda stack: OLDEST_FIRST)
    stack = SimpleNamespace(status="CREATE_FAILED", status_reason="Resource CREATE failed: No valid host was found")
    assert heat.failure(orchestration, stack, "pipeline-x", 0).endswith("failed: No valid host was found")


def test_the_simulator_lists_events_newest_first_unless_asked(sim, conn):
    conn.orchestration.create_stack(name="ev", template=TEMPLATE, parameters={"key_name": KEYPAIR})
    stack = conn.orchestration.find_stack("ev")
    default = [e.id for e in conn.orchestration.stack_events(stack)]
    ascending = [e.id for e in conn.orchestration.stack_events(stack, sort_dir="asc")]
    assert len(default) > 1 and default == ascending[::-1]
    conn.orchestration.delete_stack(stack)


def test_a_rolled_back_stack_names_the_resource_that_failed(sim, conn):
    sim.cloud.faults.add(FaultRule("server_error", after=0.5))
    created = conn.orchestration.create_stack(
        name="rolled", template=TEMPLATE, parameters={"key_name": KEYPAIR}, is_rollback_disabled=False
    )
    stack = conn.orchestration.wait_for_status(
        conn.orchestration.get_stack(created.id), "ROLLBACK_COMPLETE", failures=["CREATE_COMPLETE"], interval=0.1
    )
    message = heat.failure(conn.orchestration, stack, "rolled", 0)
    assert message.startswith("stack rolled ROLLBACK_COMPLETE: ")
    assert "(server: ResourceInError: " in message and "No valid host was found" in message, message
    conn.orchestration.delete_stack(stack)
