"""Settings of the pipeline scheduler (the `pipelines:` section of the config file).

The pipeline seed's upper-case keys keep their meaning; ``LEGACY_KEYS`` maps each
one, when written at the top level of the file as in the seed's template, onto
its place here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SSHHost(_Section):
    address: str = Field(description="Host name or IP address.")
    port: int = Field(22, ge=1, le=65535)
    user: str | None = Field(None, description="Login user; defaults to pipelines.ssh_user.")
    key_file: Path | None = Field(None, description="Private key; defaults to pipelines.ssh_key_file.")
    slots: int = Field(1, ge=1, description="How many pipelines may run on this host at once.")


class OpenStackSettings(_Section):
    cloud: str | None = Field(None, description="Name of a cloud in clouds.yaml (like OS_CLOUD).")
    credentials_file: Path | None = Field(None, description="The seed's openrc file; its export lines are read, never executed.")
    image_id: str | None = Field(None, description="Image name or id to boot.")
    flavor: str | None = Field(None, description="Flavor name or id.")
    auth_keyname: str | None = Field(None, description="Nova keypair injected into each server.")
    security_group: str | None = Field(None, description="Security group for each server.")
    use_floating_ip: bool = Field(False, description="Attach a floating IP from ip_pool to each server.")
    ip_pool: str | None = Field(None, description="Floating IP network (pool) name or id.")
    network_id: str | None = Field(None, description="Network name or id for the server's port.")


class PipelineSettings(_Section):
    backend: Literal["local", "ssh", "openstack"] = Field("local", description="Where pipelines run.")
    max_active_pipelines: int = Field(2, ge=1, description="At most this many pipelines run at once (seed: MAX_ACTIVE_PIPELINES).")
    virtual_server_ttl: int = Field(
        1, ge=1, description="Pipelines one instance runs before it is deleted (seed: VIRTUAL_SERVER_TTL / VM_INSTANCE_TTL)."
    )
    local_scripts_folder: Path = Field(
        Path("~/.pipeline-scheduler/scripts"), description="Scripts and files pipelines may name (seed: LOCAL_SCRIPTS_FOLDER)."
    )
    remote_base_folder: str = Field(
        "pipeline-scheduler", description="Working folder on the instance (seed: REMOTE_BASE_FOLDER / VM_SCRIPTS_FOLDER)."
    )
    max_connection_retries: int = Field(30, ge=0, description="SSH connection attempts (seed: MAX_CONNECTION_RETRIES).")
    connection_retry_interval: float = Field(10.0, ge=0, description="Seconds between SSH attempts (seed: CONNECTION_RETRY_INTERVAL).")
    ssh_user: str = Field("ubuntu", description="SSH login user on instances (seed: SSH_USER).")
    ssh_key_file: Path | None = Field(None, description="SSH private key (seed: SSH_KEY).")
    ssh_password: SecretStr | None = Field(None, description="SSH password when no key is used (seed: SSH_PASSWORD).")
    timetest_csv_file: Path | None = Field(None, description="Append the seed's timing CSV here (seed: TIMETEST_CSV_FILE).")
    ssh_hosts: list[SSHHost] = Field(default_factory=list, description="Hosts of the ssh backend.")
    openstack: OpenStackSettings = Field(default_factory=OpenStackSettings, description="The openstack backend.")


LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    "MAX_ACTIVE_PIPELINES": ("pipelines", "max_active_pipelines"),
    "VIRTUAL_SERVER_TTL": ("pipelines", "virtual_server_ttl"),
    "VM_INSTANCE_TTL": ("pipelines", "virtual_server_ttl"),
    "LOCAL_SCRIPTS_FOLDER": ("pipelines", "local_scripts_folder"),
    "REMOTE_BASE_FOLDER": ("pipelines", "remote_base_folder"),
    "VM_SCRIPTS_FOLDER": ("pipelines", "remote_base_folder"),
    "MAX_CONNECTION_RETRIES": ("pipelines", "max_connection_retries"),
    "CONNECTION_RETRY_INTERVAL": ("pipelines", "connection_retry_interval"),
    "SSH_USER": ("pipelines", "ssh_user"),
    "SSH_KEY": ("pipelines", "ssh_key_file"),
    "SSH_PASSWORD": ("pipelines", "ssh_password"),
    "TIMETEST_CSV_FILE": ("pipelines", "timetest_csv_file"),
    "CREDENTIALS_FILE": ("pipelines", "openstack", "credentials_file"),
    "IMAGE_ID": ("pipelines", "openstack", "image_id"),
    "FLAVOR": ("pipelines", "openstack", "flavor"),
    "AUTH_KEYNAME": ("pipelines", "openstack", "auth_keyname"),
    "SECURITY_GROUP": ("pipelines", "openstack", "security_group"),
    "USE_FLOATING_IP": ("pipelines", "openstack", "use_floating_ip"),
    "IP_POOL": ("pipelines", "openstack", "ip_pool"),
    "NETWORK_ID": ("pipelines", "openstack", "network_id"),
}
