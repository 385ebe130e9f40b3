"""GET /api/v1/policies, the OpenAPI document and the docs page."""

from __future__ import annotations

import json

from pydantic import ValidationError


def test_policies_list_defaults_and_schema(client):
    data = client.get("/api/v1/policies").get_json()
    assert data["status"] == "ok"
    dummy = next(p for p in data["policies"] if p["name"] == "dummy")
    assert dummy["defaults"] == {"seed": None}
    assert dummy["config_schema"]["properties"]["seed"]
    assert dummy["config_schema"]["additionalProperties"] is False


def test_openapi_document_is_generated_from_the_validating_models(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    op = doc["paths"]["/api/v1/schedule/"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"t0", "t1", "policy"}
    assert "format" in schema["properties"]
    assert set(op["responses"]) >= {"200", "400"}
    assert "/api/v1/policies" in doc["paths"]
    # Every $ref resolves.
    text = json.dumps(doc)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in doc["components"]["schemas"], name


def test_request_model_rejects_what_the_document_forbids():
    from scheduler_server.web.schedule import ScheduleRequest

    try:
        ScheduleRequest.model_validate(
            {"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00", "policy": {"policy": "dummy"}, "zzz": 1}
        )
    except ValidationError as exc:
        assert exc.errors()[0]["type"] == "extra_forbidden"
    else:
        raise AssertionError("extra field accepted")


def test_docs_page_and_its_assets_are_served_offline(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data
    asset = client.get("/api/v1/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000
    asset.close()
    assert client.get("/api/v1/docs/static/../../etc/passwd").status_code == 404
