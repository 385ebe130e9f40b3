"""A small XNAT REST client over ``requests``, for one configured server.

Every request goes to the server's base URL only: redirects are never followed
(a 3xx is an ``XnatUnavailable`` naming where it pointed), TLS is verified as
configured, and each answer is awaited at most ``timeout`` seconds. Credentials
travel as HTTP basic auth: a user and password, or an alias token's alias and
secret (XNAT takes both alike). No message raised here holds a secret, not even a
URL that does (validate/invalidate name the secret in their path).

The resources used (xnat-web): ``/data/services/tokens/{issue,validate,invalidate}``
(AliasTokenRestlet), ``/data/projects/{p}[/subjects/{s}[/experiments/{e}]]`` and the
project's ``experiments`` listing with ``columns`` and ``xsiType``, ``/data/workflows``
(``wrk:workflowData/<field>`` query parameters) and ``/data/services/workflows/{name}``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatNotFound, XnatUnavailable
from scheduler_server.pipelines.xnat.settings import XnatServer

Auth = tuple[str, str]  # (user or alias, password or secret)
LIST_COLUMNS = "ID,label,subject_label,xsiType,project"
#: An alias token's alias: a UUID, as XNAT's AliasToken.isAliasFormat wants it.
ALIAS = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_alias(name: str) -> bool:
    return bool(ALIAS.match(name))


@dataclass(frozen=True)
class AliasToken:
    alias: str
    secret: str = ""
    expires_at: float | None = None  # epoch seconds, as XNAT estimates it (None: it did not say)

    def __repr__(self) -> str:  # never the secret
        return f"AliasToken(alias={self.alias!r}, expires_at={self.expires_at!r})"


def _segment(value: str) -> str:
    return quote(value, safe="")


def xnat_message(response: requests.Response) -> str:
    """An error answer in fixed words: its status code and the standard phrase for it. The page's body (and the
    server's own reason phrase) is never quoted: an error page may echo the request's credentials in any form
    (plain, URL-encoded, the basic auth header's base64, cut anywhere)."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "error"
    return f"HTTP {response.status_code} {phrase}"


class _SecretPaths(logging.Filter):
    """urllib3's DEBUG line names each request's URL; ``tokens/validate/{alias}/{secret}`` (XNAT takes the
    secret only in that path) has its secret replaced before the line is written."""

    _PATH = re.compile(r"(/tokens/validate/[^/\s\"?]+/)[^\s\"?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/tokens/validate/" in message:
            record.msg, record.args = self._PATH.sub(r"\1********", message), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_SecretPaths())


class XnatClient:
    """Calls to one server (``XnatServer``); one ``requests.Session`` per client (its connections are kept)."""

    def __init__(self, server: XnatServer, session: requests.Session | None = None):
        self.server = server
        self.base = server.url
        self.http = session or requests.Session()
        self.http.trust_env = False  # no proxy or .netrc from the environment: only the configured server
        self.verify: bool | str = str(server.ca_file) if server.ca_file else server.verify

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _request(self, method: str, path: str, auth: Auth, what: str, **kwargs) -> requests.Response:
        """One request; ``what`` names it in errors (never the path: it may hold a secret)."""
        try:
            response = self.http.request(
                method,
                self.base + path,
                auth=auth,
                timeout=self.server.timeout,
                verify=self.verify,
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout:
            raise XnatUnavailable(f"{self.base} did not answer {what} within {self.server.timeout:g} s") from None
        except requests.exceptions.SSLError as exc:
            raise XnatUnavailable(f"{self.base}: TLS failed for {what} ({_os_reason(exc) or 'certificate'})") from None
        except requests.RequestException as exc:
            reason = _os_reason(exc) or type(exc).__name__
            raise XnatUnavailable(f"cannot connect to {self.base} for {what}: {reason}") from None
        if 300 <= response.status_code < 400:
            where = _host_of(response.headers.get("Location", ""))  # never its path: it may echo credentials
            raise XnatUnavailable(
                f"{self.base} answered {what} with a redirect ({response.status_code} to {where}); "
                "redirects are not followed: list the server's final base URL in xnat.servers"
            )
        if response.status_code >= 500:
            raise XnatUnavailable(f"{self.base} answered {what} with {xnat_message(response)}")
        return response

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise XnatUnavailable(f"{self.base} answered {what} with something that is not JSON") from None

    # --- alias tokens ---------------------------------------------------------------

    def issue_token(self, user: str, pwd: str, field: str = "pwd") -> AliasToken:
        """A new alias token for ``user`` (or, with an alias and secret, for the token's user: a renewal)."""
        response = self._request("GET", "/data/services/tokens/issue", (user, pwd), "the token issue")
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the credentials of {user!r} ({xnat_message(response)})", field)
        if response.status_code != 200:
            raise XnatUnavailable(f"{self.base} could not issue an alias token: {xnat_message(response)}")
        body = self._json(response, "the token issue")
        if not isinstance(body, dict) or not body.get("alias") or not body.get("secret"):
            raise XnatUnavailable(f"{self.base} answered the token issue without an alias and secret")
        expires = body.get("estimatedExpirationTime")
        expires_at = expires / 1000.0 if isinstance(expires, int | float) and expires > 0 else None
        return AliasToken(str(body["alias"]), str(body["secret"]), expires_at)

    def token_user(self, alias: str, secret: str) -> str | None:
        """The user a live token belongs to; None if XNAT does not take it (unknown, expired, invalidated)."""
        path = f"/data/services/tokens/validate/{_segment(alias)}/{_segment(secret)}"
        response = self._request("GET", path, (alias, secret), "the token check")
        if response.status_code in (401, 403, 404):
            return None
        if response.status_code != 200:
            raise XnatUnavailable(f"{self.base} could not check an alias token: {xnat_message(response)}")
        body = self._json(response, "the token check")
        valid = body.get("valid") if isinstance(body, dict) else None
        return str(valid) if valid else None

    def token_expiry(self, alias: str, secret: str) -> float | None:
        """When XNAT expects a live token to expire (epoch seconds, from ``tokens/show``); None if it does not say."""
        response = self._request("GET", "/data/services/tokens/show", (alias, secret), "the token listing")
        if response.status_code != 200:
            return None
        body = self._json(response, "the token listing")
        for entry in body if isinstance(body, list) else []:
            if isinstance(entry, dict) and entry.get("alias") == alias:
                expires = entry.get("estimatedExpirationTime")
                return expires / 1000.0 if isinstance(expires, int | float) and expires > 0 else None
        return None

    def validate_token(self, alias: str, secret: str) -> bool:
        return self.token_user(alias, secret) is not None

    def invalidate_token(self, alias: str, secret: str) -> bool:
        """Disable the token; True if XNAT did, False if it no longer knew or took it (nothing left to do)."""
        # The token's own credentials authenticate the call; XNAT checks only that the token is the caller's,
        # so the secret stays out of the URL (and out of XNAT's access log).
        path = f"/data/services/tokens/invalidate/{_segment(alias)}"
        response = self._request("GET", path, (alias, secret), "the token invalidation")
        if response.status_code in (401, 403, 404):
            return False
        if response.status_code != 200:
            raise XnatUnavailable(f"{self.base} could not invalidate an alias token: {xnat_message(response)}")
        return True

    # --- the archive ----------------------------------------------------------------

    def _found(self, path: str, auth: Auth, what: str) -> requests.Response | None:
        response = self._request("GET", path, auth, what, params={"format": "json"})
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the credentials ({xnat_message(response)})", _field(auth))
        return response if response.status_code == 200 else None

    def experiment(self, project: str, subject: str, session: str, auth: Auth) -> dict[str, Any]:
        """The session (by label or ID) among the subject's experiments in the project, as a listing row
        (ID, label, subject_label, xsiType, project); XnatNotFound naming the first level that is missing.

        The subject's listing, not the single item: XNAT finds ``.../experiments/{e}`` by ID anywhere the
        user may read, whatever project and subject the path names."""
        p, s = _segment(project), _segment(subject)
        path = f"/data/projects/{p}/subjects/{s}/experiments"
        params = {"format": "json", "columns": LIST_COLUMNS}
        response = self._request("GET", path, auth, "the session lookup", params=params)
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the credentials ({xnat_message(response)})", _field(auth))
        if response.status_code == 200:
            for row in _rows(self._json(response, "the session lookup")):
                if session in (row.get("ID"), row.get("label")):
                    return row
            raise XnatNotFound("session", f"no experiment {session!r} in project {project!r} for subject {subject!r}")
        if self._found(f"/data/projects/{p}", auth, "the project lookup") is None:
            raise XnatNotFound("project", f"no project {project!r} on {self.base} that this user can read")
        raise XnatNotFound("subject", f"no subject {subject!r} in project {project!r}")

    def list_experiments(self, project: str, auth: Auth, xsi_type: str | None = None) -> list[dict[str, Any]]:
        """The project's experiments (columns ID, label, subject_label, xsiType, project), of ``xsi_type`` if given."""
        params = {"format": "json", "columns": LIST_COLUMNS}
        if xsi_type:
            params["xsiType"] = xsi_type
        path = f"/data/projects/{_segment(project)}/experiments"
        response = self._request("GET", path, auth, "the experiment listing", params=params)
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the credentials ({xnat_message(response)})", _field(auth))
        if response.status_code == 404:
            raise XnatNotFound("project", f"no project {project!r} on {self.base} that this user can read")
        if response.status_code != 200:
            raise XnatNotFound("project", f"{self.base} did not list it: {xnat_message(response)}")
        return _rows(self._json(response, "the experiment listing"))

    # --- workflows ------------------------------------------------------------------

    def put_workflow(self, auth: Auth, fields: dict[str, Any]) -> None:
        """Create or update a ``wrk:workflowData`` entry (XNAT finds an existing one by pipeline name, id,
        scan id and launch time). XnatAuthError (field ``workflows``) if the user may not write workflows."""
        params = {f"wrk:workflowData/{name}": str(value) for name, value in fields.items() if value is not None}
        response = self._request("PUT", "/data/workflows", auth, "the workflow update", params=params)
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the workflow update: {xnat_message(response)}", "workflows")
        if response.status_code in (400, 404):  # this entry will never be taken (15W: not a reason to wait)
            raise XnatNotFound("workflows", f"{self.base} did not take the workflow update: {xnat_message(response)}")
        if response.status_code not in (200, 201):
            raise XnatUnavailable(f"{self.base} did not take the workflow update: {xnat_message(response)}")

    def workflows_of(self, auth: Auth, session_id: str, pipeline_name: str) -> list[dict[str, Any]]:
        """The session's workflow entries whose pipeline name contains ``pipeline_name``, newest first."""
        params = {"experiment": session_id, "display": "ALL", "format": "json"}
        path = f"/data/services/workflows/{_segment(pipeline_name)}"
        response = self._request("GET", path, auth, "the workflow listing", params=params)
        if response.status_code in (401, 403):
            raise XnatAuthError(f"{self.base} refused the workflow listing: {xnat_message(response)}", "workflows")
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise XnatUnavailable(f"{self.base} did not list the workflows: {xnat_message(response)}")
        body = self._json(response, "the workflow listing")
        rows = body.get("ResultSet", {}).get("Result") if isinstance(body, dict) else None
        return [row for row in rows or [] if isinstance(row, dict)]


def _field(auth: Auth) -> str:
    """The request field credentials came from: an alias token's ``secret``, else ``pwd``."""
    return "secret" if is_alias(auth[0]) else "pwd"


def _rows(body: Any) -> list[dict[str, Any]]:
    """The rows of XNAT's ``{"ResultSet": {"Result": [...]}}``; XnatUnavailable if it is not that shape."""
    rows = body.get("ResultSet", {}).get("Result") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise XnatUnavailable("XNAT answered a listing without a ResultSet")
    return [row for row in rows if isinstance(row, dict)]


def _host_of(location: str) -> str:
    """The host a redirect pointed to (or "?"), neither its path nor any user:password@ part."""
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host = None
    return (host or "?")[:200]


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words (e.g. "Connection refused") from an exception's chain, without any URL."""
    seen = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return None
