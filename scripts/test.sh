#!/usr/bin/env bash
# Sets everything up and runs the whole test suite. Extra arguments go to pytest.
# Two pytest workers (pytest-xdist), each test file on one of them: most tests wait on real
# processes (serve, sshd, PostgreSQL, chromium), so two run in about the time of one.
# TEST_WORKERS=0 runs everything in this process, one test after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
workers="${TEST_WORKERS:-2}"
if [[ "$workers" == 0 ]]; then
    exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest --numprocesses "$workers" --dist loadfile "$@"
