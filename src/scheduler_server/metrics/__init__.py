"""Prometheus metrics of this process (a shared leaf: services record into it, ``web`` serves it).

Interface the services call; the series themselves and the multiprocess set-up are filled in by the
metrics work of issue 16 (this module imports nothing of ``pipelines``, ``observing`` or ``web``).
"""

from __future__ import annotations


def set_leading(leading: bool) -> None:
    """This process dispatches pipelines (True) or not (False) from now on."""
