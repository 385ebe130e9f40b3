"""The seed's Web-API (/pipeline, /instance, /config, /) through the Flask app, in the seed's JSON style."""

from __future__ import annotations

import logging

import yaml

from scheduler_server.pipelines.clouds.backend import TAG_KEY

from .conftest import wait_until, xnat


def _done(client, pid):
    def check():
        content = client.get(f"/pipeline?id={pid}").json["content"]
        return content and content[0]["status"] in ("succeeded", "failed", "cancelled") and content[0]

    return wait_until(check, message=f"pipeline {pid} done")


def test_health(make_client):
    client = make_client()
    answer = client.get("/")
    assert answer.status_code == 200 and answer.json["request"] == "success"


def test_post_one_then_list_then_done(make_client):
    client = make_client()
    answer = client.post("/pipeline", json=xnat())
    assert answer.status_code == 200
    assert answer.json["request"] == "success" and answer.json["content"]["status"] == "queued"
    pid = answer.json["content"]["id"]
    listed = client.get("/pipeline").json["content"]
    assert [p["id"] for p in listed] in ([pid], [])  # queued or active, unless it already finished
    done = _done(client, pid)
    assert done["status"] == "succeeded" and done["pwd"] == "********"
    assert client.get("/pipeline").json["content"] == []  # finished ones are not "active or queued"


def test_post_list_reports_each_item(make_client):
    client = make_client(max_active_pipelines=1)
    answer = client.post("/pipeline", json=[xnat(), xnat(script="../etc/x.sh"), xnat(pwd=None), xnat(subject="s2")])
    assert answer.status_code == 200
    reports = answer.json["content"]
    assert [r["request"] for r in reports] == ["success", "error", "error", "success"]
    assert reports[1]["field"] == "script" and "leaves LOCAL_SCRIPTS_FOLDER" in reports[1]["error"]
    assert reports[2]["field"] == "pwd"
    assert reports[0]["id"] < reports[3]["id"]


def test_post_all_bad_is_400(make_client):
    client = make_client()
    answer = client.post("/pipeline", json=[xnat(script="missing.sh")])
    assert answer.status_code == 400 and answer.json["request"] == "error"
    single = client.post("/pipeline", json=xnat(script="missing.sh"))
    assert single.status_code == 400
    assert single.json == {"request": "error", "content": single.json["content"], "field": "script"}
    assert "does not exist in LOCAL_SCRIPTS_FOLDER" in single.json["content"]


def test_bad_bodies(make_client):
    client = make_client()
    cases = [
        (b"", "empty"),
        (b"{nope", "not valid JSON"),
        (b"42", "must be a pipeline object or a list"),
        (b"[]", "the list is empty"),
        (b'{"a": "\xff"}', "not UTF-8"),
    ]
    for body, problem in cases:
        answer = client.post("/pipeline", data=body, content_type="application/json")
        assert answer.status_code == 400, body
        assert answer.json["request"] == "error" and problem in answer.json["content"], answer.json


def test_get_pipeline_by_ids_in_query_or_body(make_client):
    client = make_client(max_active_pipelines=1)
    ids = [r["id"] for r in client.post("/pipeline", json=[xnat(), xnat(), xnat()]).json["content"]]
    for pid in ids:
        _done(client, pid)
    assert [p["id"] for p in client.get(f"/pipeline?id={ids[0]},{ids[2]}").json["content"]] == [ids[0], ids[2]]
    assert [p["id"] for p in client.get("/pipeline", json={"id": ids[1]}).json["content"]] == [ids[1]]
    assert [p["id"] for p in client.get("/pipeline", json={"id": ids[:2]}).json["content"]] == ids[:2]
    assert [p["id"] for p in client.get("/pipeline", json=[{"id": ids[0]}, {"id": ids[2]}]).json["content"]] == [
        ids[0],
        ids[2],
    ]
    bad = client.get("/pipeline?id=abc")
    assert bad.status_code == 400 and "not a pipeline id" in bad.json["content"]


def test_instances_listed(make_client):
    client = make_client(virtual_server_ttl=5)
    pid = client.post("/pipeline", json=xnat()).json["content"]["id"]
    _done(client, pid)
    instances = client.get("/instance").json["content"]
    assert instances and all(i["state"] in ("idle", "booting", "busy") for i in instances)


def test_delete_instance_semantics(make_client, tmp_path):
    client = make_client(virtual_server_ttl=5, idle_timeout=3600)
    service = client.application.extensions["pipelines"].service
    held = client.post("/pipeline", json=xnat(script="sleep.sh")).json["content"]["id"]
    wait_until(lambda: service.store.get_pipeline(held).status == "running", message="running")
    done = client.post("/pipeline", json=xnat(script="ok.sh")).json["content"]["id"]
    wait_until(lambda: service.store.get_pipeline(done).status == "succeeded", message="succeeded")
    idle = service.store.get_pipeline(done).instance_id  # tracked, idle until IDLE_TIMEOUT
    assert service.pool.get(idle).state == "idle"
    sandboxes = service.data_path / "instances"
    # A leaked sandbox of ours (tagged, untracked) and one of another scheduler (untagged for us).
    (sandboxes / "leaked").mkdir()
    (sandboxes / "leaked" / f".{TAG_KEY}").write_text(service.scheduler_id)
    (sandboxes / "foreign").mkdir()
    (sandboxes / "foreign" / f".{TAG_KEY}").write_text("someone-else")

    dry = client.delete("/instance?dry_run=true").json["content"]
    assert dry["dry_run"] and dry["deleted"] == []
    assert {c["id"] for c in dry["candidates"]} == {"leaked"}
    assert (sandboxes / "leaked").exists()

    tagged = client.delete("/instance").json["content"]
    assert tagged["deleted"] == ["leaked"]
    assert not (sandboxes / "leaked").exists() and (sandboxes / "foreign").exists()

    everything = client.delete("/instance?all=true").json["content"]
    assert everything["deleted"] == ["foreign"]
    running_instance = service.store.get_pipeline(held).instance_id
    assert (sandboxes / running_instance).exists()  # held by a pipeline: never deleted
    assert (sandboxes / idle).exists() and service.pool.get(idle).state == "idle"  # tracked: kept
    assert service.store.get_pipeline(held).status == "running"

    assert client.delete("/instance?all=maybe").status_code == 400
    service.cancel(held)


def test_config_get_masks_and_put_reloads(make_settings, tmp_path):
    from scheduler_server.app import create_app
    from scheduler_server.config import load_settings

    config = tmp_path / "config.yaml"
    base = make_settings().model_dump(mode="json")
    base["pipelines"]["ssh_password"] = "very-secret"
    base["pipelines"]["max_active_pipelines"] = 2
    config.write_text(yaml.safe_dump(base))
    app = create_app(load_settings(config))
    client = app.test_client()
    try:
        shown = client.get("/config").json["content"]
        assert shown["pipelines"]["max_active_pipelines"] == 2
        assert "very-secret" not in str(shown)

        base["pipelines"]["max_active_pipelines"] = 5
        config.write_text(yaml.safe_dump(base))
        reloaded = client.put("/config")
        assert reloaded.status_code == 200 and reloaded.json["content"]["restart_required"] == []
        assert client.get("/config").json["content"]["pipelines"]["max_active_pipelines"] == 5

        base["pipelines"]["max_active_pipelines"] = -1
        config.write_text(yaml.safe_dump(base))
        refused = client.put("/config")
        assert refused.status_code == 400 and "max_active_pipelines" in refused.json["content"]
        assert "kept" in refused.json["content"]
        assert client.get("/config").json["content"]["pipelines"]["max_active_pipelines"] == 5

        base["pipelines"]["max_active_pipelines"] = 3
        base["pipelines"]["backend"] = "ssh"
        config.write_text(yaml.safe_dump(base))
        partly = client.put("/config").json["content"]
        assert partly["restart_required"] == ["backend"]
        current = client.get("/config").json["content"]["pipelines"]
        assert current["backend"] == "local" and current["max_active_pipelines"] == 3
    finally:
        app.extensions["pipelines"].service.close()


def test_open_api_warns_loudly(make_settings, caplog):
    from scheduler_server.app import create_app

    with caplog.at_level(logging.WARNING, logger="scheduler_server.web.auth"):
        app = create_app(make_settings())
    app.extensions["pipelines"].service.close()
    assert any("accepts requests from ANYONE" in r.getMessage() for r in caplog.records)


def test_seed_routes_in_openapi(make_client):
    doc = make_client().get("/api/v1/openapi.json").json
    for path, method in [
        ("/pipeline", "get"),
        ("/pipeline", "post"),
        ("/instance", "get"),
        ("/instance", "delete"),
        ("/config", "get"),
        ("/config", "put"),
        ("/", "get"),
    ]:
        assert method in doc["paths"][path], (path, method)
    schemas = doc["components"]["schemas"]
    assert schemas["XnatRequest"]["properties"]["pwd"]["writeOnly"] is True
    assert "security" in doc["paths"]["/pipeline"]["post"]
