"""What may watch a Socket.IO server from outside (the Admin UI instrumentation, the metrics):
told of sockets coming and going, of room changes, of the events sent to sockets, of
broadcasts and of refused CONNECTs.

A server has one observer slot (:meth:`SocketServer.observe`; several observers share it
through :class:`Observers`); each namespace keeps a reference to it, which the places that
report test once per call (an emit, a broadcast, a room change, a connection). A server nobody
observes pays that one test: no call, no allocation, nothing per recipient of a broadcast,
nothing in the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.session import Prepared
    from .namespace import Namespace
    from .socket import Socket


class SocketIOObserver:
    """The calls an observer gets (synchronous; they must not raise). This base class ignores
    them all: a subclass overrides what it wants."""

    __slots__ = ()

    def socket_connected(self, socket: Socket) -> None:
        """``socket`` joined its namespace (its own room joined), before the namespace's
        ``connection`` handlers run."""

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """``socket`` left its namespace (its rooms already left), before its ``disconnect``
        handlers run."""

    def room_joined(self, nsp: Namespace, room: str, sid: str) -> None:
        """Local socket ``sid`` of ``nsp`` entered ``room`` (its own room too)."""

    def room_left(self, nsp: Namespace, room: str, sid: str) -> None:
        """Local socket ``sid`` of ``nsp`` left ``room``."""

    def event_sent(self, nsp: Namespace, sockets: Sequence[Socket], data: list[Any]) -> None:
        """The event ``data`` (``[event, *args]``) went to these local sockets of ``nsp`` (a
        direct emit, or this server's part of a broadcast: the broadcast's own list of
        recipients, so that an observer that ignores it costs nothing per recipient: read it
        during the call, neither keep nor change it)."""

    def broadcast(self, recipients: int, prepared: Prepared | None) -> None:
        """A broadcast reached ``recipients`` sockets of this server (0 when nobody was
        targeted, and then ``prepared`` is ``None``), each sent ``prepared`` (its Engine.IO
        packets: one, plus one per binary attachment). Adapters report it, once per broadcast
        and on every server it reaches, so that counting what broadcasts send costs nothing
        per recipient."""

    def connect_refused(self, reason: str) -> None:
        """A client's CONNECT to a namespace was answered with CONNECT_ERROR: ``reason`` is
        ``"invalid_namespace"``, ``"namespace_error"`` (a dynamic namespace's matcher raised,
        or the new namespace's adapter could not start), ``"middleware"`` (a middleware raised
        ``ConnectionRefused``) or ``"middleware_error"`` (it raised something else)."""


class Observers(SocketIOObserver):
    """Several observers in the one slot of a server (the metrics and the Admin UI)."""

    __slots__ = ("observers",)

    def __init__(self, *observers: SocketIOObserver) -> None:
        self.observers = observers

    def socket_connected(self, socket: Socket) -> None:
        for observer in self.observers:
            observer.socket_connected(socket)

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        for observer in self.observers:
            observer.socket_disconnected(socket, reason)

    def room_joined(self, nsp: Namespace, room: str, sid: str) -> None:
        for observer in self.observers:
            observer.room_joined(nsp, room, sid)

    def room_left(self, nsp: Namespace, room: str, sid: str) -> None:
        for observer in self.observers:
            observer.room_left(nsp, room, sid)

    def event_sent(self, nsp: Namespace, sockets: Sequence[Socket], data: list[Any]) -> None:
        for observer in self.observers:
            observer.event_sent(nsp, sockets, data)

    def broadcast(self, recipients: int, prepared: Prepared | None) -> None:
        for observer in self.observers:
            observer.broadcast(recipients, prepared)

    def connect_refused(self, reason: str) -> None:
        for observer in self.observers:
            observer.connect_refused(reason)
