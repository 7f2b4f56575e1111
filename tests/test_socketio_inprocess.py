"""Socket.IO server properties that need thousands of sessions: run in process through the
engine's own request/connection interface (tests/inproc.py), no sockets needed."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import weakref
from typing import Any

import pytest
from conftest import eventually
from inproc import InProcWebSocket, get, post

import sockjet
from sockjet.codecs import engineio as eio_codec
from sockjet.codecs import socketio as sio_codec


def q(eio: int, sid: str | None = None, b64: bool = False,
      transport: str = "polling") -> dict[str, str]:
    query = {"EIO": str(eio), "transport": transport}
    if sid:
        query["sid"] = sid
    if b64:
        query["b64"] = "1"
    return query


async def open_ws(io: sockjet.Server, eio: int, b64: bool = False,
                  nsp: str = "/") -> tuple[InProcWebSocket, asyncio.Future[None]]:
    ws = InProcWebSocket(q(eio, b64=b64, transport="websocket"))
    task = asyncio.ensure_future(io.engine.handle_websocket(ws))
    first = await ws.next()
    assert isinstance(first, str) and first.startswith("0{")
    if eio == 4:
        ws.client_send("40" if nsp == "/" else f"40{nsp},")
        assert str(await ws.next()).startswith("40")
    else:
        assert await ws.next() == "40"
        if nsp != "/":
            ws.client_send(f"40{nsp},")
            assert await ws.next() == f"40{nsp},"
    return ws, task


async def open_polling(io: sockjet.Server, eio: int, b64: bool = False) -> str:
    r = await get(io.engine, q(eio, b64=b64))
    body = r.body.decode()
    if eio == 4:
        sid = json.loads(body[1:])["sid"]
        assert (await post(io.engine, q(4, sid), b"40")).body == b"ok"
        assert (await get(io.engine, q(4, sid))).body.startswith(b"40{")
    else:
        sid = json.loads(body[body.index("{"):body.index("}") + 1])["sid"]
        assert body.endswith("2:40")  # the implicit "/" connect rides with the handshake
    return sid


class Counter:
    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


async def test_broadcast_to_1000_sockets_encodes_once_per_variant(
        monkeypatch: pytest.MonkeyPatch) -> None:
    io = sockjet.Server()
    kinds = [("ws", 4, False), ("ws", 3, False), ("ws", 3, True), ("poll", 4, False),
             ("poll", 3, False), ("poll", 3, True)]
    sockets: list[tuple[tuple[str, int, bool], Any]] = []
    for i in range(1002):
        kind = kinds[i % len(kinds)]
        if kind[0] == "ws":
            ws, _ = await open_ws(io, kind[1], kind[2])
            sockets.append((kind, ws))
        else:
            sockets.append((kind, await open_polling(io, kind[1], kind[2])))
    assert len(io.sockets.sockets) == 1002
    sio_encode = Counter(sio_codec.encode)
    frame_encode = Counter(eio_codec.encode_frame)
    monkeypatch.setattr(sio_codec, "encode", sio_encode)
    monkeypatch.setattr(eio_codec, "encode_frame", frame_encode)

    io.emit("news", {"n": 1}, b"\x00\x01\x02")

    assert sio_encode.calls == 1  # one Socket.IO encode for every recipient
    # WebSocket frames: one per Engine.IO variant (v4, v3, v3+b64) per message (text + 1 binary)
    assert frame_encode.calls == 3 * 2
    for (transport, eio, b64), handle in sockets:
        if transport == "ws":
            assert await handle.next() == '451-["news",{"n":1},{"_placeholder":true,"num":0}]'
            assert await handle.next() == (b"\x00\x01\x02" if eio == 4 else
                                           "b4AAEC" if b64 else b"\x04\x00\x01\x02")
            assert handle.drain() == []  # nothing else
        else:
            body = (await get(io.engine, q(eio, handle, b64))).body
            if eio == 4:
                assert body == b'451-["news",{"n":1},{"_placeholder":true,"num":0}]\x1ebAAEC'
            elif b64:
                assert body.endswith(b"6:b4AAEC")
            else:
                text = b'451-["news",{"n":1},{"_placeholder":true,"num":0}]'
                assert len(text) == 50
                assert body == (b"\x00\x05\x00\xff" + text + b"\x01\x04\xff\x04\x00\x01\x02")
    await io.close()


async def test_no_leaks_after_10000_connect_disconnect_cycles() -> None:
    io = sockjet.Server(ping_interval=20, ping_timeout=20)
    chat = io.of("/chat")
    tracked: list[weakref.ref[Any]] = []

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        socket.join(["lobby", f"room-{len(tracked) % 7}"])
        socket.data["n"] = len(tracked)
        socket.on("ping", lambda: "pong")
        if len(tracked) % 50 == 0:
            tracked.append(weakref.ref(socket))
            tracked.append(weakref.ref(socket.conn))
            tracked.append(weakref.ref(socket.conn.engine))
        else:
            tracked.append(None)  # type: ignore[arg-type]

    chat.on("connection", lambda socket: socket.join("chatters"))

    for i in range(10_000):
        variant = i % 5
        if variant == 0:  # v4 WebSocket, event with ack, client closes the transport
            ws, task = await open_ws(io, 4)
            ws.client_send('421["ping"]')
            assert await ws.next() == '431["pong"]'
            ws.client_close()
            await task
        elif variant == 1:  # v3 WebSocket on /chat, server disconnects with close
            ws, task = await open_ws(io, 3, nsp="/chat")
            next(iter(chat.sockets.values())).disconnect(close=True)
            await task
        elif variant == 2:  # v4 polling, namespace disconnect then close packet
            sid = await open_polling(io, 4)
            await post(io.engine, q(4, sid), b"41")
            await post(io.engine, q(4, sid), b"1")
        elif variant == 3:  # v3 polling, client close
            sid = await open_polling(io, 3)
            await post(io.engine, q(3, sid), b"1:1")
        else:  # v4 WebSocket refused namespace, then protocol error closes the connection
            ws, task = await open_ws(io, 4)
            ws.client_send("40/nope,")
            assert await ws.next() == '44/nope,{"message":"Invalid namespace"}'
            ws.client_send("42garbage")
            await task

    await eventually(lambda: not io.engine.sessions and not io.engine.invoker.tasks
                     and not io.invoker.tasks)
    for nsp in (io.sockets, chat):
        assert nsp.sockets == {}
        assert nsp.adapter.rooms == {}  # type: ignore[attr-defined]
        assert nsp.adapter.sids == {}  # type: ignore[attr-defined]
    gc.collect()  # an armed timer (heartbeat, connect timeout) would hold its objects: none is
    refs = [r for r in tracked if r is not None]
    assert len(refs) >= 100
    assert [r for r in refs if r() is not None] == []


async def test_emit_threadsafe_from_another_thread() -> None:
    io = sockjet.Server()
    ws, _ = await open_ws(io, 4)
    with pytest.raises(RuntimeError):
        sockjet.Server().emit_threadsafe("x")
    thread = threading.Thread(target=io.emit_threadsafe, args=("tick", 1), kwargs={"to": None})
    thread.start()
    thread.join()
    assert await ws.next() == '42["tick",1]'
    await io.close()


async def test_volatile_dropped_when_queue_full_and_hard_limit_closes() -> None:
    # each '42["keep",i]' is 12 bytes queued: ten of them reach queue_limit exactly
    io = sockjet.Server(queue_high_water=36, queue_limit=120)
    sid = await open_polling(io, 4)  # no poll pending: nothing is writable
    socket = next(iter(io.sockets.sockets.values()))
    assert socket.volatile.emit("v", 1) is False
    io.volatile.emit("v", 2)
    for i in range(10):
        assert socket.emit("keep", i)
    assert socket.emit("overflow") is False  # over queue_limit: the slow client is cut off
    assert sid not in io.engine.sessions  # no poll pending to carry a close packet: gone
    assert io.sockets.sockets == {}
