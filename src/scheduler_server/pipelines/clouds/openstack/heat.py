"""Heat stacks as the ``openstack`` backend makes and reads them (``provisioning: heat``).

A stack per instance, named by the pool, from a HOT template: the bundled
``templates/server.yaml`` (server, port, optional floating IP and security
group) or the site's ``heat_template_file``. We pass the standard parameters
the template declares (``STANDARD``) and the site's ``heat_parameters``; the
template's ``address`` output is where SSH connects, ``server_id`` the server.

Stacks are tagged ``scheduler_server_id=<id>`` (listing and reconciliation)
and ``scheduler_server_request=<token>`` (finding a create that happened
despite an error).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import yaml
from openstack import exceptions as os_exceptions
from openstack.orchestration.v1.stack import Stack

from scheduler_server.pipelines.backend_errors import BackendConfigError
from scheduler_server.pipelines.clouds.backend import TAG_KEY, InstanceInfo
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError, call
from scheduler_server.pipelines.clouds.openstack.servers import NAME_KEY, REQUEST_KEY, user_data_text

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).with_name("templates") / "server.yaml"
OPTIONS = BUNDLED.with_name("server-options.yaml")
#: Parameters this backend fills in from its settings, when the template declares them.
STANDARD = (
    "image",
    "flavor",
    "network",
    "key_name",
    "floating_network",
    "security_groups",
    "ssh_port",
    "user_data",
    "metadata",
)
#: Server metadata key naming the stack's scheduler (not TAG_KEY: the stack, not the server, is the instance).
STACK_OF_KEY = "scheduler_server_stack_of"
STATES = {
    "CREATE_IN_PROGRESS": "building",
    "CREATE_COMPLETE": "active",
    "DELETE_IN_PROGRESS": "gone",
    "DELETE_COMPLETE": "gone",
}
KEY = "pipelines.openstack"


class _Loader(yaml.SafeLoader):
    """YAML as Heat reads a template: a date (heat_template_version: 2016-10-14) stays a string."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader


def tag(scheduler_id: str) -> str:
    return f"{TAG_KEY}={scheduler_id}"


def request_tag(request: str) -> str:
    return f"{REQUEST_KEY}={request}"


@dataclass(frozen=True)
class StackTemplate:
    body: dict
    source: str
    #: parameter name -> its declaration in the template
    declared: dict


def load_template(settings) -> StackTemplate:
    """The template to create stacks from, checked against the settings: errors name the key."""
    path = settings.heat_template_file
    source = f"{KEY}.heat_template_file {path}" if path else "the bundled template"
    body = _read(Path(path).expanduser(), source) if path else bundled(settings)
    declared = body.get("parameters") or {}
    outputs = body.get("outputs") or {}
    if not isinstance(declared, dict) or not isinstance(outputs, dict):
        raise BackendConfigError(f"{source}: parameters and outputs must be mappings")
    if "address" not in outputs:
        raise BackendConfigError(f"{source}: the template must declare an output 'address' (where SSH connects)")
    for key in settings.heat_parameters:
        if key == "metadata":
            raise BackendConfigError(f"{KEY}.heat_parameters.metadata: set by the scheduler (its tag), not by the site")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise BackendConfigError(f"{KEY}.heat_parameters.{key}: not a parameter of {source} (it declares: {known})")
    ours = supplied(settings)
    _nothing_dropped(settings, ours, declared, source)
    user_data = declared.get("user_data")
    if "user_data" in ours and user_data is not None and not (isinstance(user_data, dict) and user_data.get("hidden")):
        raise BackendConfigError(
            f"{source}: parameter 'user_data' must be declared with hidden: true "
            "(user data may hold secrets; Heat shows parameters that are not hidden to anyone who can read the stack)"
        )
    for name, spec in declared.items():
        has_default = isinstance(spec, dict) and "default" in spec
        if not has_default and name not in ours and name not in settings.heat_parameters:
            hint = f"{KEY}.heat_parameters.{name}"
            if name in STANDARD:
                hint += f" or the setting behind it ({_SETTING_OF.get(name, name)})"
            raise BackendConfigError(f"{source}: parameter {name!r} has no default; set {hint}")
    return StackTemplate(body=body, source=source, declared=declared)


#: Standard parameters a template may leave out without losing a setting: we connect to ssh_port
#: anyway, and the metadata only names the stack on its server.
NOT_LOST = frozenset({"ssh_port", "metadata"})
#: Standard parameters a site template may hard-code (its own image or flavor, as templates written
#: before this check did): the settings behind them stay required and looked up, the stacks take the
#: template's; a warning at start says so.
HARD_CODED = frozenset({"image", "flavor"})
#: How to stop giving a value, where that is not "unset the setting".
_STOP_GIVING = {"floating_network": f"{KEY}.use_floating_ip: false"}

_SETTING_OF = {
    "image": f"{KEY}.image_id",
    "flavor": f"{KEY}.flavor",
    "network": f"{KEY}.network_id",
    "key_name": f"{KEY}.auth_keyname",
    "floating_network": f"{KEY}.ip_pool with use_floating_ip",
    "security_groups": f"{KEY}.security_group",
    "user_data": f"{KEY}.user_data",
}


def _nothing_dropped(settings, ours: set[str], declared: dict, source: str) -> None:
    """A configured value the template has no parameter for would never reach the stacks: refuse."""
    hard_coded = sorted(HARD_CODED - set(declared))
    if hard_coded:
        log.warning(
            "%s: declares no parameter %s: its stacks take the template's own, not %s",
            source,
            ", ".join(repr(name) for name in hard_coded),
            ", ".join(configured_as(settings, name) for name in hard_coded),
        )
    missing = sorted(ours - NOT_LOST - HARD_CODED - set(declared))
    if not missing:
        return
    names = ", ".join(repr(name) for name in missing)
    keys = ", ".join(configured_as(settings, name) for name in missing)
    one = len(missing) == 1
    fix = f"declare {'it' if one else 'them'} in the template or unset {'that setting' if one else 'those settings'}"
    fix += "".join(f" ({_STOP_GIVING[name]})" for name in missing if name in _STOP_GIVING)
    raise BackendConfigError(
        f"{source}: declares no parameter{'' if one else 's'} {names}, so {keys} would be dropped: {fix}"
    )


def configured_as(settings, name: str) -> str:
    """The setting behind the standard parameter ``name``, as the configuration spells it."""
    if name == "user_data" and settings.user_data_file:
        return f"{KEY}.user_data_file"
    return _SETTING_OF.get(name, f"{KEY}.{name}")


def bundled(settings) -> dict:
    """server.yaml with the parts of server-options.yaml the settings ask for merged in."""
    body = _yaml(BUNDLED.read_text())
    options = _yaml(OPTIONS.read_text())
    wanted = {
        "key_name": bool(settings.auth_keyname),
        "security_groups": bool(settings.security_group),
        "security_group": settings.heat_create_security_group,
        "floating_ip": settings.use_floating_ip,
    }
    for part, on in wanted.items():
        if on:
            _merge(body, options[part])
    return body


def _merge(into: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _read(path: Path, source: str) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BackendConfigError(f"{source}: {exc.strerror or exc}") from None
    try:
        body = _yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BackendConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(body, dict) or "heat_template_version" not in body:
        raise BackendConfigError(f"{source}: not a HOT template (no heat_template_version)")
    if not isinstance(body.get("resources"), dict) or not body["resources"]:
        raise BackendConfigError(f"{source}: the template has no resources")
    return body


def supplied(settings) -> set[str]:
    """The standard parameters the settings give a value to."""
    ours = {"image", "flavor", "ssh_port", "metadata"}
    if settings.network_id:
        ours.add("network")
    if settings.auth_keyname:
        ours.add("key_name")
    if settings.use_floating_ip:
        ours.add("floating_network")
    if settings.security_group:
        ours.add("security_groups")
    if settings.user_data or settings.user_data_file:
        ours.add("user_data")
    return ours


def parameters(template: StackTemplate, settings, wanted, name: str, scheduler_id: str) -> dict[str, str]:
    """The stack's parameters, as strings (as Heat's own clients send them)."""
    values = {
        "image": wanted.image_id,
        "flavor": wanted.flavor_id,
        "network": wanted.network_id,
        "key_name": settings.auth_keyname,
        "floating_network": wanted.pool_id if settings.use_floating_ip else None,
        "security_groups": ",".join(wanted.security_groups) or None,
        "ssh_port": settings.ssh_port,
        "metadata": {STACK_OF_KEY: scheduler_id, NAME_KEY: name},
    }
    if "user_data" in template.declared:
        values["user_data"] = user_data_text(settings)
    chosen = {k: v for k, v in values.items() if k in template.declared and v is not None}
    chosen.update(settings.heat_parameters)
    return {k: _text(v) for k, v in chosen.items()}


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def create_attrs(template: StackTemplate, settings, wanted, name: str, scheduler_id: str, request: str) -> dict:
    return {
        "name": name,
        "template": template.body,
        "parameters": parameters(template, settings, wanted, name, scheduler_id),
        "tags": [tag(scheduler_id), request_tag(request)],
        # Heat stops working on it too: boot_timeout is ours, this is Heat's own (whole minutes).
        "timeout_mins": max(1, math.ceil(settings.boot_timeout / 60)),
        # A failed stack is deleted whole anyway; a rollback would only hide its reason.
        "is_rollback_disabled": True,
    }


def tags_of(stack) -> list[str]:
    tags = stack.tags or []
    return tags.split(",") if isinstance(tags, str) else list(tags)


def instance_info(stack, ssh_port: int, ssh_user: str, scheduler_id: str) -> InstanceInfo:
    """A stack as the pool sees it."""
    tags = tags_of(stack)
    status = (stack.status or "").upper()
    created = None
    if stack.created_at:
        created = datetime.fromisoformat(stack.created_at.replace("Z", "+00:00"))
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
    request = next((t.partition("=")[2] for t in tags if t.startswith(f"{REQUEST_KEY}=")), None)
    return InstanceInfo(
        id=stack.id,
        name=stack.name,
        state=STATES.get(status, "error"),
        port=ssh_port,
        user=ssh_user,
        tagged=tag(scheduler_id) in tags,
        created_at=created,
        extra={"status": status, "request": request, "stack": True},
    )


def outputs(stack) -> dict:
    return {o.get("output_key"): o.get("output_value") for o in (stack.outputs or []) if isinstance(o, dict)}


def failure(orchestration, stack, name: str, retries: int) -> str:
    """Why a stack failed: its status reason, and the failing resource's event reason when it adds one."""
    reason = (stack.status_reason or "").strip() or "no reason given"
    message = f"stack {name} {stack.status}: {reason}"
    try:
        events = call("list stack events", lambda: list(orchestration.stack_events(stack)), retries)
    except CloudAPIError:
        return message
    # Newest first whatever order the cloud listed them in (Heat's default: newest first); a stable
    # sort, as event times are whole seconds.
    events.sort(key=lambda e: e.event_time or "", reverse=True)
    for event in events:
        if (event.resource_status or "").endswith("_FAILED") and event.resource_name != name:
            detail = (event.resource_status_reason or "").strip()
            if detail and detail not in reason:
                return f"{message} ({event.resource_name}: {detail})"
            break
    return message


class StackBoard:
    """Statuses of booting stacks from one shared listing of ours per poll interval (as
    ``status.ServerStatusBoard`` does for servers); a stack missing from it is fetched alone."""

    def __init__(self, connection: Callable, retries: int, scheduler_id: str):
        self._conn = connection
        self.retries = retries
        self.tag = tag(scheduler_id)
        self._lock = threading.Lock()
        self._stacks: dict[str, object] = {}
        self._taken_at = float("-inf")

    def get(self, stack_id: str, max_age: float):
        with self._lock:
            if time.monotonic() - self._taken_at >= max_age:
                listed = call(
                    "list stacks", lambda: list(self._conn().orchestration.stacks(tags=[self.tag])), self.retries
                )
                self._stacks = {s.id: s for s in listed}
                self._taken_at = time.monotonic()
            stack = self._stacks.get(stack_id)
        return stack if stack is not None else self.fetch(stack_id)

    def fetch(self, stack_id: str, name: str | None = None):
        """The stack with its outputs, or None if it does not exist (any more). With its name, from
        the canonical URL ``/stacks/<name>/<id>``: Heat answers ``/stacks/<id>`` with a redirect there."""

        def get():
            orchestration = self._conn().orchestration  # inside call(): reaching it may be a request
            try:
                if name:
                    stack = Stack.existing(id=stack_id, name=name)
                    return stack.fetch(orchestration, base_path=f"/stacks/{quote(name, safe='')}")
                return orchestration.get_stack(stack_id)
            except os_exceptions.NotFoundException:  # also a DELETE_COMPLETE stack (openstacksdk's rule)
                return None

        return call("get stack", get, self.retries)


def delete(orchestration, stack_id: str, name: str) -> None:
    """``DELETE /stacks/<name>/<id>`` (no redirect); a stack already gone is not an error."""
    response = orchestration.delete(f"/stacks/{quote(name, safe='')}/{stack_id}", raise_exc=False)
    if response.status_code != 404:
        os_exceptions.raise_from_response(response)
