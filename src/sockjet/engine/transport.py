"""The seam between the engine and a binding (the native one, the ASGI app, the tests'
in-process one): a binding turns its requests into :class:`HTTPRequest` and
:class:`WebSocketConnection` objects and writes back the :class:`Response`. The engine never sees
an ASGI scope or a socket, and needs nothing of a binding beyond these protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class RequestInfo(Protocol):
    """What the engine and user hooks (``allow_request``...) may read of any request."""

    # read-only members, so a binding may hold them as plain attributes of narrower types
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names; repeated headers joined with ", "."""
        ...
    @property
    def scheme(self) -> str:
        """"http"/"https" (WebSocket scopes say so too, not "ws"/"wss")."""
        ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def raw_query(self) -> bytes: ...


class HTTPRequest(RequestInfo, Protocol):
    async def read_body(self, limit: int) -> bytes:
        """Whole body; raises :class:`PayloadTooLarge` past ``limit`` bytes, ``ClientGone``."""
        ...

    async def wait_disconnect(self) -> None:
        """Return once the client has gone away (used while a long-poll waits)."""
        ...


class WebSocketConnection(RequestInfo, Protocol):
    """A WebSocket handshake request, then the connection. Every binding implements all of it,
    with the same units: writing never blocks, and :meth:`backlog` counts bytes."""

    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        """Complete the handshake (HTTP 101), adding ``headers`` to the response."""
        ...

    async def reject(self, status: int, body: bytes) -> None:
        """Refuse the handshake with an HTTP response (before :meth:`accept`)."""
        ...

    async def receive(self) -> str | bytes | None:
        """The next message, or ``None`` once the connection is closed (messages that arrived
        before the close are still returned first)."""
        ...

    def write(self, frames: list[str | bytes]) -> None:
        """Send messages, in order, without waiting: they leave at once or are queued."""
        ...

    def backlog(self) -> int:
        """Bytes written but not yet handed to the network (flow control: volatile packets are
        dropped, and a client this far behind is cut off)."""
        ...

    def close(self, code: int = 1000) -> None:
        """Close with ``code`` once what was written has been sent; nothing more is received."""
        ...


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """Deadlines and size limits every binding applies to HTTP connections (seconds, bytes).

    Node's http server has the same knobs (``headersTimeout``, ``requestTimeout``,
    ``keepAliveTimeout``, ``maxHeaderSize``, ``maxHeadersCount``); the defaults here are stricter
    where Node's leave room for slow-loris clients.
    """

    #: the request line and headers must be complete within this time (else 408, closed)
    headers_timeout: float = 30.0
    #: a whole request, body included, must arrive within this time (else 408, closed)
    request_timeout: float = 300.0
    #: an idle connection (no request in progress) is closed after this time
    keep_alive_timeout: float = 5.0
    #: request line plus headers, in bytes (else 431, closed)
    max_header_size: int = 16 * 1024
    #: number of header lines (else 431, closed)
    max_headers: int = 100


DEFAULT_HTTP_LIMITS = HTTPLimits()


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
