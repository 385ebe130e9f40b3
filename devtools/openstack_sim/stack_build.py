"""The check at stack create: a template, its parameters and resources read into a not yet started ``Stack``.

Everything Heat would refuse, and everything the simulator does not model, is a
``HeatError`` here (400, naming it), before anything is made. Ports are bound to the
server that lists them (the Cloud gives each server one port it makes itself).
"""

from __future__ import annotations

import re

from . import hot
from .heat_types import TYPES
from .hot import HeatError, not_simulated
from .model import new_id
from .stacks import Stack, StackResource

NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$")
RESOURCE_KEYS = {"type", "properties", "depends_on"}


def build(cloud, name, template, given: dict, environment: dict | None) -> Stack:
    """A checked, not yet started stack; HeatError for anything Heat (or the simulator) refuses."""
    if not isinstance(name, str) or not NAME.match(name):
        raise HeatError(
            400,
            f'Invalid stack name {name} must contain only alphanumeric or "_-." characters, '
            "must start with alpha and must be 255 characters or less.",
        )
    template = hot.load(template)
    env = environment or {}
    if set(env) - {"parameters", "parameter_defaults"}:
        raise not_simulated(
            f"environment section(s) {', '.join(sorted(set(env) - {'parameters', 'parameter_defaults'}))}"
        )
    for section in ("parameters", "parameter_defaults"):
        if env.get(section) is not None and not isinstance(env[section], dict):
            raise HeatError(400, f"Invalid value for environment.{section}: {env[section]!r} (a map)")
    merged = {**(env.get("parameter_defaults") or {}), **(env.get("parameters") or {}), **(given or {})}
    declared = template.get("parameters") or {}
    merged = {
        k: v for k, v in merged.items() if k in declared or k in (given or {}) or k in (env.get("parameters") or {})
    }
    stack_id = new_id()
    pseudo = {"OS::stack_name": name, "OS::stack_id": stack_id, "OS::project_id": cloud.project_id}
    params = hot.parameter_values(template, merged) | pseudo
    resources = _checked_resources(cloud, template, params)
    _bind_ports(resources)
    outputs = template.get("outputs") or {}
    version = hot.version_of(template)
    for key, out in outputs.items():
        if not isinstance(out, dict) or set(out) - {"value", "description"}:
            raise not_simulated(f"outputs.{key}: keys other than value and description")
        hot.check_functions(out.get("value"), f"outputs.{key}", version, set(resources), params)
    for value in [r.definition.get("properties") for r in resources.values()] + list(outputs.values()):
        _check_attributes(value, resources)
    return Stack(
        id=stack_id,
        name=name,
        template=template,
        params=params,
        given_params=dict(given or {}),
        tags=[],
        timeout_mins=None,
        disable_rollback=True,
        resources=resources,
        order=_order(resources),
    )


def _checked_resources(cloud, template: dict, params: dict) -> dict[str, StackResource]:
    version = hot.version_of(template)
    declared = template.get("resources") or {}
    resources = {}
    for name, definition in declared.items():
        if not isinstance(definition, dict) or "type" not in definition:
            raise HeatError(400, f'Resource {name}: "type" is missing')
        if set(definition) - RESOURCE_KEYS:
            raise not_simulated(f"resources.{name} key(s) {', '.join(sorted(set(definition) - RESOURCE_KEYS))}")
        kind = TYPES.get(definition["type"])
        if kind is None:
            raise not_simulated(f"resource type {definition['type']} (resources.{name}; simulated: {', '.join(TYPES)})")
        props = definition.get("properties") or {}
        if not isinstance(props, dict):
            raise HeatError(400, f"resources.{name}: properties must be a map")
        unknown = set(props) - kind.PROPERTIES
        if unknown:
            raise not_simulated(f"property {', '.join(sorted(unknown))} of {definition['type']} (resources.{name})")
        missing = kind.REQUIRED - set(props)
        if missing:
            raise HeatError(400, f"Property error: resources.{name}.properties: Property {min(missing)} not assigned")
        depends = hot.check_functions(props, f"resources.{name}", version, set(declared), params)
        extra = definition.get("depends_on") or []
        extra = [extra] if isinstance(extra, str) else extra
        if not isinstance(extra, list) or not all(isinstance(t, str) for t in extra):
            raise HeatError(400, f"resources.{name}.depends_on: a resource name or a list of them")
        for target in extra:
            if target not in declared:
                raise HeatError(400, f'The specified reference "{target}" (in {name}) is incorrect.')
        resources[name] = StackResource(name, definition["type"], definition, depends | set(extra))
        kind.check(cloud, name, _known(name, props, params), set(props))
        made_by = hot.function_of(props.get("port_id"))
        if definition["type"] == "OS::Neutron::FloatingIP" and made_by not in (None, "get_resource", "get_param"):
            raise not_simulated(f"resources.{name}.properties.port_id from {made_by} (use get_resource of the port)")
    return resources


def _check_attributes(value, resources: dict[str, StackResource]) -> None:
    """Refuse a get_attr on an attribute the simulator does not model."""
    if hot.function_of(value) == "get_attr":
        target, attribute = resources[value["get_attr"][0]], value["get_attr"][1]
        if isinstance(attribute, str) and attribute not in TYPES[target.type].ATTRIBUTES:
            known = ", ".join(sorted(TYPES[target.type].ATTRIBUTES)) or "none"
            raise not_simulated(
                f"attribute {attribute} of {target.type} (get_attr on {target.name}; simulated: {known})"
            )
    if isinstance(value, dict):
        for item in value.values():
            _check_attributes(item, resources)
    elif isinstance(value, list):
        for item in value:
            _check_attributes(item, resources)


def _known(name: str, props: dict, params: dict) -> dict:
    """The properties whose values need no resource (the others are left out of the check)."""
    known = {}
    for key, value in props.items():
        try:
            known[key] = hot.resolve(value, params, _unresolvable)
        except LookupError:
            known[key] = None
        except (TypeError, ValueError, AttributeError) as exc:
            raise HeatError(400, f"Property error: resources.{name}.properties.{key}: {exc}") from None
    return {k: v for k, v in known.items() if v is not None}


def _unresolvable(name, path):
    raise LookupError(name)


def _bind_ports(resources: dict[str, StackResource]) -> None:
    for res in resources.values():
        if res.type != "OS::Nova::Server":
            continue
        networks = (res.definition.get("properties") or {}).get("networks") or []
        if isinstance(networks, list) and len(networks) > 1:
            raise not_simulated(f"resources.{res.name}.properties.networks: more than one network")
        for item in networks if isinstance(networks, list) else []:
            if not isinstance(item, dict) or len(item) != 1 or not set(item) <= {"network", "port"}:
                raise not_simulated(f"resources.{res.name}.properties.networks item {item!r} (one of: network, port)")
            ref = item.get("port")
            if ref is None:
                continue
            target = ref.get("get_resource") if isinstance(ref, dict) else None
            port = resources.get(target) if isinstance(target, str) else None
            if port is None or port.type != "OS::Neutron::Port":
                raise not_simulated(f"resources.{res.name}: a port that is not an OS::Neutron::Port of this stack")
            if port.bound_to:
                raise not_simulated(f"resources.{target}: one port used by two servers")
            port.bound_to = res.name
            res.depends = (res.depends - {target}) | port.depends
    for res in resources.values():
        if res.type == "OS::Neutron::Port":
            if not res.bound_to:
                raise not_simulated(f"resources.{res.name}: an OS::Neutron::Port that no OS::Nova::Server lists")
            res.depends = res.depends | {res.bound_to}


def _order(resources: dict[str, StackResource]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise HeatError(400, f"Circular Dependency Found: {name}", "CircularDependencyException")
        visiting.add(name)
        for dep in sorted(resources[name].depends):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in resources:
        visit(name)
    return order
