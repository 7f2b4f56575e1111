"""The native binding's WebSocket: the ``websockets`` sans-I/O protocol over an asyncio transport.

Messages are reassembled from fragments (up to ``max_http_buffer_size``, 1009 beyond), text is
checked to be UTF-8 (1007 otherwise, RFC 6455 §8.1), and frames are written straight to the
transport: the first frames of a loop turn at once, the rest of that turn in one write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

from ...engine.notices import peer_mistake

if TYPE_CHECKING:
    from .server import NativeServer

#: frame payloads as the WebSocket library hands them over
Buffer = bytes | bytearray | memoryview

class NativeWebSocket:
    """The engine's WebSocket connection (:class:`~sockjet.engine.transport.WebSocketConnection`).

    Created once the handshake request is known to be a valid WebSocket opening handshake;
    the engine then accepts or rejects it.
    """

    __slots__ = ("_flush_scheduled", "_fragments", "_loop", "_messages", "_proto", "_response",
                 "_server", "_text", "_transport", "_waiter", "_written_turn", "client", "closed",
                 "headers", "method", "path", "query", "raw_query", "scheme", "unflushed")

    def __init__(self, server: NativeServer, transport: asyncio.Transport,
                 proto: ServerProtocol, response: HandshakeResponse, *, path: str,
                 raw_query: bytes, query: Mapping[str, str], headers: Mapping[str, str],
                 scheme: str, client: tuple[str, int] | None) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = transport
        self._proto = proto
        self._response: HandshakeResponse | None = response  # the 101, sent by accept()
        self._loop = asyncio.get_running_loop()
        self.method, self.path, self.raw_query = "GET", path, raw_query
        self.query, self.headers, self.scheme, self.client = query, headers, scheme, client
        self._messages: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[Buffer] | None = None  # a fragmented message being reassembled
        self._text = False  # ... and whether it is text
        self.closed = False
        self.unflushed = 0  # bytes serialised but not yet handed to the transport
        self._flush_scheduled = False
        self._written_turn = -1  # the server's loop turn of this connection's last write

    # -- handshake (engine side) ----------------------------------------------------------------

    async def accept(self, headers: list[tuple[str, str]] | None = None) -> None:
        response, self._response = self._response, None  # not kept for the connection's life
        assert response is not None, "accept() or reject() was called already"
        for key, value in headers or ():
            response.headers[key] = value
        self._proto.send_response(response)
        self._flush()

    async def reject(self, status: int, body: bytes) -> None:
        self._response = None
        response = self._proto.reject(status, body.decode("utf-8", "replace"))
        response.headers["Content-Type"] = "text/html"
        self._proto.send_response(response)
        self._flush()
        self._end()

    # -- incoming -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # after a close, nothing more is read into memory
        proto = self._proto
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Frame) and not self._on_frame(event):
                break
        self._flush()  # pongs, close replies
        if proto.close_expected() or proto.parser_exc is not None:
            # a close handshake, or a protocol error (1002, 1009...) the protocol answered
            self._end()

    def _on_frame(self, frame: Frame) -> bool:
        """Handle one frame; ``False`` once the connection is failed."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [frame.data]
                self._text = opcode is Opcode.TEXT
                return True
            return self._message(opcode is Opcode.TEXT, frame.data)
        if opcode is Opcode.CONT and self._fragments is not None:
            # the protocol checked the order of fragments and their total size (1009)
            self._fragments.append(frame.data)
            if not frame.fin:
                return True
            parts, self._fragments = self._fragments, None
            return self._message(self._text, b"".join(parts))
        if opcode is Opcode.CLOSE:
            self._end()
            return False
        return True

    def _message(self, text: bool, data: Buffer) -> bool:
        if text:
            try:
                self._push(str(data, "utf-8"))
            except UnicodeDecodeError:
                peer_mistake(self.client, "invalid UTF-8 in a WebSocket text message")
                self._proto.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                self._flush()
                self._end()
                return False
        else:
            self._push(bytes(data))
        return True

    def _push(self, message: str | bytes) -> None:
        self._messages.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> str | bytes | None:
        while not self._messages:
            if self.closed:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()

    # -- outgoing -------------------------------------------------------------------------------

    def write(self, frames: list[str | bytes]) -> None:
        """Serialise frames now; they reach the transport at once or at the end of this turn."""
        if self.closed:
            return
        proto = self._proto
        size = 0
        for data in frames:
            if isinstance(data, str):
                encoded = data.encode()
                proto.send_text(encoded)
                size += len(encoded)
            else:
                proto.send_binary(data)
                size += len(data)
        self.unflushed += size
        self._flush_soon()

    def backlog(self) -> int:
        """Bytes accepted but not yet sent to the peer (flow control for volatile packets)."""
        transport = self._transport
        pending = transport.get_write_buffer_size() if transport is not None else 0
        return pending + self.unflushed

    def close(self, code: int = 1000) -> None:
        """Send the close frame after what was written, then close the transport."""
        if self.closed:
            return
        if self._proto.state is State.OPEN:
            self._proto.send_close(code)
            self._flush()
        self._end()

    # -- plumbing -------------------------------------------------------------------------------

    def connection_lost(self) -> None:
        self._transport = None
        self._end()
        # the protocol's parser is a generator whose frame holds the protocol: closing it
        # breaks that cycle, so a closed connection is freed without the garbage collector
        self._proto.parser.close()

    def _end(self) -> None:
        """No more messages (those already received are still read), close the transport."""
        if not self.closed:
            self.closed = True
            self._fragments = None
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.unflushed = 0
        transport = self._transport
        if transport is None:
            return
        data = self._proto.data_to_send()
        if data:  # one write() per flush: uvloop tries it at once, writelines() queues
            transport.write(data[0] if len(data) == 1 else b"".join(data))

    def _flush_soon(self) -> None:
        """The first frames of a loop turn leave at once (latency); what follows in the same
        turn (a burst of broadcasts) is coalesced into one write at the end of the turn."""
        if self._flush_scheduled:
            return
        server = self._server
        if self._written_turn != server.turn:
            self._written_turn = server.turn
            server.count_turn()
            self._flush()
        else:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
