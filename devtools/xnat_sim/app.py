"""The simulator as one object: a Flask app speaking a subset of XNAT's REST API, served on loopback in a thread.

Every request passes the gates in order: faults (slow, 500), then, under ``/data``, authentication as XNAT does it:
HTTP basic auth on any request (a user's password, or an alias token's alias and secret), else the ``JSESSIONID``
cookie of a session opened at ``/data/JSESSION``; neither is a 401. Anything not simulated is refused with a 501
naming the method and path, never answered with a 200.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import shutil
import threading
import time
from pathlib import Path

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from . import api_data, api_tokens, api_workflows, render
from .app_alias import is_alias
from .errors import SimError
from .seed import Site, load_seed
from .state import Faults, State
from .tls import self_signed

SECRET_IN_PATH = re.compile(r"^(/data/services/tokens/(?:validate|invalidate)/[^/]+)/[^/]+$")
log = logging.getLogger(__name__)


class XnatSim:
    """An XNAT on loopback. ``XnatSim(seed).start()``; point a client at ``.url``; read ``.state``; ``.stop()``.

    ``seed``: a dict or the path of a YAML seed (see :mod:`devtools.xnat_sim.seed`). ``faults``: a :class:`Faults`
    (or a dict of its fields), also reachable and changeable as ``.faults`` while running. ``tls=True``: HTTPS with
    a self-signed certificate for the host, whose file is ``.ca_file``.
    """

    def __init__(
        self,
        seed: dict | str | Path,
        faults: Faults | dict | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float | None = None,
        session_timeout: float | None = None,
        tls: bool = False,
    ):
        self.site: Site = load_seed(seed)
        self.state = State(faults=faults if isinstance(faults, Faults) else Faults(**(faults or {})))
        if token_lifetime is not None:
            self.state.token_lifetime = float(token_lifetime)
        if session_timeout is not None:
            self.state.session_timeout = float(session_timeout)
        self.host, self.port = host, port
        self.ca_file: Path | None = None  # with tls=True: the self-signed certificate a client trusts
        self._tls = None
        if tls:
            self._tls, self.ca_file = self_signed(host)
        self.app = self._make_app()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def _make_app(self) -> Flask:
        app = Flask("xnat_sim")
        app.config["SIM"] = self
        app.url_map.strict_slashes = True
        for module in (api_data, api_tokens, api_workflows):
            app.register_blueprint(module.bp)
        app.add_url_rule("/_sim/state", "sim_state", lambda: jsonify(self.state.snapshot()))
        app.before_request(self._gate)
        app.after_request(self._record)
        app.register_error_handler(SimError, lambda exc: exc.response())
        app.register_error_handler(HTTPException, self._http_error)
        return app

    def _http_error(self, exc: HTTPException) -> Response:
        if exc.code == 405:
            return render.restlet_error(405, "Method Not Allowed")
        return render.restlet_error(501, f"not simulated by devtools.xnat_sim: {request.method} {request.path}")

    # --- gates ------------------------------------------------------------------------

    def _gate(self):
        g.user, g.auth, g.alias, g.t0 = None, None, None, time.monotonic()
        if request.path.startswith("/_sim/"):
            return None
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        if "%2f" in raw.split("?", 1)[0].lower():  # Tomcat refuses an encoded slash in the path (ALLOW_ENCODED_SLASH)
            return render.tomcat_error(400, "Bad Request", "Invalid URI: encoded slash in the path")
        if request.method == "OPTIONS":  # Flask would answer it with a 200 by itself
            return render.restlet_error(501, f"not simulated by devtools.xnat_sim: OPTIONS {request.path}")
        delay = self.faults.delay_for(request.path)
        if delay:
            time.sleep(delay)
        if self.faults.fails(request.path):
            return render.tomcat_error(500, "Internal Server Error", "simulated fault (fail_500)")
        if self.faults.redirect and re.search(self.faults.redirect, request.path):
            return Response("", 302, headers={"Location": self.faults.redirect_to})
        if request.path.split("/")[1] in ("data", "REST"):  # /REST: the 1.4 entry point, still served
            return self._authenticate()
        return None

    def _authenticate(self):
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return render.unauthorized()
            if self.faults.refuse_logins or not self._check_credentials(user, secret):
                return render.unauthorized()
            return None
        session = self.state.session(request.cookies.get("JSESSIONID"))
        if session is None:
            return render.unauthorized()
        g.user, g.auth, g.alias = self.site.users[session.user], "session", session.via_token
        return None

    def _check_credentials(self, name: str, secret: str) -> bool:
        if is_alias(name):
            token = self.state.live_token(name)
            if token is None or not hmac.compare_digest(token.secret, secret):
                return False
            g.user, g.auth, g.alias = self.site.users[token.user], "token", token.alias
            return True
        user = self.site.users.get(name)
        if user is None or not hmac.compare_digest(user.password.encode(), secret.encode()):
            return False
        g.user, g.auth = user, "password"
        return True

    def _record(self, response: Response) -> Response:
        if request.path.startswith("/_sim/"):
            return response
        path = SECRET_IN_PATH.sub(r"\1/***", request.path)
        query = {k: v for k, v in request.args.items()}
        entry = {
            "t": time.time(),
            "method": request.method,
            "path": path,
            "query": query,
            "status": response.status_code,
            "user": g.user.name if g.get("user") else None,
            "auth": g.get("auth"),
            "alias": g.get("alias"),
            "seconds": time.monotonic() - g.get("t0", time.monotonic()),
        }
        with self.state.lock:
            self.state.requests.append(entry)
        return response

    # --- serving ----------------------------------------------------------------------

    def start(self) -> XnatSim:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(self.host, self.port, self.app, threaded=True, ssl_context=self._tls)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="xnat-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.ca_file is not None:
            shutil.rmtree(self.ca_file.parent, ignore_errors=True)

    def __enter__(self) -> XnatSim:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
