"""The seed's ``DELETE /instance``: delete the backend's instances this scheduler does not track."""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler_server.pipelines.backend_errors import BackendError
from scheduler_server.pipelines.clouds.backend import InstanceInfo
from scheduler_server.pipelines.errors import Unavailable
from scheduler_server.pipelines.scheduling.pool import Pool


@dataclass(frozen=True)
class UntrackedCleanup:
    """The backend's instances this scheduler does not track (``candidates``), and what deleting them did."""

    dry_run: bool
    include_untagged: bool
    candidates: list[InstanceInfo]
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (instance id, why)


def delete_untracked(pool: Pool, *, include_untagged: bool, dry_run: bool) -> UntrackedCleanup:
    """Unavailable if the backend's instances cannot be listed; one failed delete does not stop the others."""
    try:
        candidates = pool.untracked(include_untagged)
    except BackendError as exc:
        raise Unavailable(f"cannot list the backend's instances: {exc}") from None
    cleanup = UntrackedCleanup(dry_run, include_untagged, candidates)
    for info in candidates:
        if dry_run:
            continue
        try:
            pool.delete_backend_instance(info)
            cleanup.deleted.append(info.id)
        except BackendError as exc:
            cleanup.failed.append((info.id, str(exc)))
    return cleanup
