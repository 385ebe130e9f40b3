"""What Nova requests mean: server list filters, min/max counts, the networks rule of each microversion."""

from __future__ import annotations

import re
from datetime import datetime

from .microversion import at_least
from .model import CloudError, Server


def filtered(servers: list[Server], args, cloud) -> list[Server]:
    """Nova's list filters: name and ip are regular expressions (search, match), the others exact."""
    name, ip, ip6 = args.get("name"), args.get("ip"), args.get("ip6")
    try:
        name_re = re.compile(name) if name else None
        ip_re = re.compile(ip) if ip else None
        ip6_re = re.compile(ip6) if ip6 else None
    except re.error as exc:
        raise CloudError(400, f"Invalid filter: {exc}", "badRequest") from None
    since = _timestamp(args.get("changes-since"), "changes-since")
    image = (args.get("image") or "").rsplit("/", 1)[-1]
    flavor = (args.get("flavor") or "").rsplit("/", 1)[-1]
    status = (args.get("status") or "").upper()
    tags = [t for key in ("tags", "tags-any") for t in args.get(key, "").split(",") if t]
    kept = []
    for s in servers:
        if name_re and not name_re.search(s.name):
            continue
        if ip_re and not (s.fixed_ip and ip_re.match(s.fixed_ip)):
            continue
        if ip6_re or tags:  # no server has an IPv6 address or a tag
            continue
        if (status and s.status != status) or (image and s.image_id != image) or (flavor and s.flavor_id != flavor):
            continue
        if since and _parse(s.updated) < since:
            continue
        kept.append(s)
    return kept


def _timestamp(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        stamp = _parse(value)
    except ValueError:
        raise CloudError(
            400, f"Invalid input for query parameters {field}. Value: {value}. '{value}' is not a 'date-time'"
        ) from None
    return stamp


def _parse(value: str) -> datetime:
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.astimezone()


def counts(body: dict) -> tuple[int, int]:
    """Nova's min_count/max_count: positive integers, min <= max, max defaulting to min."""
    values = {}
    for key in ("min_count", "max_count"):
        raw = body.get(key)
        if raw is None:
            continue
        # Nova's schema: an integer, or a string of digits (a float, 1e999 or inf is a 400, not an overflow)
        digits = isinstance(raw, str) and raw.isascii() and raw.isdigit()
        values[key] = int(raw) if digits or (isinstance(raw, int) and not isinstance(raw, bool)) else 0
        if values[key] < 1:
            raise CloudError(400, f"Invalid input for field/attribute {key}. Value: {raw}.")
    low = values.get("min_count", 1)
    high = values.get("max_count", low)
    if low > high:
        raise CloudError(400, "min_count must be <= max_count")
    return low, high


def check_networks(body: dict) -> None:
    networks = body.get("networks")
    if at_least(37):
        if "networks" not in body:
            raise CloudError(400, "Invalid input for field/attribute server. 'networks' is a required property")
    elif isinstance(networks, str):
        raise CloudError(
            400, f"Invalid input for field/attribute networks. Value: {networks}. '{networks}' is not of type 'array'"
        )
    if "description" in body and not at_least(19):
        raise CloudError(
            400,
            "Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)",
        )


def check_boot_source(body: dict) -> None:
    """A block device mapping is simulated only as what clients send for a plain image boot."""
    mapping = body.get("block_device_mapping_v2")
    if mapping is None:
        return
    plain = {
        "uuid": body.get("imageRef"),
        "boot_index": 0,
        "source_type": "image",
        "destination_type": "local",
        "delete_on_termination": True,
    }
    entries = (
        [dict(m, boot_index=0) if isinstance(m, dict) and str(m.get("boot_index")) == "0" else m for m in mapping]
        if isinstance(mapping, list)
        else [None]
    )
    if (
        len(entries) != 1
        or not isinstance(entries[0], dict)
        or "uuid" not in entries[0]
        or {**plain, **entries[0]} != plain
    ):
        raise CloudError(
            400, "not simulated: block_device_mapping_v2 other than the image's own local boot disk on POST /servers"
        )
