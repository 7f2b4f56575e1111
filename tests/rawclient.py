"""A raw TCP client for tests that must send what no well-behaved library would: malformed HTTP,
slow heads, oversized headers, hand-built WebSocket frames (fragments, invalid UTF-8)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


@dataclass
class HTTPResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class RawConnection:
    """One TCP connection to ``url``'s host and port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str, recv_buffer: int | None = None) -> RawConnection:
        """Connect; ``recv_buffer`` shrinks the socket's receive buffer (set before connecting,
        so that a client that stops reading fills the server's buffers quickly)."""
        parts = urlsplit(url)
        if recv_buffer is None:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            return cls(reader, writer)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    async def response(self, timeout: float = 5, head: bool = False) -> HTTPResponse:
        """Read one HTTP response (``head``: the answer to a HEAD request, no body)."""
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
            if not line:
                raise EOFError("connection closed before a response")
            status = int(line.split()[1])
            headers: dict[str, str] = {}
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = b""
            if not head and "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif not head and headers.get("transfer-encoding") == "chunked":
                while True:
                    size = int((await self.reader.readline()).strip(), 16)
                    chunk = await self.reader.readexactly(size + 2)
                    if not size:
                        break
                    body += chunk[:-2]
            return HTTPResponse(status, headers, body)

    async def eof(self, timeout: float = 5) -> bytes:
        """Wait until the server closes the connection; what it sent meanwhile."""
        async with asyncio.timeout(timeout):
            data = b""
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionError:  # reset, or our last write failed (closed by the server)
                    return data
                if not chunk:
                    return data
                data += chunk

    # -- WebSocket ------------------------------------------------------------------------------

    async def ws_handshake(self, target: str, headers: dict[str, str] | None = None) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await self.response(head=True)
        if response.status != 101:
            raise ConnectionError(f"handshake answered {response.status}")

    async def ws_send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        await self.send(frame(opcode, payload, fin))

    async def ws_recv(self, timeout: float = 5) -> tuple[int, bytes]:
        """Next frame from the server: ``(opcode, payload)``."""
        async with asyncio.timeout(timeout):
            b1, b2 = await self.reader.readexactly(2)
            length = b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return b1 & 0x0F, await self.reader.readexactly(length)

    async def ws_close_code(self, timeout: float = 5) -> int:
        """Skip data frames until the server's close frame; its status code."""
        while True:
            opcode, payload = await self.ws_recv(timeout)
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (masked, as RFC 6455 requires of clients)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    if not length:
        return head + mask
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return head + mask + masked


def request(method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() in ("content-length", "transfer-encoding")
                        for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
