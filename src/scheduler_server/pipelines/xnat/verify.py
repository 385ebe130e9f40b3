"""Verified submissions: for a pipeline naming a host of ``xnat.servers``, ask that XNAT before queuing anything.

Per submission request, the items are grouped by server and credentials; each group gets one alias token
(``tokens/issue`` with the user's password, or the single-sign-on user's own alias and secret, checked with
``tokens/validate``), then each item's project, subject and session are looked up with that token and the
session's type checked against the server's ``session_types``. An item that fails gets a 400 naming its field
in XNAT's terms; XNAT unreachable (a connection refused, a timeout, a 5xx, a redirect) refuses the whole request
with a 503 and its reason, and the tokens issued for it are invalidated: nothing is queued, since the password
cannot be kept to check later. The password is used for the one ``issue`` call and never stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from scheduler_server.pipelines.errors import InvalidInput
from scheduler_server.pipelines.models import CANCELLED, FAILED, Pipeline
from scheduler_server.pipelines.xnat import workflows
from scheduler_server.pipelines.xnat.client import AliasToken, XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatNotFound, XnatUnavailable
from scheduler_server.pipelines.xnat.hosts import listed, match
from scheduler_server.pipelines.xnat.settings import XnatServer, XnatSettings
from scheduler_server.pipelines.xnat.tokens import Tokens, refused_retry

log = logging.getLogger(__name__)

RETRYABLE = (FAILED, CANCELLED)  # as PipelineService.retry


@dataclass
class Item:
    """One submitted pipeline on a listed server, built and waiting for XNAT's word."""

    index: int
    pipeline: Pipeline
    request: Any  # XnatRequest
    server: XnatServer
    error: InvalidInput | None = None
    warnings: list[str] = field(default_factory=list)
    experiment: dict | None = None  # XNAT's row of the session, once found (workflows.py)
    auth: tuple[str, str] | None = None  # the token its Queued workflow entry was written with (dismiss)


@dataclass
class _Group:
    server: XnatServer
    login: tuple[str, str]  # (user, pwd) or (alias, secret)
    sso: bool
    items: list[Item] = field(default_factory=list)


def server_for(settings: XnatSettings | None, request: Any) -> XnatServer | None:
    """The listed server an XNAT request names; None for the seed's behaviour (nothing listed).
    InvalidInput naming ``host`` when servers are listed and this is not one; ``secret`` when an alias
    token is given for a host the scheduler does not talk to."""
    if getattr(request, "type", None) != "xnat":
        return None
    server = match(settings, request.host)
    if server is None and listed(settings):
        urls = ", ".join(s.url for s in settings.servers)
        raise InvalidInput(f"host: {request.host!r} is not an XNAT server this scheduler may contact ({urls})", "host")
    if server is None and request.token_secret() is not None:
        raise InvalidInput(
            "secret: alias and secret are taken for hosts in xnat.servers only; give user and pwd", "secret"
        )
    return server


class Verifier:
    def __init__(self, tokens: Tokens, settings: Callable[[], Any]):
        """``settings``: the current pipeline settings (for ``pipeline_timeout``)."""
        self.tokens = tokens
        self._settings = settings

    def verify(self, items: list[Item]) -> None:
        """Check every item with its XNAT; set each good one's token (``token_id``, ``secret``, the spec's
        ``xnat_token``), each bad one's ``error``. XnatUnavailable if a server cannot be asked; on that or any
        other exception the tokens issued for this call are invalidated first."""
        issued: list[tuple[XnatServer, AliasToken]] = []
        try:
            for group in _groups(items):
                self._verify_group(group, issued)
        except BaseException:  # any failure: no entry stays Queued, no token issued for it stays live at XNAT
            dismiss(items)
            for server, token in issued:
                _forget(server, token)
            raise

    def _verify_group(self, group: _Group, issued: list) -> None:
        with XnatClient(group.server) as client:
            try:
                token, user = _token_for(client, group)
            except XnatAuthError as exc:
                for item in group.items:
                    item.error = exc
                return
            if not group.sso:
                issued.append((group.server, token))
            for item in group.items:
                item.error = _check_session(client, group.server, item, token)
                if item.error is None:  # the Queued workflow entry, with xnat.workflows (15W)
                    item.auth = (token.alias, token.secret)
                    item.error = workflows.at_submit(self.tokens.settings, client, item, item.auth, self.tokens.store)
        good = [item for item in group.items if item.error is None]
        if not good:
            if not group.sso:
                issued.remove((group.server, token))
                _forget(group.server, token)
            return
        token_id, secret = self.tokens.record(group.server.url, token, user, not group.sso, len(good))
        for item in good:
            self._attach(item, token, token_id, secret, user)

    def _attach(self, item: Item, token: AliasToken, token_id: int, secret: str, user: str | None) -> None:
        pipeline = item.pipeline
        pipeline.token_id, pipeline.secret = token_id, secret
        spec = dict(pipeline.spec, xnat_token=True, host=item.server.url)
        if not spec.get("user_is_pwd"):
            spec["user"] = user
        pipeline.spec = spec
        warning = outlives(pipeline.timeout or self._settings().pipeline_timeout, token, self.tokens.settings)
        if warning:
            item.warnings.append(warning)


def _groups(items: list[Item]) -> list[_Group]:
    groups: dict[tuple, _Group] = {}
    for item in items:
        request = item.request
        sso = request.token_secret() is not None
        login = (request.alias, request.token_secret()) if sso else (request.user, request.secret())
        key = (item.server.url, sso, login)
        groups.setdefault(key, _Group(item.server, login, sso)).items.append(item)
    return list(groups.values())


def _token_for(client: XnatClient, group: _Group) -> tuple[AliasToken, str | None]:
    name, secret = group.login
    if not group.sso:
        return client.issue_token(name, secret), name
    user = client.token_user(name, secret)
    if user is None:
        raise XnatAuthError(
            f"{client.base} does not take this alias and secret (unknown, expired or invalidated)", "secret"
        )
    return AliasToken(name, secret, client.token_expiry(name, secret)), user


def _check_session(client: XnatClient, server: XnatServer, item: Item, token: AliasToken) -> InvalidInput | None:
    request = item.request
    try:
        found = client.experiment(request.project, request.subject, request.session, (token.alias, token.secret))
    except (XnatNotFound, XnatAuthError) as exc:
        return exc
    kind = found.get("xsiType", "")
    item.experiment = found
    if kind not in server.session_types:
        allowed = ", ".join(server.session_types)
        return XnatNotFound(
            "session", f"experiment {request.session!r} is a {kind or 'thing of no type'}, not a session ({allowed})"
        )
    return None


def dismiss(items: list[Item]) -> None:
    """The submission creates no pipeline for these items after all (a later item's 503, the insert failed):
    each Queued workflow entry written for one is marked Failed (Dismissed), so none stays Queued (best effort)."""
    for item in items:
        if item.auth is None or item.pipeline.workflow_status != workflows.STATUS[workflows.QUEUED][0]:
            continue
        try:
            with XnatClient(item.server) as client:
                workflows.dismiss(client, item.pipeline, item.auth)
        except (XnatUnavailable, XnatAuthError, XnatNotFound) as exc:
            log.warning("could not dismiss the Queued XNAT workflow entry of a pipeline not created: %s", exc)


@contextmanager
def dismissing(items: list[Item]) -> Iterator[None]:
    """Dismiss the items' Queued entries (``dismiss``) if the block raises, then raise on."""
    try:
        yield
    except BaseException:
        dismiss(items)
        raise


def _forget(server: XnatServer, token: AliasToken) -> None:
    """Invalidate a token issued for a submission that queues nothing with it (best effort)."""
    try:
        with XnatClient(server) as client:
            client.invalidate_token(token.alias, token.secret)
    except XnatUnavailable as exc:
        log.warning("could not invalidate an unused XNAT alias token on %s: %s", server.url, exc.reason)


def outlives(timeout: float | None, token: AliasToken, settings: XnatSettings | None) -> str | None:
    """A warning when a pipeline may run longer than its token lives once it starts (tokens are renewed only
    while pipelines wait: a running script keeps the token it started with)."""
    if token.expires_at is None:
        return None
    renew_before = settings.token_renew_before if settings is not None else 6 * 3600.0
    sure = max(0.0, min(token.expires_at - time.time(), renew_before))
    if timeout is not None and timeout <= sure:
        return None
    limit = "has no timeout" if timeout is None else f"may run {timeout:g} s"
    return (
        f"timeout: the pipeline {limit}, longer than its XNAT alias token is sure to live once it starts"
        f" ({sure:.0f} s: tokens are renewed only while queued); XNAT may refuse the script's later requests"
    )


@dataclass(frozen=True)
class _Login:
    """What verifying needs of a request, for a retry's fresh credentials."""

    host: str
    project: str
    subject: str
    session: str
    user: str | None
    alias: str | None
    pwd: str | None
    sso_secret: str | None
    type: str = "xnat"

    def secret(self) -> str | None:
        return self.pwd

    def token_secret(self) -> str | None:
        return self.sso_secret


def _login(pipeline: Pipeline, credentials: Any) -> _Login:
    """The retry body's credentials, checked: exactly {user, pwd} or {alias, secret}, strings."""
    if not isinstance(credentials, dict) or set(credentials) not in ({"user", "pwd"}, {"alias", "secret"}):
        got = ", ".join(sorted(credentials)) if isinstance(credentials, dict) else type(credentials).__name__
        raise InvalidInput(f"pwd: a retry takes user and pwd, or alias and secret (got {got})", "pwd")
    for name, value in credentials.items():
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise InvalidInput(f"{name}: must be a non-empty string of at most 4096 characters", name)
    spec = pipeline.spec
    return _Login(
        spec["host"],
        spec["project"],
        spec["subject"],
        spec["session"],
        credentials.get("user"),
        credentials.get("alias"),
        credentials.get("pwd"),
        credentials.get("secret"),
    )


def fresh_token(verifier: Verifier, pipeline: Pipeline, credentials: Any, settings: XnatSettings | None):
    """For a retry: None to keep the pipeline's token (it still lives); a checked new one (``token_id``, ``secret``,
    ``spec``) from ``credentials``; InvalidInput naming pwd when the old one is gone and none were given."""
    credentials = credentials or None  # an empty body or {} asks for nothing
    if pipeline.token_id is None:
        if credentials is not None:
            raise InvalidInput(f"pwd: pipeline {pipeline.id} uses no XNAT alias token; retry it without a body", "pwd")
        return None
    if pipeline.status not in RETRYABLE:
        return None  # the retry itself refuses it (409, a succeeded one too), before anything is issued
    problem = verifier.tokens.problem(pipeline.token_id)
    if credentials is None:
        if problem:
            raise refused_retry(pipeline.id, problem)
        return None
    server = match(settings, pipeline.spec.get("host", ""))
    if server is None:
        raise InvalidInput(f"host: {pipeline.spec.get('host')!r} is no longer in xnat.servers", "host")
    copy = Pipeline(
        id=pipeline.id,
        spec=dict(pipeline.spec),
        timeout=pipeline.timeout,
        script=pipeline.script,
        created_at=time.time(),  # a new workflow entry (if it kept none) is launched now
    )
    item = Item(
        0,
        copy,
        _login(pipeline, credentials),
        server,
    )
    verifier.verify([item])
    if item.error is not None:
        raise item.error
    return item.pipeline
