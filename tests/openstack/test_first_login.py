"""The very first login: keystoneauth's version discovery failing because the cloud refuses connections is
temporary (retried); failing because auth_url is wrong (a 404, an answer that is no version document) is not."""

from __future__ import annotations

import openstack
import pytest

from scheduler_server.pipelines.clouds.openstack import calls

from .conftest import sdk_connection


def _attempts(connection, monkeypatch, retries: int = 2) -> tuple[int, str]:
    monkeypatch.setattr(calls.time, "sleep", lambda s: None)
    tried = []

    def listing():
        tried.append(1)
        return list(connection.compute.servers())

    with pytest.raises(calls.CloudAPIError) as raised:
        calls.call("list servers", listing, retries)
    return len(tried), str(raised.value)


def _wrong_url(sim, auth_url: str):
    cfg = sim.config
    return openstack.connect(
        auth_url=auth_url,
        username=cfg.username,
        password=cfg.password,
        project_name=cfg.project_name,
        user_domain_name="Default",
        project_domain_name="Default",
        load_yaml_config=False,
        load_envvars=False,
    )


def test_a_refused_connection_at_the_first_login_is_retried(sim, monkeypatch):
    connection = sdk_connection(sim)  # not logged in yet: the first request runs the discovery
    sim.stop()  # its port now refuses connections
    tried, message = _attempts(connection, monkeypatch)
    assert tried == 3, message
    assert message.startswith("list servers: Could not find versioned identity endpoints") and "connection" in message


@pytest.mark.parametrize("path", ["/no-such-identity", "/_sim/requests"], ids=["404", "no version document"])
def test_a_wrong_auth_url_at_the_first_login_is_final(sim, monkeypatch, path):
    tried, message = _attempts(_wrong_url(sim, sim.config.base_url + path), monkeypatch)
    assert tried == 1, message
    assert message.startswith("list servers: Could not find versioned identity endpoints")
    assert ("HTTP 404" in message) if path.startswith("/no-such") else ("Bad version data" in message)
