"""Schemathesis hooks for devtools/fuzz_api.py: a schema-valid request may be refused with 400 only by a documented rule.

Each operation's 400 description in the OpenAPI document names the rules a
JSON schema cannot state (a policy given as JSON inside a string, t1 after t0,
a script that must exist, ...). ``BUSINESS_RULES`` holds the same rules as
(field, message) patterns; a 400 to a request schemathesis generated as valid
passes only when every error in it matches one of its operation's rules.
"""

from __future__ import annotations

import re

import schemathesis
from schemathesis import Case, Response
from schemathesis.core.failures import Failure

_SCRIPT = (
    r"(script|files\.\d+)",
    r"does not exist in LOCAL_SCRIPTS_FOLDER|resolves outside|is absolute|leaves LOCAL_SCRIPTS_FOLDER|must not be empty",
)
_SUBMIT = [
    _SCRIPT,
    (r"env\..*", r"not allowed|allowed_env_names|not a valid environment variable name"),
    (r"options", r"cannot split into arguments"),
    (r"pwd|user|project|subject|session|host", r"password|pwd"),
    # Credentials: exactly user and pwd, or an XNAT alias token's alias and secret (listed hosts only).
    (r"pwd|user|alias|secret", r"required|not both|not with alias|xnat\.servers only"),
]
BUSINESS_RULES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("POST", "/api/v1/schedule/"): [
        (r"t[01]", r"is not a date and time|outside the years|has no time of day"),
        (r"t1", r"must be later than t0|longer than the"),
        (r"policy", r"a string policy must hold JSON|could not schedule"),
        (r"policy\.(preset|config.*)", r".*"),  # unknown preset or config key, a value the policy refuses
        # The body limits, which only the free-form policy.config can reach with schema-valid data.
        (r"", r"^request body: (an integer of \d+ characters|nested deeper than)"),
    ],
    ("GET", "/api/v1/sky/positions"): [
        (r"t[01]", r"is not a date and time|outside the years|has no time of day|outside the ephemeris"),
        (r"t1", r"must be later than t0"),
        (r"step", r"samples over t0..t1"),
    ],
    ("GET", "/api/v1/sky/sun-limit"): [
        (r"t[01]", r"is not a date and time|outside the years|has no time of day|outside the ephemeris"),
        (r"t1", r"must be later than t0|longer than the"),
    ],
    ("POST", "/pipeline"): _SUBMIT,
    ("POST", "/api/v1/pipelines"): _SUBMIT,
    # A launch: a submission's rules, a host of xnat.servers, XNAT's answers, the filters and xnat.max_launch (15L).
    ("POST", "/api/v1/xnat/launch"): [
        *_SUBMIT,
        (r"host", r"is not an XNAT server to launch on"),
        (r"session_type", r"is not a session type of"),
        (r"project|subject|session|session_type|skip_succeeded", r"matches none|lists no experiment|no project|has a"),
        (r"max_launch", r"more than xnat\.max_launch"),
        (r"pwd|secret", r"refused the credentials|does not take this alias"),
    ],
}


class UndocumentedRefusal(Failure):
    kind_title = "Schema-valid request refused by no documented rule"

    def __init__(self, operation: str, errors: list[tuple[str, str]]):
        shown = "; ".join(f"{field or '-'}: {message}" for field, message in errors)
        super().__init__(
            operation=operation, message=f"400 for a request the document allows, and not for a rule it names: {shown}"
        )


def _errors(body) -> list[tuple[str, str]]:
    """(field, message) of every error in a 400 body, whichever API style it has."""
    if not isinstance(body, dict):
        return [("", str(body))]
    if body.get("status") == "error":
        return [(body.get("field") or "", body.get("message", ""))]
    content = body.get("content") if "request" in body else body.get("pipelines")
    if isinstance(content, list):  # one report per submitted item
        return [
            (r.get("field") or "", r.get("error", ""))
            for r in content
            if isinstance(r, dict) and r.get("request") == "error"
        ]
    return [(body.get("field") or "", str(content))]


@schemathesis.check
def documented_business_rule(ctx, response: Response, case: Case):
    meta = case.meta
    if response.status_code != 400 or meta is None or not meta.generation.mode.is_positive:
        return None
    rules = BUSINESS_RULES.get((case.operation.method.upper(), case.operation.path), [])
    try:
        errors = _errors(response.json())
    except ValueError:
        errors = [("", response.text[:200])]
    unmatched = [
        (field, message)
        for field, message in errors
        if not any(re.fullmatch(f, field) and re.search(m, message) for f, m in rules)
    ]
    if unmatched:
        raise UndocumentedRefusal(case.operation.label, unmatched)
    return None
