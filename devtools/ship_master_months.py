"""Build step: generate the default generator config's master-schedule months into the package.

Usage: .venv/bin/python devtools/ship_master_months.py FIRST_MONTH LAST_MONTH  (YYYY-MM)

Replaces what was shipped before (for any key); see ``observing/master/archives.py``.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scheduler_server.observing.master.archives import SHIPPED, to_arrays
from scheduler_server.observing.master.generate import months, plan_month, spec_key
from scheduler_server.observing.master.patches import GeneratorConfig
from scheduler_server.observing.sky.site import ATACAMA


def ship(first: str, last: str) -> list[Path]:
    """Generate the default config's months ``first``..``last`` (YYYY-MM) into ``SHIPPED``."""
    spec = GeneratorConfig()
    start = int(datetime.strptime(first, "%Y-%m").replace(tzinfo=UTC).timestamp())
    stop = int(datetime.strptime(last, "%Y-%m").replace(tzinfo=UTC).timestamp()) + 1
    if SHIPPED.exists():
        shutil.rmtree(SHIPPED)
    target = SHIPPED / spec_key(spec, ATACAMA)
    target.mkdir(parents=True)
    written = []
    for m0, m1 in months(start, stop):
        path = target / f"{datetime.fromtimestamp(m0, tz=UTC):%Y-%m}.npz"
        np.savez_compressed(path, **to_arrays(plan_month(m0, m1, spec, ATACAMA)))
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[2])
    for path in ship(sys.argv[1], sys.argv[2]):
        print(path)
