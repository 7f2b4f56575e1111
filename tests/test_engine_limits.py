"""The engine's own limits, where each is enforced: message size in the session (whatever the
binding lets through), queue thresholds on each binding (volatile drops, slow-client cut-off), and
heartbeat timing that tells the right deadline from the plausible wrong ones."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
import websockets
from conftest import eventually, serve
from inproc import InProcWebSocket, get
from rawclient import TEXT, RawConnection, frame, request

import sockjet
from sockjet import EngineServer, EngineSocket
from sockjet.engine.session import Prepared

P = "/engine.io/"


# -- the session's own message-size check ---------------------------------------------------------


async def _ws_session(engine: EngineServer) -> tuple[InProcWebSocket, asyncio.Future[None]]:
    ws = InProcWebSocket({"EIO": "4", "transport": "websocket"})
    task = asyncio.ensure_future(engine.handle_websocket(ws))
    assert str(await ws.next()).startswith("0{")
    return ws, task


@pytest.mark.parametrize(("message", "accepted"), [
    ("4" + "a" * 99, True),  # exactly max_http_buffer_size
    ("4" + "a" * 100, False),  # one over
    ("4" + "é" * 49 + "a", True),  # 100 bytes of UTF-8 in 51 characters
    ("4" + "é" * 50, False),  # 101 bytes in 51 characters: counted in bytes, as Node does
    (b"\x00" * 100, True),
    (b"\x00" * 101, False),
])
async def test_session_enforces_max_http_buffer_size_itself(message: str | bytes,
                                                            accepted: bool) -> None:
    # a binding may let any size through (a third-party ASGI server without a limit): the
    # session itself closes with 1009 above the limit
    engine = EngineServer(max_http_buffer_size=100)
    received: list[str | bytes] = []
    closed: list[str] = []
    engine.on("connection", lambda s: (s.on("message", received.append),
                                       s.on("close", closed.append)))
    ws, task = await _ws_session(engine)
    ws.client_send(message)
    if accepted:
        ws.client_send("4after")  # a positive signal: the next message is handled
        await eventually(lambda: len(received) == 2)
        assert not ws.closed
        ws.client_close()
    await asyncio.wait_for(task, 2)
    assert engine.sessions == {}  # closed either way, and forgotten
    if accepted:
        assert closed == ["transport close"]
    else:
        assert ws.close_code == 1009 and received == [] and closed == ["transport error"]


# -- queue thresholds on each binding -------------------------------------------------------------


async def _stalled_client(url: str, recv_buffer: int = 4096) -> RawConnection:
    """A WebSocket client with a tiny receive buffer that stops reading after the handshake."""
    conn = await RawConnection.open(url, recv_buffer=recv_buffer)
    await conn.ws_handshake(P + "?EIO=4&transport=websocket")
    await conn.ws_recv()
    return conn


@pytest.mark.parametrize("binding", ["native", "asgi"], indirect=True)
async def test_volatile_packets_dropped_for_a_client_that_does_not_read(binding: str) -> None:
    # unsent bytes above queue_high_water, on both bindings (native: what the kernel has not
    # taken; ASGI: what the server has not sent yet)
    engine = EngineServer(queue_high_water=16)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    async with serve(engine, binding) as url:
        conn = await _stalled_client(url)
        socket = sockets[0]
        assert socket.writable
        chunk = "x" * 65536
        sent = 0
        while socket.writable and sent < 2000:  # the client reads nothing: the backlog grows
            assert socket.send(chunk)
            sent += 1
            await asyncio.sleep(0)
        assert not socket.writable, "the backlog never passed queue_high_water"
        prepared = Prepared(["volatile"])
        assert socket.send_prepared(prepared, volatile=True) is False  # dropped
        assert socket.send("after")  # not volatile: queued
        # the client reads everything: every chunk, then "after", and no "volatile"
        got = []
        while len(got) < sent + 1:
            _, payload = await conn.ws_recv(timeout=10)
            got.append(payload)
        assert got[-1] == b"4after" and b"4volatile" not in got
        conn.close()


@pytest.mark.parametrize("binding", ["native", "asgi"], indirect=True)
async def test_a_client_too_far_behind_is_disconnected(binding: str) -> None:
    engine = EngineServer(queue_high_water=16, queue_limit=256)
    sockets: list[EngineSocket] = []
    closed: list[str] = []
    engine.on("connection", lambda s: (sockets.append(s), s.on("close", closed.append)))
    async with serve(engine, binding) as url:
        conn = await _stalled_client(url)
        socket = sockets[0]
        chunk = "x" * 65536
        sent = 0
        while socket.send(chunk):
            sent += 1
            assert sent < 3000, "never cut off"  # ~190 MB
            await asyncio.sleep(0)
        assert closed == ["transport error"]
        assert socket.sid not in engine.sessions
        conn.close()


async def test_prepared_messages_wait_for_the_next_poll_counted_as_sent_ones() -> None:
    # a broadcast to a polling client with no poll waiting: queued (volatile only if asked),
    # and its bytes count toward queue_high_water / queue_limit as messages sent one by one
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    for _ in range(2):
        await get(engine, {"EIO": "4", "transport": "polling"})  # carries the open packet
    broadcast, one_by_one = sockets
    assert not broadcast.writable  # no poll waiting
    assert broadcast.send_prepared(Prepared(["abc", b"\x00\x01"]))
    assert one_by_one.send("abc") and one_by_one.send(b"\x00\x01")
    assert broadcast.buffered == one_by_one.buffered == 4 + 3  # a type byte each
    poll = await get(engine, {"EIO": "4", "transport": "polling", "sid": broadcast.sid})
    assert poll.body == b"4abc\x1ebAAE="


# -- heartbeat timing ----------------------------------------------------------------------------


async def test_v4_pings_come_every_ping_interval() -> None:
    # interval 0.4 s, timeout 1 s: pings at 0.4, 0.8, 1.2... (answered at once); a server using
    # the timeout as interval, or pinging on a timer not reset by the pong, would differ
    engine = EngineServer(ping_interval=0.4, ping_timeout=1)
    async with serve(engine) as url:
        async with websockets.connect("ws" + url[4:] + P + "?EIO=4&transport=websocket") as ws:
            await ws.recv()
            opened = time.monotonic()
            times = []
            for _ in range(3):
                assert await asyncio.wait_for(ws.recv(), 2) == "2"
                times.append(time.monotonic() - opened)
                await ws.send("3")
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert all(0.35 <= gap <= 0.6 for gap in gaps), gaps


async def test_v4_unanswered_ping_closes_after_ping_timeout() -> None:
    # ping at 0.4 s, no pong: closed at 0.4 + 0.8 = 1.2 s (not at 0.8 or 1.6)
    engine = EngineServer(ping_interval=0.4, ping_timeout=0.8)
    closed: list[tuple[str, float]] = []
    engine.on("connection", lambda s: s.on(
        "close", lambda reason: closed.append((reason, time.monotonic()))))
    async with serve(engine) as url:
        async with websockets.connect("ws" + url[4:] + P + "?EIO=4&transport=websocket") as ws:
            await ws.recv()
            opened = time.monotonic()
            assert await asyncio.wait_for(ws.recv(), 2) == "2"
            await eventually(lambda: closed, timeout=3)
    reason, when = closed[0]
    assert reason == "ping timeout"
    assert 1.1 <= when - opened <= 1.5, when - opened


async def test_v4_pong_postpones_the_timeout() -> None:
    # each pong starts a new interval: alive after 3 intervals + timeouts' worth of time
    engine = EngineServer(ping_interval=0.2, ping_timeout=0.3)
    closed: list[str] = []
    engine.on("connection", lambda s: s.on("close", closed.append))
    async with serve(engine) as url:
        async with websockets.connect("ws" + url[4:] + P + "?EIO=4&transport=websocket") as ws:
            await ws.recv()
            for _ in range(6):  # 1.2 s > interval + timeout
                assert await asyncio.wait_for(ws.recv(), 2) == "2"
                await ws.send("3")
            assert closed == []


# -- closed connections free themselves -----------------------------------------------------------


@pytest.mark.parametrize("binding", ["native"], indirect=True)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_closed_connection_leaves_no_cyclic_garbage(binding: str, transport: str) -> None:
    """The runner makes full collections rare: sockjet's objects must not need them."""
    io = sockjet.Server()
    io.on("connection", lambda socket: (socket.join("room"), socket.on("echo", lambda x: x)))
    async with serve(io, binding) as url:
        async def one() -> None:
            conn = await RawConnection.open(url)
            if transport == "websocket":
                await conn.ws_handshake("/socket.io/?EIO=4&transport=websocket")
                await conn.ws_recv()
                await conn.send(frame(TEXT, b"40") + frame(TEXT, b'421["echo",1]'))
                while (await conn.ws_recv())[1] != b'431[1]':
                    pass
            else:
                await conn.send(request("GET", "/socket.io/?EIO=4&transport=polling"))
                sid = (await conn.response()).body.split(b'"sid":"')[1].split(b'"')[0]
                session = f"/socket.io/?EIO=4&transport=polling&sid={sid.decode()}"
                await conn.send(request("POST", session, body=b"40"))
                assert (await conn.response()).body == b"ok"
                await conn.send(request("POST", session, body=b"1"))  # the client closes
                assert (await conn.response()).body == b"ok"
            conn.close()

        await one()
        gc.collect()
        gc.disable()
        try:
            gc.set_debug(gc.DEBUG_SAVEALL)
            for _ in range(20):
                await one()
            await eventually(lambda: not io.engine.sessions)
            await asyncio.sleep(0)
            gc.collect()
            ours = [type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage
                    if type(o).__module__.startswith("sockjet")]
            assert ours == []
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
