"""Namespaces and the broadcast operator (``to``/``in_``/``except_``/``volatile``/...)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..codecs.socketio import RESERVED_EVENTS
from ..exceptions import AckTimeout
from .adapter import Adapter, BroadcastOptions

if TYPE_CHECKING:
    from .server import SocketServer
    from .socket import Socket

Handler = Callable[..., Any]
AdapterFactory = Callable[["Namespace"], Adapter]

_CONNECTION_EVENTS = ("connection", "connect")


def _room_set(rooms: str | Iterable[str]) -> frozenset[str]:
    if isinstance(rooms, str):
        return frozenset((rooms,))
    result = frozenset(rooms)
    if not all(isinstance(r, str) for r in result):
        raise TypeError("room names must be strings")
    return result


def check_event_name(event: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


_NO_OPTIONS = BroadcastOptions()


class BroadcastOperator:
    """An immutable selection of sockets plus flags; every chained call returns a new one."""

    __slots__ = ("_opts", "_target")

    def __init__(self, target: Namespace, opts: BroadcastOptions | None = None) -> None:
        self._target = target
        self._opts = opts if opts is not None else _NO_OPTIONS

    def _with(self, **changes: Any) -> BroadcastOperator:
        fields = {
            "rooms": self._opts.rooms, "except_rooms": self._opts.except_rooms,
            "volatile": self._opts.volatile, "compress": self._opts.compress,
            "local": self._opts.local, "timeout": self._opts.timeout,
        }
        fields.update(changes)
        return BroadcastOperator(self._target, BroadcastOptions(**fields))

    def to(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the sockets in these rooms (socket ids are rooms too); chainable (union)."""
        return self._with(rooms=self._opts.rooms | _room_set(rooms))

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        """Leave out the sockets in these rooms."""
        return self._with(except_rooms=self._opts.except_rooms | _room_set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for sockets that cannot take it right now."""
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's sockets (no fan-out through the adapter)."""
        return self._with(local=True)

    def compress(self, flag: bool = True) -> BroadcastOperator:
        return self._with(compress=bool(flag))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Time limit for :meth:`emit_with_ack`."""
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        return self._with(timeout=float(seconds))

    @property
    def options(self) -> BroadcastOptions:
        return self._opts

    def emit(self, event: str, *args: Any) -> bool:
        """Send an event to every selected socket; the packet is encoded once."""
        check_event_name(event)
        self._target.adapter.broadcast([event, *args], self._opts)
        return True

    def send(self, *args: Any) -> bool:
        return self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit and wait for every client's ack: a list of replies (one value per client, a tuple
        when a client answered with several arguments). Needs :meth:`timeout` unless every
        client is known to answer; raises :class:`AckTimeout` with the partial result."""
        check_event_name(event)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        replies: dict[str, Any] = {}

        def on_ack(sid: str, ack_args: list[Any]) -> None:
            replies[sid] = ack_args[0] if len(ack_args) == 1 else tuple(ack_args)
            if len(replies) >= len(targets) and not done.done():
                done.set_result(None)

        targets = self._target.adapter.broadcast_with_ack([event, *args], self._opts, on_ack)
        if len(replies) >= len(targets):
            return [replies[sid] for sid in targets if sid in replies]
        try:
            if self._opts.timeout is None:
                await done
            else:
                await asyncio.wait_for(asyncio.shield(done), self._opts.timeout)
        except TimeoutError:
            missing = [sid for sid in targets if sid not in replies]
            raise AckTimeout(
                f"{len(missing)} of {len(targets)} clients did not acknowledge {event!r} "
                f"within {self._opts.timeout} s",
                responses=[replies[sid] for sid in targets if sid in replies],
                missing=missing,
            ) from None
        return [replies[sid] for sid in targets]

    async def fetch_sockets(self) -> list[Any]:
        """The selected sockets (local :class:`Socket` objects; remote ones with an adapter)."""
        return await self._target.adapter.fetch_sockets(self._opts)

    def sockets_join(self, rooms: str | Iterable[str]) -> None:
        self._target.adapter.add_sockets(self._opts, _room_set(rooms))

    def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        self._target.adapter.del_sockets(self._opts, _room_set(rooms))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets (``close=True`` also closes their connections)."""
        self._target.adapter.disconnect_sockets(self._opts, close)


class Namespace:
    """A communication channel multiplexed over the connections (``io.of("/admin")``)."""

    def __init__(self, server: SocketServer, name: str, adapter_factory: AdapterFactory,
                 parent: ParentNamespace | None = None) -> None:
        self.server = server
        self.name = name
        self.parent = parent
        #: connected sockets by id
        self.sockets: dict[str, Socket] = {}
        self._middlewares: list[Handler] = parent._middlewares if parent else []
        self._handlers: dict[str, list[Handler]] = {}
        self._ack_ids = 0
        #: connections running this namespace's middlewares (a child is not removed meanwhile)
        self._connecting = 0
        self.adapter: Adapter = adapter_factory(self)

    def next_ack_id(self) -> int:
        """Ack ids are unique per namespace (one id can then serve a whole broadcast)."""
        self._ack_ids += 1
        return self._ack_ids - 1

    def __repr__(self) -> str:
        return f"<Namespace {self.name!r} sockets={len(self.sockets)}>"

    # -- membership -----------------------------------------------------------------------------

    def add_socket(self, socket: Socket) -> None:
        self.sockets[socket.id] = socket

    def remove_socket(self, socket: Socket) -> None:
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
        self.release_if_empty()

    def connecting(self, delta: int) -> None:
        """Count a connection entering (+1) or leaving (-1) this namespace's middlewares."""
        self._connecting += delta
        if delta < 0:
            self.release_if_empty()

    def release_if_empty(self) -> None:
        """A dynamic child namespace with no sockets and no connection on its way in is removed
        (``cleanup_empty_child_namespaces``), so names sent by clients do not pile up."""
        if (self.parent is not None and not self.sockets and not self._connecting
                and self.server.cleanup_empty_child_namespaces):
            self.server.remove_child_namespace(self)

    # -- registration ---------------------------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """``connection``/``connect`` handlers receive each new socket; other names receive
        :meth:`server_side_emit` calls from other servers. Usable as a decorator."""

        def register(fn: Handler) -> Handler:
            key = "connection" if event in _CONNECTION_EVENTS else event
            self._handlers.setdefault(key, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def use(self, middleware: Handler) -> Any:
        """Run ``middleware(socket)`` (sync or async) before each connection; raising
        :class:`ConnectionRefused` refuses it with that message and data."""
        self._middlewares.append(middleware)
        return middleware

    def _emit_local(self, event: str, *args: Any) -> None:
        invoke = self.server.engine._invoke
        for fn in tuple(self._handlers.get(event, ())):
            invoke(fn, *args)
        if self.parent is not None:
            self.parent._emit_local(event, *args)

    # -- broadcast API (each a shortcut for the operator) ---------------------------------------

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self)

    def to(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        return self._operator().to(rooms)

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        return self._operator().except_(rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        return self._operator().volatile

    @property
    def local(self) -> BroadcastOperator:
        return self._operator().local

    def compress(self, flag: bool = True) -> BroadcastOperator:
        return self._operator().compress(flag)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self._operator().timeout(seconds)

    def emit(self, event: str, *args: Any) -> bool:
        return self._operator().emit(event, *args)

    def send(self, *args: Any) -> bool:
        return self._operator().send(*args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        return await self._operator().emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[Any]:
        return await self._operator().fetch_sockets()

    def sockets_join(self, rooms: str | Iterable[str]) -> None:
        self._operator().sockets_join(rooms)

    def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        self._operator().sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        self._operator().disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any, ack: bool = False,
                               timeout: float | None = None) -> list[Any]:
        """Emit to this namespace on the other servers of the cluster (their ``on(event)``
        handlers); with ``ack=True`` wait for their replies. With the in-memory adapter there are
        no other servers and the result is ``[]``."""
        check_event_name(event)
        if event in _CONNECTION_EVENTS:
            raise ValueError(f"{event!r} is reserved for connections")
        return await self.adapter.server_side_emit([event, *args], ack, timeout)


class ParentNamespace(Namespace):
    """A dynamic namespace matcher (``io.of(regex)``/``io.of(callable)``): handlers and
    middlewares apply to every child namespace it creates; broadcasts reach all children."""

    def __init__(self, server: SocketServer, matcher: Any, adapter_factory: AdapterFactory) -> None:
        self.matcher = matcher
        self.children: dict[str, Namespace] = {}
        super().__init__(server, f"<dynamic {matcher!r}>", lambda nsp: _ParentAdapter(nsp))

    def __repr__(self) -> str:
        return f"<ParentNamespace {self.matcher!r} children={len(self.children)}>"


class _ParentAdapter(Adapter):
    """Fans broadcasts out to the adapters of the children (rooms are per child)."""

    nsp: ParentNamespace

    def _children(self) -> list[Adapter]:
        return [child.adapter for child in self.nsp.children.values()]

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def delete(self, sid: str, room: str) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def delete_all(self, sid: str) -> None:
        raise TypeError("a parent namespace has no sockets of its own")

    def socket_rooms(self, sid: str) -> set[str]:
        return set()

    def local_rooms(self) -> dict[str, set[str]]:
        return {}

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> None:
        for adapter in self._children():
            adapter.broadcast(data, opts)

    def broadcast_with_ack(self, data: list[Any], opts: BroadcastOptions,
                           on_ack: Callable[[str, list[Any]], None]) -> list[str]:
        targets: list[str] = []
        for adapter in self._children():
            targets.extend(adapter.broadcast_with_ack(data, opts, on_ack))
        return targets

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        found: list[Any] = []
        for adapter in self._children():
            found.extend(await adapter.fetch_sockets(opts))
        return found

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        for adapter in self._children():
            adapter.add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        for adapter in self._children():
            adapter.del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for adapter in self._children():
            adapter.disconnect_sockets(opts, close)

    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        replies: list[Any] = []
        for adapter in self._children():
            replies.extend(await adapter.server_side_emit(data, ack, timeout))
        return replies
