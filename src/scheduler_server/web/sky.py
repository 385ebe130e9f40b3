"""Read-only sky endpoints for the UI's planner and sun calculator: GET /api/v1/sky/positions and /sun-limit.

The site is the observing scheduler's default one (the ``basic`` policy's ``site``), and the avoidance
limit defaults to that policy's sun rule (``rules.sun-avoidance.min_angle``). As open as the Schedule API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler_server.observing.policies.basic.config import BasicConfig
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.geometry import angular_distance
from scheduler_server.validation_text import field_and_problem
from scheduler_server.web.errors import ApiError
from scheduler_server.web.openapi import spec
from scheduler_server.web.patterns import matching
from scheduler_server.web.schedule import ErrorResponse, Time

bp = Blueprint("sky", __name__, url_prefix="/api/v1/sky")
TAGS = ["sky"]
#: Most samples one /positions answer holds.
MAX_SAMPLES = 2000
#: The grid /sun-limit samples the distance on (crossings are interpolated between its points).
LIMIT_STEP_SECONDS = 30.0
_DEFAULTS = BasicConfig()
DEFAULT_LIMIT_DEG = _DEFAULTS.rules.sun_avoidance.min_angle
_BODY = "|".join(sky.BODIES)
BODY_LIST = rf"^ *({_BODY}) *(, *({_BODY}) *)*$"
BodyList = matching(BODY_LIST, f"comma-separated names of {', '.join(sky.BODIES)}", max_length=200)
#: A JSON number (what the OpenAPI type ``number`` allows): no underscores, spaces, signs "+", nan or inf.
JSON_NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
_NUMBERS = {"step", "az", "el", "limit_deg"}
_COVERED = tuple(datetime.fromisoformat(d).replace(tzinfo=UTC) for d in sky.COVERED)
_ERRORS = {
    400: (
        "A client mistake, the parameter named in 'field': missing, given more than once, not in this document's "
        "form (a number as JSON writes it: no underscores, spaces or '+'), or a rule the "
        "schema cannot state: a time that is not in the calendar, t1 not after t0, a time outside the ephemeris "
        f"({sky.COVERED[0]} to {sky.COVERED[1]}), more than {MAX_SAMPLES} samples (step), a window longer than "
        "observing.max_window_hours (sun-limit)",
        ErrorResponse,
    )
}


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t0: Time = Field(description="Start of the window (UTC unless an offset is given).")
    t1: Time = Field(description="End of the window; after t0.")


class PositionsQuery(Window):
    step: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = Field(
        600.0, description=f"Seconds between samples; (t1 - t0) / step + 1 must be at most {MAX_SAMPLES}."
    )
    bodies: BodyList = Field("sun,moon", description=f"Comma-separated bodies: {', '.join(sky.BODIES)}.")


class SunLimitQuery(Window):
    az: Annotated[float, Field(ge=-360, le=720, allow_inf_nan=False)] = Field(description="Pointing azimuth, deg.")
    el: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] = Field(description="Pointing elevation, deg.")
    limit_deg: Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)] = Field(
        DEFAULT_LIMIT_DEG, description="Avoidance radius around the sun, deg (default: the basic policy's sun rule)."
    )


class SiteOut(BaseModel):
    lat: float
    lon: float
    elevation: float


class Track(BaseModel):
    az: list[float]
    el: list[float]


class Positions(BaseModel):
    site: SiteOut
    times: list[str]
    bodies: dict[str, Track]


class Interval(BaseModel):
    t0: str
    t1: str


class Crossing(BaseModel):
    at: str
    direction: Literal["enter", "leave"]


class SunLimit(BaseModel):
    limit_deg: float
    intervals: list[Interval] = Field(description="When the sun is within limit_deg of the pointing.")
    crossings: list[Crossing] = Field(description="When the sun enters or leaves the limit (to about a second).")


@spec.operation(
    "/api/v1/sky/positions",
    "get",
    "Azimuth and elevation of the sun, the moon and the planets at the site over a window",
    TAGS,
    query=PositionsQuery,
    responses={200: ("The bodies' tracks on one time grid", Positions), **_ERRORS},
)
@bp.get("/positions")
def positions():
    query = _query(PositionsQuery)
    t0, t1 = _window(query)
    # A float compared before int(): a tiny step gives inf or a huge count, never an OverflowError.
    samples = np.floor((t1 - t0) / query.step + 1e-9) + 1
    if not samples <= MAX_SAMPLES:
        least = (t1 - t0) / (MAX_SAMPLES - 1)
        raise ApiError(
            400,
            f"step: gives more than {MAX_SAMPLES} samples over t0..t1; take a step of at least {least:.6g} s",
            "step",
        )
    count = int(samples)
    times = t0 + query.step * np.arange(count, dtype=float)
    site = _site()
    names = list(dict.fromkeys(b.strip() for b in query.bodies.split(",")))
    tracks = {}
    for name in names:
        az, el = sky.altaz(name, site, times)
        tracks[name] = {"az": _rounded(np.mod(az, 360.0)), "el": _rounded(el)}
    return jsonify(
        {
            "site": {"lat": site.lat, "lon": site.lon, "elevation": site.elevation},
            "times": [_iso(t) for t in times],
            "bodies": tracks,
        }
    )


@spec.operation(
    "/api/v1/sky/sun-limit",
    "get",
    "When the sun comes within a limit of a fixed pointing",
    TAGS,
    query=SunLimitQuery,
    responses={200: ("The intervals inside the limit and the crossings", SunLimit), **_ERRORS},
)
@bp.get("/sun-limit")
def sun_limit():
    """The distance is sampled every 30 s and each crossing is interpolated between two samples."""
    query = _query(SunLimitQuery)
    t0, t1 = _window(query, max_hours=current_app.config["SETTINGS"].observing.max_window_hours)
    times = np.append(np.arange(t0, t1, LIMIT_STEP_SECONDS, dtype=float), t1)
    az, el = sky.altaz("sun", _site(), times)
    margin = angular_distance(az, el, query.az, query.el) - query.limit_deg  # < 0: inside
    inside = margin < 0
    crossings = []
    for i in np.flatnonzero(inside[1:] != inside[:-1]):
        a, b = margin[i], margin[i + 1]
        at = times[i] + (times[i + 1] - times[i]) * (a / (a - b))
        crossings.append({"at": _iso(at), "direction": "enter" if inside[i + 1] else "leave", "_t": at})
    intervals, start = [], t0 if inside[0] else None
    for c in crossings:
        if c["direction"] == "enter":
            start = c["_t"]
        elif start is not None:
            intervals.append({"t0": _iso(start), "t1": _iso(c["_t"])})
            start = None
    if start is not None:
        intervals.append({"t0": _iso(start), "t1": _iso(t1)})
    shown = [{"at": c["at"], "direction": c["direction"]} for c in crossings]
    return jsonify({"limit_deg": query.limit_deg, "intervals": intervals, "crossings": shown})


def _query(model: type[BaseModel]) -> Any:
    """The query as ``model``: each parameter once, numbers as the document's ``number`` writes them."""
    for name in request.args:
        given = request.args.getlist(name)
        if len(given) > 1:
            raise ApiError(400, f"{name}: given {len(given)} times; give it once", name)
        if name in _NUMBERS and not re.fullmatch(JSON_NUMBER, given[0]):
            raise ApiError(400, f"{name}: must be a number as JSON writes it (e.g. 600 or 1.5e3)", name)
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        name, problem, _ = field_and_problem(exc, "query")
        raise ApiError(400, f"{name}: {problem}", name) from None


def _window(query: Window, max_hours: float | None = None) -> tuple[float, float]:
    if query.t1 <= query.t0:
        raise ApiError(400, "t1: must be later than t0", "t1")
    for name, value in (("t0", query.t0), ("t1", query.t1)):
        if not _COVERED[0] <= value <= _COVERED[1]:
            raise ApiError(400, f"{name}: outside the ephemeris ({sky.COVERED[0]} to {sky.COVERED[1]})", name)
    if max_hours is not None and (query.t1 - query.t0).total_seconds() > max_hours * 3600:
        raise ApiError(400, f"t1: the window t0..t1 is longer than the {max_hours:g} hours this server allows", "t1")
    return query.t0.timestamp(), query.t1.timestamp()


def _site() -> sky.Site:
    return _DEFAULTS.site.to_site()


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(float(seconds), UTC).isoformat()
