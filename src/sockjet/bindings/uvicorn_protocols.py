"""uvicorn's httptools and websockets protocols, held to the same limits as the native binding.

uvicorn on its own sets no deadline for a request head or for a connection that never sends a
request, no limit on the size or number of headers, and logs every malformed request and every
invalid UTF-8 frame as a warning or an error with a traceback. sockjet's runner serves the ASGI
app with these subclasses instead (``sockjet.run(..., runner="uvicorn")``); to run uvicorn
yourself with the same protection::

    uvicorn.run(app, http=sockjet.bindings.uvicorn_protocols.HTTPProtocol,
                ws=sockjet.bindings.uvicorn_protocols.WebSocketProtocol,
                timeout_keep_alive=5)

The limits are read from the sockjet server the app serves (its ``http_limits``), or are the
defaults when the app does not expose one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode

from ..engine.notices import peer_mistake
from ..engine.transport import DEFAULT_HTTP_LIMITS, HTTPLimits
from ..exceptions import RequestRefused
from .guards import (
    GuardedConnection,
    Lingering,
    Phase,
    Sweeper,
    descriptors,
    refusal_bytes,
)


def limits_of(app: Any) -> HTTPLimits:
    """The limits of the sockjet server behind ``app`` (through uvicorn's middlewares)."""
    for _ in range(16):
        engine = getattr(app, "engine", None)
        if engine is not None and isinstance(getattr(engine, "http_limits", None), HTTPLimits):
            return engine.http_limits  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
        if app is None:
            break
    return DEFAULT_HTTP_LIMITS


class HTTPProtocol(GuardedConnection, HttpToolsProtocol):
    """uvicorn's httptools protocol with sockjet's head limits and deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = limits_of(self.app)
        self._guard_init(limits, Sweeper.of(self.loop, limits))
        self._lingering: Lingering | None = None
        self._owed: RequestRefused | None = None  # a refusal waiting for the response in progress

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            descriptors.connection(sock.fileno())
        # uvicorn arms keep-alive only after a first response: a silent connection is idle too
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline_clear()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own version, with refusals that say why and are logged once per peer
        if self._lingering is not None or self._owed is not None:
            if self._lingering is not None:
                self._lingering.discard(len(data))
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
            if self._head_active:
                self._head_unfinished(len(data))
        except httptools.HttpParserUpgrade:
            if self._should_upgrade() and self.parser.get_http_version() == "1.1":
                self._deadline_clear()
                self.handle_websocket_upgrade()
            elif self._should_upgrade():  # RFC 6455 §4.1: HTTP/1.1 at least (uvicorn: any)
                self._refuse(RequestRefused(400, "WebSocket handshake over HTTP/1.0"))
            # any other upgrade is answered as a plain request (uvicorn also warns, every time)
        except RequestRefused as exc:
            self._refuse(exc)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._refuse(cause if isinstance(cause, RequestRefused)
                         else RequestRefused(400, "malformed HTTP request"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begin()

    def on_url(self, url: bytes) -> None:
        self._head_url(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        super().on_header(name, value)
        if len(self.headers) > self._limits.max_headers:
            self._head_too_many()

    def on_headers_complete(self) -> None:
        self._head_complete(len(self.parser.get_method()), len(self.headers))
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline_clear()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if self._owed is not None:  # the refusal goes out after the response owed before it
            refusal, self._owed = self._owed, None
            self._send_refusal(refusal)
        elif cycle is not None and cycle.more_body and not self.transport.is_closing():
            # the response is out but its request's body is still arriving: not read to its
            # end, the connection closes instead
            self._linger()
        else:
            super().on_response_complete()

    def _refuse(self, refusal: RequestRefused) -> None:
        peer_mistake(self.client, refusal.cause)
        self._deadline_clear()
        if self.transport.is_closing() or self._lingering is not None:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.more_body:  # the refused bytes belong to this request: it is abandoned
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:
                    self._linger()
                    return
            else:  # a complete request is being answered: its response goes first
                self._owed = refusal
                self.flow.pause_reading()
                return
        self._send_refusal(refusal)

    def _send_refusal(self, refusal: RequestRefused) -> None:
        self.transport.write(refusal_bytes(refusal.status))
        self._linger()

    def _linger(self) -> None:
        self._deadline_clear()
        self._unset_keepalive_if_required()
        self._lingering = Lingering(self.loop, self.transport)

    def _deadline_expired(self, phase: Phase) -> None:
        cause = ("request head not complete within headers_timeout" if phase is Phase.HEAD
                 else "request not complete within request_timeout")
        self._refuse(RequestRefused(408, cause))


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, answering invalid UTF-8 with close 1007 and a notice
    once per peer instead of an error with a traceback for every frame."""

    def send_receive_event_to_app(self) -> None:
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past websocket.close: discarded until the peer's close reply
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                peer_mistake(self.client, "invalid UTF-8 in a WebSocket text message")
                self.conn.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
