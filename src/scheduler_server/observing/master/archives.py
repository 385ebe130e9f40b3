"""Generated master-schedule months as numpy archives: the cache's format, and the months shipped in the package.

Parsing a month of toast text (about 1,100 scans) is slow next to loading the
same scans from an archive, and they come back from one exactly as they were made. The toast text is still what ``scheduler-server master-schedule``
writes for people and other tools.

Months of the *default* generator config (the default patches, at the default
site) are shipped in ``data/master/<key>/<YYYY-MM>.npz`` so that a fresh install
schedules those months without generating them (each month is otherwise a
computation of sky and planning; bench/README.md has the figures). ``<key>`` is ``master.generate.spec_key``: it carries every input and the
code, skyfield and skyfield-data versions, so a shipped month is only ever used
for exactly the inputs that made it. Regenerate after changing any of them::

    .venv/bin/python devtools/ship_master_months.py 2024-01 2027-12
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scheduler_server.observing.master.toast import MasterScan

SHIPPED = Path(__file__).with_name("data") / "master"
_NUMBERS = ("start", "stop", "az_min", "az_max", "el", "rising", "rotation", "phase", "pass_number", "sub")


def to_arrays(scans: tuple[MasterScan, ...] | list[MasterScan]) -> dict[str, np.ndarray]:
    """Columns of ``scans``; every optional field must be present (generated months have them all)."""
    if any(s.sun is None or s.moon is None or s.phase is None or s.pass_number is None or s.sub is None for s in scans):
        raise ValueError("only scans with every column (generated ones) are stored as arrays")
    names = sorted({s.name for s in scans})
    index = {name: i for i, name in enumerate(names)}
    arrays = {key: np.array([getattr(s, key) for s in scans]) for key in _NUMBERS}
    arrays["name"] = np.array([index[s.name] for s in scans], dtype=np.int32)
    arrays["names"] = np.array(names, dtype=str)
    arrays["sun"] = np.array([s.sun for s in scans], dtype=float).reshape(-1, 4)
    arrays["moon"] = np.array([s.moon for s in scans], dtype=float).reshape(-1, 4)
    return arrays


def from_arrays(arrays: dict[str, np.ndarray]) -> tuple[MasterScan, ...]:
    # .tolist() gives Python ints, floats and bools: the scans compare equal to the originals.
    names = arrays["names"].tolist()
    columns = [arrays[key].tolist() for key in _NUMBERS]
    rows = zip(*columns, arrays["name"].tolist(), arrays["sun"].tolist(), arrays["moon"].tolist())
    return tuple(
        MasterScan(
            start=start,
            stop=stop,
            name=names[name],
            az_min=az_min,
            az_max=az_max,
            el=el,
            rising=rising,
            rotation=rotation,
            sun=tuple(sun),
            moon=tuple(moon),
            phase=phase,
            pass_number=pass_number,
            sub=sub,
        )
        for start, stop, az_min, az_max, el, rising, rotation, phase, pass_number, sub, name, sun, moon in rows
    )


def shipped(key: str, label: str) -> tuple[MasterScan, ...] | None:
    """The month ``label`` (YYYY-MM) shipped for ``key``, if any."""
    path = SHIPPED / key / f"{label}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            return from_arrays({name: archive[name] for name in archive.files})
    except FileNotFoundError:
        return None
