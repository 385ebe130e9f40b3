"""Turn the configured image, flavor and networks (names or ids) into ids, once, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from openstack import exceptions as os_exceptions

from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError, call, describe

if TYPE_CHECKING:
    from scheduler_server.pipelines.clouds.openstack.settings import OpenStackSettings


@dataclass(frozen=True)
class Resolved:
    image_id: str
    flavor_id: str
    network_id: str | None
    network_name: str | None
    pool_id: str | None
    security_groups: tuple[str, ...]


def _find(kind: str, key: str, value: str, finder, retries: int):
    """``finder()(value)`` (an openstacksdk find_*), with 'not found' and 'ambiguous' named after the config key.

    ``finder`` returns the method: reaching a service proxy (``conn.image``) is a request too (the
    token, the catalogue, version discovery), so it happens inside ``call()``, retried and classified.
    """

    def lookup():
        try:
            return finder()(value, ignore_missing=False)
        except os_exceptions.NotFoundException:
            raise CloudAPIError(f"pipelines.openstack.{key}: no {kind} named or with id {value!r}", 404) from None
        except os_exceptions.DuplicateResource:
            raise CloudAPIError(
                f"pipelines.openstack.{key}: several {kind}s are named {value!r}; give its id"
            ) from None

    try:
        return call(f"look up {kind} {value!r}", lookup, retries)
    except CloudAPIError:
        raise
    except os_exceptions.SDKException as exc:  # anything the finder raised that call() did not classify
        raise CloudAPIError(f"pipelines.openstack.{key}: {describe(exc)}") from None


def resolve(conn, settings: OpenStackSettings) -> Resolved:
    retries = settings.api_retries
    image = _find("image", "image_id", settings.image_id, lambda: conn.image.find_image, retries)
    flavor = _find("flavor", "flavor", settings.flavor, lambda: conn.compute.find_flavor, retries)
    network = None
    if settings.network_id:
        network = _find("network", "network_id", settings.network_id, lambda: conn.network.find_network, retries)
    pool = None
    if settings.use_floating_ip and settings.ip_pool:
        pool = _find("floating IP network", "ip_pool", settings.ip_pool, lambda: conn.network.find_network, retries)
        if not pool.is_router_external:
            raise CloudAPIError(
                f"pipelines.openstack.ip_pool: network {settings.ip_pool!r} is not external (router:external)"
            )
    groups = tuple(g.strip() for g in (settings.security_group or "").split(",") if g.strip())
    return Resolved(
        image_id=image.id,
        flavor_id=flavor.id,
        network_id=network.id if network else None,
        network_name=network.name if network else None,
        pool_id=pool.id if pool else None,
        security_groups=groups,
    )
