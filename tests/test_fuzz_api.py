"""The OpenAPI document is what the server accepts: schemathesis against a real `scheduler-server serve`.

Every phase (examples, coverage, fuzzing, stateful) and every check, a fixed
seed in deterministic mode, a token configured, observing windows capped at 2
hours. It fails on any server error, any undocumented status, any response
that does not match its schema, any schema-invalid request accepted, and any
schema-valid request refused other than by a business rule its operation
documents (devtools/fuzz_hooks.py). The same run on PostgreSQL, with fewer
cases, catches what SQLite forgives (32-bit integers, string lengths, NUL).
bench/bench_fuzz.py runs it with more cases.
"""

from __future__ import annotations

import re

import pytest
import requests

from devtools.fuzz_api import PHASES, TOKEN, FuzzServer, run_schemathesis
from tests.pipelines.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

# Cases per operation and phase: few enough that CI stays under 3 minutes for both databases
# (the timings are in bench/README.md).
RUNS = {"sqlite": (15, PHASES), "postgresql": (3, PHASES)}


@pytest.mark.parametrize("database", list(RUNS))
def test_the_api_does_what_its_openapi_document_says(request, tmp_path, database):
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    max_examples, phases = RUNS[database]
    with FuzzServer(tmp_path, database_url=url) as server:
        shown = requests.get(f"{server.url}/config", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        used = shown["content"]["pipelines"]["database_url"] or "sqlite (default)"
        assert used.startswith(database), used
        result = run_schemathesis(server, max_examples=max_examples, phases=phases)
    assert result.returncode == 0, result.output[-20000:]
    for phase in phases.split(","):
        assert re.search(rf"✅ {phase.capitalize()}", result.output), (
            f"phase {phase} did not run and pass:\n{result.summary_line()}"
        )
    assert result.cases is not None and result.cases >= 1000, result.summary_line()
    assert "Traceback" not in result.server_log, result.server_log[-5000:]
