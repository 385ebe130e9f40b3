"""A pipeline's ``host`` matched against ``xnat.servers``, after normalising both.

Normal form: lower-case scheme (http or https) and host name, no default port
(80 for http, 443 for https), no trailing slash, no query, fragment or user
information. ``https://XNAT.example.org:443/`` and ``https://xnat.example.org``
are the same server; ``http://`` and ``https://`` are not.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class HostError(ValueError):
    """Not a base URL an XNAT server can have."""


def normalise(url: str) -> str:
    """The normal form of a base URL; HostError saying why it is not one."""
    text = url.strip()
    if "://" not in text:
        raise HostError(f"{url!r} is not a URL: give the scheme too (https://{text or 'host'})")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise HostError(f"{url!r} is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise HostError(f"{url!r}: the scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise HostError(f"{url!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise HostError(f"{url!r}: credentials do not belong in the URL")
    if parts.query or parts.fragment:
        raise HostError(f"{url!r}: a base URL has no query or fragment")
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


def match(settings: Any, host: str) -> Any:
    """The configured server (an ``XnatServer`` of ``settings``, an ``XnatSettings``; settings.py imports this module) ``host`` names, or None if it names none (or it is not a URL)."""
    if settings is None or not settings.servers:
        return None
    try:
        wanted = normalise(host)
    except HostError:
        return None
    return next((server for server in settings.servers if server.url == wanted), None)


def listed(settings: Any) -> bool:
    """True when ``xnat.servers`` lists any server (then only those may be named)."""
    return bool(settings is not None and settings.servers)
