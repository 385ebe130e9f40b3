"""OpenStack credentials, found the way OpenStack users already keep them.

In order of precedence:

1. ``pipelines.openstack.cloud`` (or ``$OS_CLOUD`` when no credentials file is
   set): that cloud from clouds.yaml, the file named by ``clouds_file`` or
   openstacksdk's usual places (``./clouds.yaml``,
   ``~/.config/openstack/clouds.yaml``, ``/etc/openstack/clouds.yaml``).
2. ``pipelines.openstack.credentials_file`` (the seed's ``CREDENTIALS_FILE``):
   an openrc file. Its ``export OS_...=value`` lines are *read*, never run by a
   shell; ``$VAR`` references are resolved from earlier lines or the
   environment, so Horizon's ``export OS_PASSWORD=$OS_PASSWORD_INPUT`` (which
   the file would prompt for) takes ``OS_PASSWORD_INPUT`` or ``OS_PASSWORD`` from
   the service's environment.
3. ``OS_*`` environment variables.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scheduler_server.pipelines.backend_errors import BackendConfigError

if TYPE_CHECKING:
    import openstack.connection

    from scheduler_server.pipelines.clouds.openstack.settings import OpenStackSettings

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: Where Horizon's openrc gets the password from when the file is "sourced".
_PASSWORD_FALLBACKS = ("OS_PASSWORD_INPUT", "OS_PASSWORD")


def read_openrc(path: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``OS_*`` variables an openrc file would export, without executing it.

    Lines that are not assignments (``if``, ``echo``, ``read``, ``unset``...)
    are shell logic this reader deliberately does not run.
    """
    env = os.environ if env is None else env
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise BackendConfigError(f"pipelines.openstack.credentials_file: cannot read {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        name, raw = match.groups()
        where = f"pipelines.openstack.credentials_file {path}, line {number} ({name})"
        if "$(" in raw or "`" in raw:
            raise BackendConfigError(f"{where}: command substitution is not supported; write the value itself")
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise BackendConfigError(f"{where}: {exc}") from None
        value = words[0] if words else ""
        if not raw.lstrip().startswith("'"):  # single quotes mean "literal" in the shell too
            value = _expand(value, name, values, env, where)
        values[name] = value
    return {k: v for k, v in values.items() if k.startswith("OS_")}


def _expand(value: str, name: str, known: dict[str, str], env: Mapping[str, str], where: str) -> str:
    def lookup(match: re.Match) -> str:
        ref = match.group(1) or match.group(2)
        if ref in known:
            return known[ref]
        if ref in env:
            return env[ref]
        if name == "OS_PASSWORD":
            for fallback in _PASSWORD_FALLBACKS:
                if fallback in env:
                    return env[fallback]
        raise BackendConfigError(
            f"{where}: refers to ${ref}, which is neither set earlier in the file nor in the environment"
            + ("; put the password in the service's environment as OS_PASSWORD" if name == "OS_PASSWORD" else "")
        )

    return _REFERENCE.sub(lookup, value)


def os_vars_to_options(variables: Mapping[str, str]) -> dict[str, str]:
    """``OS_AUTH_URL`` -> ``auth_url`` and so on: openstacksdk's own spelling of the same options."""
    options = {name[3:].lower(): value for name, value in variables.items() if name.startswith("OS_") and value != ""}
    options.pop("cloud", None)
    options.pop("password_input", None)
    return options


def connection_source(settings: OpenStackSettings, env: Mapping[str, str] | None = None) -> tuple[str, Any]:
    """Which credentials apply: ("cloud", name), ("openrc", options) or ("env", None)."""
    env = os.environ if env is None else env
    if settings.cloud:
        return "cloud", settings.cloud
    if settings.credentials_file:
        return "openrc", os_vars_to_options(read_openrc(settings.credentials_file, env))
    if env.get("OS_CLOUD"):
        return "cloud", env["OS_CLOUD"]
    if env.get("OS_AUTH_URL"):
        return "env", None
    raise BackendConfigError(
        "no OpenStack credentials: set pipelines.openstack.cloud (a clouds.yaml entry), "
        "pipelines.openstack.credentials_file (an openrc file), or OS_CLOUD / OS_AUTH_URL and friends in the environment"
    )


def connect(settings: OpenStackSettings, env: Mapping[str, str] | None = None) -> openstack.connection.Connection:
    """An openstacksdk Connection (it authenticates lazily, on the first request)."""
    import openstack.config
    import openstack.connection
    import openstack.exceptions
    from keystoneauth1 import exceptions as ks_exceptions

    kind, detail = connection_source(settings, env)
    common = {"api_timeout": settings.api_timeout}
    try:
        if kind == "cloud":
            files = [str(Path(settings.clouds_file).expanduser())] if settings.clouds_file else None
            config = openstack.config.OpenStackConfig(config_files=files, load_envvars=False)
            region = config.get_one(cloud=detail, **common)
        elif kind == "openrc":
            config = openstack.config.OpenStackConfig(load_yaml_config=False, load_envvars=False)
            region = config.get_one(**detail, **common)
        else:
            config = openstack.config.OpenStackConfig(load_yaml_config=False, load_envvars=True)
            region = config.get_one(**common)
    except (openstack.exceptions.ConfigException, ks_exceptions.ClientException, KeyError) as exc:
        source = {
            "cloud": f"cloud {detail!r}",
            "openrc": f"credentials_file {settings.credentials_file}",
            "env": "OS_* variables",
        }[kind]
        raise BackendConfigError(f"pipelines.openstack: {source}: {exc}") from None
    return openstack.connection.Connection(config=region)
