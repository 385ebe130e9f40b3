"""How the simulated Heat API renders stacks, resources, events and outputs, and filters listings."""

from __future__ import annotations

from flask import jsonify

from .heat_types import TYPES
from .hot import HeatError, not_simulated
from .stacks import Engine, Stack, StackResource

EVENT_KEYS = {"resource_action", "resource_status", "resource_name", "resource_type", "limit", "marker", "sort_dir"}
EVENT_KEYS |= {"sort_keys", "nested_depth"}
RESOURCE_KEYS = {"with_detail", "nested_depth", "name", "status", "action", "type"}
SUBPATH_QUERY = {"resources": RESOURCE_KEYS, "events": EVENT_KEYS}
SORT_KEYS = {"stack_name": "name", "stack_status": "status", "creation_time": "created", "updated_time": "updated"}


def _cloud():
    from flask import current_app

    return current_app.config["SIM"].cloud


def render_stack(stack: Stack, url: str, summary: bool = False, outputs: bool = True) -> dict:
    cloud = _cloud()
    description = stack.template.get("description", "No description")
    body = {
        "id": stack.id,
        "stack_name": stack.name,
        "description": description,
        "creation_time": stack.created,
        "updated_time": stack.updated,
        "deletion_time": stack.deleted,
        "stack_status": stack.status,
        "stack_status_reason": stack.reason,
        "stack_owner": cloud.config.username,
        "stack_user_project_id": cloud.project_id,
        "project": cloud.project_id,
        "parent": None,
        "tags": stack.tags or None,
        "links": [{"href": url, "rel": "self"}],
    }
    if summary:
        return body
    hidden = {k for k, v in (stack.template.get("parameters") or {}).items() if v.get("hidden")}
    params = {k: "******" if k in hidden else _text(v) for k, v in stack.params.items()}
    body |= {
        "template_description": description,
        "parameters": params,
        "disable_rollback": stack.disable_rollback,
        "timeout_mins": stack.timeout_mins,
        "capabilities": [],
        "notification_topics": [],
    }
    if outputs:
        body["outputs"] = Engine(cloud, stack).outputs()
    return body


def _text(value) -> str:
    import json

    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _flag(args, flag: str) -> bool:
    """A boolean query parameter, checked as Heat does."""
    value = args.get(flag, "false").lower()
    if value not in ("true", "false"):
        raise HeatError(400, f'Unrecognized value "{args[flag]}" for "{flag}", acceptable values are: true, false')
    return value == "true"


def filtered_stacks(stacks: list[Stack], args) -> list[Stack]:
    for flag in ("show_deleted", "show_nested", "show_hidden", "with_count"):
        _flag(args, flag)
    if _flag(args, "global_tenant"):  # Heat's policy: stacks:global_index is for admins; the user is not one
        raise HeatError(403, "You are not authorized to use global_index.", "Forbidden")
    if args.get("show_deleted", "").lower() != "true":
        stacks = [s for s in stacks if s.deleted is None]
    for key in ("name", "status", "action", "id"):
        wanted = args.getlist(key)
        if wanted:
            stacks = [s for s in stacks if _stack_value(s, key) in wanted]
    stacks = _by_tags(stacks, args)
    if len(args.getlist("sort_keys")) > 1:
        raise not_simulated("more than one sort_keys")
    sort_key = args.get("sort_keys", "creation_time")
    if sort_key not in SORT_KEYS:
        raise HeatError(400, f"Invalid sort key {sort_key!r} (one of: {', '.join(SORT_KEYS)})")
    direction = args.get("sort_dir", "desc")
    if direction not in ("asc", "desc"):
        raise HeatError(400, f"Invalid sort direction {direction!r} (asc or desc)")
    stacks.sort(key=lambda s: (getattr(s, SORT_KEYS[sort_key]) or "", s.created), reverse=direction == "desc")
    return _page(stacks, args, "stack")


def split_status(status: str) -> tuple[str, str]:
    """ "CREATE_IN_PROGRESS" -> ("CREATE", "IN_PROGRESS"): Heat keeps (and filters on) the two apart."""
    for state in ("IN_PROGRESS", "COMPLETE", "FAILED"):
        if status.endswith(f"_{state}"):
            return status.removesuffix(f"_{state}"), state
    return status, ""


def _stack_value(stack: Stack, attribute: str) -> str:
    if attribute in ("action", "status"):
        return split_status(stack.status)[0 if attribute == "action" else 1]
    return getattr(stack, attribute)


def _by_tags(stacks: list[Stack], args) -> list[Stack]:
    def tags(key: str) -> set[str] | None:
        value = args.get(key)
        return {t.strip() for t in value.split(",")} if value else None

    rules = {
        "tags": lambda have, want: want <= have,
        "tags_any": lambda have, want: bool(want & have),
        "not_tags": lambda have, want: not want <= have,
        "not_tags_any": lambda have, want: not want & have,
    }
    for key, rule in rules.items():
        want = tags(key)
        if want is not None:
            stacks = [s for s in stacks if rule(set(s.tags), want)]
    return stacks


def _page(items: list, args, what: str) -> list:
    marker = args.get("marker")
    if marker:
        ids = [item.id for item in items]
        if marker not in ids:
            raise HeatError(404, f"The {what} marker ({marker}) could not be found.", "EntityNotFound")
        items = items[ids.index(marker) + 1 :]
    limit = args.get("limit")
    if limit is not None:
        if not limit.isdigit():
            raise HeatError(400, f"Invalid value for limit: {limit!r} is not a non-negative integer")
        items = items[: int(limit)]
    return items


# --- sub-paths of one stack -----------------------------------------------------------------


def part(stack: Stack, url: str, rest: str, args):
    pieces = rest.split("/")
    if pieces == ["template"]:
        _strict(args, set())
        return jsonify(stack.template)
    if pieces == ["outputs"]:
        _strict(args, set())
        outputs = Engine(_cloud(), stack).outputs()
        return jsonify({"outputs": [{"output_key": o["output_key"], "description": o["description"]} for o in outputs]})
    if len(pieces) == 2 and pieces[0] == "outputs":
        _strict(args, set())
        output = next((o for o in Engine(_cloud(), stack).outputs() if o["output_key"] == pieces[1]), None)
        if output is None:
            raise HeatError(404, f"The Output ({pieces[1]}) could not be found.", "NotFound")
        return jsonify({"output": output})
    if pieces == ["events"]:
        return jsonify({"events": _events(stack, url, args, None)})
    if pieces == ["environment"]:  # what the stack was given (hidden parameters masked)
        _strict(args, set())
        hidden = {k for k, v in (stack.template.get("parameters") or {}).items() if v.get("hidden")}
        given = {k: "******" if k in hidden else v for k, v in stack.given_params.items()}
        registry = {"resources": {}}
        return jsonify({"parameters": given, "parameter_defaults": {}, "resource_registry": registry,
                        "encrypted_param_names": [], "event_sinks": []})  # fmt: skip
    if pieces == ["files"]:  # get_file is not simulated: a stack has none
        _strict(args, set())
        return jsonify({})
    if pieces[0] == "resources" and len(pieces) <= 4:
        return _resources_part(stack, url, pieces[1:], args)
    raise HeatError(404, f"The resource could not be found: {rest}", "NotFound")


def _resources_part(stack: Stack, url: str, pieces: list[str], args):
    if not pieces:
        _strict(args, RESOURCE_KEYS)
        detail = _flag(args, "with_detail")
        resources = [render_resource(stack, r, url, detail=detail) for r in stack.resources.values()]
        for key in ("name", "status", "action", "type"):
            wanted = args.getlist(key)
            if wanted:
                resources = [r for r in resources if _resource_value(r, key) in wanted]
        return jsonify({"resources": resources})
    res = stack.resources.get(pieces[0])
    if res is None:
        raise HeatError(
            404, f"The Resource ({pieces[0]}) could not be found in Stack {stack.name}.", "ResourceNotFound"
        )
    if len(pieces) == 1:
        _strict(args, {"with_attr"})
        unknown = set(args.getlist("with_attr")) - TYPES[res.type].ATTRIBUTES
        if unknown:
            raise not_simulated(f"attribute(s) {', '.join(sorted(unknown))} of {res.type}")
        return jsonify({"resource": render_resource(stack, res, url, detail=True)})
    if pieces[1] == "events" and len(pieces) == 2:
        return jsonify({"events": _events(stack, url, args, res.name)})
    if pieces[1] == "events":
        _strict(args, set())
        event = next((e for e in stack.events if e.id == pieces[2] and e.resource_name == res.name), None)
        if event is None:
            raise HeatError(404, f"The Event ({pieces[2]}) could not be found.", "EntityNotFound")
        return jsonify({"event": _render_event(event, url)})
    raise HeatError(404, f"The resource could not be found: {pieces[1]}", "NotFound")


def _resource_value(resource: dict, key: str) -> str:
    if key in ("action", "status"):
        return split_status(resource["resource_status"])[0 if key == "action" else 1]
    return resource[f"resource_{key}"]


def render_resource(stack: Stack, res: StackResource, url: str, detail: bool) -> dict:
    body = {
        "resource_name": res.name,
        "logical_resource_id": res.name,
        "physical_resource_id": res.physical_id,
        "resource_type": res.type,
        "resource_status": res.status,
        "resource_status_reason": res.reason,
        "creation_time": res.created,
        "updated_time": res.updated or res.created,
        "required_by": sorted(r.name for r in stack.resources.values() if res.name in r.depends and r.name != res.name),
        "links": [{"href": f"{url}/resources/{res.name}", "rel": "self"}, {"href": url, "rel": "stack"}],
    }
    if detail:
        body["attributes"] = Engine(_cloud(), stack).attributes(res)
        body["description"] = ""
    return body


def _events(stack: Stack, url: str, args, resource_name: str | None) -> list[dict]:
    _strict(args, EVENT_KEYS)
    if args.get("nested_depth", "0") not in ("0", ""):
        raise not_simulated("nested_depth (the simulator has no nested stacks)")
    events = list(stack.events)
    if resource_name is not None:
        events = [e for e in events if e.resource_name == resource_name and not e.is_stack]
    if args.get("resource_name"):
        events = [e for e in events if e.resource_name in args.getlist("resource_name")]
    for key, pick in (("resource_status", lambda e: split_status(e.status)[1]), ("resource_action", _action)):
        if args.get(key):
            events = [e for e in events if pick(e) in args.getlist(key)]
    if args.get("resource_type"):
        types = {r.name: r.type for r in stack.resources.values()}
        events = [e for e in events if types.get(e.resource_name) in args.getlist("resource_type")]
    if set(args.getlist("sort_keys")) - {"event_time", "created_at"}:
        raise not_simulated("event sort_keys other than event_time, created_at")
    # As Heat: newest first by default; with sort_keys and no sort_dir, oldest first.
    direction = args.get("sort_dir") or ("asc" if args.get("sort_keys") else "desc")
    if direction not in ("asc", "desc"):
        raise HeatError(400, f"Invalid sort direction {args.get('sort_dir')!r} (asc or desc)")
    if direction == "desc":
        events.reverse()
    return [_render_event(e, url) for e in _page(events, args, "event")]


def _action(event) -> str:
    return split_status(event.status)[0]


def _render_event(event, url: str) -> dict:
    resource_url = f"{url}/resources/{event.resource_name}"
    return {
        "id": event.id,
        "event_time": event.time,
        "resource_name": event.resource_name,
        "logical_resource_id": event.resource_name,
        "physical_resource_id": event.physical_id,
        "resource_status": event.status,
        "resource_status_reason": event.reason,
        "links": [
            {"href": f"{resource_url}/events/{event.id}", "rel": "self"},
            {"href": resource_url, "rel": "resource"},
            {"href": url, "rel": "stack"},
        ],
    }


def _strict(args, allowed: set[str]) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise not_simulated(f"query parameter(s) {', '.join(sorted(unknown))}")
