"""The OpenAPI document, assembled from the same pydantic models that validate requests.

Views declare themselves with ``@spec.operation(...)``; the decorator only
records the declaration, so what is documented is exactly what is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from scheduler_server import __version__

REF_TEMPLATE = "#/components/schemas/{model}"
#: The one description of the 413 answer (its message is ``errors.http_error_message``).
_OVER_THE_LIMIT = "larger than server.max_body_bytes"
BODY_TOO_LARGE = f"Body {_OVER_THE_LIMIT}"


@dataclass
class Operation:
    path: str
    method: str
    summary: str
    tags: list[str]
    description: str = ""
    body: type[BaseModel] | None = None
    body_description: str = ""
    query: type[BaseModel] | None = None
    # name -> description (a string parameter) or (description, JSON schema).
    path_params: dict[str, str | tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # status -> (description, the answer's model, or a tuple of models the answer is one of).
    responses: dict[int, tuple[str, type[BaseModel] | tuple[type[BaseModel], ...] | None]] = field(default_factory=dict)
    security: bool = False
    # status -> OpenAPI link objects: which operations take a value of this answer (e.g. a new pipeline's id).
    links: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Models referenced only from hand-written schema fragments (WithJsonSchema).
    models: list[type[BaseModel]] = field(default_factory=list)


class ApiSpec:
    def __init__(self, title: str, description: str):
        self.title = title
        self.description = description
        self.operations: list[Operation] = []
        self.security_schemes: dict[str, Any] = {}

    def operation(self, path: str, method: str, summary: str, tags: list[str], **kwargs: Any) -> Callable:
        op = Operation(path=path, method=method.lower(), summary=summary, tags=tags, **kwargs)
        self.operations.append(op)

        def register(view: Callable) -> Callable:
            if not op.description and view.__doc__:
                op.description = view.__doc__.strip()
            view.openapi_operations = {**getattr(view, "openapi_operations", {}), op.method: op}
            return view

        return register

    def document(self, server_url: str | None = None) -> dict[str, Any]:
        models = {m for op in self.operations for m in _models_of(op)}
        ordered = sorted(models, key=lambda m: m.__name__)
        _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF_TEMPLATE)
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method] = self._operation_object(op)
        doc: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": __version__, "description": self.description},
            "paths": paths,
            "components": {"schemas": defs.get("$defs", {})},
        }
        if self.security_schemes:
            doc["components"]["securitySchemes"] = self.security_schemes
        if server_url:
            doc["servers"] = [{"url": server_url}]
        return doc

    def _operation_object(self, op: Operation) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "summary": op.summary,
            "tags": op.tags,
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "responses": {},
        }
        if op.description:
            obj["description"] = op.description
        params = _parameters(op)
        if params:
            obj["parameters"] = params
        if op.body is not None:
            obj["requestBody"] = {
                "required": True,
                "description": op.body_description,
                "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=op.body.__name__)}}},
            }
        for status, (desc, model) in sorted(_with_too_large(op).items()):
            obj["responses"][str(status)] = _response_object(op, status, desc, model)
        if op.security and self.security_schemes:
            obj["security"] = [{name: []} for name in self.security_schemes]
        return obj


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = []
    for name, declared in op.path_params.items():
        desc, schema = declared if isinstance(declared, tuple) else (declared, {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema, "description": desc})
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF_TEMPLATE)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "description": prop.get("description", ""),
                    "schema": _not_null({k: v for k, v in prop.items() if k not in ("description", "title")}),
                }
            )
    return params


def _with_too_large(op: Operation) -> dict[int, tuple[str, Any]]:
    """The declared responses, plus the 413 of a body over the limit.

    An operation that takes a body answers it in its API's error shape (the model of its 400);
    any other is documented with waitress's plain-text refusal only.
    """
    responses = dict(op.responses)
    if 413 not in responses:
        if op.body is not None and 400 in responses:
            error_model = responses[400][1]
            responses[413] = (BODY_TOO_LARGE, error_model[0] if isinstance(error_model, tuple) else error_model)
        else:
            responses[413] = (f"A body {_OVER_THE_LIMIT} (refused by `scheduler-server serve` before the route)", None)
    return responses


def _response_object(op: Operation, status: int, desc: str, model: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": desc}
    if model is not None:
        models = model if isinstance(model, tuple) else (model,)
        refs = [{"$ref": REF_TEMPLATE.format(model=m.__name__)} for m in models]
        response["content"] = {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}
    if status == 413:
        # `scheduler-server serve`'s HTTP server (waitress) refuses an oversized body before the
        # application sees it, with its own plain-text answer.
        response.setdefault("content", {})["text/plain"] = {"schema": {"type": "string"}}
    if status in op.links:
        response["links"] = op.links[status]
    return response


def unknown_query_parameter(view: Callable | None, method: str, names: Any) -> str | None:
    """The first query parameter ``names`` holds that ``view``'s documented operation does not take."""
    op = getattr(view, "openapi_operations", {}).get(method.lower())
    if op is None:  # an undocumented route (the document itself, the docs page): no rule here
        return None
    allowed = set(op.query.model_fields) if op.query is not None else set()
    return next((name for name in names if name not in allowed), None)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: pydantic's ``X | None`` is just X here."""
    options = schema.get("anyOf")
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**kept[0], **rest}
    return schema


def _models_of(op: Operation) -> list[type[BaseModel]]:
    found = list(op.models)
    for _, model in op.responses.values():
        found.extend(model if isinstance(model, tuple) else [model] if model is not None else [])
    if op.body is not None:
        found.append(op.body)
    return found


spec = ApiSpec(
    title="scheduler-server",
    description=(
        "Observing schedules for a telescope (`/api/v1/schedule`, `/api/v1/policies`) and XNAT "
        "processing pipelines on cloud instances (`/pipeline`, `/instance`, `/api/v1/pipelines`, `/api/v1/instances`)."
    ),
)
