"""An in-process binding for tests: implements the engine's request/connection interface with
asyncio queues, so thousands of sessions run without sockets (the engine cannot tell)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sockjet.engine.transport import Response
from sockjet.exceptions import PayloadTooLarge


class InProcRequest:
    def __init__(self, method: str, query: dict[str, str], body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
        self.method = method
        self.path = "/socket.io/"
        self.query = query
        self.raw_query = "&".join(f"{k}={v}" for k, v in query.items()).encode()
        self.headers = headers or {}
        self.scheme = "http"
        self.client = ("127.0.0.1", 40000)
        self._body = body
        self.gone = asyncio.Event()

    async def read_body(self, limit: int) -> bytes:
        if len(self._body) > limit:
            raise PayloadTooLarge
        return self._body

    async def wait_disconnect(self) -> None:
        await self.gone.wait()


class InProcWebSocket:
    """Frames the engine writes wait in ``outbox`` until the test takes them: their bytes are
    the connection's backlog, as unsent data is on a real binding."""

    def __init__(self, query: dict[str, str]) -> None:
        self.method = "GET"
        self.path = "/socket.io/"
        self.query = query
        self.raw_query = b""
        self.headers: dict[str, str] = {}
        self.scheme = "ws"
        self.client = ("127.0.0.1", 40001)
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.rejected: tuple[int, bytes] | None = None
        self.closed = False
        self.close_code: int | None = None  # no size limit here: the engine's own checks run
        self.unread = 0  # bytes in the outbox

    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        pass

    async def reject(self, status: int, body: bytes) -> None:
        self.rejected = (status, body)

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    def write(self, frames: list[str | bytes]) -> None:
        if self.closed:
            return
        for data in frames:
            self.unread += len(data.encode() if isinstance(data, str) else data)
            self.outbox.put_nowait(data)

    def backlog(self) -> int:
        return self.unread

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = code
            self.outbox.put_nowait(None)
            self.inbox.put_nowait(None)

    # test side
    def client_send(self, data: str | bytes) -> None:
        self.inbox.put_nowait(data)

    def client_close(self) -> None:
        self.inbox.put_nowait(None)

    async def next(self, timeout: float = 2) -> str | bytes | None:
        return self._taken(await asyncio.wait_for(self.outbox.get(), timeout))

    def drain(self) -> list[str | bytes | None]:
        out = []
        while not self.outbox.empty():
            out.append(self._taken(self.outbox.get_nowait()))
        return out

    def _taken(self, data: str | bytes | None) -> str | bytes | None:
        if data is not None:
            self.unread -= len(data.encode() if isinstance(data, str) else data)
        return data


async def get(engine: Any, query: dict[str, str]) -> Response:
    response: Response = await engine.handle_request(InProcRequest("GET", query))
    return response


async def post(engine: Any, query: dict[str, str], body: bytes) -> Response:
    response: Response = await engine.handle_request(InProcRequest("POST", query, body))
    return response


# -- Socket.IO clients over in-process WebSockets ---------------------------------------------


class InProc:
    """Raw Socket.IO clients over in-process WebSockets to ``io``; on the way out the server is
    closed and every connection's task awaited."""

    def __init__(self, io: Any) -> None:
        self.io = io
        self.tasks: list[asyncio.Future[None]] = []

    async def open(self, eio: int = 4) -> tuple[InProcWebSocket, str]:
        """A new WebSocket session: (connection, Engine.IO sid)."""
        ws = InProcWebSocket({"EIO": str(eio), "transport": "websocket"})
        self.tasks.append(asyncio.ensure_future(self.io.engine.handle_websocket(ws)))
        first = await ws.next()
        assert isinstance(first, str) and first.startswith("0{"), first
        return ws, json.loads(first[1:])["sid"]

    async def connected(self, nsp: str = "/", auth: Any = None) -> tuple[InProcWebSocket, str]:
        """A new v5 connection joined to ``nsp``: (connection, socket id)."""
        ws, _ = await self.open()
        return ws, await join(ws, nsp, auth)

    async def __aenter__(self) -> InProc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.io.close()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 5)


def prefix(nsp: str) -> str:
    return "" if nsp == "/" else f"{nsp},"


async def joined(ws: InProcWebSocket, nsp: str = "/") -> str:
    """The socket id of the server's CONNECT reply for ``nsp``."""
    reply = await ws.next()
    head = "40" + prefix(nsp)
    assert isinstance(reply, str) and reply.startswith(head + "{"), reply
    return str(json.loads(reply[len(head):])["sid"])


async def join(ws: InProcWebSocket, nsp: str = "/", auth: Any = None) -> str:
    """Send a v5 namespace CONNECT; the socket id from the server's reply."""
    ws.client_send("40" + prefix(nsp) + (json.dumps(auth) if auth is not None else ""))
    return await joined(ws, nsp)


_ack_ids = iter(range(100, 1_000_000))


async def sync(ws: InProcWebSocket, nsp: str = "/") -> None:
    """An ack round trip (the server's ``sync`` handler answers "ok"): everything the server
    sent this connection before it has been received, so the ack must be the next message."""
    ack = next(_ack_ids)
    ws.client_send(f'42{prefix(nsp)}{ack}["sync"]')
    assert await ws.next() == f'43{prefix(nsp)}{ack}["ok"]'


def with_sync(socket: Any) -> None:
    """Give ``socket`` the handler :func:`sync` calls."""
    socket.on("sync", lambda: "ok")
