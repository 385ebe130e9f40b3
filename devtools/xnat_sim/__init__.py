"""An XNAT on loopback, for tests and benchmarks: a protocol-faithful subset of XNAT's REST API.

Sessions (``/data/JSESSION``, ``JSESSIONID``), HTTP basic auth, alias tokens (issue, validate, invalidate, used as
credentials), projects, subjects and experiments in XNAT's listing and item shapes (``columns=``, ``xsiType=``),
workflows; seeded from a small YAML; faults (slow, 500s, expired tokens, refused logins). Its fidelity is checked by
driving it with pyxnat (tests/xnat/test_xnat_sim.py). See docs/pipelines.md, "An XNAT to test against", and
``python -m devtools.xnat_sim --help``.
"""

from .app import XnatSim
from .seed import SeedError, default_seed, load_seed
from .state import Faults

__all__ = ["XnatSim", "Faults", "SeedError", "default_seed", "load_seed"]
