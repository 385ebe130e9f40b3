"""HOT (Heat Orchestration Template) as the simulator reads it: versions, parameters, intrinsic functions.

Checks happen at stack create, as in Heat: a template, parameter or function the
simulator does not model is refused there with ``HeatError`` (400, "not simulated: ..."),
never ignored. Values are resolved later by ``resolve`` with a callback that knows the
stack's resources (``get_resource`` -> physical id, ``get_attr`` -> attribute).
"""

from __future__ import annotations

import json
import re

import yaml  # PyYAML comes with openstacksdk

VERSIONS = {
    "2013-05-23": 20130523,
    "2014-10-16": 20141016,
    "2015-04-30": 20150430,
    "2015-10-15": 20151015,
    "2016-04-08": 20160408,
    "2016-10-14": 20161014,
    "newton": 20161014,
    "2017-02-24": 20170224,
    "ocata": 20170224,
    "2017-09-01": 20170901,
    "pike": 20170901,
    "2018-03-02": 20180302,
    "queens": 20180302,
    "2018-08-31": 20180831,
    "rocky": 20180831,
    "2021-04-16": 20210416,
    "wallaby": 20210416,
}
#: function -> first template version that has it
FUNCTIONS = {"get_param": 0, "get_resource": 0, "get_attr": 0, "str_replace": 0, "list_join": 20141016}
#: Heat functions the simulator does not model (refused by name rather than read as plain data)
UNSIMULATED = {
    "get_file", "repeat", "digest", "resource_facade", "str_split", "map_merge", "map_replace", "yaql",
    "equals", "if", "not", "and", "or", "filter", "make_url", "contains", "list_concat", "list_concat_unique",
    "str_replace_strict", "str_replace_vstrict", "get_param_strict", "Fn::Select", "Fn::GetAZs", "Ref",
}  # fmt: skip
SECTIONS = {"heat_template_version", "description", "parameters", "resources", "outputs", "parameter_groups"}
PARAM_TYPES = {"string", "number", "json", "comma_delimited_list", "boolean"}
PARAM_KEYS = {"type", "default", "description", "label", "hidden", "constraints", "immutable", "tags"}
CONSTRAINTS = {"allowed_values", "length", "range", "allowed_pattern", "description"}


class _Loader(yaml.SafeLoader):
    """YAML as Heat reads it: dates stay strings (``heat_template_version: 2018-08-31``)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class HeatError(Exception):
    """A refused request, in Heat's terms: ``kind`` is Heat's exception name."""

    def __init__(self, status: int, message: str, kind: str = "StackValidationFailed"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def not_simulated(what: str) -> HeatError:
    return HeatError(400, f"not simulated: {what}", "NotSimulated")


def load(template) -> dict:
    """The template as a dict (a JSON/YAML string or an object), with its sections checked."""
    if isinstance(template, str):
        try:
            template = yaml.load(template, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise HeatError(400, f"Error parsing template: {exc}") from None
    if not isinstance(template, dict):
        raise HeatError(400, "The template is not a JSON object or YAML mapping.")
    version = str(template.get("heat_template_version", ""))
    if version not in VERSIONS:
        raise HeatError(
            400,
            f'The template version is invalid: "heat_template_version: {version}". '
            f'"heat_template_version" should be one of: {", ".join(sorted(VERSIONS))}',
            "InvalidTemplateVersion",
        )
    for section in template:
        if section == "conditions":
            raise not_simulated("template section 'conditions'")
        if section not in SECTIONS:
            raise HeatError(400, f"The template section is invalid: {section}", "InvalidTemplateSection")
    for section in ("parameters", "resources", "outputs"):
        if template.get(section) is not None and not isinstance(template[section], dict):
            raise HeatError(400, f'"{section}" must be a map')
    return template


def version_of(template: dict) -> int:
    return VERSIONS[str(template["heat_template_version"])]


# --- parameters ---------------------------------------------------------------------------


def parameter_values(template: dict, given: dict) -> dict:
    """Every declared parameter's value (given or default), converted and checked against its constraints."""
    declared = template.get("parameters") or {}
    for name in given:
        if name not in declared:
            raise HeatError(400, f"The Parameter ({name}) was not defined in template.", "UnknownUserParameter")
    values = {}
    for name, schema in declared.items():
        if not isinstance(schema, dict):
            raise HeatError(400, f"Parameter {name}: the definition must be a map")
        unknown = set(schema) - PARAM_KEYS
        if unknown:
            raise not_simulated(f"parameter {name} key(s) {', '.join(sorted(unknown))}")
        kind = schema.get("type")
        if kind not in PARAM_TYPES:
            raise HeatError(400, f"Parameter {name}: invalid type {kind!r} (one of {', '.join(sorted(PARAM_TYPES))})")
        if name in given:
            raw = given[name]
        elif "default" in schema:
            raw = schema["default"]
        else:
            raise HeatError(400, f"The Parameter ({name}) was not provided.", "UserParameterMissing")
        values[name] = _converted(name, kind, raw)
        for constraint in schema.get("constraints") or []:
            _check_constraint(name, constraint, values[name])
    return values


def _converted(name: str, kind: str, raw):
    try:
        if kind == "number":
            number = float(raw)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return int(number) if number.is_integer() and "." not in str(raw) else number
        if kind == "boolean":
            text = str(raw).lower()
            if text not in ("true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"):
                raise ValueError(raw)
            return text in ("true", "1", "yes", "on", "t", "y")
        if kind == "json":
            return json.loads(raw) if isinstance(raw, str) else raw
        if kind == "comma_delimited_list":
            return [p.strip() for p in raw.split(",")] if isinstance(raw, str) else [str(p) for p in raw]
        return raw if isinstance(raw, str) else json.dumps(raw) if isinstance(raw, dict | list) else str(raw)
    except (TypeError, ValueError):
        raise HeatError(400, f"Parameter '{name}' is invalid: Value \"{raw}\" is not a valid {kind}") from None


def _check_constraint(name: str, constraint: dict, value) -> None:
    if not isinstance(constraint, dict) or set(constraint) - CONSTRAINTS:
        raise not_simulated(f"parameter {name} constraint {constraint!r}")
    problem = None
    allowed = constraint.get("allowed_values")
    if allowed is not None and (not isinstance(allowed, list) or value not in allowed):
        problem = f'"{value}" is not an allowed value {allowed}'
    for key in ("length", "range"):
        if key in constraint:
            problem = _out_of_bounds(name, key, constraint[key], value) or problem
    pattern = constraint.get("allowed_pattern")
    if pattern is not None:
        try:
            if not re.fullmatch(str(pattern), str(value)):
                problem = f'"{value}" does not match pattern "{pattern}"'
        except re.error as exc:
            raise HeatError(400, f"Parameter '{name}': allowed_pattern is not a regular expression: {exc}") from None
    if problem:
        raise HeatError(400, f"Parameter '{name}' is invalid: {constraint.get('description') or problem}")


def _out_of_bounds(name: str, key: str, bounds, value) -> str | None:
    if not isinstance(bounds, dict) or set(bounds) - {"min", "max"}:
        raise HeatError(400, f"Parameter '{name}': {key} must be a map with min and/or max")
    if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds.values()):
        raise HeatError(400, f"Parameter '{name}': {key} min and max must be numbers")
    if key == "length" and not isinstance(value, str | list | dict):
        raise HeatError(400, f"Parameter '{name}': a length constraint applies to strings and lists, not {value!r}")
    if key == "range" and not isinstance(value, int | float):
        raise HeatError(400, f"Parameter '{name}': a range constraint applies to numbers, not {value!r}")
    size = len(value) if key == "length" else value
    if ("min" in bounds and size < bounds["min"]) or ("max" in bounds and size > bounds["max"]):
        return f"{key} must be within {bounds}"
    return None


# --- intrinsic functions -------------------------------------------------------------------


def function_of(value) -> str | None:
    """The function name if ``value`` is a function call (a one-key map naming a function)."""
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        if key in FUNCTIONS or key in UNSIMULATED:
            return key
    return None


def check_functions(value, where: str, version: int, names: set[str], params: dict) -> set[str]:
    """Refuse unknown functions, badly shaped arguments and bad references; the resource names referred to."""
    name = function_of(value)
    if name is not None:
        if name in UNSIMULATED or FUNCTIONS[name] > version:
            raise not_simulated(f"function {name} (in {where})")
        refs = _check_call(name, value[name], where, names, params)
        return refs | check_functions(value[name], where, version, names, params)
    refs: set[str] = set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        refs |= check_functions(item, where, version, names, params)
    return refs


def _check_call(name: str, args, where: str, names: set[str], params: dict) -> set[str]:
    def bad(shape: str) -> HeatError:
        return HeatError(400, f"Arguments to {name} must be {shape} (in {where})")

    if name == "get_resource" or name == "get_attr":
        if name == "get_attr" and not (
            isinstance(args, list)
            and len(args) >= 2
            and isinstance(args[1], str)
            and all(isinstance(a, str | int) for a in args[2:])
        ):
            raise bad("a list [resource, attribute, key or index ...]")
        target = args[0] if name == "get_attr" else args
        if not isinstance(target, str) or target not in names:
            raise HeatError(
                400, f'The specified reference "{target}" (in {where}) is incorrect.', "InvalidTemplateReference"
            )
        return {target}
    if name == "get_param":
        key = args[0] if isinstance(args, list) and args else args
        if not isinstance(key, str):
            raise bad("a parameter name or a list [name, key or index ...]")
        if key not in params:
            raise HeatError(
                400, f"The Parameter ({key}) was not defined in template (in {where}).", "UnknownUserParameter"
            )
    elif name == "str_replace":
        if not isinstance(args, dict) or set(args) != {"template", "params"} or not isinstance(args["params"], dict):
            raise bad("a map with template and params (a map)")
    elif name == "list_join" and not (isinstance(args, list) and len(args) >= 2 and isinstance(args[0], str)):
        raise bad("a list [delimiter, list, ...]")
    return set()


def resolve(value, params: dict, lookup):
    """``value`` with every function call evaluated; ``lookup(resource, attribute_path | None)``."""
    name = function_of(value)
    if name is None:
        if isinstance(value, dict):
            return {k: resolve(v, params, lookup) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, params, lookup) for v in value]
        return value
    args = resolve(value[name], params, lookup)
    if name == "get_param":
        path = args if isinstance(args, list) else [args]
        return _index(params[path[0]], path[1:])
    if name == "get_resource":
        return lookup(args, None)
    if name == "get_attr":
        return lookup(args[0], args[1:])
    if name == "list_join":
        sep, *lists = args
        return sep.join(str(item) for items in lists for item in items)
    template, mapping = args.get("template", ""), args.get("params") or {}
    for key, replacement in mapping.items():
        template = template.replace(key, replacement if isinstance(replacement, str) else json.dumps(replacement))
    return template


def _index(value, path: list):
    for key in path:
        try:
            value = value[int(key) if isinstance(value, list) else key]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return value


def index(value, path: list):
    """``value[path[0]][path[1]]...``, None where it does not exist (Heat's get_attr on a path)."""
    return _index(value, path)
