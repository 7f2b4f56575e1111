"""Engine.IO behaviour at the HTTP/WebSocket level: error table, handshake, heartbeat, upgrade,
concurrency, limits, malformed input, close and cleanup. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import weakref
from typing import Any

import httpx
import orjson
import pytest
import websockets
from conftest import eventually, run_command, serve

from sockjet import EngineServer, EngineSocket

#: everything here goes through a binding: each test runs on both
pytestmark = pytest.mark.usefixtures("binding")

P = "/engine.io/"


class Recorder:
    """An engine whose sockets echo and record what happens to them."""

    def __init__(self, **options: Any) -> None:
        self.engine = EngineServer(**options)
        self.sockets: list[EngineSocket] = []
        self.messages: list[str | bytes] = []
        self.closed: list[tuple[str, str, float]] = []
        self.opened: dict[str, float] = {}
        self.engine.on("connection", self._connection)

    def _connection(self, socket: EngineSocket) -> None:
        self.sockets.append(socket)
        self.opened[socket.sid] = time.monotonic()

        def message(data: str | bytes) -> None:
            self.messages.append(data)
            socket.send(data)

        socket.on("message", message)
        socket.on("close", lambda reason: self.closed.append((socket.sid, reason,
                                                               time.monotonic())))


async def handshake(client: httpx.AsyncClient, url: str, eio: int = 4,
                    extra: str = "") -> tuple[str, dict[str, Any], httpx.Response]:
    r = await client.get(f"{url}{P}?EIO={eio}&transport=polling{extra}")
    assert r.status_code == 200, r.text
    body = r.text
    if eio == 3:
        m = re.match(r"(\d+):0(\{.*?\})", body)
        assert m, body
        assert int(m.group(1)) == len(m.group(2)) + 1
        data = json.loads(m.group(2))
    else:
        assert body.startswith("0{")
        data = json.loads(body[1:].split("\x1e")[0])
    return data["sid"], data, r


def q(sid: str, eio: int = 4, transport: str = "polling") -> str:
    return f"{P}?EIO={eio}&transport={transport}&sid={sid}"


def ws_url(url: str, query: str) -> str:
    return "ws" + url[4:] + query


def assert_error(r: httpx.Response, code: int, status: int = 400) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    messages = {0: "Transport unknown", 1: "Session ID unknown", 2: "Bad handshake method",
                3: "Bad request", 4: "Forbidden", 5: "Unsupported protocol version"}
    assert r.json() == {"code": code, "message": messages[code]}


# -- error table ---------------------------------------------------------------------------------


async def test_error_table_over_http() -> None:
    rec = Recorder(allow_eio3=True)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        assert_error(await c.get(P), 0)
        assert_error(await c.get(P + "?EIO=4"), 0)
        assert_error(await c.get(P + "?EIO=4&transport=flash"), 0)
        assert_error(await c.get(P + "?transport=polling"), 5)
        assert_error(await c.get(P + "?EIO=abc&transport=polling"), 5)
        assert_error(await c.get(P + "?EIO=5&transport=polling"), 5)
        assert_error(await c.get(P + "?EIO=2&transport=polling"), 5)
        assert_error(await c.get(q("AAAAAAAAAAAAAAAAAAAA")), 1)
        assert_error(await c.post(q("AAAAAAAAAAAAAAAAAAAA"), content=b"4x"), 1)
        for method in ("POST", "PUT", "OPTIONS", "DELETE"):
            assert_error(await c.request(method, P + "?EIO=4&transport=polling"), 2)
        assert_error(await c.get(P + "?EIO=4&transport=websocket"), 3)
        sid, _, _ = await handshake(c, url)
        assert_error(await c.put(q(sid), content=b"4x"), 3)
        assert_error(await c.get(P + "?EIO=4&transport=polling&j=abc"), 3)
        assert_error(await c.get(P + "?EIO=4&transport=polling&sid=%ff%fe"), 3)
        assert rec.engine.sessions.keys() == {sid}  # errors on other requests did not touch it


async def test_eio3_refused_when_disabled() -> None:
    rec = Recorder(allow_eio3=False)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        assert_error(await c.get(P + "?EIO=3&transport=polling"), 5)
        await handshake(c, url, 4)


async def test_polling_disabled_is_transport_unknown() -> None:
    rec = Recorder(transports=["websocket"])
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        assert_error(await c.get(P + "?EIO=4&transport=polling"), 0)
        async with websockets.connect(ws_url(url, P + "?EIO=4&transport=websocket")) as ws:
            assert (await ws.recv()).startswith("0{")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?EIO=4&transport=flash", "Transport unknown"),
        ("?EIO=4", "Transport unknown"),
        ("?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA", "Session ID unknown"),
        ("?EIO=9&transport=websocket", "Unsupported protocol version"),
        ("?transport=websocket", "Unsupported protocol version"),
    ],
)
async def test_websocket_handshake_errors_are_http_400(query: str, message: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(ws_url(url, P + query)):
                pass
        response = info.value.response
        assert response.status_code == 400
        assert response.body == message.encode()


# -- handshake -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eio", [3, 4])
async def test_handshake_json_exact(eio: int) -> None:
    rec = Recorder(ping_interval=0.3, ping_timeout=1.25, max_http_buffer_size=5000)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, data, r = await handshake(c, url, eio)
    assert list(data) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20}", sid)
    assert data == {"sid": sid, "upgrades": ["websocket"], "pingInterval": 300,
                    "pingTimeout": 1250, "maxPayload": 5000}
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"
    assert r.headers["cache-control"] == "no-store"
    assert "set-cookie" not in r.headers


async def test_handshake_defaults_and_upgrade_list() -> None:
    for options, upgrades in (({}, ["websocket"]), ({"allow_upgrades": False}, []),
                              ({"transports": ["polling"]}, [])):
        rec = Recorder(**options)
        async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
            _, data, _ = await handshake(c, url)
        assert data["upgrades"] == upgrades
        if not options:
            assert (data["pingInterval"], data["pingTimeout"], data["maxPayload"]) == (
                25000, 20000, 1000000)


async def test_direct_websocket_starts_with_open_packet() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url:
        for eio in (3, 4):
            async with websockets.connect(ws_url(url, f"{P}?EIO={eio}&transport=websocket")) as ws:
                first = await ws.recv()
                assert isinstance(first, str) and first.startswith("0{")
                data = json.loads(first[1:])
                assert data["upgrades"] == []
                assert data["sid"] in rec.engine.sessions
                await ws.send("4ping-pong")
                assert await ws.recv() == "4ping-pong"


async def test_direct_websocket_handshake_sets_the_session_cookie() -> None:
    rec = Recorder(cookie=True)
    async with serve(rec.engine) as url:
        async with websockets.connect(ws_url(url, f"{P}?EIO=4&transport=websocket")) as ws:
            sid = json.loads((await ws.recv())[1:])["sid"]
            assert ws.response.headers["set-cookie"] == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(("options", "deflate"), [
    ({}, False),  # the default
    ({"per_message_deflate": True}, True),
])
async def test_websocket_compression_is_negotiated_only_when_enabled(options: dict[str, Any],
                                                                    deflate: bool) -> None:
    rec = Recorder(**options)
    async with serve(rec.engine) as url:
        url = ws_url(url, f"{P}?EIO=4&transport=websocket")
        async with websockets.connect(url, compression="deflate") as ws:  # the client offers it
            extensions = ws.response.headers.get("sec-websocket-extensions") or ""
            assert ("permessage-deflate" in extensions) is deflate
            assert (await ws.recv()).startswith("0{")
            await ws.send("4" + "z" * 2000)
            assert await ws.recv() == "4" + "z" * 2000


def test_invalid_options_raise() -> None:
    for bad in ({"ping_interval": 0}, {"ping_timeout": -1}, {"ping_interval": "5"},
                {"max_http_buffer_size": 0}, {"transports": ["flash"]}, {"transports": []},
                {"upgrade_timeout": 0}):
        with pytest.raises(ValueError):
            EngineServer(**bad)  # type: ignore[arg-type]


# -- messages over polling -----------------------------------------------------------------------


async def test_post_answers_ok_and_echo_batches() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        r = await c.post(q(sid), content="4a\x1e4é😀\x1ebAQID".encode(),
                         headers={"content-type": "text/plain;charset=UTF-8"})
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "ok", "text/html")
        r = await c.get(q(sid))
        assert r.text == "4a\x1e4é😀\x1ebAQID"
        assert rec.messages == ["a", "é😀", b"\x01\x02\x03"]


async def test_v3_binary_payloads_and_b64() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, 3)
        body = bytes.fromhex("0004ff34e282ac0105ff0401020304")
        r = await c.post(q(sid, 3), content=body,
                         headers={"content-type": "application/octet-stream"})
        assert r.text == "ok"
        r = await c.get(q(sid, 3))
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == body
        for b64 in ("1", "true"):  # engine.io-client sends 1; true is taken as well
            sid, _, _ = await handshake(c, url, 3, f"&b64={b64}")
            await c.post(q(sid, 3) + f"&b64={b64}", content=b"6:b4AQID")
            r = await c.get(q(sid, 3) + f"&b64={b64}")
            assert (r.headers["content-type"], r.text) == ("text/plain; charset=UTF-8", "6:b4AQID")


# -- heartbeat -----------------------------------------------------------------------------------


async def test_v4_server_pings_and_pong_keeps_alive() -> None:
    rec = Recorder(ping_interval=0.2, ping_timeout=0.2)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        for _ in range(4):  # well past interval + timeout, kept alive by pongs
            started = time.monotonic()
            r = await c.get(q(sid))
            assert r.text == "2"
            assert 0.1 < time.monotonic() - started < 0.4
            assert (await c.post(q(sid), content=b"3")).text == "ok"
        assert sid in rec.engine.sessions
        assert rec.closed == []


@pytest.mark.parametrize("eio", [3, 4])
async def test_silent_client_closed_by_timer(eio: int) -> None:
    # closed at ping_interval + ping_timeout = 1.2 s: not at either alone (0.4, 0.8), not at a
    # second interval (1.6); the window allows for a loaded machine
    rec = Recorder(ping_interval=0.4, ping_timeout=0.8)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        opened = rec.opened[sid]
        await eventually(lambda: rec.closed, timeout=3)
        assert len(rec.closed) == 1
        closed_sid, reason, when = rec.closed[0]
        assert (closed_sid, reason) == (sid, "ping timeout")
        assert 1.15 <= when - opened <= 1.45, when - opened
        assert rec.engine.sessions == {}
        assert_error(await c.get(q(sid, eio)), 1)


async def test_v3_client_pings_server_pongs() -> None:
    rec = Recorder(ping_interval=0.2, ping_timeout=0.1)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, 3)
        for _ in range(4):  # 0.8 s > interval + timeout: alive because it pings
            await asyncio.sleep(0.15)
            assert (await c.post(q(sid, 3), content=b"1:2")).text == "ok"
            assert (await c.get(q(sid, 3))).text == "1:3"
        assert (await c.post(q(sid, 3), content=b"6:2probe")).text == "ok"
        assert (await c.get(q(sid, 3))).text == "6:3probe"
        assert rec.closed == []


@pytest.mark.parametrize(("eio", "packet"), [(4, "2"), (3, "1:3")])
async def test_wrong_heartbeat_direction_closes(eio: int, packet: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        await c.post(q(sid, eio), content=packet.encode())
        assert rec.closed and rec.closed[0][1] == "transport error"
        assert_error(await c.get(q(sid, eio)), 1)


async def test_websocket_heartbeat_v4() -> None:
    rec = Recorder(ping_interval=0.15, ping_timeout=0.15)
    async with serve(rec.engine) as url:
        async with websockets.connect(ws_url(url, P + "?EIO=4&transport=websocket")) as ws:
            await ws.recv()
            for _ in range(3):
                assert await asyncio.wait_for(ws.recv(), 1) == "2"
                await ws.send("3")
            assert rec.closed == []
            assert await asyncio.wait_for(ws.recv(), 1) == "2"  # now stay silent
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 1)
        assert rec.closed[0][1] == "ping timeout"


# -- concurrency ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("eio", "close_payload"), [(4, "1"), (3, "1:1")])
async def test_second_concurrent_get_closes_session(eio: int, close_payload: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        first = asyncio.ensure_future(c.get(q(sid, eio)))
        session = rec.engine.sessions[sid]
        await eventually(lambda: session.poll_pending)
        assert_error(await c.get(q(sid, eio)), 3)
        r = await asyncio.wait_for(first, 2)
        assert r.text == close_payload
        assert rec.engine.sessions == {}
        assert rec.closed[0][1] == "transport error"


async def test_overlapping_post_closes_session() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        host, port = url[7:].split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {q(sid)} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4abc"
                     .encode())
        await writer.drain()
        session = rec.engine.sessions[sid]
        await eventually(lambda: session.post_pending)  # the first body is arriving
        assert_error(await c.post(q(sid), content=b"4x"), 3)
        assert rec.engine.sessions == {}
        assert [reason for _, reason, _ in rec.closed] == ["transport error"]
        writer.close()


# -- upgrade -------------------------------------------------------------------------------------


@pytest.mark.parametrize("eio", [3, 4])
async def test_upgrade_sequence(eio: int) -> None:
    rec = Recorder()
    noop = "6" if eio == 4 else "1:6"
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        pending = asyncio.ensure_future(c.get(q(sid, eio)))
        session = rec.engine.sessions[sid]
        await eventually(lambda: session.poll_pending)
        async with websockets.connect(ws_url(url, q(sid, eio, "websocket"))) as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            assert (await asyncio.wait_for(pending, 1)).text == noop
            # a poll arriving mid-upgrade is released at once too
            assert (await c.get(q(sid, eio))).text == noop
            socket = rec.engine.sessions[sid]
            socket.send("queued during upgrade")
            await ws.send("5")
            assert await ws.recv() == "4queued during upgrade"
            assert socket.transport == "websocket"
            await ws.send("4after")
            assert await ws.recv() == "4after"  # no stray noop frame in between
            await ws.send(b"\x04\x01\x02" if eio == 3 else b"\x01\x02")
            assert await ws.recv() == (b"\x04\x01\x02" if eio == 3 else b"\x01\x02")
            assert_error(await c.get(q(sid, eio)), 3)
            assert_error(await c.post(q(sid, eio), content=b"4x"), 3)
            async with websockets.connect(ws_url(url, q(sid, eio, "websocket"))) as second:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(second.recv(), 1)
            await ws.send("4still here")
            assert await ws.recv() == "4still here"
        await eventually(lambda: not rec.engine.sessions)
        assert rec.closed[0][1] == "transport close"


async def test_upgrade_timeout_and_bad_probe_keep_polling() -> None:
    rec = Recorder(upgrade_timeout=0.3)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        async with websockets.connect(ws_url(url, q(sid, 4, "websocket"))) as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)  # no "5" within upgrade_timeout
        async with websockets.connect(ws_url(url, q(sid, 4, "websocket"))) as ws:
            await ws.send("4not a probe")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
        assert rec.engine.sessions[sid].transport == "polling"
        await c.post(q(sid), content=b"4still polling")
        assert (await c.get(q(sid))).text == "4still polling"


# -- limits and malformed input ------------------------------------------------------------------


async def test_oversize_post_is_413_and_closes_only_that_session() -> None:
    rec = Recorder(max_http_buffer_size=1000)
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        other, _, _ = await handshake(c, url)
        r = await c.post(q(sid), content=b"4" + b"x" * 1000)
        assert (r.status_code, r.text) == (413, "Payload Too Large")
        assert r.headers["content-type"].lower() == "text/plain; charset=utf-8"
        assert rec.closed[0][:2] == (sid, "transport error")
        assert_error(await c.get(q(sid)), 1)
        ok = "4" + "é" * 499  # 999 bytes
        assert (await c.post(q(other), content=ok.encode())).text == "ok"
        assert (await c.get(q(other))).text == ok


async def test_oversize_websocket_message_closes_1009() -> None:
    rec = Recorder(max_http_buffer_size=1000)
    async with serve(rec.engine) as url:
        async with websockets.connect(ws_url(url, P + "?EIO=4&transport=websocket")) as ws:
            await ws.recv()
            await ws.send("4" + "é" * 500)  # 1001 bytes
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 2)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert rec.engine.sessions == {}


@pytest.mark.parametrize(
    ("eio", "body", "ctype"),
    [
        (4, b"9nope", "text/plain"),
        (4, b"", "text/plain"),
        (4, b"bAQ!D", "text/plain"),
        (4, b"\x00\x01\xff\x04", "application/octet-stream"),
        (4, b"4\xff\xfe", "text/plain"),
        (3, b"5:abc", "text/plain"),
        (3, b"x:4abc", "text/plain"),
        (3, b"2:4\xf0\x9f\x98\x80", "text/plain"),
        (3, b"\x00\x09\x09\xff4", "application/octet-stream"),
    ],
)
async def test_malformed_payload_closes_that_session_only(eio: int, body: bytes,
                                                          ctype: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        other, _, _ = await handshake(c, url, eio)
        assert_error(await c.post(q(sid, eio), content=body, headers={"content-type": ctype}), 3)
        assert_error(await c.get(q(sid, eio)), 1)
        assert rec.closed[0][:2] == (sid, "parse error")
        assert other in rec.engine.sessions
        good = b"4ok" if eio == 4 else b"3:4ok"
        assert (await c.post(q(other, eio), content=good)).text == "ok"


async def test_malformed_websocket_frame_closes_session() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url:
        async with websockets.connect(ws_url(url, P + "?EIO=3&transport=websocket")) as ws:
            await ws.recv()
            await ws.send(b"\x09garbage")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
        assert rec.closed[0][1] == "parse error"
        assert rec.engine.sessions == {}


async def test_hostile_requests_do_not_crash_server() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        host, port = url[7:].split(":")
        for raw in (b"GET /engine.io/?EIO=4&transport=polling&sid=" + b"A" * 9000 + b" HTTP/1.1\r\n"
                    b"Host: x\r\n\r\n", b"\x16\x03\x01garbage\r\n\r\n",
                    b"POST /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: -5\r\n\r\n"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(raw)
            await writer.drain()
            await asyncio.wait_for(reader.read(1000), 2)
            writer.close()
        assert_error(await c.get(P + "?EIO=4&transport=polling&EIO=4&sid=" + "%00" * 10), 1)
        await handshake(c, url)


# -- close and cleanup ---------------------------------------------------------------------------


@pytest.mark.parametrize(("eio", "close_payload"), [(4, "1"), (3, "1:1")])
async def test_server_close_with_and_without_pending_poll(eio: int, close_payload: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url, eio)
        pending = asyncio.ensure_future(c.get(q(sid, eio)))
        session = rec.engine.sessions[sid]
        await eventually(lambda: session.poll_pending)
        session.close()
        assert (await asyncio.wait_for(pending, 1)).text == close_payload
        assert_error(await c.get(q(sid, eio)), 1)
        # no poll pending: buffered packets wait for the next poll and, as in engine.io (close
        # waits for "drain"), the close packet for the one after
        sid, _, _ = await handshake(c, url, eio)
        socket = rec.engine.sessions[sid]
        socket.send("last words")
        socket.close()
        assert socket.send("too late") is False
        r = await c.get(q(sid, eio))
        assert r.text == ("4last words" if eio == 4 else "11:4last words")
        assert (await c.get(q(sid, eio))).text == close_payload
        assert_error(await c.get(q(sid, eio)), 1)
        assert [reason for _, reason, _ in rec.closed] == ["forced close", "forced close"]


async def test_client_close_packet() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        sid, _, _ = await handshake(c, url)
        assert (await c.post(q(sid), content=b"1")).text == "ok"
        assert rec.closed[0][1] == "transport close"
        assert_error(await c.get(q(sid)), 1)


async def test_sessions_and_timers_freed() -> None:
    rec = Recorder(ping_interval=5, ping_timeout=5)
    refs: list[weakref.ref[EngineSocket]] = []
    async with serve(rec.engine) as url, httpx.AsyncClient(base_url=url) as c:
        for eio in (3, 4):
            sid, _, _ = await handshake(c, url, eio)
            await c.post(q(sid, eio), content=b"1" if eio == 4 else b"1:1")
        sid, _, _ = await handshake(c, url)
        pending = asyncio.ensure_future(c.get(q(sid)))
        await eventually(lambda: rec.engine.sessions[sid].poll_pending)
        async with websockets.connect(ws_url(url, q(sid, 4, "websocket"))) as ws:
            await ws.send("2probe")
            await ws.recv()
            await pending
            await ws.send("5")
            await ws.send("4x")
            await ws.recv()
        async with websockets.connect(ws_url(url, P + "?EIO=3&transport=websocket")) as ws:
            await ws.recv()
        sid, _, _ = await handshake(c, url)
        rec.engine.sessions[sid].close()
        await c.get(q(sid))
        await eventually(lambda: not rec.engine.sessions)
        assert len(rec.closed) == 5
        refs = [weakref.ref(s) for s in rec.sockets]
        rec.sockets.clear()
    gc.collect()
    # a timer left armed (heartbeat, close wait) would hold its session: none is
    assert [r() for r in refs] == [None] * 5
    assert not rec.engine.invoker.tasks


async def test_curl_troubleshooting_output(tmp_path: Any) -> None:
    rec = Recorder(path="/socket.io/")
    async with serve(rec.engine) as url:
        _, out, _ = await run_command("curl", "-s", f"{url}/socket.io/?EIO=3&transport=polling")
    text = out.decode()
    m = re.fullmatch(r'(\d+):(0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\],'
                     r'"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\})', text)
    assert m, text
    assert int(m.group(1)) == len(m.group(2))
    assert orjson.loads(m.group(2)[1:])["sid"]
