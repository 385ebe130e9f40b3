"""Fair shares on the local backend: projects take turns, and a project limit caps a project's active pipelines."""

from __future__ import annotations

from tests.pipelines.conftest import submit_ok, wait_status, xnat


def _run(service, *items):
    ids = submit_ok(service, *items)
    for pipeline_id in ids:
        wait_status(service, pipeline_id, "succeeded")
    rows = {i: service.store.get_pipeline(i) for i in ids}
    return ids, rows, sorted(ids, key=lambda i: rows[i].started_at)


def test_projects_take_turns_in_one_lane(make_service):
    service = make_service(max_active_pipelines=1)
    big = [xnat(project="big", session=f"e{i}") for i in range(4)]
    ids, rows, order = _run(service, *big, xnat(project="small", session="one"), xnat(project="small", session="two"))
    # FIFO would have run the big project's four first.
    assert order == [ids[0], ids[4], ids[1], ids[5], ids[2], ids[3]]


def test_a_project_limit_keeps_a_big_project_to_its_share(make_service):
    service = make_service(max_active_pipelines=2, project_limits={"default": 1, "projects": {"small": 2}})
    big = [xnat(project="big", session=f"e{i}") for i in range(4)]
    ids, rows, order = _run(service, *big, xnat(project="small", session="one"), xnat(project="small", session="two"))
    big_runs = sorted((rows[i].started_at, rows[i].finished_at) for i in ids[:4])
    for (_, ended), (started, _) in zip(big_runs, big_runs[1:]):
        assert started >= ended  # never two of the big project at once (its limit is the default, 1)
    # The first assignment takes one of each project (the big one is at its limit after one). Which of the two
    # then starts its script first depends on how long each instance takes to boot, so judge when each left the queue.
    left = {
        i: min(t.at for t in service.store.get_pipeline(i, with_history=True).transitions if t.from_status == "queued")
        for i in ids
    }
    first = sorted(ids, key=lambda i: left[i])[:2]
    assert set(first) == {ids[0], ids[4]}, left
