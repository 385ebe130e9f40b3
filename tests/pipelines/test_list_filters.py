"""GET /api/v1/pipelines' subject/session/q/sort and GET /api/v1/pipelines/summary, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from scheduler_server.pipelines.models import Pipeline
from scheduler_server.pipelines.storage.store import Store

from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

NOW = time.time()


def _row(n: int, **fields) -> Pipeline:
    values = {
        "status": "succeeded",
        "project": f"proj{n % 3}",
        "subject": f"subj{n % 4}",
        "session": f"sess{n}",
        "script": "ok.sh" if n % 2 else "fail_50%_x.sh",
        "spec": {},
        "created_at": NOW - 5 * 3600 + 60 * n,
        "started_at": NOW - 5 * 3600 + 60 * n + 30,
        "finished_at": NOW - 5 * 3600 + 60 * n + 90,
    }
    values.update(fields)
    return Pipeline(**values)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'p.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = Store(url)
    yield made
    made.close()


def _ids(store, **kwargs):
    found, total = store.list_pipelines(**kwargs)
    return [p.id for p in found], total


def test_filters_search_and_sort(store):
    rows = [_row(n) for n in range(12)]
    rows[5].started_at = rows[5].finished_at = None  # never ran: last when sorting by a start
    rows[5].status = "cancelled"
    ids, _ = store.add_pipelines(rows)
    assert _ids(store, subject="subj1") == ([ids[1], ids[5], ids[9]], 3)
    assert _ids(store, session="sess7") == ([ids[7]], 1)
    assert _ids(store, project="proj0", subject="subj0") == ([ids[0]], 1)  # n = 0 only (0, 12: one of 12)
    # Case-insensitive substring over project, subject, session and script; % and _ are literal.
    assert _ids(store, search="SESS1")[1] == 3  # sess1, sess10, sess11
    assert _ids(store, search="50%_")[1] == 6
    assert _ids(store, search="50_")[1] == 0
    assert _ids(store, search="%")[1] == 6
    assert _ids(store, sort="-id")[0] == ids[::-1]
    assert _ids(store, sort="-submitted", limit=3, offset=1)[0] == [ids[10], ids[9], ids[8]]
    started = _ids(store, sort="started")[0]
    assert started[-1] == ids[5] and started[:-1] == [i for i in ids if i != ids[5]]
    assert _ids(store, sort="-started")[0][-1] == ids[5]  # nulls last both ways
    assert _ids(store, sort="status")[0][0] == ids[5]  # cancelled < succeeded


def test_summary_counts_depth_and_throughput(store):
    hour = 3600
    store.add_pipelines(
        [
            # Waited from 4 h ago until it started 2 h ago, finished 1.5 h ago.
            _row(0, created_at=NOW - 4 * hour, started_at=NOW - 2 * hour, finished_at=NOW - 1.5 * hour),
            # Still queued, since 3 h ago.
            _row(1, status="queued", created_at=NOW - 3 * hour, started_at=None, finished_at=None),
            # Cancelled while queued: left the queue 1 h ago without starting.
            _row(2, status="cancelled", created_at=NOW - 5 * hour, started_at=None, finished_at=NOW - hour),
            # Finished long before the window: counted, in no curve.
            _row(3, created_at=NOW - 30 * hour, started_at=NOW - 29 * hour, finished_at=NOW - 28 * hour),
        ]
    )
    found = store.summary(NOW, 6, 600)
    assert found["counts"]["succeeded"] == 2 and found["counts"]["queued"] == 1 and found["counts"]["cancelled"] == 1
    assert found["counts"]["running"] == 0
    edges, depth = found["edges"], found["queue_depth"]
    assert len(edges) == 37 and edges[-1] == NOW
    expected = [
        sum(
            c <= t < left
            for c, left in [(NOW - 4 * hour, NOW - 2 * hour), (NOW - 3 * hour, 1e12), (NOW - 5 * hour, NOW - hour)]
        )
        for t in edges
    ]
    assert depth == expected and max(depth) == 3
    assert sum(found["throughput"]) == 2 and len(found["throughput"]) == 36


def _client_with_rows(make_client, rows):
    client = make_client()
    service = client.application.extensions["pipelines"].service
    ids, _ = service.store.add_pipelines(rows)
    return client, ids


def test_the_api_takes_the_filters_and_names_a_bad_one(make_client):
    client, ids = _client_with_rows(make_client, [_row(n) for n in range(6)])
    page = client.get("/api/v1/pipelines?subject=subj1&sort=-id").json
    assert page["total"] == 2 and [p["id"] for p in page["items"]] == [ids[5], ids[1]]
    assert client.get("/api/v1/pipelines?q=SeSs3").json["total"] == 1
    assert client.get("/api/v1/pipelines?session=sess4&project=proj1").json["items"][0]["id"] == ids[4]
    for bad, field in [("sort=size", "sort"), ("subject=a%00b", "subject"), ("q=" + "x" * 300, "q")]:
        answer = client.get(f"/api/v1/pipelines?{bad}")
        assert answer.status_code == 400 and answer.json["field"] == field, bad


def test_the_summary_answer(make_client):
    client, _ = _client_with_rows(make_client, [_row(n) for n in range(3)])
    data = client.get("/api/v1/pipelines/summary").json
    assert data["bucket_seconds"] == 600 and data["hours"] == 6
    assert data["counts"]["succeeded"] == 3 and set(data["counts"]) >= {"queued", "running", "failed"}
    assert len(data["queue_depth"]) == 37 and len(data["throughput"]) == 36
    assert sum(n for _, n in data["throughput"]) == 3
    assert data["throughput"][-1][0] == data["queue_depth"][-1][0]
    assert client.get("/api/v1/pipelines/summary?hours=3").status_code == 400


def test_the_summary_is_protected_like_the_pipeline_api(make_client, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    client = make_client(tokens_file=str(tokens))
    assert client.get("/api/v1/pipelines/summary").status_code == 401
    assert client.get("/api/v1/pipelines/summary", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/api/v1/pipelines/summary", headers={"Authorization": "Bearer right-token"})
    assert answer.status_code == 200
    doc = client.get("/api/v1/openapi.json").json
    op = doc["paths"]["/api/v1/pipelines/summary"]["get"]
    assert op["security"] and "200" in op["responses"] and "401" in op["responses"]
    listing = {p["name"] for p in doc["paths"]["/api/v1/pipelines"]["get"]["parameters"]}
    assert {"subject", "session", "q", "sort", "status", "project", "offset", "limit"} <= listing
