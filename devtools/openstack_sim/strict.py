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
