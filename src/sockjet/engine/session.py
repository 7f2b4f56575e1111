"""One Engine.IO session on the server: the driver of :class:`~.protocol.EngineProtocol`.

The protocol decides (heartbeats, what a packet means, closing); this module does what needs
time and I/O: the heartbeat timer, long-polls waiting for packets, POST bodies, the WebSocket
reader, the polling→WebSocket upgrade, and the application's handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..codecs import engineio as eio
from ..exceptions import ClientGone, DecodeError, PayloadTooLarge, ProtocolError
from .handlers import Handlers, HasHandlers, Invoker
from .observer import EngineObserver
from .polling import decode_post, ok_response, payload_response, payload_too_large
from .protocol import EngineProtocol, Heartbeat, Role, SessionState
from .refusals import error_response
from .transport import HTTPRequest, RequestInfo, Response, WebSocketConnection

log = logging.getLogger("sockjet.engine")

OPEN, CLOSED, CLOSING = SessionState.OPEN, SessionState.CLOSED, SessionState.CLOSING
_NOOP = [eio.EnginePacket(eio.NOOP)]
_CLOSE = eio.EnginePacket(eio.CLOSE)
_RELEASE = object()  # resolves a waiting poll with a noop (upgrade in progress, client close)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs to know of its server's options (times in seconds)."""

    ping_interval: float
    ping_timeout: float
    upgrade_timeout: float
    close_timeout: float
    max_http_buffer_size: int
    queue_high_water: int  # bytes (of packets encoded for the wire, as the bindings count them)
    queue_limit: int  # bytes
    compression_threshold: int | None


class Prepared:
    """Messages encoded once and written to many sessions (a broadcast).

    WebSocket frames are built lazily, once per protocol variant, and shared by every recipient.
    """

    __slots__ = ("_frames", "packets", "size")

    def __init__(self, messages: list[str | bytes]) -> None:
        self.packets = [eio.EnginePacket(eio.MESSAGE, m) for m in messages]
        self.size = sum(len(m) for m in messages) + len(messages)  # + the type of each
        self._frames: dict[tuple[int, bool], list[str | bytes]] = {}

    def frames(self, engine_protocol: int, b64: bool) -> list[str | bytes]:
        key = (engine_protocol, b64)
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = [
                eio.encode_frame(t, d, engine_protocol, b64) for t, d in self.packets
            ]
        return frames


class EngineSocket(EngineProtocol, HasHandlers):
    """An Engine.IO session as the application sees it.

    Events (``socket.on(name, handler)``): ``message(data)`` with ``str`` or ``bytes``,
    ``close(reason)`` with Node's reason strings (``"transport close"``, ``"transport error"``,
    ``"ping timeout"``, ``"parse error"``, ``"forced close"``, ``"server shutting down"``),
    ``upgrade()`` once the session moved to WebSocket.
    """

    __slots__ = ("__weakref__", "_b64", "_buffered", "_close_wait", "_config", "_forget",
                 "_invoker", "_loop", "_on_message", "_poll", "_posting", "_timer", "_ws",
                 "_ws_b64", "handlers", "request", "sid")

    def __init__(self, sid: str, engine_protocol: int, request: RequestInfo, b64: bool,
                 handshake: str, config: SessionConfig, invoker: Invoker,
                 forget: Callable[[EngineSocket], None]) -> None:
        self._loop = asyncio.get_running_loop()
        super().__init__(Role.SERVER, engine_protocol, config.ping_interval,
                         config.ping_timeout, self._loop.time)
        self.sid = sid
        #: the handshake request (headers, query, client address...)
        self.request = request
        self.handlers = Handlers()
        self._config = config
        self._invoker = invoker
        self._forget = forget
        self._b64 = b64
        self._buffered = 0  # bytes in the polling buffer
        self._poll: asyncio.Future[Any] | None = None
        self._posting = False
        self._ws: WebSocketConnection | None = None
        self._ws_b64 = False
        #: the layer above (Socket.IO) takes messages through this direct, synchronous hook
        self._on_message: Callable[[str | bytes], None] | None = None
        self._close_wait: asyncio.TimerHandle | None = None
        self.buffer.append(eio.EnginePacket(eio.OPEN, handshake))
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self.heartbeat_at,
                                                                     self._on_timer)

    # -- public API ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return "polling" if self._ws is None else "websocket"

    def send(self, data: str | bytes) -> bool:
        """Queue a message; ``False`` when the session is no longer open."""
        return self.write_packet(eio.MESSAGE, data)

    def set_message_hook(self, hook: Callable[[str | bytes], None]) -> None:
        """Deliver messages to ``hook(data)`` (synchronous) before any ``message`` handlers:
        the cheap path the Socket.IO layer uses."""
        self._on_message = hook

    def close(self) -> None:
        """Close the session from the server side (reason ``"forced close"``): what is queued
        still goes out first."""
        self.end("forced close", graceful=True)

    @property
    def poll_pending(self) -> bool:
        """Whether a long-poll GET is waiting in the server for packets to carry."""
        poll = self._poll
        return poll is not None and not poll.done()

    @property
    def post_pending(self) -> bool:
        """Whether the body of a POST to this session is being received."""
        return self._posting

    @property
    def buffered(self) -> int:
        """Bytes waiting to be written (polling buffer or WebSocket backlog)."""
        ws = self._ws
        return ws.backlog() if ws is not None else self._buffered

    @property
    def writable(self) -> bool:
        """Whether a packet sent now goes out at once: volatile packets are dropped otherwise.

        Over polling that means a poll is waiting; over WebSocket that less than
        ``queue_high_water`` is still unsent.
        """
        if self.state is not OPEN:
            return False
        ws = self._ws
        if ws is not None:
            return ws.backlog() < self._config.queue_high_water
        return self._poll is not None and self._buffered < self._config.queue_high_water

    def send_prepared(self, prepared: Prepared, volatile: bool = False) -> bool:
        """Queue pre-encoded messages; ``False`` if closed (or dropped, when ``volatile``)."""
        if self.state is not OPEN or (volatile and not self.writable):
            return False
        ws = self._ws
        if ws is not None:
            ws.write(prepared.frames(self.engine_protocol, self._ws_b64))
            return self._within_limit(ws.backlog())
        self.buffer.extend(prepared.packets)
        return self._buffer_grew(prepared.size)

    # -- what the protocol writes -------------------------------------------------------------

    def write_packet(self, ptype: eio.EnginePacketType, data: str | bytes = "") -> bool:
        if self.state is not OPEN:
            return False
        ws = self._ws
        if ws is not None:
            ws.write([eio.encode_frame(ptype, data, self.engine_protocol, self._ws_b64)])
            return self._within_limit(ws.backlog())
        self.buffer.append(eio.EnginePacket(ptype, data))
        return self._buffer_grew(len(data) + 1)  # the packet type is a byte too

    def _buffer_grew(self, size: int) -> bool:
        self._buffered += size
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(None)
        return self._within_limit(self._buffered)

    def _within_limit(self, backlog: int) -> bool:
        if backlog > self._config.queue_limit:  # a client this far behind is cut off
            self.end("transport error", detail="send queue over queue_limit")
            return False
        return True

    # -- heartbeat ----------------------------------------------------------------------------

    def _on_timer(self) -> None:
        self._timer = None
        if self.state is not OPEN:
            return
        if self.heartbeat() is Heartbeat.TIMED_OUT:
            self.end("ping timeout")
        elif self.state is OPEN:  # a ping over the limit may have closed it
            self._timer = self._loop.call_at(self.heartbeat_at, self._on_timer)

    # -- incoming -----------------------------------------------------------------------------

    def _handle(self, ptype: int, data: str | bytes) -> str | None:
        """A received packet; the close reason when the session ends because of it."""
        try:
            message = self.receive(ptype, data)
        except ProtocolError as exc:  # a heartbeat in the wrong direction
            self.end("transport error", detail=str(exc))
            return "transport error"
        if message is not None:
            hook = self._on_message
            if hook is not None:
                hook(message)
            if self.handlers:
                self._invoker.emit(self.handlers, "message", message)
        elif self.state is CLOSED:  # the client's close packet
            self.end("transport close", by_client=True)
            return "transport close"
        else:  # a pong brings the next ping closer than the pong's deadline the timer waits for
            timer = self._timer
            if timer is not None and self.heartbeat_at < timer.when():
                timer.cancel()
                self._timer = self._loop.call_at(self.heartbeat_at, self._on_timer)
        return None

    # -- closing ------------------------------------------------------------------------------

    def end(self, reason: str, graceful: bool = False, detail: str | None = None,
            by_client: bool = False) -> None:
        """End the session with ``reason``. ``graceful``: over polling, what is queued goes out
        first and the close packet in the next poll (kept for ``close_timeout`` at most);
        ``by_client``: the client sent a close packet, nothing more is owed to it."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if detail:
            log.debug("session %s closed: %s (%s)", self.sid, reason, detail)
        ws = self._ws
        if ws is not None:
            self.state = CLOSED
            ws.close()  # after what was written
            self._forget(self)
        elif by_client:  # as engine.io: a pending poll is answered with a noop
            self._release_poll()
            self._finish_close()
        elif graceful and self.buffer:
            # As engine.io (close() waits for "drain"): the queued packets go out first and the
            # close packet in the next poll. In one payload, socket.io-client 4 would handle the
            # close before the packets (it defers decoded packets to the next tick) and lose them
            # (e.g. a DISCONNECT: "transport close" instead of "io server disconnect").
            self.state = CLOSING  # handle_poll queues the close packet once these are sent
            self._close_wait = self._loop.call_later(self._config.close_timeout,
                                                     self._finish_close)
        else:
            self.buffer.append(_CLOSE)
            poll = self._poll
            if poll is not None:
                # the waiting poll carries what is queued and the close packet, then forgets;
                # also when it was released and has not resumed yet (its answer is still owed)
                self.state = CLOSING
                if not poll.done():
                    poll.set_result(None)
            elif graceful:
                self.state = CLOSING
                self._close_wait = self._loop.call_later(self._config.close_timeout,
                                                         self._finish_close)
            else:
                self._finish_close()
        self._invoker.emit(self.handlers, "close", reason)
        self.handlers.clear()  # break reference cycles with application closures
        self._on_message = None

    def _finish_close(self) -> None:
        if self._close_wait is not None:
            self._close_wait.cancel()
            self._close_wait = None
        self.state = CLOSED
        self.buffer = []
        self._buffered = 0
        self._forget(self)

    # -- polling ------------------------------------------------------------------------------

    async def handle_poll(self, req: HTTPRequest) -> Response:
        if self._poll is not None:
            # A second GET while one waits: the first gets the close packet, this one a 400.
            self.end("transport error", detail="overlapping poll")
            return error_response(3)
        if not self.buffer and self.state is OPEN:
            if self.upgrading:
                return self._respond(req, _NOOP)
            poll = self._poll = self._loop.create_future()
            log.debug("session %s: poll waiting", self.sid)
            gone = asyncio.ensure_future(req.wait_disconnect())
            try:
                await asyncio.wait((poll, gone), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._poll = None
                gone.cancel()
            if not poll.done():
                poll.cancel()
                self.end("transport error", detail="poll aborted by the client")
                return error_response(1)
            if poll.result() is _RELEASE and not self.buffer:
                return self._respond(req, _NOOP)
        packets, self.buffer, self._buffered = self.buffer, [], 0
        response = self._respond(req, packets)
        if self.state is CLOSING:
            if packets and packets[-1].type == eio.CLOSE:
                self._finish_close()
            else:  # a graceful close was waiting for these packets to go out first
                self.buffer.append(_CLOSE)
        return response

    def _respond(self, req: HTTPRequest, packets: list[eio.EnginePacket]) -> Response:
        return payload_response(packets, self.engine_protocol, self._b64, req.query,
                                req.headers, self._config.compression_threshold)

    async def handle_post(self, req: HTTPRequest) -> Response:
        if self._posting:
            self.end("transport error", detail="overlapping POST")
            return error_response(3)
        self._posting = True
        try:
            body = await req.read_body(self._config.max_http_buffer_size)
        except PayloadTooLarge:
            self.end("transport error", detail="POST body over max_http_buffer_size")
            return payload_too_large()
        except ClientGone:
            self.end("transport error", detail="POST aborted by the client")
            return error_response(3)
        finally:
            self._posting = False
        try:
            packets = decode_post(body, self.engine_protocol, req.query, req.headers)
        except (DecodeError, UnicodeDecodeError) as exc:
            self.end("parse error", detail=str(exc))
            return error_response(3)
        for ptype, data in packets:
            if self.state is not OPEN or self._handle(ptype, data) is not None:
                break
        return ok_response()

    def _release_poll(self) -> None:
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(_RELEASE)

    # -- WebSocket ----------------------------------------------------------------------------

    async def run_websocket(self, ws: WebSocketConnection, upgraded: bool = False) -> None:
        """Serve the session over ``ws`` until either side closes it; ``upgraded``: it comes
        from polling, and ``upgrade`` is emitted once the transport has switched."""
        self._ws = ws
        self._ws_b64 = self.engine_protocol < 4 and ws.query.get("b64") in ("1", "true")
        if self.buffer:  # packets queued while polling (or the open packet) move over
            ws.write([eio.encode_frame(t, d, self.engine_protocol, self._ws_b64)
                      for t, d in self.buffer])
            self.buffer, self._buffered = [], 0
        if upgraded:  # as engine.io: the handler already sees transport == "websocket"
            self._invoker.emit(self.handlers, "upgrade")
        limit = self._config.max_http_buffer_size
        engine_protocol = self.engine_protocol
        reason = "transport close"
        while self.state is OPEN:
            message = await ws.receive()
            if message is None:
                break
            if len(message) > limit // 4 and eio.byte_length(message) > limit:
                reason = "transport error"
                ws.close(1009)
                break
            try:
                ptype, data = eio.decode_frame(message, engine_protocol)
            except DecodeError:
                reason = "parse error"
                break
            ended = self._handle(ptype, data)
            if ended is not None:
                reason = ended
                break
        self.end(reason)

    async def handle_upgrade(self, ws: WebSocketConnection) -> None:
        """Polling -> WebSocket: ``2probe``/``3probe``, the poll released with a noop, ``5``."""
        await ws.accept()
        if self._ws is not None or self.upgrading or self.state is not OPEN:
            ws.close()
            return
        self.upgrading = True
        try:
            async with asyncio.timeout(self._config.upgrade_timeout):
                answer = self.answer_probe(await ws.receive())
                if answer is None:
                    ws.close()
                    return
                ws.write([answer])
                self._release_poll()
                if not self.completes_upgrade(await ws.receive()):
                    ws.close()
                    return
        except TimeoutError:
            ws.close()
            return
        finally:
            self.upgrading = False
        if self.state is not OPEN:
            ws.close()
            return
        self._release_poll()
        await self.run_websocket(ws, upgraded=True)


class ObservedEngineSocket(EngineSocket):
    """A session of an engine that has an observer: the same session, which also counts its
    packets and reports opening, upgrade and close. The engine makes these only while it has an
    observer, so that a session without one runs no counting code, not even a test. Its methods
    call ``super()``: the engine may mix it with another subclass (its ``session_class``)."""

    __slots__ = ("_observer",)

    def __init__(self, sid: str, engine_protocol: int, request: RequestInfo, b64: bool,
                 handshake: str, config: SessionConfig, invoker: Invoker,
                 forget: Callable[[EngineSocket], None], observer: EngineObserver) -> None:
        self._observer = observer
        super().__init__(sid, engine_protocol, request, b64, handshake, config, invoker, forget)
        observer.packets_out += 1  # the open packet
        observer.bytes_out += 1 + len(handshake)

    def write_packet(self, ptype: eio.EnginePacketType, data: str | bytes = "") -> bool:
        if self.state is OPEN:
            observer = self._observer
            observer.packets_out += 1
            observer.bytes_out += 1 + eio.byte_length(data)
        return super().write_packet(ptype, data)

    def _handle(self, ptype: int, data: str | bytes) -> str | None:
        observer = self._observer
        observer.packets_in += 1
        observer.bytes_in += 1 + eio.byte_length(data)
        return super()._handle(ptype, data)

    def end(self, reason: str, graceful: bool = False, detail: str | None = None,
            by_client: bool = False) -> None:
        if self.close_reason is None:
            self._observer.session_closed(self, reason)
        super().end(reason, graceful, detail, by_client)

    async def run_websocket(self, ws: WebSocketConnection, upgraded: bool = False) -> None:
        if upgraded:
            self._observer.session_upgraded(self)
        await super().run_websocket(ws, upgraded)
