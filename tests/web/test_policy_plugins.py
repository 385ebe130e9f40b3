"""A site's own policy package is found through the entry-point group, as the built-ins are."""

from __future__ import annotations

import sys
import textwrap

import pytest

from scheduler_server.observing.policies import registry

PLUGIN = """
from scheduler_server.observing.policies.base import Policy
from scheduler_server.observing.types import PolicyConfig, ScheduleResult
from pydantic import Field


class CountConfig(PolicyConfig):
    step: int = Field(600, gt=0, description="seconds between marks")


class CountPolicy(Policy):
    name = "count"
    description = "one comment line per step"
    Config = CountConfig

    def schedule(self, t0, t1, config):
        n = int((t1 - t0).total_seconds() // config.step)
        return ScheduleResult(commands="".join(f"# mark {i}\\n" for i in range(n)))
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with entry_points.txt) on sys.path."""
    (tmp_path / "site_policy.py").write_text(PLUGIN)
    (tmp_path / "broken_policy.py").write_text("raise ImportError('missing dependency of this plug-in')\n")
    info = tmp_path / "site_policy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: site-policy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [scheduler_server.policies]
            count = site_policy:CountPolicy
            broken = broken_policy:Whatever
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.available_policies.cache_clear()
    yield
    sys.modules.pop("site_policy", None)
    registry.available_policies.cache_clear()


def test_site_policy_is_served_and_a_broken_one_is_skipped(installed_plugin, client, caplog):
    listed = {p["name"]: p for p in client.get("/api/v1/policies").get_json()["policies"]}
    assert {"dummy", "count"} <= set(listed)
    assert "broken" not in listed
    assert listed["count"]["defaults"] == {"step": 600}
    body = {"t0": "2022-01-01 12:00", "t1": "2022-01-01 13:00", "policy": {"policy": "count", "config": {"step": 900}}}
    answer = client.post("/api/v1/schedule/", json=body).get_json()
    assert answer["commands"] == "# mark 0\n# mark 1\n# mark 2\n# mark 3\n"
    body["policy"]["config"] = {"step": 0}
    r = client.post("/api/v1/schedule/", json=body)
    assert r.status_code == 400 and r.get_json()["field"] == "policy.config.step"
    logged = caplog.get_records("setup") + caplog.records  # the app loads plug-ins when it is built
    assert any("'broken'" in rec.getMessage() and "failed to load" in rec.getMessage() for rec in logged)
