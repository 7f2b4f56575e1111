"""An in-process binding for tests: implements the engine's request/connection interface with
asyncio queues, so thousands of sessions run without sockets (the engine cannot tell)."""

from __future__ import annotations

import asyncio
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
