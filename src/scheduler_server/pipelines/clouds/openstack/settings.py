"""The ``openstack`` backend's part of the settings (``pipelines.openstack``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class OpenStackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    cloud: str | None = Field(None, description="Name of a cloud in clouds.yaml (like OS_CLOUD).")
    credentials_file: Path | None = Field(
        None, description="The seed's openrc file; its export lines are read, never executed."
    )
    image_id: str | None = Field(None, description="Image name or id to boot.")
    flavor: str | None = Field(None, description="Flavor name or id.")
    auth_keyname: str | None = Field(None, description="Nova keypair injected into each server.")
    security_group: str | None = Field(None, description="Security group for each server.")
    use_floating_ip: bool = Field(False, description="Attach a floating IP from ip_pool to each server.")
    ip_pool: str | None = Field(None, description="Floating IP network (pool) name or id.")
    network_id: str | None = Field(None, description="Network name or id for the server's port.")
    clouds_file: Path | None = Field(
        None, description="clouds.yaml to read `cloud` from; default: openstacksdk's usual places."
    )
    user_data: str | None = Field(None, description="cloud-init user data (text) given to each server.")
    user_data_file: Path | None = Field(
        None, description="File whose content is the cloud-init user data (instead of user_data)."
    )
    ssh_port: int = Field(22, ge=1, le=65535, description="Port of the servers' sshd.")
    boot_timeout: float = Field(
        600.0, gt=0, description="Seconds a server may take from creation to ACTIVE (the seed measured 215-270 s)."
    )
    api_timeout: float = Field(60.0, gt=0, description="Seconds one OpenStack API request may take.")
    api_retries: int = Field(3, ge=0, description="Retries of an API request that failed with 5xx or a timeout.")
    max_parallel_provisioning: int = Field(10, ge=1, description="Servers booting (create to reachable) at once.")
    status_poll_interval: float = Field(5.0, gt=0, description="Seconds between two status checks of a booting server.")
    reuse_floating_ips: bool = Field(
        True, description="Claim an unassociated floating IP of ip_pool before allocating a new one."
    )
    provisioning: Literal["nova", "heat"] = Field(
        "nova", description="nova: each instance is a server; heat: each instance is a Heat stack (a HOT template)."
    )
    heat_template_file: Path | None = Field(
        None,
        description="HOT template of each stack (heat provisioning); default: the bundled one "
        "(server, port, optional floating IP and security group).",
    )
    heat_create_security_group: bool = Field(
        False, description="Bundled template: give each stack a security group of its own that lets SSH in."
    )
    heat_parameters: dict[str, str | int | float | bool | list | dict] = Field(
        default_factory=dict, description="More parameters of the template (each must be declared by it)."
    )

    @field_serializer("heat_parameters", when_used="json")
    def _masked(self, value: dict) -> dict:
        """GET /config shows the names only: a parameter (a password, a token) may be a secret."""
        return dict.fromkeys(value, "**********")
