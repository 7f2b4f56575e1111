"""The small request/connection interface between the engine and a binding (ASGI, native...).

A binding turns its own request objects into :class:`HTTPRequest` / :class:`WebSocketConnection`
and writes back the :class:`Response`. The engine never sees ASGI scopes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class RequestInfo(Protocol):
    """What the engine and user hooks (``allow_request``...) may read of any request."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    scheme: str  # "http"/"https" (or "ws"/"wss" for WebSocket scopes)
    client: tuple[str, int] | None
    raw_query: bytes


class HTTPRequest(RequestInfo, Protocol):
    async def read_body(self, limit: int) -> bytes:
        """Whole body; raises :class:`PayloadTooLarge` past ``limit`` bytes, ``ClientGone``."""
        ...

    async def wait_disconnect(self) -> None:
        """Return once the client has gone away (used while a long-poll waits)."""
        ...


class WebSocketConnection(RequestInfo, Protocol):
    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        """Complete the handshake (HTTP 101), adding ``headers`` to the response."""
        ...

    async def reject(self, status: int, body: bytes) -> None:
        """Refuse the handshake with an HTTP response (before :meth:`accept`)."""
        ...

    async def receive(self) -> str | bytes | None:
        """Next message, or ``None`` once the connection is closed."""
        ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


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
