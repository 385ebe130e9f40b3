"""The Schedule API of the observing seed: POST /api/v1/schedule/ and GET /api/v1/policies."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, current_app, g, jsonify
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    RootModel,
    ValidationError,
    WithJsonSchema,
)

from scheduler_server.observing.policies.registry import available_policies
from scheduler_server.observing.service import PolicyRequest, check_schedule, presets_of, run_schedule
from scheduler_server.observing.sky.timeparse import ACCEPTED_FORMATS, parse_time
from scheduler_server.observing.types import PolicyFailure, ScheduleInputError
from scheduler_server.validation_text import field_and_problem
from scheduler_server.web.bodies import BodyError, json_object, parse_json
from scheduler_server.web.errors import ApiError
from scheduler_server.web.openapi import spec

bp = Blueprint("schedule", __name__, url_prefix="/api/v1")


def _policy_from_json_string(value: Any) -> Any:
    # The seed's curl sends the policy as a JSON *string*; its example request sends an object.
    if isinstance(value, str):
        try:
            return parse_json(value.encode("utf-8", "surrogatepass"))
        except BodyError as exc:
            raise ValueError(f"a string policy must hold JSON: {exc.message.removeprefix('request body: ')}") from None
    return value


#: The forms of ACCEPTED_FORMATS: date, 'T' or a space, HH:MM[:SS[.fraction]], then 'Z' or an offset or nothing.
TIME_PATTERN = (
    r"^ *[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})? *$"
)
_TIME_FORM = re.compile(TIME_PATTERN)
_TIME_SCHEMA = {
    "type": "string",
    "pattern": TIME_PATTERN,
    "examples": ["2022-01-01 12:00"],
    "description": f"Start or end of the window: {ACCEPTED_FORMATS}. A date that does not exist (2022-02-30) is refused.",
}


def _time(value: Any) -> datetime:
    # The published pattern first (checked with Python's re, as a schema validator does), then the calendar.
    try:
        parsed = parse_time(value)  # its errors say best what is wrong (e.g. no time of day)
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        raise ValueError(f"{value!r} is outside the years 1 to 9999 in UTC") from None
    if not _TIME_FORM.search(value):  # an ISO form the document does not list (e.g. 20220101T1200)
        raise ValueError(f"{value[:40]!r} is not in a form this server takes; use {ACCEPTED_FORMATS}")
    return parsed


Time = Annotated[datetime, PlainValidator(_time), WithJsonSchema(_TIME_SCHEMA)]


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str = Field(
        description="Name of the policy, e.g. 'dummy' or 'basic'.",
        # The installed policies, read when the document is built (plug-ins register by entry point).
        json_schema_extra=lambda schema: schema.update(enum=sorted(available_policies())),
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Overrides merged onto the policy's defaults.")
    preset: str | None = Field(None, description="A named set of config values applied before the overrides.")


PolicyField = Annotated[
    PolicySpec,
    BeforeValidator(_policy_from_json_string),
    WithJsonSchema(
        {
            "oneOf": [
                {"$ref": "#/components/schemas/PolicySpec"},
                {
                    "type": "string",
                    "minLength": 2,
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/PolicySpec"},
                    "description": "The same object, encoded as a JSON string (as the seed's curl sends it).",
                },
            ]
        }
    ),
]


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t0: Time
    t1: Time
    policy: PolicyField
    format: Literal["script", "json"] = Field(
        "script", description="'json' also returns the scheduled blocks; 'script' (default) answers as the seed."
    )


class ScheduledBlock(BaseModel):
    name: str
    kind: str
    t0: str
    t1: str
    az: float | None = None
    el: float | None = None
    throw: float | None = None
    cuts: list[str] = Field(default_factory=list, description="Why parts of this block were cut.")


class _LaneInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t0: str = Field(description="Start, ISO 8601 UTC.")
    t1: str = Field(description="End, ISO 8601 UTC.")


class HwpEvent(_LaneInterval):
    """An interval of the HWP lane: its state and, while it turns, its direction."""

    lane: Literal["hwp"]
    state: Literal["stopped", "spin_up", "spinning", "spin_down"]
    direction: Literal["ccw", "cw"] | None = Field(description="ccw: positive frequency; null when stopped.")


class BoresightEvent(_LaneInterval):
    """An interval of the boresight lane: fixed at, or rotating to, ``angle``."""

    lane: Literal["boresight"]
    state: Literal["fixed", "rotating"]
    angle: float = Field(description="Boresight angle, deg (the target while rotating).")


class DetectorEvent(_LaneInterval):
    """An interval of the detectors lane: what the readout does."""

    lane: Literal["detectors"]
    state: Literal["relock", "setup", "iv", "bias", "bias_step", "noise"]


class StateEvent(RootModel[Annotated[HwpEvent | BoresightEvent | DetectorEvent, Field(discriminator="lane")]]):
    """One interval of a state lane, by ``lane`` (docs/observing.md lists the lanes and their states)."""


class SafetyCheck(BaseModel):
    """The independent sun-safety checker's verdict on the returned script (it reads only the script)."""

    safe: bool
    limit_deg: float = Field(description="The least sun distance the script was held to, deg.")
    min_sun_distance_deg: float | None = Field(description="The least sun distance of the script, deg.")
    samples: list[Annotated[list[str | float], Field(min_length=2, max_length=2)]] = Field(
        description="[time, least sun distance (deg)] per minute of the script."
    )
    problems: list[str] = Field(description="What makes it unsafe, or what the checker could not follow.")


class ScheduleResponse(BaseModel):
    status: Literal["ok"]
    commands: str = Field(description="The command script for the window.")
    message: str
    blocks: list[ScheduledBlock] | None = Field(None, description="Only when the request asked for format 'json'.")
    events: list[StateEvent] | None = Field(
        None, description="Format 'json': the policy's state lanes (HWP, boresight, detectors), null if it has none."
    )
    check: SafetyCheck | None = Field(None, description="Format 'json' only: the independent checker's verdict.")


class ErrorResponse(BaseModel):
    status: Literal["error"]
    message: str = Field(description="What is wrong, naming the field.")
    field: str | None = Field(None, description="Dotted name of the offending field, when there is one.")


class PolicyInfo(BaseModel):
    name: str
    description: str
    defaults: dict[str, Any]
    presets: dict[str, dict[str, Any]]
    config_schema: dict[str, Any] = Field(description="JSON schema of the policy's config.")


class PolicyList(BaseModel):
    status: Literal["ok"]
    policies: list[PolicyInfo]


@spec.operation(
    "/api/v1/schedule/",
    "post",
    "Generate the command script for a time window",
    ["schedule"],
    body=ScheduleRequest,
    models=[PolicySpec],
    responses={
        200: ("The schedule", ScheduleResponse),
        400: (
            "A client mistake: the request does not match this document, or a rule the schema cannot state: a "
            "policy string that does not hold the JSON object, a time that is not in the calendar, t1 not after "
            "t0, a window longer than observing.max_window_hours, an unknown preset, a config key or value the "
            "policy does not take, a window the policy cannot schedule; and inside the free-form config, as in "
            "every body, an integer of more than 20 digits or nesting deeper than 32 levels",
            ErrorResponse,
        ),
        413: ("Body larger than server.max_body_bytes", ErrorResponse),
    },
)
@bp.post("/schedule/")
@bp.post("/schedule", strict_slashes=False)
def schedule():
    """Runs the named policy over [t0, t1]. The path also answers without its trailing slash."""
    try:
        req = ScheduleRequest.model_validate(_body_object())
    except ValidationError as exc:
        raise _validation_error(exc) from None
    g.policy = req.policy.policy  # the label of this request's metrics (web/metrics.py)
    observing = current_app.config["SETTINGS"].observing
    policy = PolicyRequest(req.policy.policy, req.policy.config, req.policy.preset)
    try:
        result = run_schedule(req.t0, req.t1, policy, observing.presets, observing.max_window_hours)
    except ScheduleInputError as exc:  # a bad window, an unknown policy or preset, a bad config: all the client's
        raise ApiError(400, str(exc), exc.field) from None
    except PolicyFailure as exc:
        raise ApiError(400, f"policy {req.policy.policy!r} could not schedule this window: {exc}", "policy") from None
    answer: dict[str, Any] = {"status": "ok", "commands": result.commands, "message": "Success"}
    if req.format == "json":
        answer["blocks"] = [b.to_json() for b in result.blocks or []]
        answer["events"] = result.events
        answer["check"] = check_schedule(req.t0, result, policy, observing.presets)
    return jsonify(answer)


@spec.operation(
    "/api/v1/policies",
    "get",
    "List the policies with their default config and its JSON schema",
    ["schedule"],
    responses={200: ("The installed policies", PolicyList)},
)
@bp.get("/policies")
def policies():
    site_presets = current_app.config["SETTINGS"].observing.presets
    listed = []
    for name, policy in sorted(available_policies().items()):
        listed.append(
            {
                "name": name,
                "description": policy.description,
                "defaults": policy.Config().model_dump(mode="json"),
                "presets": presets_of(name, policy, site_presets),
                "config_schema": _config_schema(policy.Config),
            }
        )
    return jsonify({"status": "ok", "policies": listed})


@functools.lru_cache(maxsize=64)
def _config_schema(config: type[BaseModel]) -> dict[str, Any]:
    """A config model's JSON schema: the same for every request, and the dearest part of the listing to make."""
    return config.model_json_schema()


def _body_object() -> dict[str, Any]:
    return json_object("a JSON object with t0, t1 and policy")


def _validation_error(exc: ValidationError) -> ApiError:
    # The web-wide wording, and one hint the generic text cannot give: the two forms a policy may take.
    field, problem, kind = field_and_problem(exc, "request body")
    if field == "policy" and kind == "model_type":
        problem = "must be a JSON object (or a JSON string holding one) with 'policy' and 'config'"
    return ApiError(400, f"{field}: {problem}", field)
