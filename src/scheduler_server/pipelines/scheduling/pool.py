"""Instance lifecycle: create, boot, hand out, take back, reuse up to VIRTUAL_SERVER_TTL, expire, delete.

The database is the truth about instances; the backend is only asked to act.
Rows move ``booting -> idle <-> busy -> deleting -> deleted`` (``broken`` when
booting failed). The methods that call the backend block and run on the
dispatcher's worker threads; the bookkeeping ones are quick DB updates.
"""

from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy import select

from scheduler_server import metrics
from scheduler_server.pipelines.backend_errors import BackendError, NoCapacity
from scheduler_server.pipelines.clouds.backend import CloudBackend, InstanceInfo
from scheduler_server.pipelines.models import INSTANCE_MOVES, LIVE_INSTANCE_STATES, Instance, InstanceState
from scheduler_server.pipelines.storage.lease import check_side_effect
from scheduler_server.pipelines.storage.store import Store

log = logging.getLogger(__name__)


class Pool:
    def __init__(self, store: Store, backend: CloudBackend, settings_source):
        self.store = store
        self.backend = backend
        self._settings = settings_source  # callable: the current PipelineSettings (they can be reloaded)
        backend.awaited = self._awaited

    def _awaited(self, instance_id: str) -> bool:
        try:
            instance = self.get(instance_id)
        except Exception:  # noqa: BLE001 - only an ordering hint: a DB hiccup must not fail a boot
            log.warning("could not tell whether a pipeline waits for instance %s", instance_id, exc_info=True)
            return True
        return instance is not None and instance.pipeline_id is not None

    @property
    def settings(self):
        return self._settings()

    def limit(self) -> int:
        capacity = self.backend.capacity()
        limit = self.settings.instance_limit
        return min(limit, capacity) if capacity is not None else limit

    # --- queries --------------------------------------------------------------------

    def live(self) -> list[Instance]:
        with self.store.read() as session:
            query = select(Instance).where(Instance.state.in_(LIVE_INSTANCE_STATES)).order_by(Instance.created_at)
            return list(session.scalars(query))

    def get(self, instance_id: str) -> Instance | None:
        with self.store.read() as session:
            return session.get(Instance, instance_id)

    def info(self, instance: Instance) -> InstanceInfo:
        if not instance.info:
            raise BackendError(f"instance {instance.id} was never provisioned")
        return InstanceInfo.from_dict(instance.info)

    def executor(self, instance: Instance):
        return self.backend.executor(self.info(instance))

    # --- bookkeeping (quick) --------------------------------------------------------

    def create(self, session) -> Instance:
        name = f"pipeline-{self.backend.scheduler_id[:6]}-{uuid.uuid4().hex[:8]}"
        instance = Instance(
            id=name,
            backend=self.backend.name,
            state=InstanceState.BOOTING,
            uses=0,
            created_at=time.time(),
            updated_at=time.time(),
        )
        session.add(instance)
        return instance

    def release(self, session, instance_id: str | None, *, healthy: bool = True) -> bool:
        """The pipeline on it ended. Returns True if the instance must now be deleted."""
        instance = session.get(Instance, instance_id) if instance_id else None
        if instance is None or instance.state not in LIVE_INSTANCE_STATES:
            return False
        instance.pipeline_id = None
        instance.updated_at = time.time()
        if instance.state == InstanceState.DELETING:
            return True
        if not healthy or instance.uses >= self.settings.virtual_server_ttl:
            instance.move(InstanceState.DELETING)
            return True
        if instance.state == InstanceState.BUSY:
            instance.move(InstanceState.IDLE)
            instance.idle_since = time.time()
        return False

    def mark_deleting(self, instance_id: str) -> bool:
        with self.store.write() as session:
            instance = session.get(Instance, instance_id)
            if instance is None or instance.state not in LIVE_INSTANCE_STATES:
                return False
            instance.move(InstanceState.DELETING)
            instance.updated_at = time.time()
            return True

    def expire_idle(self, now: float) -> list[str]:
        """Idle instances past IDLE_TIMEOUT become ``deleting``; their ids are returned."""
        timeout = self.settings.idle_timeout
        expired = []
        with self.store.write() as session:
            self.store.lock_assignments(session)  # not one that is being handed a pipeline
            query = select(Instance).where(Instance.state == InstanceState.IDLE, Instance.pipeline_id.is_(None))
            for instance in session.scalars(query):
                if (instance.idle_since or instance.ready_at or 0) + timeout <= now:
                    instance.move(InstanceState.DELETING)
                    instance.updated_at = now
                    expired.append(instance.id)
        return expired

    # --- backend work (blocking, on worker threads) ---------------------------------

    def boot(self, instance_id: str) -> int | None:
        """Provision (unless done before a restart) and wait until reachable; then idle, or busy if
        assigned. Returns the id of the pipeline waiting for it, if one is (it can start now)."""
        instance = self.get(instance_id)
        if instance is None or instance.state != InstanceState.BOOTING:
            return None
        try:
            if instance.info:
                info = InstanceInfo.from_dict(instance.info)
            else:
                check_side_effect()  # a leader whose lease lapsed provisions nothing
                info = self.backend.provision(instance.id)
                self._save_provisioned(instance_id, info)
            info = self.backend.wait_until_reachable(info)
        except NoCapacity as exc:
            log.info("no capacity for instance %s: %s", instance_id, exc)
            with self.store.write() as session:
                row = session.get(Instance, instance_id)
                if row is not None:
                    row.move(InstanceState.DELETED)
                    row.error = f"no capacity: {exc}"
            return None
        except BackendError as exc:
            log.warning("instance %s failed to come up: %s", instance_id, exc)
            self.fail_boot(instance_id, str(exc))
            return None
        now = time.time()
        with self.store.write() as session:
            self.store.lock_assignments(session)  # a pipeline may be put on it right now
            row = session.get(Instance, instance_id)
            if row is None or row.state != InstanceState.BOOTING:
                return None
            row.info = info.to_dict()
            row.ready_at = now
            row.updated_at = now
            row.move(InstanceState.BUSY if row.pipeline_id is not None else InstanceState.IDLE)
            row.idle_since = None if row.pipeline_id is not None else now
            waiting = row.pipeline_id
        log.info("instance %s ready (%s)", instance_id, info.address or info.id)
        metrics.instance_booted(self.backend.name, now - instance.created_at)
        return waiting

    def fail_boot(self, instance_id: str, error: str) -> None:
        """A boot that failed: the row broken (its pipeline, if any, is retried elsewhere), whatever it made deleted."""
        # Deleted meanwhile (DELETE /api/v1/instances) or taken over by another dispatcher: not ours to mark.
        if self._save(instance_id, state=InstanceState.BROKEN, error=error):
            self.destroy(instance_id, final_state=InstanceState.BROKEN)

    def _save_provisioned(self, instance_id: str, info: InstanceInfo) -> None:
        """Record what provision() made. If that write fails, nothing would ever wait for, use or
        delete the new instance (and the backend would keep its provisioning slot): undo it."""
        try:
            self._save(instance_id, info=info.to_dict())
        except Exception:
            log.warning("instance %s: could not record it after provisioning; deleting it", instance_id)
            try:
                self.backend.destroy(info)
            except BackendError as exc:  # tagged but untracked: the periodic sweep deletes it
                log.warning("instance %s: deleting it failed: %s", instance_id, exc)
            try:
                self._save(instance_id, state=InstanceState.BROKEN, error="could not record the provisioned instance")
            except Exception:  # noqa: BLE001 - the database is down; the row is rebooted after a restart
                log.debug("could not mark instance %s broken", instance_id, exc_info=True)
            raise

    def destroy(self, instance_id: str, final_state: InstanceState = InstanceState.DELETED) -> None:
        instance = self.get(instance_id)
        if instance is None or instance.state == InstanceState.DELETED:
            return
        if instance.info:
            try:
                check_side_effect()
                self.backend.destroy(InstanceInfo.from_dict(instance.info))
            except BackendError as exc:
                log.warning("deleting instance %s failed, will retry: %s", instance_id, exc)
                return
        self._save(instance_id, state=final_state)
        log.info("instance %s deleted", instance_id)

    def _save(self, instance_id: str, state: InstanceState | None = None, **values) -> bool:
        """Write ``values`` (and move to ``state``); False, writing nothing, when the row is gone or has
        meanwhile reached a state from which ``state`` is not a move (another actor got there first)."""
        with self.store.write() as session:
            row = session.get(Instance, instance_id)
            if row is None:
                return False
            if state is not None and state != row.state and state not in INSTANCE_MOVES[row.state]:
                log.info("instance %s is %s already; not marking it %s", instance_id, row.state.value, state.value)
                return False
            if state is not None:
                row.move(state)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = time.time()
            return True

    # --- after a restart ------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """Give the backend back what we track and delete tagged instances we lost track of.

        An instance whose provision() was under way when the service died has no info:
        whatever that call made is deleted here as untracked, and the row stays
        ``booting`` so the dispatcher provisions it afresh.
        """
        live = self.live()
        self.backend.adopt([InstanceInfo.from_dict(i.info) for i in live if i.info])
        tracked = {InstanceInfo.from_dict(i.info).id for i in live if i.info}
        leaked = []
        try:
            for info in self.backend.list_instances():
                if info.id not in tracked:
                    log.warning("deleting instance %s: tagged as ours but not tracked (leaked by a crash)", info.id)
                    check_side_effect()
                    self.backend.destroy(info)
                    leaked.append(info.id)
        except BackendError as exc:
            log.warning("could not list the backend's instances to reconcile: %s", exc)
        return leaked

    def sweep(self) -> list[str]:
        """Periodic reconciliation: delete tagged instances that no live row knows, by backend id or
        by name (a row exists before its provision call, so boots under way are safe)."""
        leaked = []
        try:
            # Listed before the rows are read: a row exists before its server is created, so every
            # server in this listing that is being booted has a row in the read that follows.
            listed = self.backend.list_instances()
            live = self.live()
            known = {i.id for i in live} | {i.info["id"] for i in live if i.info}
            for info in listed:
                if info.state != "gone" and info.id not in known and info.name not in known:
                    check_side_effect()  # a thawed leader's listing is stale
                    log.warning("deleting instance %s (%s): tagged as ours but not tracked", info.id, info.name)
                    self.backend.destroy(info)
                    leaked.append(info.id)
        except BackendError as exc:
            log.warning("periodic reconciliation failed: %s", exc)
        return leaked

    def untracked(self, include_untagged: bool) -> list[InstanceInfo]:
        """Backend instances this scheduler does not track (the seed's DELETE /instance). Tracked ones,
        idle spares included, are left alone: they end by IDLE_TIMEOUT or ``DELETE /api/v1/instances/{id}``."""
        listed = self.backend.list_instances(include_untagged=include_untagged)  # before the rows: see sweep()
        live = self.live()
        tracked = {i.id for i in live} | {i.info["id"] for i in live if i.info}
        return [i for i in listed if i.id not in tracked and i.name not in tracked]

    def delete_backend_instance(self, info: InstanceInfo) -> None:
        """Delete one backend instance and mark our row for it, if any, deleted."""
        self.backend.destroy(info)
        with self.store.write() as session:
            for row in session.scalars(select(Instance).where(Instance.state.in_(LIVE_INSTANCE_STATES))):
                if row.info and row.info.get("id") == info.id:
                    row.move(InstanceState.DELETED)
                    row.updated_at = time.time()
