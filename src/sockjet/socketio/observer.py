"""What may watch a Socket.IO server from outside (the Admin UI instrumentation): told of
sockets coming and going, of room changes and of the events sent to sockets.

A server has at most one observer (:meth:`SocketServer.observe`); each namespace keeps a
reference to it, which the places that report test once per call (an emit, a broadcast, a room
change, a connection). A server nobody observes pays that one test: no call, no allocation,
nothing per recipient of a broadcast, nothing in the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .namespace import Namespace
    from .socket import Socket


class Observer(Protocol):
    """The calls an observer gets (synchronous; they must not raise)."""

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

    def event_sent(self, nsp: Namespace, sids: list[str], data: list[Any]) -> None:
        """The event ``data`` (``[event, *args]``) went to these local sockets of ``nsp`` (a
        direct emit, or this server's part of a broadcast)."""
