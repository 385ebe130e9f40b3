"""GET /: a browser is sent to the web UI; curl, scripts and JSON clients keep the health JSON."""

from __future__ import annotations

import pytest

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("accept", [BROWSER, "text/html", "application/json;q=0.5, text/html"])
def test_a_browser_is_redirected_to_the_ui(client, accept):
    answer = client.get("/", headers={"Accept": accept})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/ui/"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html", "text/plain"])
def test_other_clients_keep_the_health_json(client, accept):
    headers = {"Accept": accept} if accept else {}
    answer = client.get("/", headers=headers)
    assert answer.status_code == 200
    assert answer.get_json()["content"]["status"] == "ok"


def test_the_redirect_is_documented(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert set(doc["paths"]["/"]["get"]["responses"]) >= {"200", "302", "503"}
