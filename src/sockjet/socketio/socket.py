"""A Socket.IO socket: one client in one namespace."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..codecs import socketio as sio
from ..engine.handlers import Handler, Handlers, HasHandlers, is_awaitable
from ..exceptions import Disconnected
from .acks import Acks, AckWaiter, ack_args
from .adapter import BroadcastOptions
from .operator import BroadcastOperator, check_event_name, room_set
from .recovery import RECOVERABLE_REASONS, Restored, Session

if TYPE_CHECKING:
    from .namespace import Namespace
    from .server import Connection

log = logging.getLogger("sockjet.socketio")


@dataclass(slots=True)
class Handshake:
    """What the client sent when it connected (``socket.handshake``)."""

    headers: Mapping[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    time: str
    issued: int
    secure: bool
    xdomain: bool
    url: str
    extra: dict[str, Any] = field(default_factory=dict)


class Done:
    """Returned by sync operations that callers may also ``await`` (``await socket.join(r)``),
    for local sockets and remote ones alike."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


DONE = Done()


class Socket(HasHandlers):
    """One client connected to one namespace.

    ``socket.on(event)`` handlers get the event arguments; when the client asked for an
    acknowledgement, the handler's return value is sent back (a tuple for several values).
    """

    __slots__ = ("__weakref__", "_any", "_invoker", "_middlewares", "_rooms_back", "acks",
                 "conn", "connected", "data", "handlers", "handshake", "id", "nsp", "pid",
                 "recovered", "server")

    def __init__(self, nsp: Namespace, conn: Connection, sid: str, handshake: Handshake,
                 pid: str | None = None, restored: Restored | None = None) -> None:
        self.nsp = nsp
        self.server = nsp.server
        self.conn = conn
        self.id = sid
        self.handshake = handshake
        #: free-form per-socket storage (``fetch_sockets`` exposes it)
        self.data: dict[str, Any] = {}
        #: the private session id of connection state recovery (``None`` when it is off or for
        #: a protocol 4 client); never sent to other clients
        self.pid = pid
        #: whether this socket is a session restored by connection state recovery
        self.recovered = restored is not None
        self._rooms_back: list[str] = []
        if restored is not None:
            self.data = dict(restored.session.data)
            self._rooms_back = restored.session.rooms
        self.connected = False
        self.handlers = Handlers()
        #: the callbacks waiting for this client's acks
        self.acks = Acks()
        self._any: list[Handler] = []
        self._middlewares: list[Handler] = []
        self._invoker = self.server.invoker

    def __repr__(self) -> str:
        return f"<Socket {self.id!r} nsp={self.nsp.name!r} connected={self.connected}>"

    # -- properties -----------------------------------------------------------------------------

    @property
    def rooms(self) -> set[str]:
        """The rooms this socket is in (its own id included); a copy."""
        return self.nsp.adapter.socket_rooms(self.id)

    @property
    def transport(self) -> str:
        return self.conn.engine.transport

    @property
    def socketio_protocol(self) -> int:
        """The client's Socket.IO protocol: 4 (socket.io-client 2.x) or 5 (3.x/4.x)."""
        return self.conn.socketio_protocol

    # -- handlers -------------------------------------------------------------------------------

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler, or all handlers of ``event``."""
        self.handlers.off(event, handler)

    def on_any(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every incoming event, before the event's own handlers."""
        self._any.append(handler)
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        if handler is None:
            self._any.clear()
        elif handler in self._any:
            self._any.remove(handler)

    def use(self, middleware: Handler) -> Handler:
        """Per-packet middleware: ``middleware([event, *args])`` (sync or async) runs before the
        handlers; raising stops the packet and emits a local ``error`` event with the exception."""
        self._middlewares.append(middleware)
        return middleware

    # -- sending --------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> bool:
        """Send an event to this client; ``callback(*ack_args)`` runs when it acknowledges."""
        check_event_name(event)
        if not self.connected:
            return False
        if callback is None and self.pid is not None:
            # recoverable: through the adapter to this socket's room, which logs it and appends
            # its offset (as Node does)
            self.nsp.adapter.broadcast([event, *args],
                                       BroadcastOptions(rooms=frozenset((self.id,))))
            return True
        return self._send_event(event, args, callback)

    def _send_event(self, event: str, args: tuple[Any, ...],
                    callback: Callable[..., Any] | None) -> bool:
        ack_id = None
        if callback is not None:
            ack_id = self.nsp.next_ack_id()
            self.acks.add(ack_id, callback)
        data = [event, *args]
        observer = self.nsp.observer
        if observer is not None:
            observer.event_sent(self.nsp, (self,), data)
        text, attachments = sio.encode(sio.EVENT, self.nsp.name, data, ack_id)
        return self.conn.send(text, attachments)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> bool:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the client's ack: its single value, a tuple for several, ``None``
        for none. Raises :class:`AckTimeout` after ``timeout`` seconds, :class:`Disconnected` if
        the socket goes away first."""
        check_event_name(event)
        if not self.connected:
            raise Disconnected(f"socket {self.id} is not connected")
        waiter = AckWaiter()
        ack_id = self.nsp.next_ack_id()
        self.acks.add(ack_id, waiter)
        data = [event, *args]
        observer = self.nsp.observer
        if observer is not None:
            observer.event_sent(self.nsp, (self,), data)
        text, attachments = sio.encode(sio.EVENT, self.nsp.name, data, ack_id)
        if not self.conn.send(text, attachments):
            self.acks.discard(ack_id)
            raise Disconnected(f"socket {self.id} is not connected")
        return await self.acks.wait(ack_id, waiter, timeout, repr(event))

    def timeout(self, seconds: float) -> _TimedSocket:
        """``await socket.timeout(5).emit_with_ack(...)``, as in the Node API."""
        return _TimedSocket(self, seconds)

    @property
    def volatile(self) -> _VolatileSocket:
        """``socket.volatile.emit(...)``: dropped when the client cannot take it right now."""
        return _VolatileSocket(self)

    def compress(self, flag: bool = True) -> Socket:
        """Accepted for API parity; per-message WebSocket compression is a server option."""
        return self

    @property
    def broadcast(self) -> BroadcastOperator:
        """Every socket of the namespace but this one."""
        return BroadcastOperator(self.nsp).except_(self.id)

    def to(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        """Sockets in ``rooms``, this one excluded (``socket.to(room).emit(...)``)."""
        return self.broadcast.to(rooms)

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.except_(rooms)

    # -- rooms ----------------------------------------------------------------------------------

    def join(self, rooms: str | Iterable[str]) -> Awaitable[None]:
        """Join one or several rooms. Done at once; awaiting the result is optional."""
        if self.connected:
            self.nsp.adapter.add_all(self.id, room_set(rooms))
        return DONE

    def leave(self, room: str) -> Awaitable[None]:
        if self.connected:
            self.nsp.adapter.delete(self.id, room)
        return DONE

    # -- disconnect -----------------------------------------------------------------------------

    def disconnect(self, close: bool = False) -> Socket:
        """Leave the namespace (the client gets a DISCONNECT); ``close=True`` also closes the
        underlying connection and with it every namespace of that client."""
        if not self.connected:
            return self
        if close:
            self.conn.disconnect_all()
        else:
            self.conn.send(sio.encode(sio.DISCONNECT, self.nsp.name)[0], ())
            self.end("server namespace disconnect")
        return self

    # -- what the connection drives -------------------------------------------------------------

    def start(self) -> None:
        """The CONNECT was accepted: the socket joins its namespace and its own room."""
        self.connected = True
        nsp = self.nsp
        nsp.add_socket(self)
        nsp.adapter.add_all(self.id, (self.id, *self._rooms_back))
        self._rooms_back = []
        self.conn.attach(self)
        observer = nsp.observer
        if observer is not None:
            observer.socket_connected(self)
        nsp.dispatch("connection", self)

    def receive(self, packet: sio.SocketIOPacket) -> None:
        """A packet from the client for this namespace."""
        ptype = packet.type
        if ptype == sio.EVENT or ptype == sio.BINARY_EVENT:
            if self._middlewares:
                self._invoker.track(self._run_middlewares(packet))
            else:
                self._dispatch(packet.data, packet.id)
        elif ptype == sio.ACK or ptype == sio.BINARY_ACK:
            self.acks.resolve(packet.id, packet.data, self._invoker)  # type: ignore[arg-type]
        elif ptype == sio.DISCONNECT:
            self.end("client namespace disconnect")

    def end(self, reason: str) -> None:
        """The socket leaves its namespace (``disconnecting``, then ``disconnect``)."""
        if not self.connected:
            return
        invoker = self._invoker
        invoker.emit(self.handlers, "disconnecting", reason)
        self.connected = False
        if self.pid is not None and reason in RECOVERABLE_REASONS:
            self.nsp.adapter.persist_session(Session(
                self.id, self.pid, sorted(self.nsp.adapter.socket_rooms(self.id)), self.data,
                time.monotonic()))
        self.nsp.adapter.delete_all(self.id)
        self.conn.detach(self)
        self.acks.fail(f"socket {self.id} disconnected")
        observer = self.nsp.observer
        if observer is not None:
            observer.socket_disconnected(self, reason)
        invoker.emit(self.handlers, "disconnect", reason)
        self.handlers.clear()  # break reference cycles with application closures
        self._any.clear()
        self._middlewares.clear()
        self.nsp.remove_socket(self)  # last: an empty dynamic child namespace goes away

    # -- incoming events ------------------------------------------------------------------------

    async def _run_middlewares(self, packet: sio.SocketIOPacket) -> None:
        try:
            for middleware in tuple(self._middlewares):
                result = middleware(packet.data)
                if is_awaitable(result):
                    await result
        except Exception as exc:
            if self.handlers.get("error"):
                self._invoker.emit(self.handlers, "error", exc)
            else:
                log.warning("packet refused by middleware on %s: %r", self.id, exc)
            return
        if self.connected:
            self._dispatch(packet.data, packet.id)

    def _dispatch(self, data: list[Any], ack_id: int | None) -> None:
        event = data[0]
        args = data[1:]
        invoker = self._invoker
        if self._any:
            for fn in tuple(self._any):
                invoker.call(fn, event, *args)
        handlers = self.handlers.get(event)
        if handlers:
            invoker.run_event(handlers, event, args,
                              None if ack_id is None else partial(self._send_ack, ack_id),
                              self.id)

    def _send_ack(self, ack_id: int, result: Any) -> None:
        if self.connected:
            text, attachments = sio.encode(sio.ACK, self.nsp.name, ack_args(result), ack_id)
            self.conn.send(text, attachments)


class _TimedSocket:
    __slots__ = ("_seconds", "_socket")

    def __init__(self, socket: Socket, seconds: float) -> None:
        self._socket = socket
        self._seconds = seconds

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        return await self._socket.emit_with_ack(event, *args, timeout=self._seconds)


class _VolatileSocket:
    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    def emit(self, event: str, *args: Any) -> bool:
        socket = self._socket
        check_event_name(event)
        if not socket.connected or not socket.conn.engine.writable:
            return False
        return socket._send_event(event, args, None)  # volatile events are never logged
