"""What the simulator remembers while it runs: HTTP sessions, alias tokens, workflows, requests seen; and its faults.

Everything is behind one lock; tests read it through ``XnatSim.state`` (a :class:`State`). Token secrets and
passwords are kept only here, never in the request log.
"""

from __future__ import annotations

import collections
import re
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field

DEFAULT_TOKEN_LIFETIME = 48 * 3600.0  # XNAT's aliasTokenTimeout default: "2 days"
DEFAULT_SESSION_TIMEOUT = 15 * 60.0  # XNAT's sessionTimeout default: 15 minutes idle


@dataclass
class Faults:
    """Switches a test may flip at any time (``sim.faults.fail_500 = "^/data/projects"``).

    - ``slow``: seconds every matching request waits before it is answered (``slow_paths``: a regex, default all)
    - ``fail_500``: a regex; requests whose path matches get XNAT's 500 page
    - ``expire_tokens_after``: seconds after issue at which every alias token counts as expired (as if the site's
      token timeout were set that low: XNAT, too, judges expiry against the current timeout)
    - ``refuse_logins``: every credential check (basic auth with a password or a token) fails with 401;
      requests riding an existing JSESSIONID still pass, as with a directory server that went away
    - ``redirect``: a regex; requests whose path matches get a 302 to ``redirect_to`` (by default the cloud
      metadata address: a client that follows it would leak its credentials there)
    """

    slow: float = 0.0
    slow_paths: str | None = None
    fail_500: str | None = None
    expire_tokens_after: float | None = None
    refuse_logins: bool = False
    redirect: str | None = None
    redirect_to: str = "http://169.254.169.254/latest/meta-data/"

    def delay_for(self, path: str) -> float:
        if self.slow and (self.slow_paths is None or re.search(self.slow_paths, path)):
            return self.slow
        return 0.0

    def fails(self, path: str) -> bool:
        return bool(self.fail_500) and re.search(self.fail_500, path) is not None


@dataclass
class Token:
    id: int
    alias: str
    secret: str
    user: str
    created: float
    enabled: bool = True
    disabled: float | None = None

    def as_json(self, lifetime: float) -> dict:
        """As XNAT's serializer writes an ``AliasToken`` entity (dates as epoch milliseconds)."""
        created_ms = int(self.created * 1000)
        return {
            "id": self.id,
            "alias": self.alias,
            "secret": self.secret,
            "xdatUserId": self.user,
            "singleUse": False,
            "validIPAddresses": [],
            "estimatedExpirationTime": int((self.created + lifetime) * 1000),
            "expired": time.time() > self.created + lifetime,
            "enabled": self.enabled,
            "created": created_ms,
            "timestamp": created_ms,
            "disabled": int((self.disabled or 0) * 1000),
        }


@dataclass
class HttpSession:
    id: str
    user: str
    last_seen: float
    via_token: str | None = None  # the alias, when the session was opened with token credentials


@dataclass
class State:
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, Token] = field(default_factory=dict)  # by alias
    sessions: dict[str, HttpSession] = field(default_factory=dict)
    workflows: list[dict] = field(default_factory=list)  # wrk:workflowData rows, with wrk_workflowData_id
    requests: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20000))
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- tokens -----------------------------------------------------------------------

    def lifetime(self) -> float:
        if self.faults.expire_tokens_after is not None:
            return min(self.token_lifetime, self.faults.expire_tokens_after)
        return self.token_lifetime

    def issue_token(self, user: str) -> Token:
        with self.lock:
            alphabet = string.ascii_letters + string.digits
            token = Token(
                id=len(self.tokens) + 1,
                alias=str(uuid.uuid4()),
                secret="".join(secrets.choice(alphabet) for _ in range(64)),
                user=user,
                created=time.time(),
            )
            self.tokens[token.alias] = token
            return token

    def live_token(self, alias: str) -> Token | None:
        """The enabled, unexpired token with this alias (XNAT finds no other)."""
        with self.lock:
            token = self.tokens.get(alias)
            if token is None or not token.enabled or time.time() > token.created + self.lifetime():
                return None
            return token

    def invalidate(self, token: Token) -> None:
        with self.lock:
            token.enabled = False
            token.disabled = time.time()

    # --- sessions ---------------------------------------------------------------------

    def open_session(self, user: str, via_token: str | None) -> HttpSession:
        with self.lock:
            session = HttpSession(secrets.token_hex(16).upper(), user, time.time(), via_token)
            self.sessions[session.id] = session
            return session

    def session(self, sid: str | None) -> HttpSession | None:
        with self.lock:
            session = self.sessions.get(sid or "")
            if session is None:
                return None
            if time.time() - session.last_seen > self.session_timeout:
                del self.sessions[session.id]
                return None
            session.last_seen = time.time()
            return session

    def end_session(self, sid: str) -> None:
        with self.lock:
            self.sessions.pop(sid, None)

    # --- what tests read --------------------------------------------------------------

    def requests_seen(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """Requests answered so far (method, path, query, status, user, auth), optionally filtered by a path regex."""
        with self.lock:
            rows = list(self.requests)
        return [
            r
            for r in rows
            if (method is None or r["method"] == method) and (path is None or re.search(path, r["path"]))
        ]

    def snapshot(self) -> dict:
        """A JSON-able view without secrets: tokens (alias, user, live), sessions, workflows, request count."""
        with self.lock:
            return {
                "tokens": [
                    {"alias": t.alias, "user": t.user, "live": self.live_token(t.alias) is not None}
                    for t in self.tokens.values()
                ],
                "sessions": [{"user": s.user, "via_token": s.via_token} for s in self.sessions.values()],
                "workflows": [dict(w) for w in self.workflows],
                "requests": len(self.requests),
            }
