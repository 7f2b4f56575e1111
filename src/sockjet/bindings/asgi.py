"""ASGI binding: serves the engine under its path and hands everything else to a wrapped app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from ..engine.interface import Response
from ..engine.server import Engine, normalise_path
from ..exceptions import ClientGone, PayloadTooLarge

log = logging.getLogger("sockjet.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


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
        self.client: tuple[str, int] | None = tuple(client) if client else None  # type: ignore[assignment]
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
    __slots__ = ("_closed", "_http_response", "_send")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope, receive)
        self._send = send
        self._closed = False
        self._http_response = "websocket.http.response" in scope.get("extensions", {})

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
        if self._closed:
            return None
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            return text if text is not None else message.get("bytes", b"")
        self._closed = True
        return None

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self._send({"type": "websocket.send", "text": data})
        else:
            await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int = 1000) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._send({"type": "websocket.close", "code": code})
        except Exception:  # already gone: nothing left to close
            pass


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self._lifespan(scope, receive, send)
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path.startswith(self.path):
            if kind == "http":
                return await self._http(scope, receive, send)
            if kind == "websocket":
                return await self._websocket(scope, receive, send)
        if self.other_asgi_app is not None:
            return await self.other_asgi_app(scope, receive, send)
        if kind == "http":
            await _write(send, Response(404, [("content-type", "text/plain")], b"Not Found"))
        elif kind == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = ASGIHTTPRequest(scope, receive)
        except (UnicodeDecodeError, ValueError):
            return await _write(send, self.engine.error_response(3))
        response = await self.engine.handle_request(request)
        if response is None:  # OPTIONS left to the application (handle_preflight_request=False)
            if self.other_asgi_app is not None:
                return await self.other_asgi_app(scope, receive, send)
            response = Response(404, [("content-type", "text/plain")], b"Not Found")
        await _write(send, response)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            ws = ASGIWebSocket(scope, receive, send)
        except (UnicodeDecodeError, ValueError):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.engine.handle_websocket(ws)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine
        engine.loop = asyncio.get_running_loop()
        if self.other_asgi_app is not None:

            async def receive_and_watch() -> Message:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await engine.shutdown()
                return message

            return await self.other_asgi_app(scope, receive_and_watch, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await engine.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _write(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
