"""The OpenAPI document is what the server accepts: schemathesis against a real `scheduler-server serve`.

Every phase (examples, coverage, fuzzing, stateful) and every check, a fixed
seed in deterministic mode, a token configured, observing windows capped at 2
hours. It fails on any server error, any undocumented status, any response
that does not match its schema, any schema-invalid request accepted, and any
schema-valid request refused other than by a business rule its operation
documents (devtools/fuzz_hooks.py). bench/bench_fuzz.py runs the same with
more cases.
"""

from __future__ import annotations

import re

from devtools.fuzz_api import FuzzServer, run_schemathesis

#: Cases per operation and phase: about a minute on 2 shared cores (CI must stay under 3).
MAX_EXAMPLES = 15


def test_the_api_does_what_its_openapi_document_says(tmp_path):
    with FuzzServer(tmp_path) as server:
        result = run_schemathesis(server, max_examples=MAX_EXAMPLES)
    assert result.returncode == 0, result.output[-20000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}", result.output), f"phase {phase} did not run and pass:\n{result.summary_line()}"
    assert result.cases is not None and result.cases >= 1000, result.summary_line()
    assert "Traceback" not in result.server_log, result.server_log[-5000:]
