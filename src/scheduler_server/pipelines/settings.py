"""Settings of the pipeline scheduler (the `pipelines:` section of the config file).

Each backend owns its part (``clouds/<backend>/settings.py``, leaves that import only pydantic)
and this module composes them, as Nodepool does its drivers'. The keys, their defaults and their
order, which ``config template`` prints, are those of the seed's single section.

The pipeline seed's upper-case keys keep their meaning; ``LEGACY_KEYS`` maps each
one, when written at the top level of the file as in the seed's template, onto
its place here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from scheduler_server.pipelines.clouds.openstack.settings import OpenStackSettings
from scheduler_server.pipelines.clouds.ssh.settings import SSHHost
from scheduler_server.pipelines.env_names import check_pattern


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ProjectLimitsSettings(_Section):
    default: int | None = Field(
        None, ge=1, description="Most active pipelines of any one project; null: no limit but max_active_pipelines."
    )
    projects: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="Per-project limits (project name -> most active), over the default."
    )


class PipelineSettings(_Section):
    backend: Literal["local", "ssh", "openstack"] = Field("local", description="Where pipelines run.")
    max_active_pipelines: int = Field(
        2, ge=1, description="At most this many pipelines run at once (seed: MAX_ACTIVE_PIPELINES)."
    )
    virtual_server_ttl: int = Field(
        1,
        ge=1,
        description="Pipelines one instance runs before it is deleted (seed: VIRTUAL_SERVER_TTL / VM_INSTANCE_TTL).",
    )
    local_scripts_folder: Path = Field(
        Path("~/.pipeline-scheduler/scripts"),
        description="Scripts and files pipelines may name (seed: LOCAL_SCRIPTS_FOLDER).",
    )
    remote_base_folder: str = Field(
        "pipeline-scheduler",
        description="Working folder on the instance (seed: REMOTE_BASE_FOLDER / VM_SCRIPTS_FOLDER).",
    )
    max_connection_retries: int = Field(30, ge=0, description="SSH connection attempts (seed: MAX_CONNECTION_RETRIES).")
    connection_retry_interval: float = Field(
        10.0, ge=0, description="Seconds between SSH attempts (seed: CONNECTION_RETRY_INTERVAL)."
    )
    ssh_user: str = Field("ubuntu", description="SSH login user on instances (seed: SSH_USER).")
    ssh_key_file: Path | None = Field(None, description="SSH private key (seed: SSH_KEY).")
    ssh_password: SecretStr | None = Field(None, description="SSH password when no key is used (seed: SSH_PASSWORD).")
    timetest_csv_file: Path | None = Field(
        None, description="Append the seed's timing CSV here (seed: TIMETEST_CSV_FILE)."
    )
    ssh_hosts: list[SSHHost] = Field(default_factory=list, description="Hosts of the ssh backend.")
    max_instances: int | None = Field(
        None,
        ge=1,
        description="Most instances alive at once, booting ones included; the surplus over running pipelines boots ahead for the queue (seed: MAX_INSTANCES). Default: max_active_pipelines + 1; with virtual_server_ttl 1, 5 x max_active_pipelines.",
    )
    idle_timeout: float = Field(
        300.0, ge=0, description="Seconds an idle instance is kept for reuse before it is deleted (seed: IDLE_TIMEOUT)."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts per pipeline when the infrastructure fails (instance down, SSH lost) (seed: MAX_ATTEMPTS).",
    )
    retry_backoff: float = Field(
        5.0,
        ge=0,
        description="Seconds before the first retry; doubled for each further one, at most retry_backoff_max.",
    )
    retry_backoff_max: float = Field(300.0, ge=0, description="Longest wait between two attempts, in seconds.")
    retry_script_failures: bool = Field(
        False, description="Also retry when the script itself exits non-zero (normally final)."
    )
    pipeline_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds a pipeline's script may run before it is killed and failed with reason 'timeout'; null: no limit. A request may set its own.",
    )
    xnat_credentials: Literal["argument", "env"] = Field(
        "argument",
        description="How the script gets the XNAT password: 'argument' as the seed (-pwd X), or 'env' as $XNAT_PASSWORD so it never shows in the instance's process table (seed: XNAT_CREDENTIALS).",
    )
    allowed_env_names: list[Annotated[str, AfterValidator(check_pattern)]] = Field(
        ["PIPELINE_*"],
        description="Variables a type 'script' request's env may set: names or globs ('*', '?'). Names a shell, the loader or a tool reads as code (BASH_ENV, PATH, LD_*, PYTHON*, ...; see docs/pipelines.md) are refused even if a pattern matches.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts passwords at rest; default: generated once into <data_dir>/pipelines.key (mode 0600).",
    )
    tokens_file: Path | None = Field(
        None,
        description="API tokens, one per line; requests need ?token= or 'Authorization: Bearer'. Without tokens the API is open and the service warns loudly (seed: TOKENS_FILE).",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the pipeline database; default: SQLite file <data_dir>/pipelines.sqlite. PostgreSQL works too.",
    )
    poll_interval: float = Field(0.5, gt=0, description="Seconds between two checks of a running pipeline.")
    reconcile_interval: float = Field(
        300.0,
        gt=0,
        description="Seconds between two sweeps that delete instances tagged as ours but tracked by no row (also done at start).",
    )
    dispatcher_lease: float = Field(
        15.0,
        ge=2,
        description="Seconds the dispatching process's database lease lasts; another process takes over after it lapses.",
    )
    kill_grace: float = Field(
        5.0, ge=0, description="Seconds between SIGTERM and SIGKILL when a pipeline is cancelled or times out."
    )
    backend_threads: int = Field(
        16, ge=1, description="Worker threads for backend calls (provision, stage, poll, delete)."
    )
    project_limits: ProjectLimitsSettings = Field(
        default_factory=ProjectLimitsSettings,
        description="Fair shares: most active pipelines per (XNAT) project; projects of one priority take turns.",
    )
    openstack: OpenStackSettings = Field(default_factory=OpenStackSettings, description="The openstack backend.")

    @property
    def instance_limit(self) -> int:
        if self.max_instances is not None:
            return self.max_instances
        if self.virtual_server_ttl == 1:
            # Every pipeline needs a new server, so look-ahead boots only servers that queued
            # pipelines will use; hiding a boot three times as long as the work (the seed's
            # boots and jobs, see bench/README.md) takes three booting behind each running one,
            # plus the one just finished, which counts until its delete completes.
            return 5 * self.max_active_pipelines
        return self.max_active_pipelines + 1


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
    "MAX_INSTANCES": ("pipelines", "max_instances"),
    "IDLE_TIMEOUT": ("pipelines", "idle_timeout"),
    "MAX_ATTEMPTS": ("pipelines", "max_attempts"),
    "PIPELINE_TIMEOUT": ("pipelines", "pipeline_timeout"),
    "XNAT_CREDENTIALS": ("pipelines", "xnat_credentials"),
    "TOKENS_FILE": ("pipelines", "tokens_file"),
    "CREDENTIALS_FILE": ("pipelines", "openstack", "credentials_file"),
    "IMAGE_ID": ("pipelines", "openstack", "image_id"),
    "FLAVOR": ("pipelines", "openstack", "flavor"),
    "AUTH_KEYNAME": ("pipelines", "openstack", "auth_keyname"),
    "SECURITY_GROUP": ("pipelines", "openstack", "security_group"),
    "USE_FLOATING_IP": ("pipelines", "openstack", "use_floating_ip"),
    "IP_POOL": ("pipelines", "openstack", "ip_pool"),
    "NETWORK_ID": ("pipelines", "openstack", "network_id"),
}


def keep_running(running: BaseModel, fresh: BaseModel, keys) -> tuple[list[str], BaseModel]:
    """The ``keys`` (dotted for a nested one: ``openstack.provisioning``) whose value differs in
    ``fresh``, and ``fresh`` with their running values put back (they need a restart)."""
    changed = []
    for key in keys:
        *parents, leaf = key.split(".")
        old, new = running, fresh
        for part in parents:
            old, new = getattr(old, part), getattr(new, part)
        if getattr(old, leaf) != getattr(new, leaf):
            changed.append(key)
            fresh = _replaced(fresh, parents, leaf, getattr(old, leaf))
    return changed, fresh


def _replaced(model: BaseModel, parents: list[str], leaf: str, value) -> BaseModel:
    if not parents:
        return model.model_copy(update={leaf: value})
    head = parents[0]
    return model.model_copy(update={head: _replaced(getattr(model, head), parents[1:], leaf, value)})
