"""The resource types a simulated stack can hold, built on the Cloud's own servers, ports and floating IPs.

Each type names the properties and attributes it models (anything else is refused at
stack create: "not simulated"), checks property values that do not depend on other
resources, creates and deletes its cloud object and answers ``get_attr``.
An ``OS::Neutron::Port`` is realised by the ``OS::Nova::Server`` that lists it in
``networks`` (the Cloud gives each server one port): it completes when that server is created.
"""

from __future__ import annotations

import base64
import ipaddress
import time

from .hot import HeatError, not_simulated
from .model import CloudError, SecurityGroup, new_id

HTTP_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}


class ResourceFailure(Exception):
    """A resource could not be created: ``str()`` is Heat's status reason."""


def cloud_failure(res_name: str, exc: CloudError) -> ResourceFailure:
    name = HTTP_NAMES.get(exc.status, "ClientException")
    return ResourceFailure(f"{name}: resources.{res_name}: {exc.message} (HTTP {exc.status})")


def _suffix() -> str:
    """The random part of a name Heat makes up: <stack>-<resource>-<12 letters and digits>."""
    return new_id().replace("-", "")[:12]


def _property_error(res: str, prop: str, message: str) -> HeatError:
    return HeatError(400, f"Property error: resources.{res}.properties.{prop}: {message}")


def find_network(cloud, value, res: str, prop: str, external: bool):
    for net in cloud.networks.values():
        if value in (net.id, net.name):
            if net.external != external:
                raise not_simulated(f"resources.{res}.properties.{prop}: network {value} (external={net.external})")
            return net
    raise _property_error(
        res, prop, f"Error validating value '{value}': Unable to find network with name or id '{value}'"
    )


class Type:
    PROPERTIES: frozenset[str] = frozenset()
    REQUIRED: frozenset[str] = frozenset()
    ATTRIBUTES: frozenset[str] = frozenset()

    def check(self, cloud, res: str, props: dict, given: set[str]) -> None:
        """Check the values known before any resource exists (``props``: those needing no other resource)."""

    def attributes(self, cloud, physical_id: str) -> dict:
        return {}

    def delete(self, cloud, physical_id: str) -> None:
        """Remove the cloud object (already gone is fine)."""


class Server(Type):
    PROPERTIES = frozenset(
        {
            "name",
            "image",
            "flavor",
            "key_name",
            "networks",
            "security_groups",
            "metadata",
            "user_data",
            "user_data_format",
        }
    )
    REQUIRED = frozenset({"flavor"})
    ATTRIBUTES = frozenset({"name", "first_address", "networks", "addresses"})
    NETWORK_KEYS = frozenset({"network", "port"})

    def check(self, cloud, res: str, props: dict, given: set[str]) -> None:
        if "image" not in given:
            raise not_simulated(f"resources.{res}: a server without image (boot from volume)")
        for key in ("name", "image", "flavor", "key_name", "user_data"):  # String properties, as Heat's schema
            if isinstance(props.get(key), int | float) and not isinstance(props[key], bool):
                props[key] = str(props[key])
            elif key in props and not isinstance(props[key], str):
                raise _property_error(res, key, f"Value must be a string; got {props[key]!r}")
        image = props.get("image")
        if isinstance(image, str) and not any(image in (i.id, i.name) for i in cloud.images.values()):
            raise _property_error(
                res, "image", f"Error validating value '{image}': No images matching {{'name': '{image}'}}."
            )
        flavor = props.get("flavor")
        if isinstance(flavor, str) and not any(flavor in (f.id, f.name) for f in cloud.flavors.values()):
            raise _property_error(
                res, "flavor", f"Error validating value '{flavor}': The Flavor ID ({flavor}) could not be found."
            )
        key = props.get("key_name")
        if isinstance(key, str) and key not in cloud.keypairs:
            raise _property_error(
                res, "key_name", f"Error validating value '{key}': The Key ({key}) could not be found."
            )
        if props.get("user_data_format", "RAW") != "RAW":
            raise not_simulated(f"resources.{res}.properties.user_data_format {props['user_data_format']!r} (only RAW)")
        for key, kind in (("metadata", dict), ("security_groups", list)):
            if key in props and not isinstance(props[key], kind):
                raise _property_error(res, key, f"Value must be a {'map' if kind is dict else 'list'}")
        networks = props.get("networks") or []
        if not isinstance(networks, list):
            raise _property_error(res, "networks", "Value must be a list")
        if len(networks) > 1:
            raise not_simulated(f"resources.{res}.properties.networks: more than one network")
        for item in networks:
            if not isinstance(item, dict) or set(item) - self.NETWORK_KEYS or len(item) != 1:
                raise not_simulated(f"resources.{res}.properties.networks item {item!r} (one of: network, port)")
            if isinstance(item.get("network"), str):
                find_network(cloud, item["network"], res, "networks.network", external=False)

    def create_body(self, cloud, stack_name: str, res: str, props: dict, port_props: dict | None) -> dict:
        image = next(i.id for i in cloud.images.values() if props["image"] in (i.id, i.name))
        flavor = next(f.id for f in cloud.flavors.values() if str(props["flavor"]) in (f.id, f.name))
        body = {
            "name": props.get("name") or f"{stack_name}-{res}-{_suffix()}",
            "imageRef": image,
            "flavorRef": flavor,
        }
        if props.get("key_name"):
            body["key_name"] = props["key_name"]
        groups = list(props.get("security_groups") or [])
        networks = props.get("networks") or []
        if port_props is not None:
            net = find_network(cloud, port_props["network"], res, "networks.port", external=False)
            groups += port_props.get("security_groups") or []
            body["networks"] = [{"uuid": net.id}]
        elif networks:
            body["networks"] = [{"uuid": find_network(cloud, networks[0]["network"], res, "networks", False).id}]
        if groups:
            body["security_groups"] = [{"name": g} for g in groups]
        if props.get("metadata"):
            body["metadata"] = {k: str(v) for k, v in props["metadata"].items()}
        if props.get("user_data"):
            body["user_data"] = base64.b64encode(str(props["user_data"]).encode()).decode()
        return body

    def wait_active(self, cloud, res: str, server_id: str, stop) -> None:
        """Until the server is ACTIVE; ResourceFailure if it errs or vanishes, or when ``stop()`` says why."""
        while True:
            with cloud.lock:
                server = cloud.servers.get(server_id)
                status = server.status if server else None
                fault = (server.fault or {}) if server else {}
            if status == "ACTIVE":
                return
            if status is None:
                raise ResourceFailure(f"ResourceInError: resources.{res}: Went to status DELETED")
            if status == "ERROR":
                raise ResourceFailure(
                    f'ResourceInError: resources.{res}: Went to status ERROR due to "Message: '
                    f'{fault.get("message", "Unknown")}, Code: {fault.get("code", 500)}"'
                )
            why = stop()
            if why:
                raise ResourceFailure(why)
            time.sleep(0.05)

    def attributes(self, cloud, physical_id: str) -> dict:
        with cloud.lock:
            server = cloud.servers.get(physical_id)
            if server is None:
                return {}
            net = cloud.networks.get(server.network_id) if server.network_id else None
            addresses, flat = {}, []
            if net is not None and server.fixed_ip:
                entry = {"addr": server.fixed_ip, "version": 4, "OS-EXT-IPS:type": "fixed", "port": server.port_id}
                fips = [f.floating_ip_address for f in cloud.floating_ips.values() if f.port_id == server.port_id]
                addresses[net.name] = [entry] + [{"addr": a, "version": 4, "OS-EXT-IPS:type": "floating"} for a in fips]
                flat = [server.fixed_ip, *fips]
            networks = {net.name: flat, net.id: flat} if net is not None else {}
            return {
                "name": server.name,
                "first_address": server.fixed_ip or "",
                "networks": networks,
                "addresses": addresses,
            }

    def delete(self, cloud, physical_id: str) -> None:
        try:
            cloud.delete_server(physical_id)
        except CloudError:
            return
        deadline = time.monotonic() + 30
        while physical_id in cloud.servers and time.monotonic() < deadline:
            time.sleep(0.02)


class Port(Type):
    PROPERTIES = frozenset({"network", "security_groups", "name"})
    REQUIRED = frozenset({"network"})
    ATTRIBUTES = frozenset({"fixed_ips", "mac_address", "network_id", "device_id"})

    def check(self, cloud, res: str, props: dict, given: set[str]) -> None:
        if isinstance(props.get("network"), str):
            find_network(cloud, props["network"], res, "network", external=False)

    def attributes(self, cloud, physical_id: str) -> dict:
        with cloud.lock:
            port = cloud.ports.get(physical_id)
            if port is None:
                return {}
            return {
                "fixed_ips": [{"subnet_id": port.subnet_id, "ip_address": port.ip_address}],
                "mac_address": port.mac_address,
                "network_id": port.network_id,
                "device_id": port.device_id,
            }


class FloatingIP(Type):
    PROPERTIES = frozenset({"floating_network", "port_id"})
    REQUIRED = frozenset({"floating_network"})
    ATTRIBUTES = frozenset({"floating_ip_address", "fixed_ip_address", "port_id", "floating_network_id"})

    def check(self, cloud, res: str, props: dict, given: set[str]) -> None:
        if isinstance(props.get("floating_network"), str):
            find_network(cloud, props["floating_network"], res, "floating_network", external=True)

    def create(self, cloud, res: str, props: dict) -> str:
        net = find_network(cloud, props["floating_network"], res, "floating_network", external=True)
        try:
            return cloud.create_fip(net.id, props.get("port_id"), "").id
        except CloudError as exc:
            raise cloud_failure(res, exc) from None

    def attributes(self, cloud, physical_id: str) -> dict:
        with cloud.lock:
            fip = cloud.floating_ips.get(physical_id)
            if fip is None:
                return {}
            return {
                "floating_ip_address": fip.floating_ip_address,
                "fixed_ip_address": fip.fixed_ip_address,
                "port_id": fip.port_id,
                "floating_network_id": fip.floating_network_id,
            }

    def delete(self, cloud, physical_id: str) -> None:
        try:
            cloud.delete_fip(physical_id)
        except CloudError:
            pass


class SecurityGroupType(Type):
    """Rules are checked and kept on the stack's resource; like every simulated group they filter nothing."""

    PROPERTIES = frozenset({"name", "description", "rules"})
    RULE_KEYS = frozenset(
        {"direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_mode"}
    )

    def check(self, cloud, res: str, props: dict, given: set[str]) -> None:
        rules = props.get("rules") or []
        if not isinstance(rules, list):
            raise _property_error(res, "rules", "Value must be a list")
        for rule in rules:
            if not isinstance(rule, dict) or set(rule) - self.RULE_KEYS:
                raise not_simulated(
                    f"resources.{res}.properties.rules item {rule!r} (keys: {', '.join(sorted(self.RULE_KEYS))})"
                )
            prefix = rule.get("remote_ip_prefix")
            try:
                if prefix is not None:
                    ipaddress.ip_network(prefix, strict=False)
            except (TypeError, ValueError):
                raise _property_error(
                    res, "rules.remote_ip_prefix", f"Error validating value '{prefix}': Invalid net cidr {prefix}"
                ) from None

    def create(self, cloud, res: str, props: dict, stack_name: str) -> str:
        group = SecurityGroup(id=new_id(), name=props.get("name") or f"{stack_name}-{res}-{_suffix()}")
        with cloud.lock:
            cloud.security_groups[group.id] = group
        return group.id

    def delete(self, cloud, physical_id: str) -> None:
        with cloud.lock:
            cloud.security_groups.pop(physical_id, None)


TYPES: dict[str, Type] = {
    "OS::Nova::Server": Server(),
    "OS::Neutron::Port": Port(),
    "OS::Neutron::FloatingIP": FloatingIP(),
    "OS::Neutron::SecurityGroup": SecurityGroupType(),
}
