"""The crossbar HTTP bridge that ocs's ``client_http.ControlClient`` posts to, as a requests transport adapter.

ocs's client does ``requests.post(url, data=json.dumps({'procedure', 'args', 'kwargs'}))`` and reads
``{'args': [result]}`` or ``{'error': uri, 'args': [...], 'kwargs': {}}`` back (crossbar's HTTP caller).
The adapter answers those posts in-process, as requests' own ``PreparedRequest`` in and ``Response`` out, so
ocs's and sorunlib's code runs unchanged. It is in-process rather than a socket (or a full ``Session``, whose
per-call proxy look-ups cost more than the simulation) because a week's script makes some 5 x 10^4 calls:
sorunlib checks a running scan every 10 simulated seconds.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from requests.adapters import BaseAdapter

URL = "http://crossbar.sim:8001/call"
ROOT = "observatory"


class Bridge(BaseAdapter):
    def __init__(self, agents):
        super().__init__()
        self.agents = {f"{ROOT}.{a.instance_id}": a for a in agents}
        self.calls = 0

    def send(self, request, **kwargs):
        self.calls += 1
        body = json.loads(request.body)
        reply = self.call(body["procedure"], body.get("args", []), body.get("kwargs", {}))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(reply).encode()
        response.headers["Content-Type"] = "application/json"
        response.url, response.request, response.encoding = request.url, request, "utf-8"
        return response

    def call(self, procedure: str, args: list, kwargs: dict) -> dict:
        address, _, sub = procedure.partition(".ops") if procedure.endswith(".ops") else (procedure, "", "")
        agent = self.agents.get(address)
        if agent is None:
            return {
                "error": "wamp.error.no_such_procedure",
                "args": [f"no callee registered for procedure <{procedure}>"],
                "kwargs": {},
            }
        if procedure.endswith(".ops"):
            result = agent.handle(*args, **kwargs)
        elif args == ["get_api"]:
            result = agent.api()
        elif args == ["get_agent_class"]:
            result = agent.agent_class
        else:
            return {
                "error": "wamp.error.invalid_argument",
                "args": [f"management call {args} not simulated"],
                "kwargs": {},
            }
        return {"args": [list(result) if isinstance(result, tuple) else result]}

    def close(self):
        pass


@contextmanager
def bridged(bridge: Bridge) -> Iterator[None]:
    """ocs.client_http's ``requests.post`` goes to ``bridge``: a prepared requests request, a requests response."""
    import ocs.client_http

    def post(url, data=None, **kwargs):
        if url != URL:
            raise requests.exceptions.ConnectionError(f"{url} is not the simulated crossbar bridge ({URL})")
        request = requests.PreparedRequest()  # set by hand: prepare() parses the URL anew each call
        request.method, request.url, request.body = "POST", url, data
        request.headers = requests.structures.CaseInsensitiveDict({"Content-Length": str(len(data or ""))})
        return bridge.send(request)

    saved = ocs.client_http.requests
    ocs.client_http.requests = types.SimpleNamespace(post=post, exceptions=requests.exceptions)
    try:
        yield
    finally:
        ocs.client_http.requests = saved


SITE_CONFIG = f"""hub:
  wamp_server: ws://crossbar.sim:8001/ws
  wamp_http: {URL}
  wamp_realm: test_realm
  address_root: {ROOT}
  registry_address: {ROOT}.registry
hosts:
  ocs-sim:
    agent-instances: []
"""
