"""What a cloud backend, its executors and the job directory raise when the infrastructure fails.

A leaf: the backends (``clouds/``), the job-on-instance protocol (``jobdir.py``) and the
scheduling above them all raise or catch these, and none of them owns the others.
``BackendError`` and its subclasses mean "retry the pipeline on a fresh instance";
``BackendConfigError`` is a configuration the backend cannot use, reported at start.
"""

from __future__ import annotations


class BackendError(Exception):
    """An infrastructure failure: the pipeline is retried on a fresh instance."""


class ProvisionError(BackendError):
    """The backend could not create an instance (quota, bad image, API error, ERROR state)."""


class InstanceUnreachable(BackendError):
    """The instance did not accept connections within the allowed retries, or the connection broke."""


class InstanceGone(BackendError):
    """The instance no longer exists (deleted behind our back, host removed from config)."""


class NoCapacity(BackendError):
    """No instance can be created right now (all SSH host slots taken). Not a failure: wait and try again."""


class BackendConfigError(Exception):
    """The backend's configuration is unusable (unknown backend name, missing image...). Reported at start."""
