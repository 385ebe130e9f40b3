"""The XNAT simulator for every XNAT test: ``xnat_sim`` (default seed, fresh state per test) and ``make_xnat_sim``.

``xnat_sim_process``: the same site served by a separate process (``.url``, ``.state()``), for tests whose
scheduler runs elsewhere too.

The default seed (devtools/xnat_sim/seed.py ``default_seed()``): users ``alice`` (may write workflows) and ``bob``
(may not), whose passwords are ``XNAT_USERS[name]``; project ``test`` with subjects S01 (S01_MR1 = XNAT_E00001,
S01_MR2), S02 (S02_PET1), S03 (S03_MR1, S03_CT1 = XNAT_E00005); project ``big`` with 1,000 MR sessions
(100 subjects ``big_S0001`` ... of 10 sessions each).
"""

from __future__ import annotations

import pytest

from devtools.xnat_sim import Faults, XnatSim, default_seed
from devtools.xnat_sim.process import XnatSimProcess

XNAT_USERS = {u["name"]: u["password"] for u in default_seed()["users"]}


@pytest.fixture
def make_xnat_sim():
    """``make_xnat_sim(seed=None, faults=None, **options)``: a started simulator, stopped after the test."""
    started: list[XnatSim] = []

    def make(seed: dict | str | None = None, faults: Faults | dict | None = None, **options) -> XnatSim:
        sim = XnatSim(default_seed() if seed is None else seed, faults, **options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def xnat_sim(make_xnat_sim) -> XnatSim:
    """A started simulator with the default seed; ``.url``, ``.state``, ``.faults``."""
    return make_xnat_sim()


@pytest.fixture
def xnat_sim_process(tmp_path):
    """The default seed served by ``python -m devtools.xnat_sim`` (a separate process), stopped after the test."""
    with XnatSimProcess(tmp_path / "xnat_sim") as sim:
        yield sim
