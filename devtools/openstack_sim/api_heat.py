"""Heat (orchestration API v1) under ``/orchestration/v1/<project_id>``: stacks, resources, events, outputs.

As in Heat, ``/stacks/<name or id>`` (and its resources/events/template sub-paths)
answers 302 to the canonical ``/stacks/<name>/<id>``, which clients follow. Query
parameters and body fields the simulator does not model are refused (400, naming them).
"""

from __future__ import annotations

import threading

from flask import Blueprint, current_app, jsonify, redirect, request

from . import heat_views
from .heat_views import filtered_stacks, render_stack
from .hot import HeatError, not_simulated
from .stack_build import build
from .stacks import Engine, Stack

bp = Blueprint("heat", __name__, url_prefix="/orchestration")
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
TITLES |= {409: "Conflict", 500: "Internal Server Error"}
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    404: "The resource could not be found.",
    409: "There was a conflict when trying to complete your request.",
}
CREATE_KEYS = {"stack_name", "template", "parameters", "tags", "timeout_mins", "disable_rollback", "environment"}
CREATE_KEYS |= {"files", "environment_files"}
LIST_FILTERS = {"name", "status", "action", "id"}
LIST_KEYS = LIST_FILTERS | {"tags", "tags_any", "not_tags", "not_tags_any", "limit", "marker", "sort_keys", "sort_dir"}
LIST_KEYS |= {"show_deleted", "show_nested", "show_hidden", "global_tenant", "with_count"}


def heat_error(status: int, message: str, kind: str | None = None):
    body = {
        "explanation": EXPLANATIONS.get(status, TITLES.get(status, "Error")),
        "code": status,
        "error": {"message": message, "traceback": None, "type": kind or TITLES.get(status, "Error")},
        "title": TITLES.get(status, "Error"),
    }
    return jsonify(body), status


bp.register_error_handler(HeatError, lambda exc: heat_error(exc.status, exc.message, exc.kind))


#: Deleted stacks kept readable by id; older ones are forgotten, so a long run's memory stays bounded.
KEEP_DELETED = 1000


class StackBook:
    """Every stack of the simulated project (the last KEEP_DELETED deleted ones stay readable by id)."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.stacks: dict[str, Stack] = {}

    def create(self, body: dict) -> Stack:
        unknown = set(body) - CREATE_KEYS
        if unknown:
            raise not_simulated(f"stack create field(s) {', '.join(sorted(unknown))}")
        shapes = {"parameters": dict, "environment": dict, "files": dict, "environment_files": list, "tags": list | str}
        for key, shape in shapes.items():
            if body.get(key) is not None and not isinstance(body[key], shape):
                raise HeatError(
                    400, f"Invalid value for {key}: {body[key]!r} ({'a map' if shape is dict else 'a list'})"
                )
        if body.get("files") or body.get("environment_files"):
            raise not_simulated("files / environment_files (get_file and environment files)")
        if "template" not in body:
            raise HeatError(400, "No template specified")
        stack = build(self.cloud, body.get("stack_name"), body["template"], body.get("parameters") or {},
                      body.get("environment"))  # fmt: skip
        tags = body.get("tags") or []
        stack.tags = [t.strip() for t in tags.split(",")] if isinstance(tags, str) else [str(t) for t in tags]
        stack.timeout_mins = _number("timeout_mins", body.get("timeout_mins"))
        stack.disable_rollback = _boolean("disable_rollback", body.get("disable_rollback", True))
        with self.cloud.lock:
            if any(s.name == stack.name and s.deleted is None for s in self.stacks.values()):
                raise HeatError(409, f"The Stack ({stack.name}) already exists.", "StackExists")
            self.stacks[stack.id] = stack
            self._forget_deleted()
            fate = self.cloud.faults.take_stack_fate()
        engine = Engine(self.cloud, stack)
        stack.thread = threading.Thread(target=engine.create, args=(fate,), name=f"stack-{stack.id[:8]}", daemon=True)
        stack.thread.start()
        return stack

    def _forget_deleted(self) -> None:
        """Drop the deleted stacks beyond the last KEEP_DELETED (under the cloud's lock)."""
        deleted = sorted((s for s in self.stacks.values() if s.deleted is not None), key=lambda s: s.deleted)
        for stack in deleted[: max(0, len(deleted) - KEEP_DELETED)]:
            del self.stacks[stack.id]

    def find(self, name_or_id: str) -> Stack:
        with self.cloud.lock:
            stack = self.stacks.get(name_or_id)
            if stack is None:
                stack = next((s for s in self.stacks.values() if s.name == name_or_id and s.deleted is None), None)
        if stack is None:
            raise HeatError(404, f"The Stack ({name_or_id}) could not be found.", "EntityNotFound")
        return stack

    def delete(self, stack: Stack) -> None:
        with self.cloud.lock:
            if stack.deleted is not None:
                raise HeatError(404, f"The Stack ({stack.id}) could not be found.", "EntityNotFound")
            if stack.deleting:  # a second DELETE while the first runs: nothing more to do
                return
            stack.deleting, creating = True, stack.thread
            stack.thread = threading.Thread(
                target=Engine(self.cloud, stack).delete, args=(creating,), name=f"stack-del-{stack.id[:8]}", daemon=True
            )
        stack.thread.start()

    def close(self) -> None:
        with self.cloud.lock:
            stacks = list(self.stacks.values())
        for stack in stacks:
            stack.cancel.set()
        for stack in stacks:
            if stack.thread is not None:
                stack.thread.join(timeout=15)


def _number(name: str, value):
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        raise HeatError(400, f"Invalid value for {name}: {value!r} is not an integer") from None
    if number <= 0:
        raise HeatError(400, f"Invalid value for {name}: must be positive")
    return number


def _boolean(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in ("true", "false"):
        raise HeatError(400, f'Unrecognized value "{value}" for "{name}", acceptable values are: true, false')
    return text == "true"


def _book() -> StackBook:
    return current_app.config["SIM"].stacks


def _cloud():
    return current_app.config["SIM"].cloud


def _base(tenant: str) -> str:
    cloud = _cloud()
    if tenant != cloud.project_id:
        raise HeatError(404, f"The project ({tenant}) could not be found.", "EntityNotFound")
    return f"{cloud.config.base_url}/orchestration/v1/{tenant}"


def _strict(allowed: set[str]) -> None:
    unknown = set(request.args) - allowed
    if unknown:
        raise not_simulated(f"query parameter(s) {', '.join(sorted(unknown))}")


def _stack_url(tenant: str, stack: Stack) -> str:
    return f"{_base(tenant)}/stacks/{stack.name}/{stack.id}"


def _canonical(tenant: str, name: str, stack_id: str) -> Stack:
    _base(tenant)
    stack = _book().find(stack_id)
    if name not in (stack.name, stack.id):
        raise HeatError(404, f"The Stack ({name}) could not be found.", "EntityNotFound")
    return stack


# --- routes -------------------------------------------------------------------------------


@bp.get("/")
@bp.get("")
def versions():
    _strict(set())
    _strict(set())
    base = current_app.config["SIM"].config.base_url
    document = {
        "versions": [
            {"id": "v1.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{base}/orchestration/v1/"}]}
        ]
    }
    return jsonify(document), 300


@bp.post("/v1/<tenant>/stacks")
def create_stack(tenant):
    _base(tenant)
    _strict(set())
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise HeatError(400, "The request body must be a JSON object.")
    stack = _book().create(body)
    return jsonify({"stack": {"id": stack.id, "links": [{"href": _stack_url(tenant, stack), "rel": "self"}]}}), 201


@bp.get("/v1/<tenant>/stacks")
def list_stacks(tenant):
    _base(tenant)
    _strict(LIST_KEYS)
    stacks = filtered_stacks(list(_book().stacks.values()), request.args)
    body = {"stacks": [render_stack(s, _stack_url(tenant, s), summary=True) for s in stacks]}
    if request.args.get("with_count", "").lower() == "true":
        body["count"] = len(stacks)
    return jsonify(body)


@bp.route("/v1/<tenant>/stacks/<name>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def lookup(tenant, name):
    _base(tenant)
    stack = _book().find(name)
    _strict({"resolve_outputs"} if request.method == "GET" else set())
    query = request.query_string.decode()
    return redirect(_stack_url(tenant, stack) + (f"?{query}" if query else ""), code=302)


@bp.route("/v1/<tenant>/stacks/<name>/<second>", methods=["GET", "PUT", "PATCH", "DELETE"])
def stack(tenant, name, second):
    # Heat's lookup sub-paths; /stacks/<name>/outputs is not one (Heat answers 404: no stack "outputs").
    if second in ("resources", "events", "template", "environment", "files", "actions"):
        if request.method != "GET":
            raise HeatError(405, f"{request.method} is not allowed on {request.path}")
        stack = _book().find(name)
        _strict(heat_views.SUBPATH_QUERY.get(second, set()))
        query = request.query_string.decode()
        return redirect(f"{_stack_url(tenant, stack)}/{second}" + (f"?{query}" if query else ""), code=302)
    stack = _canonical(tenant, name, second)
    _strict(set() if request.method == "DELETE" else {"resolve_outputs"})
    if request.method == "DELETE":
        _book().delete(stack)
        return "", 204
    if request.method != "GET":
        raise not_simulated("stack update")
    outputs = request.args.get("resolve_outputs", "true").lower() != "false"
    return jsonify({"stack": render_stack(stack, _stack_url(tenant, stack), outputs=outputs)})


@bp.get("/v1/<tenant>/stacks/<name>/<stack_id>/<path:rest>")
def stack_part(tenant, name, stack_id, rest):
    stack = _canonical(tenant, name, stack_id)
    return heat_views.part(stack, _stack_url(tenant, stack), rest, request.args)
