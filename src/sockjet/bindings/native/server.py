"""The native server: listens, counts loop turns for write coalescing, watches file
descriptors, and shuts down cleanly (pending long-polls answered)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

from ...engine.server import Engine
from ..guards import Sweeper, descriptors, watch_accept_failures
from .handoff import Handoff
from .http import HTTPConnection

log = logging.getLogger("sockjet.native")


class NativeServer:
    """Serves one sockjet server (its engine path) on host:port or given sockets."""

    def __init__(self, target: Any, host: str = "127.0.0.1", port: int = 3000,
                 sockets: list[socket.socket] | None = None, backlog: int = 2048,
                 handoff: Handoff | None = None) -> None:
        self.target = target
        self.engine: Engine = target.engine
        self.path = self.engine.path
        self.host, self.port, self.sockets, self.backlog = host, port, sockets, backlog
        self.connections: set[HTTPConnection] = set()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.servers: list[asyncio.base_events.Server] = []
        #: in a worker process: where connections for other workers' sessions go
        self.handoff = handoff
        self.started = False
        self.should_exit = False
        self._stop: asyncio.Event | None = None
        self._sweeper: Sweeper | None = None
        #: loop turns, counted by one callback per turn while connections write
        self.turn = 0
        self._turn_pending = False

    # -- what connections use -------------------------------------------------------------------

    @property
    def sweeper(self) -> Sweeper:
        """Checks the deadlines of this server's connections (one per event loop)."""
        if self._sweeper is None:
            self._sweeper = Sweeper.of(asyncio.get_running_loop(), self.engine.http_limits)
        return self._sweeper

    def connection_made(self, conn: HTTPConnection, transport: asyncio.Transport) -> None:
        self.connections.add(conn)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            descriptors.connection(sock.fileno())

    def connection(self, initial: bytes = b"") -> HTTPConnection:
        """The protocol of a new connection (``initial``: the bytes another worker read of
        it)."""
        return HTTPConnection(self, initial)

    def track(self, task: asyncio.Future[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def count_turn(self) -> None:
        if not self._turn_pending:
            self._turn_pending = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_pending = False
        self.turn += 1

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine's hooks, then listen; if listening fails (a port in use), what
        started is stopped again before the error is raised."""
        try:  # cancelled or failed at any point: what started stops again
            await self.engine.startup()
            await self._listen()
        except BaseException:
            await self.shutdown()
            raise
        self.started = True

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        watch_accept_failures(loop)
        factory = self.connection
        if self.handoff is not None:
            await self.handoff.start(self.connection)
        if self.sockets:
            for sock in self.sockets:
                self.servers.append(await loop.create_server(factory, sock=sock,
                                                             backlog=self.backlog))
        else:
            self.servers.append(await loop.create_server(
                factory, self.host, self.port, backlog=self.backlog, reuse_address=True))
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                log.info("sockjet serving %s on http://%s:%s (native runner)", self.path,
                         f"[{host}]" if ":" in host else host, port)

    def request_stop(self) -> None:
        self.should_exit = True
        if self._stop is not None:
            self._stop.set()

    async def serve(self, handle_signals: bool = True) -> None:
        """Run until :meth:`request_stop` (or SIGINT/SIGTERM when in the main thread, unless
        ``handle_signals`` is false: the caller then handles them)."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed = []
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for sig in (signal.SIGINT, signal.SIGTERM) if handle_signals else ():
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        try:
            assert self._stop is not None
            if self.should_exit:
                self._stop.set()
            await self._stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.shutdown()

    async def shutdown(self) -> None:
        for server in self.servers:
            server.close()
        if self.handoff is not None:
            self.handoff.close()
        await self.engine.shutdown()  # pending polls answered, WebSockets closed
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 2)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

