"""What each simulated endpoint understands, and the refusal of everything else.

A test double that ignores a filter or a field answers wrongly and silently.
So every endpoint declares, with ``@accepts(query=..., body=...)``, the query
parameters and JSON body fields it implements; the app's gate answers anything
else with a 400 ``not simulated: <name> on <METHOD rule>`` in the owning
service's error dialect, before the handler runs.

``body`` describes a JSON object: a mapping of field name to

* ``None``: any value (the handler validates it),
* a set of names: an object with only those keys (values validated by the handler),
* a nested mapping: an object checked the same way, recursively.

An endpoint of the core services (Keystone, Nova, Neutron, Glance, ``/_sim``)
without a declaration accepts no query parameter and no body field at all, so a
new route there cannot silently accept one either; tests/openstack/
test_sim_fidelity.py probes every route of the app with a bogus parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SPEC_ATTR = "_sim_accepts"


@dataclass(frozen=True)
class Accepts:
    query: frozenset[str] = frozenset()
    body: Mapping = field(default_factory=dict)


def accepts(query=(), body: Mapping | None = None) -> Callable:
    """Declare the query parameters and body fields the decorated view implements."""
    spec = Accepts(frozenset(query), dict(body or {}))

    def mark(view: Callable) -> Callable:
        setattr(view, SPEC_ATTR, spec)
        return view

    return mark


def spec_of(view: Callable | None) -> Accepts | None:
    return getattr(view, SPEC_ATTR, None)


def unknown_body_field(value, spec: Mapping | set | frozenset | None, prefix: str = "") -> str | None:
    """The dotted name of the first field of ``value`` that ``spec`` does not declare, else None."""
    if spec is None or not isinstance(value, dict):
        return None
    for key in value:
        if key not in spec:
            return f"{prefix}{key}"
        if isinstance(spec, Mapping):
            found = unknown_body_field(value[key], spec[key], f"{prefix}{key}.")
            if found:
                return found
    return None


def not_an_object(value, spec: Mapping | set | frozenset | None, prefix: str = "") -> str | None:
    """The dotted name of the first field ``spec`` describes as an object whose value is not one."""
    if not isinstance(spec, Mapping) or not isinstance(value, dict):
        return None
    for key, sub in spec.items():
        if key in value and sub is not None:
            if not isinstance(value[key], dict):
                return f"{prefix}{key}"
            found = not_an_object(value[key], sub, f"{prefix}{key}.")
            if found:
                return found
    return None


#: Deepest nesting of objects and lists in a request body (templates with functions need ~10).
MAX_DEPTH = 64


def depth(value) -> int:
    """How deeply ``value`` nests lists and objects (without recursion: a deep body cannot overflow it)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo += [(child, level + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def malformed(request, view: Callable | None) -> str | None:
    """A 400 message for a request body that is not a JSON object, or whose declared object fields
    are not objects (any view: none takes another kind of body), else None."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.content_length:
        return None
    try:
        body = request.get_json(silent=True)
        too_deep = depth(body) > MAX_DEPTH  # nothing simulated nests this deep; a recursive check would overflow
    except RecursionError:  # deeper than the JSON parser goes
        too_deep = True
    if too_deep:
        return f"not simulated: a request body nested deeper than {MAX_DEPTH} levels"
    if not isinstance(body, dict):
        what = "null or not valid JSON" if body is None else f"a JSON {type(body).__name__}"
        return f"the request body must be a JSON object, got {what}"
    spec = spec_of(view)
    found = not_an_object(body, spec.body if spec else None)
    return f"body field {found!r} must be an object" if found else None


def refusal(request, view: Callable | None, strict_default: bool = True) -> str | None:
    """The "not simulated" message for ``request`` (a Flask request) to ``view``, or None if all is understood.

    An undeclared view accepts nothing when ``strict_default`` (the simulator's own services), else it
    is left to do its own checking (a blueprint that validates its input itself).
    """
    spec = spec_of(view)
    if spec is None:
        if not strict_default:
            return None
        spec = Accepts()
    where = f"{request.method} {request.url_rule.rule if request.url_rule else request.path}"
    for name in request.args:
        if name not in spec.query:
            return f"not simulated: query parameter {name!r} on {where}"
    if request.method in ("POST", "PUT", "PATCH") and request.content_length:
        body = request.get_json(silent=True)
        found = unknown_body_field(body, spec.body)
        if found:
            return f"not simulated: body field {found!r} on {where}"
    return None
