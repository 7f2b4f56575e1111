"""Namespaces: communication channels multiplexed over the connections, static or created on
demand by a dynamic namespace (a regular expression or a callable)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, overload

from ..engine.handlers import H, Handler, Handlers
from .adapter import Adapter, BroadcastAcks, BroadcastOptions
from .operator import BroadcastOperator, check_event_name

if TYPE_CHECKING:
    from .observer import SocketIOObserver
    from .server import SocketServer
    from .socket import Socket

AdapterFactory = Callable[["Namespace"], Adapter]

_CONNECTION_EVENTS = ("connection", "connect")


class Namespace:
    """A communication channel multiplexed over the connections (``io.of("/admin")``)."""

    def __init__(self, server: SocketServer, name: str, adapter_factory: AdapterFactory,
                 parent: ParentNamespace | None = None) -> None:
        self.server = server
        self.name = name
        self.parent = parent
        #: connected sockets by id
        self.sockets: dict[str, Socket] = {}
        #: connection middlewares (a dynamic parent's are shared by its children)
        self.middlewares: list[Handler] = parent.middlewares if parent else []
        self.handlers = Handlers()
        self._ack_ids = 0
        #: connections running this namespace's middlewares (a child is not removed meanwhile)
        self._connecting = 0
        #: the server's observer (:meth:`SocketServer.observe`), or ``None``
        self.observer: SocketIOObserver | None = server.observer
        self.adapter: Adapter
        self.use_adapter(adapter_factory)

    def use_adapter(self, factory: AdapterFactory) -> None:
        """Make this namespace's adapter with ``factory`` (it keeps what connection state
        recovery needs when the server offers it)."""
        self.adapter = factory(self)
        if self.server.recovery is not None:
            self.adapter.enable_recovery(self.server.recovery)

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

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """``connection``/``connect`` handlers receive each new socket; other names receive
        :meth:`server_side_emit` calls from other servers. Usable as a decorator."""
        return self.handlers.on("connection" if event in _CONNECTION_EVENTS else event, handler)

    def use(self, middleware: H) -> H:
        """Run ``middleware(socket)`` (sync or async) before each connection; raising
        :class:`ConnectionRefused` refuses it with that message and data."""
        self.middlewares.append(middleware)
        return middleware

    def dispatch(self, event: str, *args: Any) -> None:
        """Call this namespace's handlers of ``event`` (then its dynamic parent's)."""
        self.server.invoker.emit(self.handlers, event, *args)
        if self.parent is not None:
            self.parent.dispatch(event, *args)

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

    async def all_rooms(self) -> set[str]:
        """The names of the rooms of this namespace on every server (socket ids included, as
        each socket is in its own room): Node's ``io.of(name).adapter.allRooms()``."""
        return await self.adapter.all_rooms()

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
                           on_ack: BroadcastAcks) -> list[str]:
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

    async def all_rooms(self) -> set[str]:
        rooms: set[str] = set()
        for adapter in self._children():
            rooms |= await adapter.all_rooms()
        return rooms

    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        replies: list[Any] = []
        for adapter in self._children():
            replies.extend(await adapter.server_side_emit(data, ack, timeout))
        return replies
