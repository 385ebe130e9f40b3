"""Nova servers as this backend makes and reads them: the metadata it tags them with, the create
request, and the ``InstanceInfo`` a listed server becomes.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from scheduler_server.pipelines.backend_errors import ProvisionError
from scheduler_server.pipelines.clouds.backend import TAG_KEY, InstanceInfo
from scheduler_server.pipelines.clouds.openstack.resolve import Resolved

NAME_KEY = "scheduler_server_instance"
CREATED_KEY = "scheduler_server_created_at"
REQUEST_KEY = "scheduler_server_request"
JOB_KEY = "scheduler_server_job"
STATES = {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}


def create_attrs(settings, wanted: Resolved, name: str, request: str, scheduler_id: str) -> dict:
    """The arguments of ``create_server`` for a server named ``name``, tagged with ``request``."""
    attrs = {
        "name": name,
        "image_id": wanted.image_id,
        "flavor_id": wanted.flavor_id,
        "networks": [{"uuid": wanted.network_id}] if wanted.network_id else "auto",
        "metadata": {
            TAG_KEY: scheduler_id,
            NAME_KEY: name,
            REQUEST_KEY: request,
            CREATED_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    if settings.auth_keyname:
        attrs["key_name"] = settings.auth_keyname
    if wanted.security_groups:
        attrs["security_groups"] = [{"name": g} for g in wanted.security_groups]
    encoded = user_data(settings)
    if encoded:
        attrs["user_data"] = encoded
    return attrs


def user_data(settings) -> str | None:
    """The cloud-init user data, base64-encoded as Nova wants it (None without any)."""
    text = user_data_text(settings)
    return base64.b64encode(text.encode()).decode() if text else None


def user_data_text(settings) -> str | None:
    """The cloud-init user data as configured (text or file), None without any."""
    text = settings.user_data
    if settings.user_data_file:
        try:
            text = Path(settings.user_data_file).expanduser().read_text()
        except OSError as exc:
            raise ProvisionError(
                f"pipelines.openstack.user_data_file: {exc.strerror}: {settings.user_data_file}"
            ) from None
    return text


def instance_info(server, ssh_port: int, ssh_user: str, scheduler_id: str) -> InstanceInfo:
    """A Nova server as the pool sees it."""
    metadata = server.metadata or {}
    status = (server.status or "").upper()
    state = (
        "gone"
        if server.task_state == "deleting" or status in ("DELETED", "SOFT_DELETED")
        else STATES.get(status, "error")
    )
    created = None
    if server.created_at:
        created = datetime.fromisoformat(server.created_at.replace("Z", "+00:00"))
    return InstanceInfo(
        id=server.id,
        name=server.name,
        state=state,
        port=ssh_port,
        user=ssh_user,
        tagged=metadata.get(TAG_KEY) == scheduler_id,
        created_at=created,
        extra={"status": status, "request": metadata.get(REQUEST_KEY)},
    )
