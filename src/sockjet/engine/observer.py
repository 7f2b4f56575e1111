"""What an engine reports to an observer, such as the metrics of :mod:`sockjet.metrics`.

An engine has no observer by default (``engine.observer is None``) and then runs none of this:
its sessions are plain :class:`~.session.EngineSocket` objects. With an observer, new sessions
are :class:`~.session.ObservedEngineSocket` objects: the rare events (a session opened,
upgraded, closed; a request refused) are method calls, and packets and bytes are added to the
observer's integer attributes, which it reads when it wants (a scrape), so that what each
packet costs is two additions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import EngineSocket

#: the cause a refusal is counted under, by Engine.IO error code (4, Forbidden, says its own:
#: ``"origin"`` or ``"allow_request"``)
REFUSAL_CAUSES = {
    0: "unknown_transport",
    1: "unknown_sid",
    2: "bad_handshake_method",
    3: "bad_request",
    5: "unsupported_protocol",
}


class EngineObserver:
    """The observer's side: a base class that counts packets and bytes and ignores the events
    (a subclass overrides those it wants).

    ``packets_in``/``packets_out``: Engine.IO packets received from clients and queued for
    them; ``bytes_in``/``bytes_out``: their bytes (type and data, UTF-8 for text; the framing
    of each transport, HTTP heads and WebSocket frame headers, is not counted), the same on
    every binding. The Socket.IO layer adds the packets and bytes of its broadcasts once per
    broadcast, see :meth:`~sockjet.socketio.observer.SocketIOObserver.broadcast`.
    """

    __slots__ = ("bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self.packets_in = 0
        self.packets_out = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def session_opened(self, socket: EngineSocket, transport: str) -> None:
        """A new session over ``transport`` (``"polling"`` or ``"websocket"``)."""

    def session_upgraded(self, socket: EngineSocket) -> None:
        """A polling session moved to WebSocket."""

    def session_closed(self, socket: EngineSocket, reason: str) -> None:
        """A session ended with ``reason`` (its ``close`` event's; ``socket.transport`` is
        still the one it ended on)."""

    def request_refused(self, cause: str) -> None:
        """The engine refused a request or a WebSocket handshake: ``cause`` is ``"origin"``,
        ``"allow_request"`` or one of :data:`REFUSAL_CAUSES`."""
