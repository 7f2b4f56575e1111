"""Hostile clients get a clear refusal and a deadline: each numbered defect of the hardening issue,
reproduced on real sockets, on both bindings where the binding is what decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import eventually, serve
from inproc import InProcRequest
from rawclient import BINARY, CLOSE, CONT, PING, TEXT, RawConnection, frame, request

import sockjet
from sockjet import EngineServer, EngineSocket
from sockjet.engine.notices import peer_notices

P = "/engine.io/"
HANDSHAKE = P + "?EIO=4&transport=polling"


class Echo:
    """An engine that echoes every message and remembers its sessions."""

    def __init__(self, **options: Any) -> None:
        self.engine = EngineServer(**options)
        self.opened: list[EngineSocket] = []
        self.engine.on("connection", self._connection)

    def _connection(self, socket: EngineSocket) -> None:
        self.opened.append(socket)
        socket.on("message", socket.send)


class Records(logging.Handler):
    """Log records of sockjet, uvicorn and websockets while a test runs."""

    LOGGERS = ("", "uvicorn")  # the others propagate to one of these

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at_least(self, level: int) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= level]

    def of(self, name: str) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == name]


@contextlib.contextmanager
def captured() -> Iterator[Records]:
    """Attach after the server started (uvicorn's logging setup replaces handlers)."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in Records.LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("sockjet.peers").setLevel(logging.INFO)
    peer_notices.forget()  # once per peer and cause: this test's peer starts afresh
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def open_session(conn: RawConnection) -> str:
    await conn.send(request("GET", HANDSHAKE))
    response = await conn.response()
    assert response.status == 200, response
    return re.search(r'"sid":"([^"]+)"', response.body.decode()).group(1)  # type: ignore[union-attr]


async def ws_session(url: str) -> RawConnection:
    conn = await RawConnection.open(url)
    await conn.ws_handshake(P + "?EIO=4&transport=websocket")
    opcode, payload = await conn.ws_recv()
    assert opcode == TEXT and payload.startswith(b"0{")
    return conn


# -- 1. invalid UTF-8 in a text frame -------------------------------------------------------------


async def test_invalid_utf8_text_frame_closes_with_1007_and_reads_no_more(binding: str) -> None:
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        with captured() as logs:
            for _ in range(3):
                conn = await ws_session(url)
                await conn.ws_send(TEXT, b'4["echo","\xff"]')
                assert await conn.ws_close_code() == 1007
                with contextlib.suppress(ConnectionError):  # what follows is not taken in
                    for _ in range(64):
                        await conn.ws_send(TEXT, b"4" + b"x" * 65536)
                await conn.eof()
                conn.close()
            await eventually(lambda: not echo.engine.sessions)
        # a client mistake: logged once for this peer and cause, never as a server error
        assert logs.at_least(logging.ERROR) == []
        notices = [m for m in logs.of("sockjet.peers") if "UTF-8" in m]
        assert len(notices) == 1, logs.of("sockjet.peers")


async def test_messages_read_with_the_close_frame_are_delivered_first(binding: str) -> None:
    # socket.io-client sends a DISCONNECT and closes at once: both often arrive in one read
    echo = Echo()
    received: list[str | bytes] = []
    closed: list[str] = []
    echo.engine.on("connection", lambda s: (s.on("message", received.append),
                                            s.on("close", closed.append)))
    async with serve(echo.engine, binding) as url:
        conn = await ws_session(url)
        await conn.send(frame(TEXT, b"4first") + frame(TEXT, b"4second")
                        + frame(CLOSE, b"\x03\xe8"))
        await conn.eof()
        await eventually(lambda: closed)
    assert received == ["first", "second"]
    assert closed == ["transport close"]


# -- 2. fragmented messages -----------------------------------------------------------------------


async def test_fragmented_messages_are_reassembled(binding: str) -> None:
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        conn = await ws_session(url)
        await conn.ws_send(TEXT, b"4hel", fin=False)
        await conn.ws_send(PING, b"!")  # control frames may come between fragments
        await conn.ws_send(CONT, "lo wörld ".encode()[:8], fin=False)
        await conn.ws_send(CONT, "lo wörld ".encode()[8:], fin=True)
        opcode, payload = await conn.ws_recv()
        if opcode == 0xA:  # the pong
            opcode, payload = await conn.ws_recv()
        assert (opcode, payload.decode()) == (TEXT, "4hello wörld ")
        await conn.ws_send(BINARY, b"\x00\x01", fin=False)
        await conn.ws_send(CONT, b"\x02", fin=True)
        assert await conn.ws_recv() == (BINARY, b"\x00\x01\x02")
        assert len(echo.engine.sessions) == 1
        conn.close()


async def test_fragments_over_max_http_buffer_size_close_with_1009(binding: str) -> None:
    echo = Echo(max_http_buffer_size=1000)
    async with serve(echo.engine, binding) as url:
        conn = await ws_session(url)
        await conn.ws_send(TEXT, b"4" + b"a" * 599, fin=False)
        await conn.ws_send(CONT, b"b" * 600, fin=True)
        assert await conn.ws_close_code() == 1009
        await conn.eof()
        await eventually(lambda: not echo.engine.sessions)


# -- 3. refused WebSocket handshakes --------------------------------------------------------------

_WS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
_BAD_HANDSHAKES = {
    "no key": ("GET", {k: v for k, v in _WS.items() if k != "Sec-WebSocket-Key"}, "1.1"),
    "version 8": ("GET", {**_WS, "Sec-WebSocket-Version": "8"}, "1.1"),
    "junk key": ("GET", {**_WS, "Sec-WebSocket-Key": "not base64!"}, "1.1"),
    "POST upgrade": ("POST", {**_WS, "Content-Length": "0"}, "1.1"),
    "two upgrades": ("GET", {**_WS, "Upgrade": "foo, websocket"}, "1.1"),
    "HTTP/1.0": ("GET", _WS, "1.0"),
}


@pytest.mark.parametrize("case", list(_BAD_HANDSHAKES))
async def test_refused_websocket_handshake_creates_no_session(binding: str, case: str) -> None:
    method, headers, version = _BAD_HANDSHAKES[case]
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        with captured() as logs:
            conn = await RawConnection.open(url)
            await conn.send(request(method, P + "?EIO=4&transport=websocket", headers,
                                    version=version))
            response = await conn.response(head=True)
            assert 400 <= response.status < 600, response
            conn.close()
            # the refusal is complete: had a session been made, it would be in the table now
            assert echo.engine.sessions == {} and echo.opened == []
        assert logs.at_least(logging.ERROR) == []


# -- 4. chunked bodies over the limit -------------------------------------------------------------


async def test_chunked_body_over_limit_is_refused_before_it_ends(binding: str) -> None:
    echo = Echo(max_http_buffer_size=100_000)
    async with serve(echo.engine, binding) as url:
        conn = await RawConnection.open(url)
        sid = await open_session(conn)
        post = await RawConnection.open(url)
        await post.send(request("POST", f"{P}?EIO=4&transport=polling&sid={sid}",
                                {"Transfer-Encoding": "chunked",
                                 "Content-Type": "text/plain"}))
        chunk = b"4" + b"x" * 9999
        for _ in range(15):  # 150 KB of a body that never ends
            await post.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        response = await post.response()
        assert response.status == 413
        await post.eof()
        await eventually(lambda: not echo.engine.sessions)  # that session is closed
        conn.close()


async def test_body_at_exactly_max_http_buffer_size_is_accepted(binding: str) -> None:
    echo = Echo(max_http_buffer_size=1000)
    async with serve(echo.engine, binding) as url, httpx.AsyncClient(base_url=url) as client:
        for chunked in (False, True):
            r = await client.get(HANDSHAKE)
            sid = re.search(r'"sid":"([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
            body = b"4" + b"y" * 999

            async def stream(data: bytes = body) -> Any:
                yield data[:500]
                yield data[500:]

            content: Any = stream() if chunked else body
            r = await client.post(f"{P}?EIO=4&transport=polling&sid={sid}", content=content)
            assert (r.status_code, r.text) == (200, "ok")
            r = await client.post(f"{P}?EIO=4&transport=polling&sid={sid}",
                                  content=body + b"z")
            assert r.status_code == 413


# -- 5. HEAD ----------------------------------------------------------------------------------


async def test_head_response_carries_no_body(binding: str) -> None:
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        conn = await RawConnection.open(url)
        await conn.send(request("HEAD", HANDSHAKE) + request("GET", HANDSHAKE))
        head = await conn.response(head=True)
        assert head.status == 400  # a handshake must be a GET (code 2)
        assert int(head.headers["content-length"]) > 0
        following = await conn.response()  # parses only if HEAD sent no body
        assert following.status == 200 and following.body.startswith(b'0{"sid":')
        conn.close()


# -- 6. deadlines -----------------------------------------------------------------------------


async def _closed_after(conn: RawConnection, started: float) -> tuple[float, bytes]:
    data = await conn.eof(timeout=10)
    return time.monotonic() - started, data


async def test_slow_request_head_gets_408_at_headers_timeout(binding: str) -> None:
    echo = Echo(headers_timeout=1)
    async with serve(echo.engine, binding) as url:
        conn = await RawConnection.open(url)
        started = time.monotonic()

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in request("GET", HANDSHAKE, {"X-Slow": "a" * 100}):
                    await conn.send(bytes([byte]))
                    await asyncio.sleep(0.2)

        task = asyncio.ensure_future(trickle())
        elapsed, data = await _closed_after(conn, started)
        task.cancel()
        assert 0.95 <= elapsed <= 2.0, elapsed
        assert data.startswith(b"HTTP/1.1 408 ")


async def test_idle_connections_close_at_keep_alive_timeout(binding: str) -> None:
    echo = Echo(keep_alive_timeout=1)
    async with serve(echo.engine, binding) as url:
        silent = await RawConnection.open(url)  # never sends a byte
        started = time.monotonic()
        elapsed, data = await _closed_after(silent, started)
        assert 0.95 <= elapsed <= 2.0 and data == b"", (elapsed, data)

        used = await RawConnection.open(url)  # idle after one request
        await used.send(request("GET", HANDSHAKE))
        assert (await used.response()).status == 200
        started = time.monotonic()
        elapsed, data = await _closed_after(used, started)
        assert 0.95 <= elapsed <= 2.0 and data == b"", (elapsed, data)


async def test_slow_request_body_gets_408_at_request_timeout(binding: str) -> None:
    echo = Echo(request_timeout=1, headers_timeout=1)
    async with serve(echo.engine, binding) as url:
        poll = await RawConnection.open(url)
        sid = await open_session(poll)
        conn = await RawConnection.open(url)
        started = time.monotonic()
        await conn.send(request("POST", f"{P}?EIO=4&transport=polling&sid={sid}",
                                {"Content-Length": "100"}) + b"4abc")
        elapsed, data = await _closed_after(conn, started)
        assert 0.95 <= elapsed <= 2.0, elapsed
        assert data.startswith(b"HTTP/1.1 408 ")
        poll.close()


async def test_a_thousand_slow_and_idle_connections_are_all_closed(binding: str) -> None:
    echo = Echo(headers_timeout=1, keep_alive_timeout=1)
    async with serve(echo.engine, binding) as url:
        slow = [await RawConnection.open(url) for _ in range(500)]
        idle = [await RawConnection.open(url) for _ in range(500)]
        for conn in slow:
            await conn.send(b"GET /eng")
        started = time.monotonic()
        results = await asyncio.gather(*(c.eof(timeout=8) for c in slow + idle),
                                       return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert time.monotonic() - started < 4
        async with httpx.AsyncClient(base_url=url) as client:  # the server still serves
            assert (await client.get(HANDSHAKE)).status_code == 200
        for conn in slow + idle:
            conn.close()


# -- 7, 8. head limits ------------------------------------------------------------------------


def _head_size(method: str, target: str, headers: dict[str, str]) -> int:
    return (len(f"{method} {target} HTTP/1.1\r\n")
            + sum(len(f"{k}: {v}\r\n") for k, v in {"Host": "127.0.0.1", **headers}.items()))


async def test_head_over_max_header_size_gets_431(binding: str) -> None:
    limit = 4096
    echo = Echo(max_header_size=limit)
    async with serve(echo.engine, binding) as url:
        filler = limit - _head_size("GET", HANDSHAKE, {"X-Fill": ""})
        for extra, status in ((0, 200), (1, 431)):
            conn = await RawConnection.open(url)
            await conn.send(request("GET", HANDSHAKE, {"X-Fill": "f" * (filler + extra)}))
            assert (await conn.response()).status == status, extra
            conn.close()
        # a long URL counts too
        conn = await RawConnection.open(url)
        await conn.send(request("GET", HANDSHAKE + "&pad=" + "p" * limit))
        assert (await conn.response()).status == 431
        conn.close()


async def test_more_headers_than_max_headers_gets_431(binding: str) -> None:
    echo = Echo(max_headers=20)
    async with serve(echo.engine, binding) as url:
        for count, status in ((20, 200), (21, 431)):
            headers = {f"X-{i}": "v" for i in range(count - 1)}  # plus Host
            conn = await RawConnection.open(url)
            await conn.send(request("GET", HANDSHAKE, headers))
            assert (await conn.response()).status == status, count
            conn.close()


async def test_huge_header_line_is_refused_without_being_read_whole(binding: str) -> None:
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        conn = await RawConnection.open(url)
        await conn.send(b"GET " + HANDSHAKE.encode() + b" HTTP/1.1\r\nX-Big: ")
        sent, answer = 0, b""
        with contextlib.suppress(ConnectionError):
            while sent < 8 * 1024 * 1024 and not answer:  # up to 8 MB, 64 KiB at a time
                await conn.send(b"b" * 65536)
                sent += 65536
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(conn.reader.readline(), 0.05)
        if not answer:
            answer = await asyncio.wait_for(conn.reader.readline(), 5)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert sent <= 512 * 1024  # answered long before the line ended


async def test_repeated_headers_do_not_stall_the_server(binding: str) -> None:
    server = sockjet.Server()
    server.on("connection", lambda socket: socket.on("echo", lambda x: x))
    async with serve(server, binding) as url:
        client = sockjet.AsyncClient(url, transports=["websocket"])
        await client.connect()
        hostile = await RawConnection.open(url)
        await hostile.send(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                           + b"X: a\r\n" * 200_000 + b"\r\n")
        started = time.monotonic()
        assert await client.emit_with_ack("echo", 1, timeout=5) == 1
        assert time.monotonic() - started < 0.5
        assert (await hostile.response()).status == 431
        await client.disconnect()


# -- 9. pipelined valid request followed by garbage -----------------------------------------------


async def test_valid_request_then_garbage_gets_both_answers(binding: str) -> None:
    echo = Echo()
    async with serve(echo.engine, binding) as url:
        conn = await RawConnection.open(url)
        await conn.send(request("GET", HANDSHAKE) + b"\x00\x01 garbage \xff\r\n\r\n")
        first = await conn.response()
        assert first.status == 200 and first.body.startswith(b'0{"sid":')
        second = await conn.response()
        assert second.status == 400
        await conn.eof()


# -- 10. dynamic namespaces -----------------------------------------------------------------------


async def _connect_namespace(io: sockjet.Server, name: str) -> tuple[str, list[Any]]:
    """A protocol-5 client over in-process polling: handshake, CONNECT to ``name``; its
    sid and what the server answered."""
    engine = io.engine
    r = await engine.handle_request(InProcRequest("GET", {"EIO": "4", "transport": "polling"}))
    sid = re.search(r'"sid":"([^"]+)"', r.body.decode()).group(1)  # type: ignore[union-attr]
    query = {"EIO": "4", "transport": "polling", "sid": sid}
    await engine.handle_request(InProcRequest("POST", query, f"40{name},".encode()))
    r = await engine.handle_request(InProcRequest("GET", query))
    return sid, r.body.decode().split("\x1e")


async def test_empty_dynamic_namespaces_are_removed() -> None:
    io = sockjet.Server()
    dynamic = io.of(re.compile(r"/dyn-.+"))

    @dynamic.use
    def refuse_some(socket: sockjet.Socket) -> None:
        if socket.nsp.name.startswith("/dyn-no"):
            raise sockjet.ConnectionRefused("no")

    sids = []
    for i in range(1000):
        sid, answer = await _connect_namespace(io, f"/dyn-{i}")
        assert answer[0].startswith(f"40/dyn-{i},{{")
        sids.append(sid)
    for i in range(1000):  # refused by the middleware: never any socket
        _, answer = await _connect_namespace(io, f"/dyn-no-{i}-" + "n" * 50_000)
        assert answer[0].startswith("44/dyn-no-")
    assert len(io.namespaces) == 1001 and len(dynamic.children) == 1000
    for sid in sids:  # every client leaves
        io.engine.sessions[sid].close()
    assert set(io.namespaces) == {"/"} and dynamic.children == {}


async def test_child_namespaces_stay_when_cleanup_is_off() -> None:
    io = sockjet.Server(cleanup_empty_child_namespaces=False)
    io.of(re.compile(r"/dyn-.+"))
    sid, _ = await _connect_namespace(io, "/dyn-a")
    io.engine.sessions[sid].close()
    assert set(io.namespaces) == {"/", "/dyn-a"}


# -- a client's close packet while its poll waits ---------------------------------------------


@pytest.mark.parametrize("eio", [3, 4])
async def test_close_packet_posted_while_poll_waits_answers_noop(binding: str, eio: int) -> None:
    # the engine.io-protocol test suite's "forcefully closes the session" (polling), and v3
    echo = Echo()
    async with serve(echo.engine, binding) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get(f"{P}?EIO={eio}&transport=polling")
        sid = re.search(r'"sid":"([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
        q = f"{P}?EIO={eio}&transport=polling&sid={sid}"
        poll = asyncio.ensure_future(client.get(q))
        session = echo.engine.sessions[sid]
        await eventually(lambda: session.poll_pending)  # the GET waits in the server
        posted = await client.post(q, content=b"1" if eio == 4 else b"1:1")
        assert (posted.status_code, posted.text) == (200, "ok")
        pending = await poll
        assert (pending.status_code, pending.text) == (200, "6" if eio == 4 else "1:6")
        assert (await client.get(q)).status_code == 400
