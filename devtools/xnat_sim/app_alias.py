"""The alias format XNAT's tokens have (a UUID), shared by authentication and the token resource."""

from __future__ import annotations

import re

ALIAS = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_alias(candidate: str) -> bool:
    return ALIAS.match(candidate) is not None
