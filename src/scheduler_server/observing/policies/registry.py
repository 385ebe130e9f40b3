"""Finds policies through the ``scheduler_server.policies`` entry-point group.

A site adds its own policy by installing a package that declares, in its
pyproject.toml::

    [project.entry-points."scheduler_server.policies"]
    mypolicy = "my_package.module:MyPolicy"

A plug-in that fails to import is logged and left out; it never stops the service.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from scheduler_server.observing.policies.base import Policy

ENTRY_POINT_GROUP = "scheduler_server.policies"
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def available_policies() -> dict[str, Policy]:
    policies: dict[str, Policy] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception:
            log.exception("policy plug-in %r (%s) failed to load; it is not offered", ep.name, ep.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            log.error("policy plug-in %r (%s) is not a Policy subclass; it is not offered", ep.name, ep.value)
            continue
        if ep.name in policies:
            log.error("two policy plug-ins are named %r; keeping the first", ep.name)
            continue
        policies[ep.name] = cls()
    return policies
