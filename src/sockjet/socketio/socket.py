"""A Socket.IO socket: one client in one namespace."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..codecs import socketio as sio
from ..exceptions import AckTimeout, Disconnected
from .namespace import BroadcastOperator, _room_set, check_event_name

if TYPE_CHECKING:
    from .namespace import Namespace
    from .server import Connection

log = logging.getLogger("sockjet.socketio")

Handler = Callable[..., Any]


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


class _Done:
    """Returned by sync operations that callers may also ``await`` (``await socket.join(r)``)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield


_DONE = _Done()


#: return values that are certainly not awaitable (skips the slower ABC check)
_PLAIN = frozenset({type(None), tuple, list, dict, str, int, float, bool, bytes})


def ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: ``None`` → none, tuple → several."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


class Socket:
    """One client connected to one namespace.

    ``socket.on(event)`` handlers get the event arguments; when the client asked for an
    acknowledgement, the handler's return value is sent back (a tuple for several values).
    """

    __slots__ = (
        "__weakref__",
        "_acks",
        "_any",
        "_handlers",
        "_middlewares",
        "conn",
        "connected",
        "data",
        "handshake",
        "id",
        "nsp",
        "server",
    )

    def __init__(self, nsp: Namespace, conn: Connection, sid: str, handshake: Handshake) -> None:
        self.nsp = nsp
        self.server = nsp.server
        self.conn = conn
        self.id = sid
        self.handshake = handshake
        #: free-form per-socket storage (``fetch_sockets`` exposes it)
        self.data: dict[str, Any] = {}
        self.connected = False
        self._handlers: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []
        self._middlewares: list[Handler] = []
        self._acks: dict[int, Callable[..., Any]] = {}

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
    def protocol(self) -> int:
        """Socket.IO protocol of the client: 4 (socket.io-client 2.x) or 5 (3.x/4.x)."""
        return self.conn.protocol

    # -- handlers -------------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register an event handler (also usable as a decorator)."""

        def register(fn: Handler) -> Handler:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler, or all handlers of ``event``."""
        if handler is None:
            self._handlers.pop(event, None)
        elif handler in self._handlers.get(event, ()):
            self._handlers[event].remove(handler)

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
        ack_id = None
        if callback is not None:
            ack_id = self.nsp.next_ack_id()
            self._acks[ack_id] = callback
        text, attachments = sio.encode(sio.EVENT, self.nsp.name, [event, *args], ack_id)
        return self.conn.send(text, attachments)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> bool:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the client's ack: its single value, a tuple for several, ``None``
        for none. Raises :class:`AckTimeout` after ``timeout`` seconds, :class:`Disconnected` if
        the socket goes away first."""
        waiter = AckWaiter(asyncio.get_running_loop().create_future())
        future = waiter.future
        if not self.emit(event, *args, callback=waiter):
            raise Disconnected(f"socket {self.id} is not connected")
        try:
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            for ack_id, callback in list(self._acks.items()):
                if callback is waiter:
                    del self._acks[ack_id]
            raise AckTimeout(f"{event!r} was not acknowledged within {timeout} s") from None

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
            self.nsp.adapter.add_all(self.id, _room_set(rooms))
        return _DONE

    def leave(self, room: str) -> Awaitable[None]:
        if self.connected:
            self.nsp.adapter.delete(self.id, room)
        return _DONE

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
            self._on_close("server namespace disconnect")
        return self

    # -- incoming -------------------------------------------------------------------------------

    def _on_packet(self, packet: sio.SocketIOPacket) -> None:
        ptype = packet.type
        if ptype in (sio.EVENT, sio.BINARY_EVENT):
            if self._middlewares:
                self.server.engine._invoke(self._run_middlewares, packet)
            else:
                self._dispatch(packet.data, packet.id)
        elif ptype in (sio.ACK, sio.BINARY_ACK):
            callback = self._acks.pop(packet.id, None)  # type: ignore[arg-type]
            if callback is not None:
                self.server.engine._invoke(callback, *packet.data)
        elif ptype == sio.DISCONNECT:
            self._on_close("client namespace disconnect")

    async def _run_middlewares(self, packet: sio.SocketIOPacket) -> None:
        try:
            for middleware in tuple(self._middlewares):
                result = middleware(packet.data)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            handlers = self._handlers.get("error")
            if handlers:
                for fn in tuple(handlers):
                    self.server.engine._invoke(fn, exc)
            else:
                log.warning("packet refused by middleware on %s: %r", self.id, exc)
            return
        if self.connected:
            self._dispatch(packet.data, packet.id)

    def _dispatch(self, data: list[Any], ack_id: int | None) -> None:
        event = data[0]
        args = data[1:]
        if self._any:
            for fn in tuple(self._any):
                self.server.engine._invoke(fn, event, *args)
        handlers = self._handlers.get(event)
        if not handlers:
            return
        try:  # in registration order, as Node; the first one's return value is the ack
            result = handlers[0](*args)
        except Exception:
            log.exception("error in handler for %r on %s", event, self.id)
            ack_id = result = None  # no ack; the other handlers still run
        if len(handlers) > 1:
            for fn in handlers[1:]:
                self.server.engine._invoke(fn, *args)
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self.server.engine._track(task)
            if ack_id is not None:
                task.add_done_callback(lambda t: self._ack_from_task(t, ack_id))
        elif ack_id is not None:
            self._send_ack(ack_id, result)

    def _ack_from_task(self, task: asyncio.Future[Any], ack_id: int) -> None:
        if not task.cancelled() and task.exception() is None:
            self._send_ack(ack_id, task.result())

    def _send_ack(self, ack_id: int, result: Any) -> None:
        if self.connected:
            text, attachments = sio.encode(sio.ACK, self.nsp.name, ack_args(result), ack_id)
            self.conn.send(text, attachments)

    def _on_connect(self) -> None:
        self.connected = True
        nsp = self.nsp
        nsp.add_socket(self)
        nsp.adapter.add_all(self.id, (self.id,))
        self.conn._attach(self)
        nsp._emit_local("connection", self)

    def _on_close(self, reason: str) -> None:
        if not self.connected:
            return
        invoke = self.server.engine._invoke
        for fn in tuple(self._handlers.get("disconnecting", ())):
            invoke(fn, reason)
        self.connected = False
        self.nsp.adapter.delete_all(self.id)
        self.conn._detach(self)
        acks, self._acks = self._acks, {}
        for callback in acks.values():
            if isinstance(callback, AckWaiter) and not callback.future.done():
                callback.future.set_exception(Disconnected(f"socket {self.id} disconnected"))
        for fn in tuple(self._handlers.get("disconnect", ())):
            invoke(fn, reason)
        self._handlers.clear()
        self._any.clear()
        self._middlewares.clear()
        self.nsp.remove_socket(self)  # last: an empty dynamic child namespace goes away


class AckWaiter:
    """An ack callback that resolves a future: one value, a tuple for several, ``None`` for
    none (``emit_with_ack`` of the server's sockets and of the client)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def __call__(self, *values: Any) -> None:
        if not self.future.done():
            self.future.set_result(values[0] if len(values) == 1 else (values or None))


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
        return socket.emit(event, *args)
