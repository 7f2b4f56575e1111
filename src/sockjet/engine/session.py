"""One Engine.IO session: buffering, polling and WebSocket transports, upgrade, heartbeat, close."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..codecs import engineio as eio
from ..exceptions import ClientGone, DecodeError, PayloadTooLarge
from .interface import (
    HTTPRequest,
    RequestInfo,
    Response,
    WebSocketConnection,
)

if TYPE_CHECKING:
    from .server import Engine

log = logging.getLogger("sockjet.engine")

_NOOP_PAYLOAD: dict[int, str] = {3: "1:6", 4: "6"}
_RELEASE = object()  # resolves a waiting poll with a noop (upgrade in progress)

Handler = Callable[..., Any]


class Prepared:
    """Messages encoded once and written to many sessions (a broadcast).

    WebSocket frames are built lazily, once per protocol variant, and shared by every recipient.
    """

    __slots__ = ("_frames", "packets")

    def __init__(self, messages: list[str | bytes]) -> None:
        self.packets: list[eio.EnginePacket] = [eio.EnginePacket(eio.MESSAGE, m)
                                                for m in messages]
        self._frames: dict[tuple[int, bool], list[str | bytes]] = {}

    def frames(self, protocol: int, b64: bool) -> list[str | bytes]:
        key = (protocol, b64)
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = [
                eio.encode_frame(t, d, protocol, b64) for t, d in self.packets
            ]
        return frames


class EngineSocket:
    """An Engine.IO session as the application sees it.

    Events (``socket.on(name, handler)``): ``message(data)`` with ``str`` or ``bytes``,
    ``close(reason)`` with Node's reason strings (``"transport close"``, ``"transport error"``,
    ``"ping timeout"``, ``"parse error"``, ``"forced close"``, ``"server shutting down"``),
    ``upgrade()`` once the session moved to WebSocket.
    """

    __slots__ = (
        "__weakref__",
        "_b64",
        "_buffer",
        "_close_wait",
        "_dispatching",
        "_handlers",
        "_last_seen",
        "_loop",
        "_on_message",
        "_ping_handle",
        "_poll",
        "_posting",
        "_timeout_handle",
        "_write_now",
        "_writing",
        "_ws",
        "_ws_b64",
        "_ws_queue",
        "_ws_wake",
        "protocol",
        "request",
        "server",
        "sid",
        "state",
        "upgrading",
    )

    def __init__(
        self,
        server: Engine,
        sid: str,
        protocol: int,
        request: RequestInfo,
        b64: bool,
    ) -> None:
        self.server = server
        self.sid = sid
        self.protocol = protocol
        #: the handshake request (headers, query, client address...)
        self.request = request
        self.state = "open"  # open -> closing (polling close packet pending) -> closed
        self.upgrading = False
        self._loop = asyncio.get_running_loop()
        self._b64 = b64
        self._buffer: list[eio.EnginePacket] = []
        self._poll: asyncio.Future[Any] | None = None
        self._posting = False
        self._ws: WebSocketConnection | None = None
        self._ws_b64 = False
        self._ws_queue: deque[str | bytes] = deque()
        self._ws_wake: asyncio.Future[None] | None = None
        self._handlers: dict[str, list[Handler]] = {}
        #: the layer above (Socket.IO) takes messages through this direct, synchronous hook
        self._on_message: Callable[[str | bytes], None] | None = None
        self._dispatching = False  # the reader is handling a frame: it flushes replies itself
        self._writing = False  # a flush is under way (reader or writer): one at a time
        #: set when the connection writes synchronously (native binding): no queue, no writer
        self._write_now: Callable[[list[str | bytes]], None] | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._close_wait: asyncio.TimerHandle | None = None
        self._last_seen = self._loop.time()

    # -- public API ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return "polling" if self._ws is None else "websocket"

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register a handler (also usable as a decorator)."""

        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def send(self, data: str | bytes) -> bool:
        """Queue a message; ``False`` when the session is no longer open."""
        return self._send_packet(eio.MESSAGE, data)

    def set_message_hook(self, hook: Callable[[str | bytes], None]) -> None:
        """Deliver messages to ``hook(data)`` (synchronous) before any ``message`` handlers:
        the cheap path the Socket.IO layer uses."""
        self._on_message = hook

    def close(self) -> None:
        """Close the session from the server side (reason ``"forced close"``)."""
        self._close("forced close", graceful=True)

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
        """Packets waiting to be written (polling buffer or WebSocket queue)."""
        return len(self._buffer) + len(self._ws_queue)

    @property
    def writable(self) -> bool:
        """Whether a packet sent now goes out at once: volatile packets are dropped otherwise.

        Over polling that means a poll is waiting; over WebSocket that the queue is under
        ``queue_high_water``.
        """
        if self.state != "open":
            return False
        if self._ws is not None:
            if self._write_now is not None:  # unsent bytes, 1 KiB counted as one packet
                return self._ws.backlog() < self.server.queue_high_water * 1024  # type: ignore[attr-defined]
            return len(self._ws_queue) < self.server.queue_high_water
        return self._poll is not None and len(self._buffer) < self.server.queue_high_water

    def send_prepared(self, prepared: Prepared, volatile: bool = False) -> bool:
        """Queue pre-encoded messages; ``False`` if closed (or dropped, when ``volatile``)."""
        if self.state != "open" or (volatile and not self.writable):
            return False
        if self._ws is not None:
            return self._write_frames(prepared.frames(self.protocol, self._ws_b64))
        return self._buffer_packets(prepared.packets)

    # -- sending ------------------------------------------------------------------------------

    def _send_packet(self, ptype: int, data: str | bytes = "") -> bool:
        if self.state != "open":
            return False
        if self._ws is not None:
            return self._write_frames([eio.encode_frame(ptype, data, self.protocol, self._ws_b64)])
        return self._buffer_packets([(ptype, data)])

    def _write_frames(self, frames: list[str | bytes]) -> bool:
        write_now = self._write_now
        if write_now is not None:  # synchronous writes: unsent KiB count against queue_limit
            write_now(frames)
            over = self._ws.backlog() > self.server.queue_limit * 1024  # type: ignore[union-attr]
        else:
            self._ws_queue.extend(frames)
            if not self._dispatching:
                self._wake_writer()
            over = len(self._ws_queue) > self.server.queue_limit
        if over:  # a peer this far behind is cut off instead of growing memory
            self._close("transport error", detail="send queue over queue_limit")
            return False
        return True

    def _buffer_packets(self, packets: list[eio.EnginePacket]) -> bool:
        self._buffer.extend(packets)
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(None)
        if len(self._buffer) > self.server.queue_limit:
            self._close("transport error", detail="send queue over queue_limit")
            return False
        return True

    # -- heartbeat ----------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        if self.protocol >= 4:
            self._ping_handle = self._loop.call_later(self.server.ping_interval, self._ping)
        else:
            self._ping_handle = self._loop.call_later(
                self.server.ping_interval + self.server.ping_timeout, self._check_silence
            )

    def _ping(self) -> None:
        self._ping_handle = None
        if self._send_packet(eio.PING):
            self._timeout_handle = self._loop.call_later(
                self.server.ping_timeout, self._close, "ping timeout"
            )

    def _check_silence(self) -> None:
        # v3: the client pings; a session silent for pingInterval+pingTimeout is dead. The
        # deadline moves with every packet received without rearming a timer per packet.
        deadline = self._last_seen + self.server.ping_interval + self.server.ping_timeout
        remaining = deadline - self._loop.time()
        if remaining > 0.001:
            self._ping_handle = self._loop.call_at(deadline, self._check_silence)
        else:
            self._ping_handle = None
            self._close("ping timeout")

    def _on_packet(self, ptype: int, data: str | bytes) -> None:
        if self.state != "open":
            return
        if self.protocol < 4:
            self._last_seen = self._loop.time()
        if ptype == eio.MESSAGE:
            hook = self._on_message
            if hook is not None:
                hook(data)
            if self._handlers:
                self._emit("message", data)
        elif ptype == eio.PING:
            if self.protocol >= 4:
                self._close("transport error", detail="invalid heartbeat direction")
            else:
                self._send_packet(eio.PONG, data)
        elif ptype == eio.PONG:
            if self.protocol < 4:
                self._close("transport error", detail="invalid heartbeat direction")
            elif self._timeout_handle is not None:
                self._timeout_handle.cancel()
                self._timeout_handle = None
                self._ping_handle = self._loop.call_later(self.server.ping_interval, self._ping)
        elif ptype == eio.CLOSE:
            self._close("transport close", by_client=True)
        # open/upgrade/noop from a client carry no meaning outside the upgrade handshake

    # -- closing ------------------------------------------------------------------------------

    def _close(self, reason: str, graceful: bool = False, detail: str | None = None,
               by_client: bool = False) -> None:
        """End the session. ``graceful``: keep it until a poll has carried the close packet;
        ``by_client``: the client sent a close packet (nothing more is owed to it)."""
        if self.state != "open":
            return
        for handle in (self._ping_handle, self._timeout_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._timeout_handle = None
        if detail:
            log.debug("session %s closed: %s (%s)", self.sid, reason, detail)
        if self._ws is not None:
            self.state = "closed"
            if self._write_now is not None:
                self._ws.close_now()  # type: ignore[attr-defined]
            else:
                self._wake_writer()  # the writer drains the queue, then closes the WebSocket
            self.server._forget(self)
        elif by_client:
            # As engine.io: a pending poll is answered with a noop and the session is gone.
            self._release_poll()
            self._finish_close()
        elif graceful and self._buffer:
            # As engine.io (close() waits for "drain"): the queued packets go out first and the
            # close packet in the next poll. In one payload, socket.io-client 4 would handle the
            # close before the packets (it defers decoded packets to the next tick) and lose them
            # (e.g. a DISCONNECT: "transport close" instead of "io server disconnect").
            self.state = "closing"  # handle_poll queues the close packet once these are sent
            self._close_wait = self._loop.call_later(self.server.close_timeout, self._finish_close)
        else:
            self._buffer.append((eio.CLOSE, ""))
            poll = self._poll
            if poll is not None and not poll.done():
                self.state = "closing"
                poll.set_result(None)  # the waiting poll carries the close packet, then forgets
            elif graceful:
                self.state = "closing"
                self._close_wait = self._loop.call_later(
                    self.server.close_timeout, self._finish_close
                )
            else:
                self._finish_close()
        self._emit("close", reason)

    def _finish_close(self) -> None:
        if self._close_wait is not None:
            self._close_wait.cancel()
            self._close_wait = None
        self.state = "closed"
        self._buffer = []
        self.server._forget(self)

    def _wake_writer(self) -> None:
        wake = self._ws_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- events -------------------------------------------------------------------------------

    def _emit(self, event: str, *args: Any) -> None:
        handlers = self._handlers.get(event)
        if handlers:
            for fn in tuple(handlers):
                self.server._invoke(fn, *args)
        if event == "close":
            self._handlers.clear()  # break reference cycles with application closures
            self._on_message = None

    # -- polling ------------------------------------------------------------------------------

    async def handle_poll(self, req: HTTPRequest) -> Response:
        if self._poll is not None:
            # A second GET while one waits: the first gets the close packet, this one a 400.
            self._close("transport error", detail="overlapping poll")
            return self.server.error_response(3)
        if not self._buffer and self.state == "open":
            if self.upgrading:
                return self._payload_response(req, [(eio.NOOP, "")])
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
                self._close("transport error", detail="poll aborted by the client")
                return self.server.error_response(1)
            if poll.result() is _RELEASE and not self._buffer:
                return self._payload_response(req, [(eio.NOOP, "")])
        packets, self._buffer = self._buffer, []
        response = self._payload_response(req, packets)
        if self.state == "closing":
            if packets and packets[-1][0] == eio.CLOSE:
                self._finish_close()
            else:  # a graceful close was waiting for these packets to go out first
                self._buffer.append((eio.CLOSE, ""))
        return response

    def _payload_response(self, req: HTTPRequest, packets: list[eio.EnginePacket]) -> Response:
        jsonp = req.query.get("j")
        if jsonp is not None:
            payload = eio.encode_payload(packets, self.protocol, b64=True)
            body = eio.jsonp_wrap(jsonp, payload).encode()  # type: ignore[arg-type]
            ctype = "text/javascript; charset=UTF-8"
        else:
            payload = eio.encode_payload(packets, self.protocol, b64=self._b64)
            if isinstance(payload, bytes):
                body, ctype = payload, "application/octet-stream"
            else:
                body, ctype = payload.encode(), "text/plain; charset=UTF-8"
        headers = [("content-type", ctype), ("cache-control", "no-store")]
        server = self.server
        if server.compression_threshold is not None and len(body) >= server.compression_threshold:
            encoding = _pick_encoding(req.headers.get("accept-encoding", ""))
            if encoding == "gzip":
                body = gzip.compress(body, compresslevel=6, mtime=0)
            elif encoding == "deflate":
                body = zlib.compress(body)
            if encoding:
                headers.append(("content-encoding", encoding))
                headers.append(("vary", "Accept-Encoding"))
        return Response(200, headers, body)

    async def handle_post(self, req: HTTPRequest) -> Response:
        server = self.server
        if self._posting:
            self._close("transport error", detail="overlapping POST")
            return server.error_response(3)
        self._posting = True
        try:
            body = await req.read_body(server.max_http_buffer_size)
        except PayloadTooLarge:
            self._close("transport error", detail="POST body over max_http_buffer_size")
            return Response(413, [("content-type", "text/plain; charset=UTF-8")],
                            b"Payload Too Large")
        except ClientGone:
            self._close("transport error", detail="POST aborted by the client")
            return server.error_response(3)
        finally:
            self._posting = False
        try:
            if "j" in req.query:
                packets = eio.decode_payload(eio.decode_jsonp_form(body), self.protocol)
            elif req.headers.get("content-type", "").startswith("application/octet-stream"):
                packets = eio.decode_payload(body, self.protocol)
            else:
                packets = eio.decode_payload(body.decode("utf-8"), self.protocol)
        except (DecodeError, UnicodeDecodeError) as exc:
            self._close("parse error", detail=str(exc))
            return server.error_response(3)
        for ptype, data in packets:
            if self.state != "open":
                break
            self._on_packet(ptype, data)
        return Response(200, [("content-type", "text/html")], b"ok")

    def _release_poll(self) -> None:
        poll = self._poll
        if poll is not None and not poll.done():
            poll.set_result(_RELEASE)

    # -- WebSocket ----------------------------------------------------------------------------

    async def run_websocket(self, ws: WebSocketConnection, upgraded: bool = False) -> None:
        """Serve the session over ``ws`` until either side closes it; ``upgraded``: it comes
        from polling, and ``upgrade`` is emitted once the transport has switched."""
        self._ws = ws
        self._ws_b64 = ws.query.get("b64") in ("1", "true") if self.protocol < 4 else False
        self._write_now = getattr(ws, "write_frames", None)
        if self._buffer:  # packets queued while polling (or the open packet) move over
            frames = [eio.encode_frame(t, d, self.protocol, self._ws_b64) for t, d in self._buffer]
            self._buffer = []
            if self._write_now is not None:
                self._write_now(frames)
            else:
                self._ws_queue.extend(frames)
        writer = None if self._write_now else asyncio.ensure_future(self._ws_writer(ws))
        if upgraded:  # as engine.io: the handler already sees transport == "websocket"
            self._emit("upgrade")
        limit = self.server.max_http_buffer_size
        reason = "transport close"
        try:
            while self.state == "open":
                msg = await ws.receive()
                if msg is None:
                    break
                if len(msg) > limit // 4 and _message_size(msg) > limit:
                    reason = "transport error"
                    await ws.close(1009)
                    break
                try:
                    ptype, data = eio.decode_frame(msg, self.protocol)
                except DecodeError:
                    reason = "parse error"
                    break
                self._dispatching = True
                try:
                    self._on_packet(ptype, data)
                finally:
                    self._dispatching = False
                if self._ws_queue and not self._writing:
                    # replies go out from here: no hop through the writer task
                    try:
                        await self._flush(ws)
                    except Exception:  # the peer is going away mid-write
                        # nothing more can be written, but what it sent before still counts
                        self._ws_queue.clear()
        finally:
            self._close(reason)
            if writer is not None:
                self._wake_writer()
                await writer
            else:
                await ws.close()

    async def _flush(self, ws: WebSocketConnection) -> None:
        queue = self._ws_queue
        self._writing = True
        try:
            while queue:
                await ws.send(queue.popleft())
        finally:
            self._writing = False

    async def _ws_writer(self, ws: WebSocketConnection) -> None:
        try:
            while True:
                if self._ws_queue and not self._writing:
                    await self._flush(ws)
                if self.state != "open":
                    break
                self._ws_wake = self._loop.create_future()
                await self._ws_wake
                self._ws_wake = None
        except Exception:  # the peer went away mid-write: the reader sees the close
            self._ws_queue.clear()
            self._close("transport error")
        finally:
            await ws.close()

    async def handle_upgrade(self, ws: WebSocketConnection) -> None:
        """Polling -> WebSocket: ``2probe``/``3probe``, the poll released with a noop, ``5``."""
        await ws.accept()
        if self._ws is not None or self.upgrading or self.state != "open":
            await ws.close()
            return
        self.upgrading = True
        try:
            async with asyncio.timeout(self.server.upgrade_timeout):
                if await ws.receive() != "2probe":
                    await ws.close()
                    return
                await ws.send("3probe")
                self._release_poll()
                if await ws.receive() != "5":
                    await ws.close()
                    return
        except TimeoutError:
            await ws.close()
            return
        finally:
            self.upgrading = False
        if self.state != "open":
            await ws.close()
            return
        self._release_poll()
        await self.run_websocket(ws, upgraded=True)


def _message_size(msg: str | bytes) -> int:
    if isinstance(msg, str):
        return len(msg) if msg.isascii() else len(msg.encode("utf-8", "surrogatepass"))
    return len(msg)


def _pick_encoding(accept: str) -> str | None:
    """gzip or deflate per ``Accept-Encoding`` (q-values honoured; gzip preferred on a tie)."""
    best, best_q = None, 0.0
    for item in accept.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.strip()
        if name in ("gzip", "deflate", "*") and q > best_q:
            best, best_q = ("gzip" if name == "*" else name), q
    return best
