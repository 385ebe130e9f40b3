#!/usr/bin/env bash
# Sets everything up and runs the whole test suite. Extra arguments go to pytest.
# Two pytest workers (pytest-xdist), each test file on one of them: most tests wait on real
# processes (serve, sshd, PostgreSQL, chromium), so two run in about the time of one. The tests
# that bound elapsed times (marker `timing`, tests/conftest.py) run after them, one at a time.
# TEST_WORKERS=0 runs everything in this process, one test after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
workers="${TEST_WORKERS:-2}"
pytest=(.venv/bin/python -m pytest)
if [[ "$workers" == 0 ]]; then
    exec "${pytest[@]}" "$@"
fi
parallel=0
"${pytest[@]}" --numprocesses "$workers" --dist loadfile -m "not timing" "$@" || parallel=$?
alone=0
"${pytest[@]}" -m timing "$@" || alone=$?
# 5: pytest collected nothing (arguments naming only one kind of test): fine if the other part ran.
if [[ $parallel == 5 && $alone != 5 ]]; then parallel=0; fi
if [[ $alone == 5 && $parallel != 5 ]]; then alone=0; fi
if [[ $parallel != 0 ]]; then exit "$parallel"; fi
exit "$alone"
