"""Nova's microversion negotiation, as nova/api/openstack/wsgi.py does it.

The simulator implements compute 2.1 to 2.37 with the shapes of each version
that its endpoints have (see ``api_nova``): ``OpenStack-API-Version: compute X``
(or the legacy ``X-OpenStack-Nova-API-Version: X``) selects one, none means
2.1, ``latest`` the maximum; a version outside the range is a 406, a malformed
one a 400. Every answer of the versioned API names the version it used, with
``Vary`` on both headers.
"""

from __future__ import annotations

import re

from flask import request

MIN = (2, 1)
MAX = (2, 37)
HEADER = "OpenStack-API-Version"
LEGACY = "X-OpenStack-Nova-API-Version"
FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")
KEY = "sim.compute_version"


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _requested() -> str | None:
    for part in request.headers.get(HEADER, "").split(","):
        service, _, value = part.strip().partition(" ")
        if service.lower() == "compute" and value.strip():
            return value.strip()
    legacy = request.headers.get(LEGACY, "").strip()
    return legacy or None


def negotiate() -> tuple[int, str] | None:
    """Set the request's version; (status, message) if the requested one is refused."""
    wanted = _requested()
    if wanted is None:
        chosen = MIN
    elif wanted.lower() == "latest":
        chosen = MAX
    else:
        match = FORMAT.match(wanted)
        if not match:
            return 400, f"API Version String {wanted} is of invalid format. Must be of format MajorNum.MinorNum."
        chosen = (int(match.group(1)), int(match.group(2)))
        if not MIN <= chosen <= MAX:
            return 406, (
                f"Version {wanted} is not supported by the API. Minimum is {text(MIN)} and maximum is {text(MAX)}."
            )
    request.environ[KEY] = chosen
    return None


def current() -> tuple[int, int]:
    return request.environ.get(KEY, MIN)


def at_least(minor: int) -> bool:
    return current() >= (2, minor)


def add_headers(response):
    """After-request hook of the compute API: name the version used (when one was chosen)."""
    version = request.environ.get(KEY)
    if version is not None:
        response.headers[HEADER] = f"compute {text(version)}"
        response.headers[LEGACY] = text(version)
        response.vary.add(HEADER)
        response.vary.add(LEGACY)
    return response
