"""The simulator as one object: a Flask app with the four OpenStack services, served on loopback.

Every request passes two gates before its handler: fault injection (``api_error``
answers with the service's error body, ``api_timeout`` sleeps) and, for
everything below a service's version document, a valid ``X-Auth-Token``.
"""

from __future__ import annotations

import collections
import logging
import re
import socket
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from . import (
    api_admin,
    api_glance,
    api_heat,
    api_keystone,
    api_neutron,
    api_nova,
    api_nova_resources,
    microversion,
    strict,
)
from .cloud import Cloud
from .config import SimConfig
from .faults import FaultBook, FaultRule
from .model import CloudError

PROTECTED = re.compile(r"^/(compute/v2\.1|network/v2\.0|image/v2|orchestration/v1)/.+")
STRICT_BLUEPRINTS = {"keystone", "nova", "nova_resources", "neutron", "glance", "admin"}
log = logging.getLogger(__name__)


def error_response(path: str, status: int, message: str, kind: str | None = None):
    """An error in the dialect of the service that owns ``path``."""
    if path.startswith("/compute"):
        return api_nova.nova_error(status, message)
    if path.startswith("/network"):
        return api_neutron.neutron_error(status, message, kind)
    if path.startswith("/orchestration"):
        return api_heat.heat_error(status, message, kind)
    if path.startswith("/_sim"):
        return jsonify({"error": message}), status
    if path.startswith("/image"):
        return jsonify({"message": message, "code": f"{status}", "title": kind or "Error"}), status
    return jsonify({"error": {"code": status, "title": kind or "Error", "message": message}}), status


class Simulator:
    """An OpenStack cloud on loopback. ``start()`` it, point openstacksdk at ``auth_url``."""

    def __init__(self, config: SimConfig | None = None, faults: list[FaultRule] | None = None):
        self.config = config or SimConfig()
        self.cloud = Cloud(self.config, FaultBook(faults))
        self.stacks = api_heat.StackBook(self.cloud)
        self.tokens = api_keystone.TokenStore()
        self.request_log: collections.deque = collections.deque(maxlen=5000)
        self.app = self._make_app()
        self._server = None
        self._thread: threading.Thread | None = None

    def _make_app(self) -> Flask:
        app = Flask("openstack_sim")
        app.config["SIM"] = self
        app.url_map.strict_slashes = False
        for module in (api_keystone, api_nova, api_nova_resources, api_neutron, api_glance, api_admin, api_heat):
            app.register_blueprint(module.bp)
        app.before_request(self._gate)
        app.after_request(self._record)
        app.register_error_handler(
            CloudError, lambda exc: error_response(request.path, exc.status, exc.message, exc.kind)
        )
        app.register_error_handler(
            404, lambda exc: error_response(request.path, 404, f"The resource could not be found: {request.path}")
        )
        app.register_error_handler(
            405, lambda exc: error_response(request.path, 405, f"{request.method} is not allowed on {request.path}")
        )
        return app

    def _gate(self):
        request.environ["sim.fault"] = None
        if request.path.startswith("/_sim"):
            return self._understood()
        rule = self.cloud.faults.take_request_fault(request.method, request.path)
        if rule is not None:
            request.environ["sim.fault"] = rule.kind
            if rule.kind == "api_error":
                return error_response(
                    request.path, rule.status, f"Simulated fault: HTTP {rule.status}", "SimulatedFault"
                )
            if rule.phase == "before":
                time.sleep(rule.seconds)  # the client gives up; the request then goes through
            else:
                request.environ["sim.delay_response"] = rule.seconds
        if PROTECTED.match(request.path) and not self.tokens.valid(request.headers.get("X-Auth-Token")):
            return api_keystone.unauthorized()
        if request.path.startswith("/compute/v2.1"):
            refused = microversion.negotiate()
            if refused is not None:
                return api_nova.nova_error(*refused)
        return self._understood()

    def _understood(self):
        """A 400 "not simulated" for a query parameter or body field the endpoint does not implement."""
        if request.url_rule is None:  # no such route: the 404/405 handlers answer
            return None
        view = self.app.view_functions.get(request.endpoint)
        malformed = strict.malformed(request, view)
        if malformed:
            return error_response(request.path, 400, malformed, "BadRequest")
        message = strict.refusal(request, view, request.blueprint in STRICT_BLUEPRINTS)
        return error_response(request.path, 400, message, "NotSimulated") if message else None

    def _record(self, response):
        time.sleep(request.environ.get("sim.delay_response", 0))
        if not request.path.startswith("/_sim"):
            self.request_log.append(
                {
                    "t": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "fault": request.environ.get("sim.fault"),
                }
            )
        return response

    # --- serving ----------------------------------------------------------------------

    def start(self) -> Simulator:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if not self.config.ssh_port:
            self.config.ssh_port = self._free_ssh_port()
        self._server = make_server(self.config.host, self.config.port, self.app, threaded=True)
        self.config.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="openstack-sim", daemon=True)
        self._thread.start()
        return self

    def _free_ssh_port(self) -> int:
        with socket.socket() as s:
            s.bind((self.config.fixed_ip(0), 0))
            return s.getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.stacks.close()
        self.cloud.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- how clients find it ----------------------------------------------------------

    @property
    def auth_url(self) -> str:
        return f"{self.config.base_url}/identity/v3"

    def clouds_yaml(self, name: str = "sim") -> dict:
        """A clouds.yaml document (as data) for this simulator."""
        cfg = self.config
        return {
            "clouds": {
                name: {
                    "auth": {
                        "auth_url": self.auth_url,
                        "username": cfg.username,
                        "password": cfg.password,
                        "project_name": cfg.project_name,
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    "region_name": cfg.region,
                    "identity_api_version": 3,
                    "interface": "public",
                }
            }
        }

    def openrc(self) -> str:
        """An openrc file like the ones Horizon hands out, for the seed's CREDENTIALS_FILE."""
        cfg = self.config
        return "\n".join(
            [
                "#!/usr/bin/env bash",
                f"export OS_AUTH_URL={self.auth_url}",
                f"export OS_USERNAME={cfg.username}",
                f'export OS_PASSWORD="{cfg.password}"',
                f"export OS_PROJECT_NAME={cfg.project_name}",
                "export OS_USER_DOMAIN_NAME=Default",
                "export OS_PROJECT_DOMAIN_NAME=Default",
                f"export OS_REGION_NAME={cfg.region}",
                "export OS_IDENTITY_API_VERSION=3",
                "",
            ]
        )
