"""Simulated Heat stacks: the records and the engine that creates and deletes them (checks at create: stack_build.py).

A stack's resources are created one at a time in dependency order by a thread per
operation; each step is recorded as an event (what ``openstack stack create --wait``
polls). Servers go through the Cloud's own lifecycle, so a stack's server boots, gets an
sshd and can fail exactly as a plain server does. Deleted stacks stay readable by id
(DELETE_COMPLETE), as in Heat, but leave the listing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from . import hot
from .heat_types import TYPES, ResourceFailure, cloud_failure
from .hot import HeatError
from .model import CloudError, new_id, now_iso

#: Seconds in one of timeout_mins' minutes (a test may shrink it).
MINUTE = 60.0


@dataclass
class StackResource:
    name: str
    type: str
    definition: dict
    depends: set[str]
    physical_id: str = ""
    status: str = "INIT_COMPLETE"
    reason: str = ""
    created: str = field(default_factory=now_iso)
    updated: str | None = None
    bound_to: str | None = None  # a port: the server that realises it


@dataclass
class Event:
    id: str
    time: str
    resource_name: str
    physical_id: str
    status: str
    reason: str
    is_stack: bool


@dataclass
class Stack:
    id: str
    name: str
    template: dict
    params: dict
    given_params: dict
    tags: list[str]
    timeout_mins: int | None
    disable_rollback: bool
    resources: dict[str, StackResource]
    order: list[str]
    status: str = "CREATE_IN_PROGRESS"
    reason: str = "Stack CREATE started"
    created: str = field(default_factory=now_iso)
    updated: str | None = None
    deleted: str | None = None
    events: list[Event] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    deleting: bool = False


# --- the engine ---------------------------------------------------------------------------


class Engine:
    """Runs one stack's create or delete; every change goes through ``record`` (status + event)."""

    def __init__(self, cloud, stack: Stack):
        self.cloud, self.stack = cloud, stack

    def record(self, res: StackResource | None, status: str, reason: str) -> None:
        stack = self.stack
        with self.cloud.lock:
            target = res or stack
            target.status, target.reason = status, reason
            if res is not None:
                res.updated = now_iso()
            else:
                stack.updated = now_iso() if not status.startswith("CREATE") else stack.updated
            stack.events.append(
                Event(
                    id=new_id(),
                    time=now_iso(),
                    resource_name=res.name if res else stack.name,
                    physical_id=res.physical_id if res else stack.id,
                    status=status,
                    reason=reason,
                    is_stack=res is None,
                )
            )

    def lookup(self, name: str, path: list | None):
        res = self.stack.resources[name]
        if path is None:
            return res.physical_id or None
        if not res.physical_id:
            return None
        return hot.index(TYPES[res.type].attributes(self.cloud, res.physical_id).get(path[0]), path[1:])

    def props(self, res: StackResource) -> dict:
        return hot.resolve(res.definition.get("properties") or {}, self.stack.params, self.lookup)

    def create(self, fate=None) -> None:
        stack = self.stack
        self.record(None, "CREATE_IN_PROGRESS", "Stack CREATE started")
        deadline = time.monotonic() + stack.timeout_mins * MINUTE if stack.timeout_mins else None
        stop = lambda: "Stack cancelled" if stack.cancel.is_set() else self._timed_out(deadline)  # noqa: E731
        try:
            self._fate(fate, stop)
            for name in stack.order:
                res = stack.resources[name]
                if res.status == "INIT_COMPLETE":
                    self._create_resource(res, stop)
        except ResourceFailure as exc:
            if stack.cancel.is_set():
                return
            timed_out = str(exc) == "Timed out"  # Heat (convergence) marks the stack itself
            self.record(None, "CREATE_FAILED", "Timed out" if timed_out else f"Resource CREATE failed: {exc}")
            if not stack.disable_rollback:
                self.record(None, "ROLLBACK_IN_PROGRESS", "Stack ROLLBACK started")
                self._delete_resources()
                self.record(None, "ROLLBACK_COMPLETE", "Stack ROLLBACK completed successfully")
            return
        self.record(None, "CREATE_COMPLETE", "Stack CREATE completed successfully")

    def _timed_out(self, deadline) -> str | None:
        return "Timed out" if deadline is not None and time.monotonic() > deadline else None

    def _fate(self, fate, stop) -> None:
        if fate is None:
            return
        if fate.kind == "stack_stuck":
            self.stack.cancel.wait()
            raise ResourceFailure("Stack cancelled")
        if self.stack.cancel.wait(fate.after or 0.0):
            raise ResourceFailure("Stack cancelled")
        raise ResourceFailure("Simulated fault: stack_error")

    def _create_resource(self, res: StackResource, stop) -> None:
        self.record(res, "CREATE_IN_PROGRESS", "state changed")
        kind = TYPES[res.type]
        try:
            props = self.props(res)
            if res.type == "OS::Nova::Server":
                self._create_server(res, props, stop)
            elif res.type == "OS::Neutron::SecurityGroup":
                res.physical_id = kind.create(self.cloud, res.name, props, self.stack.name)
            else:
                res.physical_id = kind.create(self.cloud, res.name, props)
        except ResourceFailure as exc:
            self.record(res, "CREATE_FAILED", str(exc))
            raise
        except (HeatError, CloudError) as exc:  # a value known only now (e.g. a get_attr) is refused
            failure = ResourceFailure(f"resources.{res.name}: {exc.message}")
            self.record(res, "CREATE_FAILED", str(failure))
            raise failure from None
        except Exception as exc:  # a value of the wrong shape: the stack fails saying so, never hangs
            failure = ResourceFailure(f"resources.{res.name}: {type(exc).__name__}: {exc}")
            self.record(res, "CREATE_FAILED", str(failure))
            raise failure from None
        self.record(res, "CREATE_COMPLETE", "state changed")

    def _create_server(self, res: StackResource, props: dict, stop) -> None:
        ports = [p for p in self.stack.resources.values() if p.bound_to == res.name]
        for port in ports:
            self.record(port, "CREATE_IN_PROGRESS", "state changed")
        port_props = self.props(ports[0]) if ports else None
        server_type = TYPES[res.type]
        body = server_type.create_body(self.cloud, self.stack.name, res.name, props, port_props)
        try:
            server = self.cloud.create_server(body)
        except CloudError as exc:
            failure = cloud_failure(res.name, exc)
            for port in ports:
                self.record(port, "CREATE_FAILED", str(failure))
            raise failure from None
        res.physical_id = server.id
        for port in ports:
            port.physical_id = server.port_id or ""
            self.record(port, "CREATE_COMPLETE", "state changed")
        server_type.wait_active(self.cloud, res.name, server.id, stop)

    def delete(self, creating: threading.Thread | None = None) -> None:
        """Stop a create still running (``creating``), then remove every resource in reverse order."""
        stack = self.stack
        stack.cancel.set()
        if creating is not None:
            creating.join(timeout=30)
        self.record(None, "DELETE_IN_PROGRESS", "Stack DELETE started")
        self._delete_resources()
        stack.deleted = now_iso()
        self.record(None, "DELETE_COMPLETE", "Stack DELETE completed successfully")

    def _delete_resources(self) -> None:
        for name in reversed(self.stack.order):
            res = self.stack.resources[name]
            if res.status in ("INIT_COMPLETE", "DELETE_COMPLETE"):
                continue
            self.record(res, "DELETE_IN_PROGRESS", "state changed")
            if res.physical_id and res.bound_to is None:
                TYPES[res.type].delete(self.cloud, res.physical_id)
            self.record(res, "DELETE_COMPLETE", "state changed")

    def outputs(self) -> list[dict]:
        result = []
        for key, out in (self.stack.template.get("outputs") or {}).items():
            entry = {"output_key": key, "description": out.get("description", "No description given")}
            try:
                entry["output_value"] = hot.resolve(out.get("value"), self.stack.params, self.lookup)
            except (KeyError, TypeError, ValueError) as exc:
                entry["output_value"], entry["output_error"] = None, str(exc)
            result.append(entry)
        return result

    def attributes(self, res: StackResource) -> dict:
        if not res.physical_id:
            return {}
        values = TYPES[res.type].attributes(self.cloud, res.physical_id)
        return {k: v for k, v in values.items() if k in TYPES[res.type].ATTRIBUTES}
