"""Calling the OpenStack APIs: retries of transient failures, and errors a person can read.

Transient means HTTP 5xx, a timeout or a refused connection (also when the very first login's
version discovery failed for that reason, never for a wrong ``auth_url``): the call is
repeated up to ``api_retries`` times with exponential backoff. Everything else
(400 bad request, 403 quota exceeded, 404, 409...) is final and is described by
the cloud's own message, which becomes the pipeline's status reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions

from scheduler_server import metrics
from scheduler_server.pipelines.backend_errors import BackendError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: First pause between two attempts of a transient failure; doubled each time.
RETRY_BASE_DELAY = 0.5


class CloudAPIError(BackendError):
    """An OpenStack API call failed for good. ``status`` is the HTTP status, None for connection problems."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _unreachable_cause(exc: ks_exceptions.DiscoveryFailure) -> bool:
    """A failed version discovery whose cause is a refused or timed-out connection (not a 404, not a bad answer).

    keystoneauth raises the DiscoveryFailure inside its ``except``: the cause is its ``__context__``.
    """
    seen: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(5):
        if seen is None or isinstance(seen, ks_exceptions.RetriableConnectionFailure):
            return seen is not None
        seen = seen.__cause__ or seen.__context__
    return False


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ks_exceptions.DiscoveryFailure):
        return _unreachable_cause(exc)  # the very first login against a cloud refusing connections
    if isinstance(exc, ks_exceptions.RetriableConnectionFailure):
        return True  # timeouts and refused connections
    if isinstance(exc, ks_exceptions.ConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, os_exceptions.HttpException) and status is not None and status >= 500


def describe(exc: BaseException) -> str:
    """The cloud's message (e.g. "Quota exceeded for instances: ..."), with the status for context."""
    if isinstance(exc, os_exceptions.HttpException):
        message = (exc.details or "").strip() or (exc.message or "").strip() or type(exc).__name__
        return f"{message} (HTTP {exc.status_code})" if exc.status_code else message
    if isinstance(exc, ks_exceptions.ClientException):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


#: The ``operation`` label of backend_api_errors/retries: a closed list (docs/metrics.md). A call is
#: labelled by the longest of these its ``what`` starts with, ``other`` if none: never a name or id.
OPERATIONS = {
    "create server": "create_server",
    "delete server": "delete_server",
    "delete duplicate server": "delete_server",
    "get server": "get_server",
    "list servers": "list_servers",
    "set server metadata": "set_server_metadata",
    "create stack": "create_stack",
    "delete stack": "delete_stack",
    "get stack": "get_stack",
    "list stacks": "list_stacks",
    "list stack events": "list_stack_events",
    "list ports": "list_ports",
    "list floating IPs": "list_floating_ips",
    "allocate a floating IP": "create_floating_ip",
    "delete floating IP": "delete_floating_ip",
    "get floating IP": "get_floating_ip",
    "disassociate floating IP": "update_floating_ip",
    "get port": "get_port",
    "look up image": "find_image",
    "look up flavor": "find_flavor",
    "look up network": "find_network",
    "look up floating IP network": "find_network",
    "look up orchestration service": "find_service",
}
OPERATION_LABELS = frozenset(OPERATIONS.values()) | {"other"}


def operation(what: str) -> str:
    """The label of a call described by ``what`` ("create server job-12" -> "create_server")."""
    found = [prefix for prefix in OPERATIONS if what == prefix or what.startswith(prefix + " ")]
    return OPERATIONS[max(found, key=len)] if found else "other"


def call(what: str, fn: Callable[[], T], retries: int, *, on_retry: Callable[[], T | None] | None = None) -> T:
    """Run ``fn``; repeat it on transient failures, raise ``CloudAPIError`` naming ``what`` otherwise.

    ``on_retry`` runs before each repeat; if it returns something other than
    None that is the result (a create that did happen despite the error).
    """
    delay = RETRY_BASE_DELAY
    for attempt in range(retries + 1):
        try:
            return fn()
        except (os_exceptions.SDKException, ks_exceptions.ClientException) as exc:
            if not is_transient(exc) or attempt == retries:
                status = getattr(exc, "status_code", None)
                metrics.backend_error("openstack", operation(what))
                raise CloudAPIError(f"{what}: {describe(exc)}", status) from None
            log.warning(
                "openstack: %s failed (%s); retry %d/%d in %.1f s", what, describe(exc), attempt + 1, retries, delay
            )
            metrics.backend_retry("openstack", operation(what))
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
        if on_retry is not None:
            try:
                found = on_retry()
            except (os_exceptions.SDKException, ks_exceptions.ClientException) as exc:
                log.warning("openstack: checking whether %s happened failed too: %s", what, describe(exc))
                continue
            if found is not None:
                return found
    raise AssertionError("unreachable")
