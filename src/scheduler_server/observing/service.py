"""The observing scheduler's one entry point, shared by the HTTP API and the CLI.

It checks the window, resolves a policy by name, builds its config from a
*fresh* copy of the defaults (a preset, then the request's overrides, merged on
top) and runs it. Its errors are the domain errors of ``types.py``.
Nothing a request sends can change what the next request sees.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from scheduler_server.observing.policies.base import Policy
from scheduler_server.observing.policies.registry import available_policies
from scheduler_server.observing.safety import checker
from scheduler_server.observing.sky.site import ATACAMA
from scheduler_server.observing.telescope import TelescopeModel
from scheduler_server.observing.types import (
    PolicyConfig,
    PolicyNotFound,
    PresetNotFound,
    ScheduleInputError,
    ScheduleResult,
    WindowError,
)
from scheduler_server.validation_text import problem_text

#: The sun limit the checker holds a script to when its policy's config names none (the observatory's 41 deg).
DEFAULT_SUN_LIMIT_DEG = 41.0
SITE_ONLY = "site_only"
"""Mark a config field ``Field(json_schema_extra={"site_only": True})`` when a request
from the network must not set it (e.g. a path on the server): only presets from the
server's configuration, or a trusted local caller such as the CLI, may."""


@dataclass(frozen=True)
class PolicyRequest:
    name: str
    config: Mapping[str, Any]
    preset: str | None = None
    trusted: bool = False  # True for the local CLI: it may set site-only keys


def lookup_policy(name: str) -> Policy:
    policies = available_policies()
    policy = policies.get(name)
    if policy is None:
        known = ", ".join(sorted(policies)) or "(none installed)"
        raise PolicyNotFound("policy.policy", f"unknown policy {name!r}; known policies: {known}")
    return policy


def presets_of(
    policy_name: str, policy: Policy, site_presets: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    presets = dict(policy.presets)
    presets.update((site_presets or {}).get(policy_name, {}))
    return presets


def build_config(
    policy_name: str,
    policy: Policy,
    overrides: Mapping[str, Any],
    preset: str | None = None,
    site_presets: Mapping[str, Mapping[str, Any]] | None = None,
    trusted: bool = False,
) -> PolicyConfig:
    if not trusted:
        for path in site_only_keys(policy.Config, overrides):
            raise ScheduleInputError(
                f"policy.config.{path}",
                "can only be set in the server's configuration (observing.presets), not by a request",
            )
    merged = policy.Config().model_dump()
    if preset is not None:
        presets = presets_of(policy_name, policy, site_presets)
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "(this policy has none)"
            raise PresetNotFound(
                "policy.preset", f"unknown preset {preset!r} for policy {policy_name!r}; known presets: {known}"
            )
        merged = deep_merge(merged, presets[preset])
    merged = deep_merge(merged, overrides)
    try:
        return policy.Config.model_validate(merged)
    except ValidationError as exc:
        raise config_error(exc) from None


def check_window(t0: datetime, t1: datetime, max_window_hours: float | None = None) -> None:
    """WindowError unless t0 < t1 and, when a limit is given, the window is at most that long."""
    if t1 <= t0:
        raise WindowError("t1", f"must be later than t0 (t0 is {t0.isoformat()}, t1 is {t1.isoformat()})")
    if max_window_hours is not None and (t1 - t0).total_seconds() > max_window_hours * 3600:
        raise WindowError("t1", f"the window t0..t1 is longer than the {max_window_hours:g} hours this server allows")


def run_schedule(
    t0: datetime,
    t1: datetime,
    request: PolicyRequest,
    site_presets: Mapping[str, Mapping[str, Any]] | None = None,
    max_window_hours: float | None = None,
) -> ScheduleResult:
    """The script for [t0, t1]; ScheduleInputError (or a subclass) for a client mistake, PolicyFailure if the
    policy refuses. The window is checked first, then the policy and its config, as a request reads."""
    check_window(t0, t1, max_window_hours)
    policy = lookup_policy(request.name)
    config = build_config(request.name, policy, request.config, request.preset, site_presets, request.trusted)
    try:
        return policy.schedule(t0, t1, config)
    except ValueError as exc:
        # A backstop: a window and config whose plan reaches times outside the ephemeris
        # (skyfield's EphemerisRangeError, a ValueError) are the client's input, not a crash.
        if isinstance(exc, ScheduleInputError) or type(exc).__name__ != "EphemerisRangeError":
            raise
        raise ScheduleInputError(
            "t1",
            f"the window {t0.isoformat()}..{t1.isoformat()} with this policy config reaches times outside the "
            f"ephemeris ({exc}); choose another window or shorter durations in policy.config",
        ) from None


def check_schedule(t0: datetime, result: ScheduleResult, request: PolicyRequest, site_presets=None) -> dict[str, Any]:
    """The independent checker's verdict on ``result``'s script, JSON-ready: safe, the limit it held the script
    to (the config's ``rules.sun-avoidance.min_angle``, else 41 deg), the least sun distance, that distance per
    minute and the problems. The site and telescope model are the config's when it has them."""
    config = build_config(
        request.name, lookup_policy(request.name), request.config, request.preset, site_presets, request.trusted
    )
    rule = getattr(getattr(config, "rules", None), "sun_avoidance", None)
    limit = float(getattr(rule, "min_angle", DEFAULT_SUN_LIMIT_DEG))
    model = getattr(config, "telescope", None)
    site = getattr(config, "site", None)
    report = checker.check_script(
        result.commands,
        limit,
        model if isinstance(model, TelescopeModel) else TelescopeModel(),
        site.to_site() if hasattr(site, "to_site") else ATACAMA,
        start=t0.timestamp(),
    )
    samples = [[_iso(t), d] for t, d in report.sun_samples]
    least = min((d for _, d in report.sun_samples), default=None)
    return {
        "safe": report.safe,
        "limit_deg": report.limit_deg,
        "min_sun_distance_deg": least,
        "samples": samples,
        "problems": report.lines(),
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def site_only_keys(model: type[BaseModel], overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the keys in ``overrides`` that ``model`` marks as site-only."""
    found = []
    for key, value in overrides.items():
        field = next((f for name, f in model.model_fields.items() if key in (name, f.alias)), None)
        if field is None:
            continue  # validation reports unknown keys
        site_only = isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(SITE_ONLY)
        if site_only and not _is_default(field, value):  # restating the default (echoing /api/v1/policies) is harmless
            found.append(f"{prefix}{key}")
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, Mapping):
            found += site_only_keys(sub, value, f"{prefix}{key}.")
    return found


def _is_default(field, value: Any) -> bool:
    """Whether ``value`` (as a request sends it) says what ``field``'s default is; a model's fields may be partial."""
    default = field.get_default(call_default_factory=True)
    if value == default:
        return True
    if not isinstance(default, BaseModel) or not isinstance(value, Mapping):
        return False
    try:
        return type(default).model_validate(deep_merge(default.model_dump(by_alias=True), value)) == default
    except (ValidationError, TypeError):
        return False


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``overrides`` merged in, recursively for mappings."""
    result = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def config_error(exc: ValidationError) -> ScheduleInputError:
    error = exc.errors()[0]
    path = ".".join(["policy", "config", *(str(p) for p in error["loc"])])
    problem = problem_text(error, unknown="unknown config key")
    if error["type"] != "extra_forbidden":
        problem = f"{problem} (got {error.get('input')!r})"
    return ScheduleInputError(path, problem)
