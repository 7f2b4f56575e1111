"""The native binding: an asyncio protocol serving the engine directly, without ASGI.

HTTP/1.1 is parsed by httptools, WebSocket handshakes and framing are done by the ``websockets``
sans-I/O protocol, and frames are written straight to the transport: no ASGI events, no per-
connection writer task, no queue hop. This is the default runner for sockjet servers; the ASGI
app remains for embedding in other frameworks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httptools
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from ..engine.interface import ClientGone, PayloadTooLarge, Response
from ..engine.server import EngineServer

log = logging.getLogger("sockjet.native")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_NOT_FOUND = Response(404, [("content-type", "text/plain")], b"Not Found")
_MAX_HEAD = 64 * 1024  # request line + headers


def _query(raw: bytes) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="strict"):
        query.setdefault(key, value)
    return query


class _Request:
    """One HTTP request, body already read (capped at the engine's limit)."""

    __slots__ = ("_complete", "_gone", "_too_large", "body", "client", "headers", "method",
                 "path", "query", "raw_query", "scheme")

    def __init__(self, conn: _Connection, method: str, url: bytes,
                 headers: dict[str, str]) -> None:
        path, _, raw_query = url.partition(b"?")
        self.method = method
        self.path = path.decode("latin-1")
        self.raw_query = raw_query
        self.query = _query(raw_query)
        self.headers = headers
        self.scheme = conn.scheme
        self.client = conn.client
        self.body = bytearray()
        self._too_large = False
        self._gone = conn.gone
        #: resolved once the whole body has arrived (requests are dispatched at their headers)
        self._complete: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def read_body(self, limit: int) -> bytes:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge
        if not self._complete.done():
            await asyncio.wait((self._complete, self._gone), return_when=asyncio.FIRST_COMPLETED)
        if self._too_large or len(self.body) > limit:
            raise PayloadTooLarge
        if not self._complete.done():
            raise ClientGone
        return bytes(self.body)

    async def wait_disconnect(self) -> None:
        await asyncio.shield(self._gone)


class _WebSocket:
    """The engine's WebSocket connection, over the sans-I/O protocol; writes are immediate."""

    __slots__ = ("_conn", "_messages", "_proto", "_waiter", "client", "closed", "headers",
                 "method", "path", "query", "raw_query", "request", "scheme", "unflushed")

    def __init__(self, conn: _Connection, head: _Request, proto: ServerProtocol,
                 request: Request) -> None:
        self._conn = conn
        self._proto = proto
        self.request = request
        self.method, self.path, self.raw_query = "GET", head.path, head.raw_query
        self.query, self.headers, self.client = head.query, head.headers, head.client
        self.scheme = conn.scheme
        self._messages: deque[str | bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.unflushed = 0  # bytes serialised but not yet handed to the transport

    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        response = self._proto.accept(self.request)
        for key, value in headers or ():
            response.headers[key] = value
        self._proto.send_response(response)
        self._conn.flush_ws()

    async def reject(self, status: int, body: bytes) -> None:
        response = self._proto.reject(status, body.decode("utf-8", "replace"))
        response.headers["Content-Type"] = "text/html"
        self._proto.send_response(response)
        self.closed = True
        self._conn.flush_ws()
        self._conn.transport.close()

    async def receive(self) -> str | bytes | None:
        while not self._messages:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()

    def push(self, message: str | bytes | None) -> None:
        self._messages.append(message)
        if message is None:
            self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write_frames(self, frames: list[str | bytes]) -> None:
        """Synchronous send: the frames go to the transport at once, in one write."""
        if self.closed:
            return
        proto = self._proto
        size = 0
        for data in frames:
            if isinstance(data, str):
                encoded = data.encode()
                proto.send_text(encoded)
                size += len(encoded)
            else:
                proto.send_binary(data)
                size += len(data)
        self.unflushed += size
        self._conn.flush_soon()

    def close_now(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._proto.send_close(code)
            self._conn.flush_ws()
        transport = self._conn.transport
        if transport is not None:
            transport.close()
        self.push(None)

    def backlog(self) -> int:
        """Bytes accepted but not yet sent to the peer (flow control for volatile packets)."""
        transport = self._conn.transport
        pending = transport.get_write_buffer_size() if transport is not None else 0
        return pending + self.unflushed

    async def send(self, data: str | bytes) -> None:
        if self.closed:
            raise ConnectionError("WebSocket closed")
        self.write_frames([data])

    async def close(self, code: int = 1000) -> None:
        self.close_now(code)


class _Connection(asyncio.Protocol):
    """One TCP connection: HTTP/1.1 requests one at a time, or a WebSocket after an upgrade."""

    def __init__(self, server: NativeServer) -> None:
        self.server = server
        self.engine = server.engine
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.scheme = "http"
        self.client: tuple[str, int] | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ws: _WebSocket | None = None
        self.ws_proto: ServerProtocol | None = None
        self._head = bytearray()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._current: _Request | None = None
        self._pending: deque[tuple[_Request, bool]] = deque()
        self._busy = False
        self._limit = self.engine.max_http_buffer_size
        self._flush_scheduled = False
        self._written_turn = -1  # the server's loop turn of this connection's last write
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if not self.gone.done():
            self.gone.set_result(None)
        if self.ws is not None:
            self.ws.push(None)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.ws_proto is not None:
            self._ws_data(data)
            return
        if self._current is None and not self._busy:
            self._head += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0]:] if exc.args else b"")
        except httptools.HttpParserError:
            self._simple(400, b"Bad Request")

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_HEAD:
            raise httptools.HttpParserError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = headers[key] + ", " + text if key in headers else text
        if len(headers) > 200:
            raise httptools.HttpParserError("too many headers")

    def on_headers_complete(self) -> None:
        method = self.parser.get_method().decode("ascii", "replace")
        try:
            self._current = _Request(self, method, self._url, self._headers)
        except (UnicodeDecodeError, ValueError):
            self._current = None
            self._simple(400, b'{"code":3,"message":"Bad request"}', "application/json")
            return
        if self.parser.should_upgrade():
            return  # HttpParserUpgrade follows
        # dispatched now, the body streams in (the engine sees overlapping POSTs as Node does)
        self._pending.append((self._current, self.parser.should_keep_alive()))
        if not self._busy:
            self._next()

    def on_body(self, body: bytes) -> None:
        request = self._current
        if request is None or request._too_large:
            return
        if len(request.body) + len(body) > self._limit:
            request._too_large = True
            request.body = bytearray()
        else:
            request.body += body

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade():
            return  # HttpParserUpgrade follows: _upgrade takes the request and its raw head
        request = self._current
        self._current = None
        self._head = bytearray()
        if request is not None and not request._complete.done():
            request._complete.set_result(None)

    # -- HTTP -----------------------------------------------------------------------------------

    def _next(self) -> None:
        if not self._pending or self.transport is None:
            return
        request, keep_alive = self._pending.popleft()
        self._busy = True
        task = asyncio.ensure_future(self._respond(request, keep_alive))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _respond(self, request: _Request, keep_alive: bool) -> None:
        try:
            if request.path.startswith(self.server.path):
                response = await self.engine.handle_request(request)
                if response is None:
                    response = _NOT_FOUND
            else:
                response = _NOT_FOUND
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = Response(500, [("content-type", "text/plain")], b"Internal Server Error")
        self._write(response, keep_alive)
        self._busy = False
        if keep_alive:
            self._next()

    def _write(self, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        lines = [f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, '')}"]
        lines += [f"{k}: {v}" for k, v in response.headers]
        lines.append(f"content-length: {len(response.body)}")
        if not keep_alive:
            lines.append("connection: close")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        if not keep_alive:
            transport.close()

    def _simple(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self._write(Response(status, [("content-type", ctype)], body), False)

    # -- WebSocket ------------------------------------------------------------------------------

    def _upgrade(self, rest: bytes) -> None:
        request = self._current
        head = bytes(self._head[: len(self._head) - len(rest)])
        self._current = None
        self._head = bytearray()
        if request is None:
            return
        if not request.path.startswith(self.server.path):
            self._simple(404, b"Not Found")
            return
        extensions = [ServerPerMessageDeflateFactory()] if self.engine.per_message_deflate else None
        proto = ServerProtocol(max_size=self._limit, extensions=extensions)
        proto.receive_data(head)
        events = proto.events_received()
        if not events or not isinstance(events[0], Request):
            self._simple(400, b"Bad WebSocket handshake")
            return
        self.ws_proto = proto
        self.ws = _WebSocket(self, request, proto, events[0])
        task = asyncio.ensure_future(self._serve_ws(self.ws))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)
        if rest:
            self._ws_data(rest)

    async def _serve_ws(self, ws: _WebSocket) -> None:
        try:
            await self.engine.handle_websocket(ws)
        except Exception:
            log.exception("error in WebSocket session")
        finally:
            await ws.close()

    def _ws_data(self, data: bytes) -> None:
        proto = self.ws_proto
        ws = self.ws
        assert proto is not None and ws is not None
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    try:
                        ws.push(event.data.decode("utf-8"))
                    except UnicodeDecodeError:
                        ws.push(None)
                elif event.opcode is Opcode.BINARY:
                    ws.push(bytes(event.data))
                elif event.opcode is Opcode.CLOSE:
                    ws.push(None)
        self.flush_ws()  # pongs, close replies
        if proto.close_expected() and self.transport is not None:
            self.transport.close()

    def flush_ws(self) -> None:
        self._flush_scheduled = False
        proto = self.ws_proto
        transport = self.transport
        if self.ws is not None:
            self.ws.unflushed = 0
        if proto is None or transport is None:
            return
        data = proto.data_to_send()
        if data:  # one write() per flush: uvloop tries it at once, writelines() queues
            transport.write(data[0] if len(data) == 1 else b"".join(data))

    def flush_soon(self) -> None:
        """The first frames of a loop turn leave at once (latency); what follows in the same
        turn (a burst of broadcasts) is coalesced into one write at the end of the turn."""
        if self._flush_scheduled:
            return
        server = self.server
        if self._written_turn != server.turn:
            self._written_turn = server.turn
            server.count_turn()
            self.flush_ws()
        else:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush_ws)


class NativeServer:
    """Serves one sockjet server (its engine path) on host:port or given sockets."""

    def __init__(self, target: Any, host: str = "127.0.0.1", port: int = 3000,
                 sockets: list[socket.socket] | None = None, backlog: int = 2048) -> None:
        self.target = target
        self.engine: EngineServer = getattr(target, "engine", target)
        self.path = self.engine.path
        self.host, self.port, self.sockets, self.backlog = host, port, sockets, backlog
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self.started = False
        self.should_exit = False
        self._stop: asyncio.Event | None = None
        #: loop turns, counted by one callback per turn while connections write
        self.turn = 0
        self._turn_pending = False

    def count_turn(self) -> None:
        if not self._turn_pending:
            self._turn_pending = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_pending = False
        self.turn += 1

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.engine.loop = loop
        self._stop = asyncio.Event()
        factory = lambda: _Connection(self)  # noqa: E731
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
        self.started = True

    def request_stop(self) -> None:
        self.should_exit = True
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        """Run until :meth:`request_stop` (or SIGINT/SIGTERM when in the main thread)."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed = []
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for sig in (signal.SIGINT, signal.SIGTERM):
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
