"""A harness that runs observing scripts under the real sorunlib, against simulated OCS agents and clock.

See docs/observing.md, "Running scripts under sorunlib".
"""

from .durations import OTHERS, SCHEDLIB_SAT, Durations
from .harness import SAT, Platform, SunPolicy, run_script
from .records import LaneRecord, OpRecord, Report, ScanRecord, WaitRecord

__all__ = [
    "OTHERS",
    "SCHEDLIB_SAT",
    "Durations",
    "LaneRecord",
    "OpRecord",
    "Platform",
    "Report",
    "SAT",
    "ScanRecord",
    "SunPolicy",
    "WaitRecord",
    "run_script",
]
