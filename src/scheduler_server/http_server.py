"""The HTTP server of ``scheduler-server serve``: waitress, with a deadline on reading each request.

Why waitress and not gunicorn's workers: gunicorn's sync and threaded workers
read a request inside the worker thread that will run it, with no header or
body timeout, so a handful of clients that send one byte and stall hold every
worker (and a sync worker that misses its heartbeat is killed, with whatever
else lives in it). waitress reads requests on one asynchronous I/O loop and
hands a request to a worker thread only once its headers and body are complete
in memory; responses are buffered the same way, so a slow reader holds no
thread either. Worker threads only ever run application code.

waitress closes idle connections (``channel_timeout``) but lets a client trickle
a request in for as long as it keeps sending. ``server.request_timeout`` adds a
deadline: a connection whose request has not been read completely within it is
closed, so keeping connections open costs an attacker a new connection every
``request_timeout`` seconds, up to ``server.connection_limit`` of them.

The pipeline dispatcher runs as a thread of this one process: there is no
supervisor here that kills a worker, and the dispatcher with it, because a
request was slow.
"""

from __future__ import annotations

import logging
import signal
import socket
import time

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from scheduler_server.config import ServerSettings

log = logging.getLogger(__name__)


class _TimedParser(HTTPRequestParser):
    """A request being read, with the time its first byte arrived."""

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()


class _Channel(HTTPChannel):
    parser_class = _TimedParser


class _DeadlineServer(TcpWSGIServer):
    channel_class = _Channel
    request_timeout = 30.0

    def maintenance(self, now):
        super().maintenance(now)  # idle connections (channel_timeout)
        cutoff = time.monotonic() - self.request_timeout
        for channel in list(self.active_channels.values()):
            partial = channel.request
            if partial is not None and not partial.completed and partial.started < cutoff:
                log.info(
                    "closing a connection from %s: its request was not complete after %.0f s",
                    channel.addr,
                    self.request_timeout,
                )
                channel.will_close = True


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on ``host:port`` (every address the name resolves to), for workers to serve.

    ``serve --workers N`` binds here, once, in the master: a taken port is one error before any
    worker starts, and every worker accepts from the same listening sockets.
    """
    bound: list[socket.socket] = []
    adj = Adjustments(host=host, port=port)
    try:
        for family, socktype, proto, sockaddr in adj.listen:
            sock = socket.socket(family, socktype, proto)
            bound.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(adj.backlog)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def create_server(app, host: str, port: int, settings: ServerSettings, sockets: list[socket.socket] | None = None):
    """Bind ``host:port`` (every address the name resolves to), or serve on ``sockets`` already bound
    (``bind_sockets``), and return the server; ``run()`` serves."""
    where = {"sockets": sockets} if sockets else {"host": host, "port": port}
    adj = Adjustments(
        **where,
        threads=settings.threads,
        connection_limit=settings.connection_limit,
        channel_timeout=int(settings.idle_timeout),
        # how often connections are checked against both timeouts
        cleanup_interval=1,
        # waitress refuses bigger bodies, chunked ones included, before the app sees them
        max_request_body_size=settings.max_body_bytes,
        max_request_header_size=64 * 1024,
        ident="scheduler-server",
        expose_tracebacks=False,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    servers = []
    for sock in sockets or [None] * len(adj.listen):
        kw = {"sockinfo": adj.listen[len(servers)]} if sock is None else _inherited(sock)
        server = _DeadlineServer(app, socket_map, dispatcher=dispatcher, adj=adj, **kw)
        server.request_timeout = settings.request_timeout
        servers.append(server)
    if len(servers) == 1:
        return servers[0]
    listening = [(s.effective_host, s.effective_port) for s in servers]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


def _inherited(sock: socket.socket) -> dict:
    sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
    return {"_sock": sock, "bind_socket": False, "sockinfo": sockinfo}


def serve_until_stopped(server, pending: list | None = None) -> None:
    """Serve until SIGTERM or SIGINT; then stop accepting, let running requests finish (5 s at most).
    ``pending``: signals the caller's own handler recorded while it started: serve nothing, return."""

    def _stop(signum, _frame):
        log.info("received %s: stopping", signal.Signals(signum).name)
        # a second signal during the shutdown must not interrupt it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if pending:  # looked at after our handlers are in place: no signal falls between
        log.info("received %s while starting: stopping", signal.Signals(pending[0]).name)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return
    server.run()  # returns after SystemExit, once the worker threads are shut down
