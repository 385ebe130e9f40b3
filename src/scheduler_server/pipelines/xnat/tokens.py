"""The alias tokens' lifecycle: one token per submission (or launch), shared by its pipelines, renewed while they
wait, invalidated once the last of them has ended.

- **Issued** at submit (``verify.py``) from the user's password, which is then forgotten; or handed over by a
  single-sign-on user as alias and secret (``issued`` False: the scheduler never invalidates a token it did not
  issue). One row of ``xnat_tokens`` per token; each pipeline names its row in ``token_id`` and keeps the token's
  secret (encrypted) in ``pipelines.secret``, which is what masks it in the logs.
- **Renewed** while any of its pipelines is queued and it expires within ``xnat.token_renew_before``. XNAT has no
  renewal in place (AliasTokenRestlet: ``issue`` makes a new token for whoever asks, a token's own credentials
  included), so a new token is issued with the old one's alias and secret, recorded as a new row, and the queued
  pipelines move to it (``renewed_by`` links the two). Pipelines already running keep the old token, which stays
  valid until they end: its script holds it in its environment.
- **Released** when none of its pipelines is still to end (and ``hold(token_id)`` does not keep it: with
  ``xnat.workflows``, 15W's ``workflows.py`` sets ``Tokens.hold`` to say whether a pipeline's last workflow
  update is still to be written): invalidated at XNAT if the scheduler issued it, and ``released_at`` set. A row
  with no pipeline at all (a submission that did not commit) is released after ``ORPHAN_GRACE``.
- **Retry** of a pipeline whose token was released or has expired: refused (400 naming ``pwd``) unless the retry
  brings fresh credentials, which get a new token (``Tokens.replace``).

The dispatcher runs ``sweep`` every ``SWEEP_EVERY`` seconds on a worker thread; every decision is read from the
database, so a restart continues where the last process stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update

from scheduler_server.pipelines.errors import InvalidInput
from scheduler_server.pipelines.models import FINAL_STATES, QUEUED, Pipeline, XnatToken
from scheduler_server.pipelines.secrets import SecretBox
from scheduler_server.pipelines.storage.lease import check_side_effect
from scheduler_server.pipelines.storage.store import Store
from scheduler_server.pipelines.xnat.client import AliasToken, XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatUnavailable
from scheduler_server.pipelines.xnat.hosts import listed, match
from scheduler_server.pipelines.xnat.settings import XnatSettings

log = logging.getLogger(__name__)

SWEEP_EVERY = 2.0
#: A token row no pipeline names yet is its submission's, still being written; after this it is let go.
ORPHAN_GRACE = 120.0
FRESH_CREDENTIALS = "give fresh credentials (user and pwd, or alias and secret) to retry it"


class TokenGone(Exception):
    """A pipeline's token was released or has expired: it cannot start without fresh credentials."""


@dataclass(frozen=True)
class Usage:
    total: int = 0  # pipelines naming the token
    live: int = 0  # of them, not yet ended
    queued: int = 0


class Tokens:
    def __init__(self, store: Store, secrets: SecretBox, settings: Callable[[], XnatSettings | None]):
        """``settings``: the current ``xnat`` section (None: nothing configured)."""
        self.store = store
        self.secrets = secrets
        self._settings = settings
        #: Keeps a token whose pipelines all ended (True: not yet, e.g. a workflow update is still to be written).
        self.hold: Callable[[int], bool] = lambda token_id: False
        self._complained: set[int] = set()

    @property
    def settings(self) -> XnatSettings | None:
        return self._settings()

    def listed(self) -> bool:
        """Any server configured (otherwise no token is made, and none can be contacted)."""
        return listed(self.settings)

    # --- submit ---------------------------------------------------------------------

    def record(self, host: str, token: AliasToken, user: str | None, issued: bool, pipelines: int) -> tuple[int, str]:
        """A new row for ``token`` (committed); returns its id and the encrypted secret for the pipelines."""
        secret = self.secrets.encrypt(token.secret)
        row = XnatToken(
            host=host,
            user=user,
            alias=token.alias,
            secret=secret,
            expires_at=token.expires_at,
            pipelines=pipelines,
            issued=issued,
            created_at=time.time(),
        )
        with self.store.write() as session:
            session.add(row)
            session.flush()
            return row.id, secret

    def get(self, token_id: int) -> XnatToken | None:
        with self.store.read() as session:
            return session.get(XnatToken, token_id)

    def problem(self, token_id: int | None, now: float | None = None) -> str | None:
        """Why a pipeline with this token cannot be retried as it is (None: it can)."""
        if token_id is None:
            return None
        row = self.get(token_id)
        now = time.time() if now is None else now
        if row is None or row.released_at is not None:
            return f"its XNAT alias token was released when its last pipeline ended; {FRESH_CREDENTIALS}"
        if row.expires_at is not None and row.expires_at <= now:
            return f"its XNAT alias token has expired; {FRESH_CREDENTIALS}"
        return None

    # --- start ----------------------------------------------------------------------

    def credentials(self, pipeline_id: int) -> tuple[str, str]:
        """(alias, secret) of the pipeline's token as stored now; TokenGone if it cannot be used."""
        with self.store.read() as session:
            token_id = session.scalar(select(Pipeline.token_id).where(Pipeline.id == pipeline_id))
            row = session.get(XnatToken, token_id) if token_id is not None else None
        if row is None or row.released_at is not None:
            raise TokenGone(f"its XNAT alias token is gone (released); {FRESH_CREDENTIALS}")
        if row.expires_at is not None and row.expires_at <= time.time():
            raise TokenGone(f"its XNAT alias token expired before it could start; {FRESH_CREDENTIALS}")
        return row.alias, self.secrets.decrypt(row.secret)

    # --- the sweep ------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> None:
        """Renew what is about to expire while queued, release what no pipeline needs any more."""
        now = time.time() if now is None else now
        with self.store.read() as session:
            rows = list(session.scalars(select(XnatToken).where(XnatToken.released_at.is_(None))))
            usage = _usage(session, [row.id for row in rows])
        renew_before = self.settings.token_renew_before if self.settings is not None else 6 * 3600.0
        for row in rows:
            use = usage.get(row.id, Usage())
            try:
                if use.live == 0 and (use.total or now - row.created_at > ORPHAN_GRACE) and not self.hold(row.id):
                    self.release(row, now)
                elif use.queued and row.expires_at is not None and row.expires_at - now < renew_before:
                    self.renew(row, now)
            except XnatUnavailable as exc:
                if row.id not in self._complained:
                    log.warning("XNAT alias token %s: %s; trying again", row.id, exc.reason)
                    self._complained.add(row.id)

    def release(self, row: XnatToken, now: float) -> None:
        """Invalidate (if the scheduler issued it and it may still live) and mark released."""
        expired = row.expires_at is not None and row.expires_at <= now
        if row.issued and not expired:
            with self._client(row.host) as client:
                if client is not None:
                    client.invalidate_token(row.alias, self.secrets.decrypt(row.secret))
        with self.store.write() as session:
            session.execute(update(XnatToken).where(XnatToken.id == row.id).values(released_at=now))
        self._complained.discard(row.id)
        log.info("XNAT alias token %s released (%s)", row.id, "invalidated" if row.issued else "left to its owner")

    def renew(self, row: XnatToken, now: float) -> int | None:
        """Issue a successor with the token's own credentials and move its queued pipelines to it."""
        with self._client(row.host) as client:
            if client is None:
                return None
            try:
                fresh = client.issue_token(row.alias, self.secrets.decrypt(row.secret), field="secret")
            except XnatAuthError as exc:
                if row.id not in self._complained:
                    log.warning("XNAT alias token %s cannot be renewed: %s", row.id, exc.message)
                    self._complained.add(row.id)
                return None
        new_id, secret = self.record(row.host, fresh, row.user, True, 0)
        with self.store.write() as session:
            moved = session.execute(
                update(Pipeline)
                .where(Pipeline.token_id == row.id, Pipeline.status == QUEUED)
                .values(token_id=new_id, secret=secret)
            ).rowcount
            session.execute(update(XnatToken).where(XnatToken.id == new_id).values(pipelines=moved))
            session.execute(update(XnatToken).where(XnatToken.id == row.id).values(renewed_by=new_id))
        log.info("XNAT alias token %s renewed as %s for %d queued pipeline(s)", row.id, new_id, moved)
        return new_id

    def replace(self, pipeline_id: int, token_id: int, secret: str) -> None:
        """Give a pipeline (being retried with fresh credentials) its new token."""
        with self.store.write() as session:
            session.execute(update(Pipeline).where(Pipeline.id == pipeline_id).values(token_id=token_id, secret=secret))

    def _client(self, host: str):
        check_side_effect()  # run as leader (the sweep): nothing sent to XNAT once its lease lapsed
        server = match(self.settings, host)
        if server is None:  # no longer configured: it cannot be contacted
            return _NoClient()
        return XnatClient(server)


class _NoClient:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def _usage(session, token_ids: list[int]) -> dict[int, Usage]:
    if not token_ids:
        return {}
    query = (
        select(Pipeline.token_id, Pipeline.status, func.count())
        .where(Pipeline.token_id.in_(token_ids))
        .group_by(Pipeline.token_id, Pipeline.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for token_id, status, n in session.execute(query):
        counts.setdefault(token_id, {})[status] = n
    return {
        token_id: Usage(
            total=sum(by.values()),
            live=sum(n for s, n in by.items() if s not in FINAL_STATES),
            queued=by.get(QUEUED, 0),
        )
        for token_id, by in counts.items()
    }


def refused_retry(pipeline_id: int, problem: str) -> InvalidInput:
    return InvalidInput(f"pwd: pipeline {pipeline_id} cannot be retried as it is: {problem}", "pwd")
