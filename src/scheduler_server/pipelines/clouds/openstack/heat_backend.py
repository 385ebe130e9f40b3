"""The ``openstack`` backend with ``provisioning: heat``: each instance is a Heat stack.

``provision`` creates a stack named by the pool from the HOT template
(``heat.py``), tagged with this scheduler's id and a request token; a create
that failed transiently is looked up by name and token before it is repeated
(Heat refuses a second stack of one name, so no duplicate can appear).

``wait_until_reachable`` polls the stack's status from one shared listing:
CREATE_COMPLETE gives the address and server from the stack's outputs, then
SSH is probed exactly as for plain servers; CREATE_FAILED is a
``ProvisionError`` with the stack's reason and its failing resource's; a stack
still in progress after ``boot_timeout`` is deleted and reported.

``destroy`` deletes the stack, and with it everything it made (port, floating
IP, security group). ``list_instances`` lists stacks by tag, so reconciliation,
untracked cleanup and ``DELETE /instance`` work as for servers; it also lists our
tagged plain servers (from before a switch nova -> heat), which ``get_instance`` and
``destroy`` handle as the nova backend does, so a switch leaks nothing.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime

from scheduler_server.pipelines.backend_errors import BackendConfigError, ProvisionError
from scheduler_server.pipelines.clouds.backend import InstanceInfo
from scheduler_server.pipelines.clouds.openstack import heat
from scheduler_server.pipelines.clouds.openstack.backend import OpenStackBackend
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError

log = logging.getLogger(__name__)

NO_HEAT = (
    "pipelines.openstack.provisioning is heat, but the cloud's catalogue has no orchestration service "
    "(Heat): set provisioning: nova, or ask the cloud's operators for Heat"
)


def _template_key(os) -> tuple:
    """What the template and its check depend on."""
    return (
        os.heat_template_file,
        json.dumps(os.heat_parameters, sort_keys=True),
        frozenset(heat.supplied(os)),
        os.heat_create_security_group,
    )


class HeatBackend(OpenStackBackend):
    def __init__(self, settings, *, scheduler_id, data_dir):
        super().__init__(settings, scheduler_id=scheduler_id, data_dir=data_dir)
        self._template: tuple[tuple, heat.StackTemplate] | None = None
        self.template  # noqa: B018 - a bad template or parameter is a config error at start
        self._stacks = heat.StackBoard(self.connection, self.os.api_retries, scheduler_id)
        self._server_ids: dict[str, str] = {}  # stack id -> its server's id (for the job tag)
        self._has_heat: bool | None = None
        if self.os.security_group and self.os.heat_create_security_group:
            log.warning(
                "openstack: security_group %r and heat_create_security_group are both set: the bundled "
                "template gives each stack's port only the stack's own group; security_group is not used",
                self.os.security_group,
            )

    @property
    def template(self) -> heat.StackTemplate:
        """The template, read again when PUT /config changed the settings it depends on."""
        os = self.os
        key = _template_key(os)
        with self._lock:
            if self._template is None or self._template[0] != key:
                self._template = (key, heat.load_template(os))
            return self._template[1]

    def check_settings(self, settings) -> None:
        """PUT /config: the start check of the template (a configured setting it has no parameter for...)."""
        os = settings.openstack
        if _template_key(os) != _template_key(self.os):
            heat.load_template(os)

    def _check_heat(self) -> None:
        """A BackendConfigError with one clear reason on a cloud whose catalogue has no Heat."""
        if self._has_heat is None:
            conn = self.connection()

            def in_catalogue() -> bool:
                conn.session.get_token()  # has_service says False for a cloud it cannot reach: ask first
                return conn.has_service("orchestration")

            self._has_heat = bool(self._call("look up orchestration service", in_catalogue))
        if not self._has_heat:
            raise BackendConfigError(NO_HEAT)

    def _warm_up(self) -> None:
        super()._warm_up()
        try:
            self._check_heat()
        except (CloudAPIError, BackendConfigError) as exc:
            log.error("openstack: %s", exc)

    def _stack_info(self, stack) -> InstanceInfo:
        return heat.instance_info(stack, self.os.ssh_port, self.settings.ssh_user, self.scheduler_id)

    # --- provision ----------------------------------------------------------------------

    def provision(self, name: str) -> InstanceInfo:
        try:
            self._check_heat()
            wanted = self.resolved()
            request = secrets.token_hex(8)
            attrs = heat.create_attrs(self.template, self.os, wanted, name, self.scheduler_id, request)
        except (CloudAPIError, BackendConfigError) as exc:
            raise ProvisionError(str(exc)) from None
        stack = self._create(
            f"create stack {name}",
            name,
            lambda conn: conn.orchestration.create_stack(**attrs),
            lambda: self._find_created(name, request),
        )
        log.info("openstack: created stack %s (%s)", name, stack.id)
        return InstanceInfo(
            id=stack.id,
            name=name,
            state="building",
            port=self.os.ssh_port,
            user=self.settings.ssh_user,
            created_at=datetime.now(UTC),
            extra={"request": request, "stack": True},
        )

    def _find_created(self, name: str, request: str):
        orchestration = self.connection().orchestration
        wanted = heat.request_tag(request)
        for stack in orchestration.stacks(name=name):
            if stack.name == name and wanted in heat.tags_of(stack):
                log.info("openstack: stack %s was created despite the error; using it", name)
                return stack
        return None

    # --- reach ------------------------------------------------------------------------

    def wait_until_reachable(self, instance: InstanceInfo) -> InstanceInfo:
        try:
            stack = self._wait_complete(instance)
            found = heat.outputs(stack)
            address = found.get("address")
            if not address:
                raise ProvisionError(f"stack {instance.name} is CREATE_COMPLETE but its output 'address' is empty")
        finally:
            self._free_slot(instance.id)
        if found.get("server_id"):
            instance.extra["server_id"] = found["server_id"]
            with self._lock:
                self._server_ids[instance.id] = found["server_id"]
        return self._reach.reached(instance, str(address))

    def _wait_complete(self, instance: InstanceInfo):
        started = instance.created_at.timestamp() if instance.created_at else time.time()
        while True:
            try:
                stack = self._stacks.get(instance.id, max_age=self.os.status_poll_interval)
                status = (getattr(stack, "status", None) or "").upper()
                if status == "CREATE_COMPLETE":
                    stack = self._stacks.fetch(instance.id, instance.name)  # a listing has no outputs
                elif status.endswith("_FAILED") or status.startswith("ROLLBACK"):  # the events say why
                    orchestration = self.connection().orchestration
                    raise ProvisionError(heat.failure(orchestration, stack, instance.name, self.os.api_retries))
            except CloudAPIError as exc:
                raise ProvisionError(str(exc)) from None
            if stack is None:
                raise ProvisionError(f"stack {instance.name} disappeared while being created")
            if status == "CREATE_COMPLETE":
                return stack
            if status != "CREATE_IN_PROGRESS":
                raise ProvisionError(f"stack {instance.name} went to {status}: {stack.status_reason or 'no reason'}")
            waited = time.time() - started
            if waited > self.os.boot_timeout:
                self._delete_stack(instance, why="timed out")
                raise ProvisionError(
                    f"stack {instance.name} still CREATE_IN_PROGRESS after {waited:.0f} s "
                    f"(boot_timeout {self.os.boot_timeout:g} s); deleted"
                )
            time.sleep(min(self.os.status_poll_interval, max(0.05, self.os.boot_timeout - waited)))

    # --- release ----------------------------------------------------------------------

    def _delete_stack(self, instance: InstanceInfo, why: str = "") -> None:
        try:
            self._call(
                f"delete stack {instance.name}",
                lambda: heat.delete(self.connection().orchestration, instance.id, instance.name),
            )
        except CloudAPIError as exc:
            if exc.status == 409 and self._being_deleted(instance.id):
                return  # a delete asked for before (a timed-out stack, then the pool's destroy)
            if why:  # tagged: reconciliation deletes it later
                log.warning("openstack: could not delete stack %s (%s): %s", instance.name, why, exc)
                return
            raise ProvisionError(f"cannot delete stack {instance.name}: {exc}") from None
        log.info("openstack: deleted stack %s (%s)%s", instance.name, instance.id, f": {why}" if why else "")

    def _being_deleted(self, stack_id: str) -> bool:
        try:
            stack = self._stacks.fetch(stack_id)
        except CloudAPIError:
            return False
        return stack is None or (stack.status or "").upper() in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE")

    def destroy(self, instance: InstanceInfo) -> None:
        if not instance.extra.get("stack"):  # a plain server of ours, made before provisioning became heat
            super().destroy(instance)
            return
        self._let_go(instance)
        with self._lock:
            self._server_ids.pop(instance.id, None)
        self._delete_stack(instance)

    # --- inventory --------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceInfo | None:
        stack = self._stacks.fetch(instance_id)
        if stack is None:  # or a plain server of ours from before provisioning became heat
            return super().get_instance(instance_id)
        return self._stack_info(stack)

    def _tag_job(self, stack_id: str, job: str) -> None:
        with self._lock:
            server_id = self._server_ids.get(stack_id)
        if server_id:  # unknown after a restart: the tag is only informative
            super()._tag_job(server_id, job)

    def list_instances(self, *, include_untagged: bool = False) -> list[InstanceInfo]:
        query = {} if include_untagged else {"tags": [heat.tag(self.scheduler_id)]}  # a list: the SDK joins it
        # The proxy inside the call: reaching it may be a request (token, catalogue), retried and classified.
        listed = self._call("list stacks", lambda: list(self.connection().orchestration.stacks(**query)))
        found = self._listed([self._stack_info(stack) for stack in listed], include_untagged)
        # Our tagged plain servers, made while provisioning was nova: reconciliation deletes them.
        # (A stack's server carries STACK_OF_KEY, not the tag: it is not listed twice.)
        found += [i for i in super().list_instances() if i.tagged]
        return found
