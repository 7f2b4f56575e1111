"""ASGI binding: serves the engine under its path and hands everything else to a wrapped app."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from ..codecs.engineio import byte_length
from ..engine.refusals import error_response
from ..engine.server import Engine, normalise_path
from ..engine.transport import Response
from ..exceptions import ClientGone, PayloadTooLarge

log = logging.getLogger("sockjet.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


#: seconds between two tries of a late start that failed (requests meanwhile get 503 at once)
START_RETRY_INTERVAL = 1.0
_UNAVAILABLE = Response(503, [("content-type", "text/plain")], b"Service Unavailable")

_HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _parse_query(raw: bytes) -> dict[str, str]:
    query: dict[str, str] = {}
    # strict UTF-8 so that garbage is refused instead of silently mangled
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="strict"):
        query.setdefault(key, value)
    return query


def _parse_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = headers[key] + ", " + text if key in headers else text
    return headers


class _Request:
    """What a binding hands to the engine: the request line, headers and client address."""

    __slots__ = ("_receive", "client", "headers", "method", "path", "query", "raw_query",
                 "scheme")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.method: str = scope.get("method", "GET")
        self.path: str = scope["path"]
        self.raw_query: bytes = scope.get("query_string", b"")
        self.query = _parse_query(self.raw_query)
        self.headers = _parse_headers(scope.get("headers", []))
        # WebSocket scopes say ws/wss: expose the HTTP scheme so origin checks compare alike
        self.scheme: str = _HTTP_SCHEME.get(scope.get("scheme", "http"), "http")
        client = scope.get("client")
        self.client: tuple[str, int] | None = (client[0], client[1]) if client else None
        self._receive = receive


class ASGIHTTPRequest(_Request):
    __slots__ = ()

    async def read_body(self, limit: int) -> bytes:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def wait_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass


class ASGIWebSocket(_Request):
    """The engine's WebSocket connection over ASGI events.

    ASGI sends are awaitable, the engine's writes are not: written frames wait in a queue. Those
    written while the engine handles a received message (its replies) are sent by the reader
    itself when it asks for the next message; the others (broadcasts, a handler's task) by a
    writer task started on the first of them. :meth:`backlog` is the bytes in that queue.
    """

    __slots__ = ("_close_code", "_closed", "_http_response", "_queue", "_queued", "_replying",
                 "_send", "_send_failed", "_wake", "_writer", "_writing")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope, receive)
        self._send = send
        self._closed = False  # nothing more is received
        self._send_failed = False  # the peer went away: nothing more can be sent
        self._http_response = "websocket.http.response" in scope.get("extensions", {})
        self._queue: deque[str | bytes] = deque()
        self._queued = 0  # bytes in the queue
        self._writing = False  # a coroutine is sending the queue
        self._replying = True  # the engine is between two receive() calls
        self._close_code: int | None = None  # close() was called: sent once the queue is
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None

    async def _connect(self) -> bool:
        message = await self._receive()
        if message["type"] != "websocket.connect":
            self._closed = True
            return False
        return True

    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        if await self._connect():
            message: dict[str, Any] = {"type": "websocket.accept"}
            if headers:
                message["headers"] = [(k.encode("latin-1"), v.encode("latin-1"))
                                      for k, v in headers]
            await self._send(message)

    async def reject(self, status: int, body: bytes) -> None:
        if not await self._connect():
            return
        self._closed = True
        self._close_code = 1008
        if self._http_response:
            await self._send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/html"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:  # servers without the extension answer 403
            await self._send({"type": "websocket.close", "code": 1008})

    async def receive(self) -> str | bytes | None:
        if self._queue and not self._writing:  # the replies to the last message
            await self._flush()
        self._replying = False
        if self._closed:
            return None
        message = await self._receive()
        self._replying = True
        if message["type"] == "websocket.receive":
            text: str | None = message.get("text")
            if text is not None:
                return text
            data: bytes = message.get("bytes", b"")
            return data
        self._closed = True
        return None

    def write(self, frames: list[str | bytes]) -> None:
        if self._close_code is not None or self._send_failed:
            return
        queue = self._queue
        for data in frames:
            queue.append(data)
            self._queued += byte_length(data)
        if not self._replying and not self._writing:
            self._wake_writer()

    def backlog(self) -> int:
        return self._queued

    def close(self, code: int = 1000) -> None:
        if self._close_code is not None:
            return
        self._close_code = code
        self._closed = True
        self._wake_writer()

    async def wait_closed(self) -> None:
        """Return once what was written and the close have been sent (the ASGI app must not
        return before: the server would close the connection under the writer)."""
        writer = self._writer
        if writer is not None:
            await writer

    def _wake_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_loop())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._queue and not self._writing:
                await self._flush()
            if self._close_code is not None and not self._queue:
                break
            self._wake = loop.create_future()
            await self._wake
            self._wake = None
        try:
            await self._send({"type": "websocket.close", "code": self._close_code})
        except Exception:  # already gone: nothing left to close
            pass

    async def _flush(self) -> None:
        queue = self._queue
        self._writing = True
        try:
            while queue:
                data = queue.popleft()
                self._queued -= byte_length(data)
                if isinstance(data, str):
                    await self._send({"type": "websocket.send", "text": data})
                else:
                    await self._send({"type": "websocket.send", "bytes": data})
        except Exception:  # the peer went away mid-write: nothing more can be sent (what it
            queue.clear()   # sent before going is still received)
            self._queued = 0
            self._send_failed = True
        finally:
            self._writing = False
        if self._close_code is not None and self._writer is not None:
            self._wake_writer()  # the close waits for the queue


class ASGIApp:
    """Mount point for an engine (or anything exposing ``.engine``)."""

    def __init__(
        self,
        server: Any,
        other_asgi_app: ASGIApplication | None = None,
        path: str | None = None,
    ) -> None:
        self.server = server
        self.engine: Engine = server.engine
        self.other_asgi_app = other_asgi_app
        self.path = normalise_path(path) if path is not None else self.engine.path
        self._retry_at = 0.0  # a failed late start is not tried again before then
        self._failure: Exception | None = None  # the last one logged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self._lifespan(scope, receive, send)
        engine = self.engine
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if engine.routes and kind == "http" and path in engine.routes:
            if not engine.started:
                await self._start_late()  # served either way (metrics, when nothing else is)
            return await self._route(path, scope, receive, send)
        if path.startswith(self.path) and kind in ("http", "websocket"):
            # not started (the log says why; clients are not told, since the reason may name
            # internal hosts): 503, also as a WebSocket handshake's answer where the server
            # can send one (else the handshake is refused: 403)
            available = engine.started or await self._start_late()
            if kind == "http":
                if not available:
                    return await _write(send, _UNAVAILABLE)
                return await self._http(scope, receive, send)
            return await self._websocket(scope, receive, send, refuse=not available)
        if self.other_asgi_app is not None:
            return await self.other_asgi_app(scope, receive, send)
        if kind == "http":
            await _write(send, Response(404, [("content-type", "text/plain")], b"Not Found"))
        elif kind == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1000})

    async def _start_late(self) -> bool:
        """No lifespan startup reached this app (a wrapped app that keeps lifespan to itself, a
        framework mounting this app, lifespan turned off): the engine starts with the first
        request to it instead, so that adapters connect and timers run. Whether it is started:
        not after a shutdown (the server is stopping), nor while a failed start is recent (it
        is tried again at most every :data:`START_RETRY_INTERVAL` seconds; each failure is
        logged once, however many requests waited for it)."""
        engine = self.engine
        if engine.shut_down:
            return False
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return False
        try:
            await engine.startup()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this request was cancelled
            return False  # the start was: a shutdown interrupted it
        except Exception as exc:
            # from when it failed: a slow failure (a connect timeout) is not tried at once again
            self._retry_at = asyncio.get_running_loop().time() + START_RETRY_INTERVAL
            if exc is not self._failure:
                self._failure = exc
                log.error("startup failed: %s", exc)
            return False
        return True

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = ASGIHTTPRequest(scope, receive)
        except (UnicodeDecodeError, ValueError):
            return await _write(send, error_response(3))
        response = await self.engine.handle_request(request)
        if response is None:  # OPTIONS left to the application (handle_preflight_request=False)
            if self.other_asgi_app is not None:
                return await self.other_asgi_app(scope, receive, send)
            response = Response(404, [("content-type", "text/plain")], b"Not Found")
        await _write(send, response)

    async def _route(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """One of the engine's other endpoints (:attr:`Engine.routes`)."""
        try:
            request = ASGIHTTPRequest(scope, receive)
        except (UnicodeDecodeError, ValueError):
            return await _write(send, error_response(3))
        response = await self.engine.routes[path](request)
        await _write(send, response, head_only=request.method == "HEAD")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send,
                         refuse: bool = False) -> None:
        """A WebSocket to the engine (``refuse``: answered 503, the engine is not started)."""
        try:
            ws = ASGIWebSocket(scope, receive, send)
        except (UnicodeDecodeError, ValueError):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            if refuse:
                await ws.reject(503, _UNAVAILABLE.body)
            else:
                await self.engine.handle_websocket(ws)
        finally:
            ws.close()
            await ws.wait_closed()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine
        engine.loop = asyncio.get_running_loop()
        if self.other_asgi_app is not None:

            async def receive_and_watch() -> Message:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await engine.startup()  # fails the wrapped app's startup if it fails
                elif message["type"] == "lifespan.shutdown":
                    await engine.shutdown()
                return message

            return await self.other_asgi_app(scope, receive_and_watch, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await engine.startup()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await engine.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _write(send: Send, response: Response, head_only: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})
