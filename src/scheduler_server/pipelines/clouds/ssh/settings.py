"""The ``ssh`` backend's part of the settings: its hosts (``pipelines.ssh_hosts``).

The login user, key and password (``pipelines.ssh_user`` ...) are the SSH transport's, shared
with the OpenStack backend, so they stay in the pipelines section itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SSHHost(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    address: str = Field(description="Host name or IP address.")
    port: int = Field(22, ge=1, le=65535)
    user: str | None = Field(None, description="Login user; defaults to pipelines.ssh_user.")
    key_file: Path | None = Field(None, description="Private key; defaults to pipelines.ssh_key_file.")
    slots: int = Field(1, ge=1, description="How many pipelines may run on this host at once.")
