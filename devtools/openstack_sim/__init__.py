"""An OpenStack cloud on loopback, for tests, benchmarks and trying the service on one machine.

It speaks what openstacksdk needs of Keystone v3, Nova, Neutron and Glance over
real HTTP, and every server it boots is a real SSH host (an sshd on the
server's own 127.<block>.x.y address). Every answer is either right or an
explicit 400 "not simulated" (``strict``); Nova microversions 2.1-2.37 are
negotiated as Nova does (``microversion``). See docs/openstack.md (section
"Simulator: a right answer or an explicit refusal") and
``python -m devtools.openstack_sim --help``.
"""

from .app import Simulator
from .config import SimConfig
from .faults import FaultRule, parse_rule

__all__ = ["Simulator", "SimConfig", "FaultRule", "parse_rule"]
