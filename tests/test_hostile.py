"""Hostile input against each binding while well-behaved clients keep acking.

The server runs in its own process (``sockjet run``, native or ``--runner uvicorn``) with short
deadlines. Malformed HTTP, invalid polling payloads, invalid Socket.IO packets and invalid
WebSocket frames are thrown at it, then slow and idle connections, then floods. Asserted: the
process never dies, no ack of the good clients is lost or late, every bad input gets a refusal
(4xx, or a WebSocket close) and its session is closed, slow and idle connections close on their
deadlines, and memory returns near its baseline after the floods.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from conftest import SOCKJET, free_port, kill_group
from rawclient import BINARY, CLOSE, CONT, PING, TEXT, RawConnection, frame, request

import sockjet

APP = """
import re
import sockjet
io = sockjet.Server(origins="*", max_http_buffer_size=100_000, headers_timeout=2,
                    keep_alive_timeout=2, request_timeout=3, ping_interval=5, ping_timeout=5)
io.on("connection", lambda socket: socket.on("echo", lambda *args: args))
io.of(re.compile(r"/dyn-.*")).on("connection", lambda socket: None)
"""

SIO = "/socket.io/"
SEED = 20261130


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class GoodClients:
    """Two clients (WebSocket, polling) acking ``echo`` back to back the whole time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[sockjet.AsyncClient] = []
        self.acks = 0
        self.slowest = 0.0
        self.disconnects: list[str] = []
        self.lost: list[str] = []
        self._stop = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for transports in (["websocket"], ["polling"]):
            client = sockjet.AsyncClient(self.url, transports=transports, reconnection=False)
            client.on("disconnect", lambda reason: self.disconnects.append(reason))
            await client.connect()
            self.clients.append(client)
            self._tasks.append(asyncio.ensure_future(self._run(client)))

    async def _run(self, client: sockjet.AsyncClient) -> None:
        n = 0
        while not self._stop:
            started = time.monotonic()
            assert await client.emit_with_ack("echo", n, "x" * 100, timeout=5) == (n, "x" * 100)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.acks += 1
            n += 1
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)  # an ack lost or wrong fails here
        self.lost = list(self.disconnects)  # before we disconnect them ourselves
        for client in self.clients:
            await client.disconnect()


@contextlib.asynccontextmanager
async def server_process(tmp_path: Path, binding: str) -> AsyncIterator[tuple[str, int]]:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    command = [str(SOCKJET), "run", "app:io", "--port", str(port), "--log-level", "warning"]
    if binding == "asgi":
        command += ["--runner", "uvicorn"]
    log = (tmp_path / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, stdout=log, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    await client.get(url + "/")
                    break
                await asyncio.sleep(0.05)
        yield url, proc.pid
        assert proc.returncode is None, "the server died"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                kill_group(proc.pid)
                await proc.wait()
        log.close()
    text = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


async def in_batches(jobs: list[Callable[[], Awaitable[None]]], size: int = 50) -> None:
    for start in range(0, len(jobs), size):
        await asyncio.gather(*(job() for job in jobs[start:start + size]))


# -- malformed HTTP ------------------------------------------------------------------------------

_BAD_HTTP = [
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\nNo-Colon-Here\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    b"POST /socket.io/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /socket.io/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\nX: a\x01b\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\n Folded: header\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /socket.io/ HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
    b"GET /socket.io/ HTTP/1.1\r\nBig: " + b"b" * 40_000 + b"\r\n\r\n",
    request("GET", SIO + "?EIO=4&transport=polling&sid=%ff%fe"),
    request("GET", SIO + "?EIO=4&transport=polling&j=alert(1)"),
    request("GET", SIO + "?EIO=4&transport=flash"),
    request("GET", SIO + "?EIO=99&transport=polling"),
    request("PUT", SIO + "?EIO=4&transport=polling"),
    request("GET", SIO + "?EIO=4&transport=polling&sid=" + "A" * 20),
    request("POST", SIO + "?EIO=4&transport=polling", body=b"4hello"),
    request("GET", SIO + "?EIO=4&transport=websocket"),
]


def _random_http(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\r\n\r\n"
    if kind == 1:  # a request line with garbage in it
        junk = bytes(rng.choice(b"\x00\x7f\x1b %\xff") for _ in range(rng.randrange(1, 20)))
        return b"GET /socket.io/?" + junk + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    if kind == 2:  # a header with forbidden bytes
        junk = bytes(rng.choice(b"\x00\x01\x7f\r") for _ in range(rng.randrange(1, 5)))
        return b"GET /socket.io/ HTTP/1.1\r\nX-J" + junk + b": v\r\n\r\n"
    method = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ()<>@") for _ in range(8))
    return method + b" /socket.io/ HTTP/1.1\r\n\r\n"


async def _refused(url: str, data: bytes) -> None:
    conn = await RawConnection.open(url)
    try:
        with contextlib.suppress(ConnectionError):
            await conn.send(data)
        answer = await conn.eof(timeout=4)
        if answer:  # some inputs are well-formed HTTP the engine refuses (keep-alive, no EOF)
            status = int(answer.split(b" ", 2)[1])
            assert 400 <= status < 500, (data[:80], answer[:200])
        else:
            raise AssertionError(f"closed without a refusal: {data[:80]!r}")
    except TimeoutError:
        raise AssertionError(f"no refusal for {data[:80]!r}") from None
    finally:
        conn.close()


async def _refused_keep_alive(url: str, data: bytes) -> None:
    """Well-formed requests the engine refuses: a 4xx response (the connection may stay)."""
    conn = await RawConnection.open(url)
    try:
        await conn.send(data)
        response = await conn.response(timeout=4)
        assert 400 <= response.status < 500, (data[:80], response)
    finally:
        conn.close()


# -- polling payloads and Socket.IO packets ------------------------------------------------------

_BAD_V4_PAYLOADS = [b"", b"9", b"b!!!", b"\x1e", b"4a\x1e\x1e", b"x", b"40\x1e9", b"b4abc="]
_BAD_V3_PAYLOADS = [b"5:4hello", b"abc:4x", b"9:4", b"1:", b"0", b"2:9x", b"\x02\x03\xff4",
                    b"\x00\x09\x09\xff4x"]
_BAD_SIO = [b'42[', b'4{"a":1}', b"49", b'42["connect"]', b"43", b'451-["x",{"_placeholder":true'
            b',"num":5}]', b"41/unknown,", b'40/dyn-a,"not an object"', b"4" + b"6" * 50]


async def _session(client: httpx.AsyncClient, eio: int = 4) -> str:
    r = await client.get(f"{SIO}?EIO={eio}&transport=polling")
    return re.search(r'"sid":"([^"]+)"', r.text).group(1)  # type: ignore[union-attr]


async def _gone(client: httpx.AsyncClient, eio: int, sid: str) -> None:
    """The session is closed: its next poll is refused (or carries only the close packet)."""
    q = f"{SIO}?EIO={eio}&transport=polling&sid={sid}"
    for _ in range(3):
        r = await client.get(q, timeout=8)
        if r.status_code == 400:
            assert r.json()["code"] == 1, r.text
            return
        assert r.status_code == 200, r.text
        packets = r.text.split("\x1e") if eio == 4 else re.split(r"\d+:", r.text)[1:]
        if packets and packets[-1] == "1":
            return
    raise AssertionError(f"session {sid} still open")


async def _bad_payload(url: str, eio: int, body: bytes, binary: bool) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        sid = await _session(client, eio)
        if eio == 4:
            await client.post(f"{SIO}?EIO=4&transport=polling&sid={sid}", content=b"40")
        headers = {"content-type": "application/octet-stream" if binary else "text/plain"}
        r = await client.post(f"{SIO}?EIO={eio}&transport=polling&sid={sid}", content=body,
                              headers=headers)
        assert r.status_code in (200, 400), r.text  # 400: refused; 200: Socket.IO closes it
        await _gone(client, eio, sid)


# -- WebSocket frames ---------------------------------------------------------------------------

def _raw_frame(first: int, payload: bytes, masked: bool = True) -> bytes:
    data = frame(first & 0x0F, payload, bool(first & 0x80))
    data = bytes([first]) + data[1:]
    if not masked:  # drop the mask bit and key, send the payload as is
        return bytes([first, len(payload)]) + payload
    return data


_BAD_FRAMES: list[list[bytes]] = [
    [frame(TEXT, b'42["echo","\xff\xfe"]')],  # invalid UTF-8
    [_raw_frame(0x83, b"x")],  # reserved opcode 3
    [_raw_frame(0x8B, b"x")],  # reserved control opcode
    [_raw_frame(0x81, b"4x", masked=False)],  # client frames must be masked
    [_raw_frame(0xC1, b"4x")],  # RSV1 without an extension
    [frame(PING, b"p" * 126)],  # control frame too long
    [_raw_frame(0x09, b"p")],  # fragmented control frame
    [frame(CONT, b"orphan")],  # continuation without a start
    [frame(TEXT, b"4a", fin=False), frame(TEXT, b"4b")],  # new message mid-fragmentation
    [frame(CLOSE, b"\x03\xe7")],  # close code 999
    [frame(TEXT, b"9nonsense")],  # not an Engine.IO packet
    [frame(TEXT, b"")],  # empty packet
    [frame(TEXT, b"42[")],  # not a Socket.IO packet
    [frame(BINARY, b"\x00\x01")],  # a binary attachment nobody announced
    [frame(TEXT, b"4" + b"z" * 100_001)],  # over max_http_buffer_size
    [bytes([0x81, 0xFF]) + b"\x7f" + b"\xff" * 7 + b"\x00" * 4],  # a 2^63-byte frame
]


async def _bad_frames(url: str, frames: list[bytes]) -> None:
    conn = await RawConnection.open(url)
    try:
        await conn.ws_handshake(SIO + "?EIO=4&transport=websocket")
        _, payload = await conn.ws_recv()
        assert payload.startswith(b"0{")
        sid = re.search(rb'"sid":"([^"]+)"', payload).group(1).decode()  # type: ignore[union-attr]
        await conn.send(frame(TEXT, b"40"))
        while (await conn.ws_recv())[1][:2] != b"40":
            pass
        with contextlib.suppress(ConnectionError):
            for data in frames:
                await conn.send(data)
        # the server closes: a close frame (answered, as a client does), then the connection
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await conn.ws_close_code()
            await conn.send(frame(CLOSE, b"\x03\xe8"))
        await conn.eof(timeout=8)
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.get(f"{SIO}?EIO=4&transport=polling&sid={sid}")
            assert (r.status_code, r.json()["code"]) == (400, 1), r.text  # session gone
    finally:
        conn.close()


async def _unknown_namespace(url: str) -> None:
    conn = await RawConnection.open(url)
    try:
        await conn.ws_handshake(SIO + "?EIO=4&transport=websocket")
        await conn.ws_recv()
        await conn.send(frame(TEXT, b"40/unknown-namespace,") + frame(TEXT, b"40"))
        answers = sorted([(await conn.ws_recv())[1], (await conn.ws_recv())[1]])
        assert answers[0].startswith(b'40{"sid":')  # "/" connected, in whichever order
        assert answers[1] == b'44/unknown-namespace,{"message":"Invalid namespace"}'
    finally:
        conn.close()


# -- the test ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_hostile_input_is_refused_while_good_clients_are_served(
        tmp_path: Path, binding: str) -> None:
    rng = random.Random(SEED)
    async with server_process(tmp_path, binding) as (url, pid):
        good = GoodClients(url)
        await good.start()
        await asyncio.sleep(0.5)
        baseline = rss_kib(pid)

        # malformed HTTP: each on its own connection, refused and closed
        jobs: list[Callable[[], Awaitable[None]]] = []
        closing = [d for d in _BAD_HTTP if not d.startswith((b"GET /socket.io/?", b"PUT ",
                                                              b"POST /socket.io/?"))]
        engine_refusals = [d for d in _BAD_HTTP if d not in closing]
        jobs += [lambda d=d: _refused(url, d) for d in closing]
        jobs += [lambda d=d: _refused_keep_alive(url, d) for d in engine_refusals]
        fuzz = [_random_http(rng) for _ in range(400)]
        jobs += [lambda d=d: _refused(url, d) for d in fuzz]
        await in_batches(jobs)

        # invalid polling payloads (v3 and v4) and Socket.IO packets: refused, session closed
        jobs = [lambda b=b: _bad_payload(url, 4, b, False) for b in _BAD_V4_PAYLOADS]
        jobs += [lambda b=b: _bad_payload(url, 3, b, b[:1] in (b"\x00", b"\x01", b"\x02"))
                 for b in _BAD_V3_PAYLOADS]
        jobs += [lambda b=b: _bad_payload(url, 4, b, False) for b in _BAD_SIO]
        fuzz = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
                for _ in range(100)]
        jobs += [lambda b=b: _bad_payload(url, 3, b"\x00" + b, True) for b in fuzz]
        await in_batches(jobs, 20)

        # invalid WebSocket frames: a close, the session gone
        await in_batches([lambda f=f: _bad_frames(url, f) for f in _BAD_FRAMES], 10)
        # an unknown namespace is refused with connect_error, the connection stays (as Node)
        await in_batches([lambda: _unknown_namespace(url) for _ in range(50)], 25)

        # slow heads and idle connections close on their deadlines (2 s, 2 s)
        slow = [await RawConnection.open(url) for _ in range(200)]
        idle = [await RawConnection.open(url) for _ in range(200)]
        for conn in slow:
            await conn.send(b"GET /socket.io/?EIO=4")
        started = time.monotonic()
        closed = await asyncio.gather(*(c.eof(timeout=6) for c in slow + idle),
                                      return_exceptions=True)
        assert not [c for c in closed if isinstance(c, BaseException)]
        assert time.monotonic() - started < 4
        assert all(c.startswith(b"HTTP/1.1 408 ") for c in closed[:200])  # type: ignore[union-attr]
        for conn in slow + idle:
            conn.close()

        # floods: connections, oversize bodies, messages
        async def connect_and_drop() -> None:
            conn = await RawConnection.open(url)
            conn.close()

        await in_batches([connect_and_drop for _ in range(2000)], 200)

        async def oversize() -> None:
            async with httpx.AsyncClient(base_url=url) as client:
                sid = await _session(client)
                r = await client.post(f"{SIO}?EIO=4&transport=polling&sid={sid}",
                                      content=b"4" + b"o" * 150_000)
                assert r.status_code == 413

        await in_batches([oversize for _ in range(300)], 30)

        async def chatter() -> None:
            conn = await RawConnection.open(url)
            await conn.ws_handshake(SIO + "?EIO=4&transport=websocket")
            await conn.ws_recv()
            await conn.send(frame(TEXT, b"40"))
            await conn.send(b"".join(frame(TEXT, b'42["echo",%d]' % i) for i in range(500)))
            conn.close()

        await in_batches([chatter for _ in range(100)], 20)
        peak = rss_kib(pid)

        await asyncio.sleep(3)  # idle connections time out, closed sessions are freed
        after = rss_kib(pid)
        await good.stop()

    assert good.lost == []
    assert good.acks > 200
    assert good.slowest < 2.0, good.slowest
    # memory back near its baseline (the allocator keeps some arenas)
    assert after - baseline < 20 * 1024, (baseline, peak, after)
    print(f"{binding}: acks {good.acks}, slowest {good.slowest * 1000:.0f} ms, RSS KiB "
          f"baseline {baseline}, peak {peak}, after {after}", file=sys.stderr)
