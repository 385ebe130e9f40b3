"""OpenStack's ``limit``/``marker`` pagination, shared by the simulated services."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from .model import CloudError

MAX_LIMIT = 1000


def page(items: list[dict], args: Mapping[str, str], url: str) -> tuple[list[dict], str | None]:
    """The page of ``items`` that ``args`` asks for, and the link to the next page if there is one."""
    marker = args.get("marker")
    if marker:
        ids = [item["id"] for item in items]
        if marker not in ids:
            raise CloudError(400, f"marker [{marker}] not found", "BadRequest")
        items = items[ids.index(marker) + 1 :]
    raw = args.get("limit")
    try:
        limit = min(int(raw), MAX_LIMIT) if raw else MAX_LIMIT
    except ValueError:
        raise CloudError(400, f"limit: {raw!r} is not an integer", "BadRequest") from None
    if limit < 0:
        raise CloudError(400, "limit must be >= 0", "BadRequest")
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    query = {k: v for k, v in args.items() if k not in ("marker", "limit")}
    query.update(limit=str(limit), marker=items[-1]["id"])
    return items, f"{url}?{urlencode(query)}"
