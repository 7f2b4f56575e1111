"""What a Socket.IO server reports to an observer, such as the metrics of
:mod:`sockjet.metrics` (``server.observer``; ``None`` by default, and then nothing is called).
Broadcasts are reported once each, whatever their number of recipients."""

from __future__ import annotations


class SocketIOObserver:
    """The observer's side: a base class that ignores everything (a subclass overrides what it
    wants)."""

    __slots__ = ()

    def broadcast(self, recipients: int, packets: int) -> None:
        """A broadcast reached ``recipients`` sockets of this server (0 when nobody was
        targeted), with ``packets`` Engine.IO packets for each (one, plus one per binary
        attachment). Adapters report it, once per broadcast and on every server it reaches."""

    def connect_refused(self, reason: str) -> None:
        """A client's CONNECT to a namespace was answered with CONNECT_ERROR: ``reason`` is
        ``"invalid_namespace"``, ``"middleware"`` (a middleware raised ``ConnectionRefused``)
        or ``"middleware_error"`` (it raised something else)."""
