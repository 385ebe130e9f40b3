"""The fuzzing test at scale: schemathesis with every phase and check against `scheduler-server serve`, 10,000+ cases.

Same server configuration, checks and business-rule hook as
tests/test_fuzz_api.py (devtools/fuzz_api.py), with more examples per
operation. Prints a table of what each failure kind counted (none is the
goal) and the run's size and duration; exits 1 if anything failed or fewer
than --min-cases cases ran.

    .venv/bin/python bench/bench_fuzz.py [--max-examples 1000] [--seed 20261201] [--min-cases 10000] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.fuzz_api import PHASES, FuzzServer, run_schemathesis  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=1000, help="cases per operation and phase (default 1000)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--min-cases", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the server's directory (log, report) and print it")
    parser.add_argument(
        "--postgres", action="store_true", help="on a throwaway PostgreSQL server (Debian's binaries) instead of SQLite"
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    with contextlib.ExitStack() as stack:
        url = None
        if args.postgres:
            from tests.pipelines.postgres import postgres_server

            # The test suite's fixture, driven by hand: initdb, start, yield the URL, stop.
            url = stack.enter_context(contextlib.contextmanager(postgres_server.__wrapped__)())
        server = stack.enter_context(FuzzServer(home, database_url=url))
        result = run_schemathesis(server, max_examples=args.max_examples, seed=args.seed)
    failures = re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", result.output)
    phases = dict(
        (name, mark) for mark, name in re.findall(r"(✅|❌|⏭) +(Examples|Coverage|Fuzzing|Stateful)", result.output)
    )
    tracebacks = result.server_log.count("Traceback")

    store = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"schemathesis, phases {PHASES}, checks all, max-examples {args.max_examples}, seed {args.seed} (deterministic), {store}"
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| test cases | {result.cases} |")
    print(f"| duration | {result.seconds:.0f} s |")
    print(f"| phases | {', '.join(f'{name} {mark}' for name, mark in phases.items())} |")
    print(f"| tracebacks in the server log | {tracebacks} |")
    for kind, count in failures or [("failures", "0")]:
        print(f"| {kind} | {count} |")
    ok = result.returncode == 0 and not tracebacks and (result.cases or 0) >= args.min_cases
    if not ok:
        print()
        print(result.output[-20000:])
    if args.keep:
        print(f"\nserver directory: {home}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
