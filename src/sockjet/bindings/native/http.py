"""The native binding's HTTP/1.1 connections.

httptools parses; requests are dispatched to the engine at their headers (so the engine sees
overlapping POSTs as Node's does) and answered in order, pipelined ones included. Every head and
body is held to the limits and deadlines of :mod:`sockjet.bindings.guards`; a refusal (400, 408,
413, 431) is written after the responses already owed and then the connection closes. A valid
WebSocket opening handshake hands the connection to :class:`NativeWebSocket`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from http import HTTPStatus
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qsl

import httptools
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request as HandshakeRequest
from websockets.server import ServerProtocol

from ...engine.notices import peer_mistake
from ...engine.transport import Response
from ...exceptions import ClientGone, PayloadTooLarge, RequestRefused
from ..guards import GuardedConnection, Lingering, Phase, refusal_bytes
from .handoff import MAX_REQUEST_LINE
from .websocket import NativeWebSocket

if TYPE_CHECKING:
    from .server import NativeServer

log = logging.getLogger("sockjet.native")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_NOT_FOUND = Response(404, [("content-type", "text/plain")], b"Not Found")
_BAD_QUERY = Response(400, [("content-type", "application/json")],
                      b'{"code":3,"message":"Bad request"}')
#: pipelined requests queued before the connection stops reading more
_PIPELINE_DEPTH = 16
#: before a connection goes to another worker, its answers written here are drained (at most
#: _DRAIN_CHECKS pauses of _DRAIN_PAUSE seconds: a client that reads nothing is not passed on)
_DRAIN_CHECKS, _DRAIN_PAUSE = 500, 0.01
#: why reading is paused (bits of HTTPConnection._paused)
_PIPELINE, _WRITE, _BODY, _CLOSING, _HANDOFF = 1, 2, 4, 8, 16


def parse_query(raw: bytes) -> dict[str, str]:
    """Query string as a dict (first value wins); invalid UTF-8 raises ``UnicodeDecodeError``."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="strict"):
        query.setdefault(key, value)
    return query


def render(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, '')}"]
    lines += [f"{k}: {v}" for k, v in response.headers]
    lines.append(f"content-length: {len(response.body)}")
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class NativeRequest:
    """One HTTP request as the engine sees it; its body streams in after dispatch."""

    __slots__ = ("_gone", "_loop", "_waiter", "abandoned", "body", "client", "complete",
                 "headers", "keep_alive", "method", "path", "query", "raw_query", "scheme",
                 "too_large")

    def __init__(self, conn: HTTPConnection, method: str, url: bytes,
                 headers: dict[str, str], keep_alive: bool) -> None:
        path, _, raw_query = url.partition(b"?")
        self.method = method
        self.path = path.decode("latin-1")
        self.raw_query = raw_query
        self.query = parse_query(raw_query)
        self.headers = headers
        self.scheme = conn.scheme
        self.client = conn.client
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.complete = False  # the whole body has arrived
        self.too_large = False  # the body went over the engine's limit (dropped)
        self.abandoned = False  # the connection failed under it: its response is not written
        self._gone = conn.gone
        self._loop = conn.loop
        self._waiter: asyncio.Future[None] | None = None

    def add_body(self, chunk: bytes, limit: int) -> bool:
        """Keep ``chunk``; ``False`` once the body is over ``limit`` (nothing more is kept)."""
        if self.too_large:
            return False
        if len(self.body) + len(chunk) > limit:
            self.too_large = True
            self.body = bytearray()
            self._wake()
            return False
        self.body += chunk
        return True

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def abandon(self) -> None:
        self.abandoned = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_body(self, limit: int) -> bytes:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge
        if not (self.complete or self.too_large or self.abandoned):
            self._waiter = self._loop.create_future()
            await asyncio.wait((self._waiter, self._gone), return_when=asyncio.FIRST_COMPLETED)
            self._waiter = None
        if self.too_large or len(self.body) > limit:
            raise PayloadTooLarge
        if not self.complete:
            raise ClientGone
        return bytes(self.body)

    async def wait_disconnect(self) -> None:
        await asyncio.shield(self._gone)


class _Pipelined(Exception):
    """Raised from a parser callback: the rest of the read goes to another worker."""


class HTTPConnection(GuardedConnection, asyncio.Protocol):
    """One TCP connection: HTTP/1.1 requests, or a WebSocket after an upgrade."""

    def __init__(self, server: NativeServer, initial: bytes = b"") -> None:
        self.server = server
        self.engine = server.engine
        self.loop = asyncio.get_running_loop()
        limits = self.engine.http_limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.scheme = "http"
        self.client: tuple[str, int] | None = None
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.websocket: NativeWebSocket | None = None
        self._guard_init(limits, server.sweeper)
        self._max_headers = limits.max_headers
        self._limit = self.engine.max_http_buffer_size
        self._url = b""
        self._headers: dict[str, str] = {}
        self._repeated: dict[str, list[str]] | None = None  # headers sent more than once
        self._current: NativeRequest | None = None  # the request whose body is arriving
        self._queue: list[NativeRequest | bytes] = []  # bytes: a final refusal
        self._busy = False  # a response is being produced
        self._closing = False  # nothing more is read: owed responses go out, then close
        self._paused = 0  # why reading is paused: _PIPELINE | _WRITE | _BODY | _CLOSING
        self._lingering: Lingering | None = None
        # with worker processes: the bytes a connection handed over by another worker had
        # already sent, whether a request is being parsed, and what may go to another worker
        self._initial = initial
        self._in_message = False
        self._peek = b""  # the start of a request line not complete yet
        self._routed = False  # the request being parsed was checked before parsing
        self._chunk = b""  # the bytes being parsed
        self._handoff: tuple[int, bytes] | None = None  # (owner, bytes) waiting to be passed

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio subclasses
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.server.connection_made(self, transport)
        self._deadline_idle()
        if self._initial:  # before the transport reads anything more
            initial, self._initial = self._initial, b""
            self.data_received(initial)  # read by the worker that passed the connection on

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._deadline_clear()
        if self._lingering is not None:
            self._lingering.cancel()
        if not self.gone.done():
            self.gone.set_result(None)
        if self.websocket is not None:
            self.websocket.connection_lost()
        self.transport = None
        # the parser holds bound methods of this connection: a reference cycle that only the
        # garbage collector would free; without it, a closed connection goes at once
        del self.parser

    def pause_writing(self) -> None:
        if self.websocket is None:  # a client that does not read its responses
            self._pause(_WRITE)

    def resume_writing(self) -> None:
        self._resume(_WRITE)

    def data_received(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.data_received(data)
            return
        if self._closing:
            if self._lingering is not None:
                self._lingering.discard(len(data))
            return
        if self.server.handoff is not None:
            if not self._in_message:
                data = self._check_owner(data)
                if not data:
                    return
            self._chunk = data  # where a pipelined request for another worker starts
        try:
            self.parser.feed_data(data)
            if self._head_active:
                self._head_unfinished(len(data))
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0]:] if exc.args else b"")
        except RequestRefused as exc:
            self._refuse(exc.status, exc.cause)
        except _Pipelined:
            self._parser_after_handoff()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, RequestRefused):
                self._refuse(cause.status, cause.cause)
            elif isinstance(cause, _Pipelined):
                self._parser_after_handoff()
            else:
                self._refuse(400, "malformed HTTP request")

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._repeated = None
        self._head_begin()

    def on_url(self, url: bytes) -> None:
        self._head_url(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # runs for every header of every request: the least work (_head_complete decides)
        self._head_size += len(name) + len(value)
        key = name.decode("latin-1").lower()
        headers = self._headers
        if key not in headers:
            headers[key] = value.decode("latin-1")
            if len(headers) > self._max_headers:
                self._head_too_many()
        else:  # joined with ", " once the head is complete (linear time)
            self._repeat(key, value.decode("latin-1"))

    def _repeat(self, key: str, value: str) -> None:
        repeated = self._repeated
        if repeated is None:
            repeated = self._repeated = {}
        values = repeated.get(key)
        if values is None:
            values = repeated[key] = [self._headers[key]]
        values.append(value)
        if len(self._headers) + sum(len(v) - 1 for v in repeated.values()) > self._max_headers:
            self._head_too_many()

    def on_headers_complete(self) -> None:
        if self.server.handoff is not None and not self._routed:
            self._route_pipelined()
        method = self.parser.get_method().decode("ascii", "replace")
        headers = self._headers
        count = len(headers)
        if self._repeated is not None:
            for key, values in self._repeated.items():
                headers[key] = ", ".join(values)
                count += len(values) - 1
        self._head_complete(len(method), count)
        if self.parser.should_upgrade():
            return  # on_message_complete, then HttpParserUpgrade: see _upgrade
        try:
            request = NativeRequest(self, method, self._url, headers,
                                    self.parser.should_keep_alive())
        except (UnicodeDecodeError, ValueError):
            peer_mistake(self.client, "undecodable query string")
            self._stop_reading()
            self._enqueue(render(_BAD_QUERY, keep_alive=False))
            raise RequestRefused(400, "undecodable query string") from None  # stops the parser
        self._current = request
        if headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._enqueue(request)

    def on_body(self, body: bytes) -> None:
        request = self._current
        if request is not None and not request.add_body(body, self._limit):
            self._pause(_BODY)  # over the limit: read no more, the 413 closes the connection

    def on_message_complete(self) -> None:
        self._in_message = False
        self._routed = False
        request = self._current
        if request is None:
            return  # an upgrade request: HttpParserUpgrade follows
        self._current = None
        request.finish()
        if self._busy:  # a complete request: no deadline while it is answered (a long-poll)
            self._deadline_clear()
        else:  # answered already: the connection is idle
            self._settle()

    # -- responses, in order --------------------------------------------------------------------

    def _enqueue(self, item: NativeRequest | bytes) -> None:
        queue = self._queue
        queue.append(item)
        if len(queue) >= _PIPELINE_DEPTH:
            self._pause(_PIPELINE)
        if not self._busy:
            self._next()

    def _next(self) -> None:
        queue = self._queue
        if queue and not self._busy:
            item = queue.pop(0)
            if isinstance(item, bytes):  # a refusal ends the connection
                queue.clear()
                self._write(item)
                self._close(linger=True)
                return
            self._busy = True  # one response at a time, in order
            self.server.track(asyncio.ensure_future(self._respond(item)))
        if self._paused & _PIPELINE and len(queue) < _PIPELINE_DEPTH // 2:
            self._resume(_PIPELINE)
        if self._handoff is not None and not self._busy and not queue:
            self._start_handoff()
        self._settle()

    async def _respond(self, request: NativeRequest) -> None:
        try:
            routes = self.engine.routes
            route = routes.get(request.path) if routes else None
            answer: Response | None
            if route is not None:
                answer = await route(request)
            elif request.path.startswith(self.server.path):
                answer = await self.engine.handle_request(request)
            else:
                answer = None
            response = _NOT_FOUND if answer is None else answer
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = Response(500, [("content-type", "text/plain")], b"Internal Server Error")
        self._busy = False
        if not request.abandoned:
            # a body still arriving is not read to its end: the connection closes instead
            keep_alive = request.keep_alive and request.complete and not request.too_large
            self._write(render(response, keep_alive, request.method == "HEAD"))
            if not keep_alive:
                self._stop_reading()
                self._queue.clear()
                self._close(linger=not request.complete)  # a body may still be on its way
                return
        self._next()

    def _settle(self) -> None:
        """Pick the deadline for what the connection is doing now."""
        if self._closing:
            self._deadline_clear()
        elif self._head_active or self._current is not None:
            return  # a head or a body is arriving: its deadline stands
        elif self._busy or self._queue:
            self._deadline_clear()
        else:
            self._deadline_idle()

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _close(self, linger: bool = False) -> None:
        self._closing = True
        self._deadline_clear()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if linger:
            self._paused = 0
            self._lingering = Lingering(self.loop, transport)
        else:
            transport.close()

    # -- refusals and deadlines -----------------------------------------------------------------

    def _refuse(self, status: int, cause: str) -> None:
        """Answer ``status`` after the responses already owed, then close."""
        if self._closing:
            return
        peer_mistake(self.client, cause)
        self._stop_reading()
        self._enqueue(refusal_bytes(status))

    def _stop_reading(self) -> None:
        self._closing = True
        self._deadline_clear()
        self._pause(_CLOSING)
        request = self._current
        if request is not None:  # its body will never complete
            self._current = None
            request.abandon()

    def _deadline_expired(self, phase: Phase) -> None:
        if phase is Phase.IDLE:
            self._close()
        elif phase is Phase.HEAD:
            self._refuse(408, "request head not complete within headers_timeout")
        else:
            self._refuse(408, "request not complete within request_timeout")

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and self.transport is not None:
                self.transport.resume_reading()

    # -- worker processes: passing a connection to the owner of its session --------------------

    def _check_owner(self, data: bytes) -> bytes:
        """At the start of a request: the bytes to parse here, or ``b""`` when the request is
        for another worker's session (the connection then goes to that worker, once the
        responses owed here are written) or its request line is not complete yet."""
        handoff = self.server.handoff
        assert handoff is not None
        peeking = bool(self._peek)
        if peeking:
            data, self._peek = self._peek + data, b""
        end = data.find(b"\r\n", 0, MAX_REQUEST_LINE)
        if end < 0:
            if len(data) < MAX_REQUEST_LINE:
                self._peek = data  # wait for the rest of the request line
                if not peeking:  # it is a request head arriving: the head's deadline
                    self._set_deadline(Phase.HEAD,
                                       self.loop.time() + self.engine.http_limits.headers_timeout)
                return b""
            return data  # too long to be ours to route: the head limits answer it
        owner = handoff.owner(data[:end])
        if owner is None:
            self._routed = True
            return data
        self._handoff = (owner, data)
        self._pause(_HANDOFF)
        self._deadline_clear()
        if not self._busy and not self._queue:
            self._start_handoff()
        return b""

    def _route_pipelined(self) -> None:
        """A request that began inside a read, behind another one (HTTP pipelining): when it is
        for another worker's session, stop parsing and pass the connection on from its first
        byte, once the responses owed here are written."""
        handoff = self.server.handoff
        assert handoff is not None
        owner = handoff.owner(self._url)
        if owner is None:
            return
        chunk = self._chunk
        start = chunk.find(self.parser.get_method() + b" " + self._url + b" ")
        if start < 0:  # it began in an earlier read: served here (unknown session)
            return
        self._handoff = (owner, chunk[start:])
        self._pause(_HANDOFF)
        raise _Pipelined

    def _parser_after_handoff(self) -> None:
        """The parser stopped at a request for another worker: a fresh one, should the request
        have to be parsed here after all (its owner gone)."""
        self.parser = httptools.HttpRequestParser(self)
        self._in_message = False
        self._head_active = False
        self._settle()
        if self._handoff is not None and not self._busy and not self._queue:
            self._start_handoff()

    def _start_handoff(self) -> None:
        self.server.track(asyncio.ensure_future(self._hand_off()))

    async def _hand_off(self) -> None:
        pending, self._handoff = self._handoff, None
        transport = self.transport
        handoff = self.server.handoff
        if pending is None or transport is None or handoff is None:
            return
        owner, data = pending
        # what this worker answered must reach the client before the owner's answers do
        for _ in range(_DRAIN_CHECKS):
            if not transport.get_write_buffer_size() or transport.is_closing():
                break
            await asyncio.sleep(_DRAIN_PAUSE)
        client = transport.get_extra_info("socket")
        passed = False
        if client is not None and not transport.get_write_buffer_size():
            # the owner gets its own descriptor of the connection: closing ours then leaves
            # the connection open (no FIN, no RST: it is not the last descriptor)
            dup = socket.socket(fileno=os.dup(client.fileno()))
            try:
                passed = await handoff.send(owner, dup, data)
            finally:
                dup.close()
        if not passed:  # the owner is gone: its sessions with it (the engine answers 400)
            self._resume(_HANDOFF)
            if self.transport is not None:
                self._in_message = self._routed = True  # parse it here, not checked again
                self.data_received(data)
            return
        self._closing = True
        self._deadline_clear()
        self.server.connections.discard(self)
        if self.transport is not None:
            self.transport.close()

    # -- WebSocket ------------------------------------------------------------------------------

    def _upgrade(self, rest: bytes) -> None:
        """Hand a valid opening handshake to the engine; answer an invalid one here, with no
        session created."""
        transport = self.transport
        if transport is None:
            return
        method = self.parser.get_method().decode("ascii", "replace")
        url, headers = self._url, self._headers
        path, _, raw_query = url.partition(b"?")
        if not path.decode("latin-1").startswith(self.server.path):
            self._refuse_handshake(render(_NOT_FOUND, keep_alive=False), None)
            return
        if method != "GET":
            self._refuse_handshake(refusal_bytes(405), "WebSocket handshake not a GET")
            return
        extensions = [ServerPerMessageDeflateFactory()] if self.engine.per_message_deflate else None
        proto = ServerProtocol(max_size=self._limit, extensions=extensions)
        version = self.parser.get_http_version()
        lines = [f"GET {url.decode('latin-1')} HTTP/{version}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        proto.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        events = proto.events_received()
        if not events or not isinstance(events[0], HandshakeRequest):
            answer = b"".join(proto.data_to_send()) or refusal_bytes(400)
            self._refuse_handshake(answer, "invalid WebSocket handshake")
            return
        response = proto.accept(events[0])
        if response.status_code != 101:
            proto.send_response(response)
            self._refuse_handshake(b"".join(proto.data_to_send()),
                                   f"invalid WebSocket handshake ({response.status_code})")
            return
        try:
            query = parse_query(raw_query)
        except (UnicodeDecodeError, ValueError):
            self._refuse_handshake(refusal_bytes(400), "undecodable query string")
            return
        self._deadline_clear()  # the engine's heartbeat governs a WebSocket
        self._queue.clear()
        self._headers = {}  # nothing of the head is kept for the connection's life (the
        self._url = b""  # WebSocket keeps the dict it was given)
        ws = NativeWebSocket(self.server, transport, proto, response,
                             path=path.decode("latin-1"), raw_query=raw_query, query=query,
                             headers=headers, scheme=self.scheme, client=self.client)
        self.websocket = ws
        self.server.track(asyncio.ensure_future(self._serve_websocket(ws)))
        if rest:
            ws.data_received(rest)

    def _refuse_handshake(self, answer: bytes, cause: str | None) -> None:
        if cause is not None:
            peer_mistake(self.client, cause)
        self._stop_reading()
        self._enqueue(answer)

    async def _serve_websocket(self, ws: NativeWebSocket) -> None:
        try:
            await self.engine.handle_websocket(ws)
        except Exception:
            log.exception("error in WebSocket session")
        finally:
            ws.close()
