"""One typed settings object, read from a YAML file plus environment overrides.

Where the file is looked for, in order: an explicit path (``--config``),
``$SCHEDULER_SERVER_CONFIG``, ``~/.config/scheduler-server/config.yaml`` and the
pipeline seed's ``~/.pipeline-scheduler/config.yaml``. With none of them the
embedded defaults apply, so the service starts on a fresh machine.

Environment overrides use ``SCHEDULER_SERVER__<SECTION>__<KEY>``, e.g.
``SCHEDULER_SERVER__SERVER__PORT=9000``. The pipeline seed's upper-case
top-level keys (``MAX_ACTIVE_PIPELINES``, ``HOST``...) are accepted in the file
and mapped onto their section (see ``LEGACY_KEYS``).

Loading is hand-rolled on top of pydantic (rather than pydantic-settings)
because a bad value must be reported on one line naming *where* it came from:
the file and key, or the environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler_server.logging_setup import LoggingSettings
from scheduler_server.pipelines.settings import LEGACY_KEYS as PIPELINE_LEGACY_KEYS
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.xnat.settings import XnatSettings
from scheduler_server.startup_error import ConfigError

ENV_CONFIG_PATH = "SCHEDULER_SERVER_CONFIG"
ENV_PREFIX = "SCHEDULER_SERVER__"
DEFAULT_PATHS = (
    Path("~/.config/scheduler-server/config.yaml"),
    Path("~/.pipeline-scheduler/config.yaml"),
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `scheduler-server serve` binds to.")
    port: int = Field(8010, ge=1, le=65535, description="Port `scheduler-server serve` listens on.")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to call /api/* from a browser; ['*'] allows all (the seed's behaviour), [] disables CORS.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted; bigger ones get 413."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Processes of `scheduler-server serve` (`--workers`): 1 serves in one process; more forks that many"
            " workers on the same port, one of which dispatches pipelines (docs/deployment.md)."
        ),
    )
    threads: int = Field(
        8,
        ge=1,
        le=256,
        description="Threads of `scheduler-server serve` that run requests (reading and writing them costs none).",
    )
    request_timeout: float = Field(
        30,
        gt=0,
        le=3600,
        description="Seconds a client of `scheduler-server serve` has to send a whole request (headers and body); then it is disconnected.",
    )
    idle_timeout: float = Field(
        60, ge=1, le=86400, description="Seconds an idle keep-alive connection of `scheduler-server serve` stays open."
    )
    connection_limit: int = Field(
        1000,
        ge=10,
        le=100000,
        description="Open connections `scheduler-server serve` accepts at once; beyond, new ones wait in the listen backlog.",
    )


class ObservingSettings(_Section):
    max_window_hours: float = Field(
        24 * 31, gt=0, description="Longest schedule window (t1 - t0) a request may ask for, in hours."
    )
    presets: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description=(
            "Site presets: {policy name: {preset name: config values}}. They are added to the policy's"
            " built-in presets; a request selects one with policy.preset."
        ),
    )


class Settings(_Section):
    data_dir: Path = Field(
        Path("~/.local/share/scheduler-server"),
        description="Directory for the database, logs, keys and caches. Created on start.",
    )
    server: ServerSettings = Field(default_factory=ServerSettings, description="The HTTP server.")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logging.")
    observing: ObservingSettings = Field(
        default_factory=ObservingSettings, description="The observing scheduler (POST /api/v1/schedule/)."
    )
    pipelines: PipelineSettings = Field(
        default_factory=PipelineSettings,
        description="The pipeline scheduler (/pipeline, /instance, /api/v1/pipelines).",
    )
    xnat: XnatSettings = Field(
        default_factory=XnatSettings, description="XNAT servers pipelines may name, and how they are used."
    )

    source: str | None = Field(None, exclude=True, description="File the settings were read from (informational).")

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser()

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-able data with every secret masked."""
        return self.model_dump(mode="json")


LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    **PIPELINE_LEGACY_KEYS,
}


def find_config_file(explicit: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser()
    if env.get(ENV_CONFIG_PATH):
        return Path(env[ENV_CONFIG_PATH]).expanduser()
    for candidate in DEFAULT_PATHS:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def load_settings(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration; raise ConfigError on any problem."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    if file is not None:
        data = _read_yaml(file)
        data = _apply_legacy_keys(data, file, origins)
    _apply_env(data, env, origins)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file, origins)) from None
    settings.source = str(file) if file else None
    return settings


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys to values, not {type(data).__name__}")
    return data


def _apply_legacy_keys(data: dict[str, Any], file: Path, origins: dict[tuple[str, ...], str]) -> dict[str, Any]:
    merged = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    for key, value in data.items():
        if key not in LEGACY_KEYS:
            continue
        target = LEGACY_KEYS[key]
        _set_path(merged, target, value)
        origins[target] = f"{file}: key {key}"
    return merged


def _apply_env(data: dict[str, Any], env: Mapping[str, str], origins: dict[tuple[str, ...], str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part)
        if not path:
            continue
        _set_path(data, path, _env_value(raw))
        origins[path] = f"environment variable {name}"


def _env_value(raw: str) -> Any:
    # Lists and mappings are written as YAML flow collections; scalars stay strings
    # and pydantic coerces them, so "007" stays a string where a string is wanted.
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            return raw
    if stripped.lower() in ("null", "none", "~"):
        return None
    return raw


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _describe(exc: ValidationError, file: Path | None, origins: dict[tuple[str, ...], str]) -> str:
    error = exc.errors()[0]
    loc = tuple(str(p) for p in error["loc"])
    dotted = ".".join(loc) or "(top level)"
    source = None
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            source = origins[loc[:n]]
            break
    if source is None:
        source = f"{file}: key {dotted}" if file else f"key {dotted}"
    else:
        source = f"{source} ({dotted})"
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{source}: {message}{extra}"
