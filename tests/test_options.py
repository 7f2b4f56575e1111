"""Documented server, engine, runner and CLI options and APIs, each shown to take effect: a test
here fails if its option or API were ignored or broken (README "Configuration reference",
docs/server.md, docs/engine.md). Server logic runs in process (tests/inproc.py); what a binding
decides runs on real sockets on both bindings; the runner and the CLI run as subprocesses."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import SOCKJET, eventually, free_port, process, run_command, serve, sockjet_process
from inproc import InProc, InProcWebSocket, get, join, sync, with_sync

import sockjet
from sockjet import EngineServer, EngineSocket
from sockjet.bindings import runner

RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener",
            "removeListener"]


# -- in-process helpers ---------------------------------------------------------------------------


def pq(sid: str | None = None, eio: int = 4) -> dict[str, str]:
    """Query of a polling request (a handshake without ``sid``)."""
    query = {"EIO": str(eio), "transport": "polling"}
    if sid is not None:
        query["sid"] = sid
    return query


# -- connect_timeout ------------------------------------------------------------------------------


async def test_connect_timeout_closes_connections_that_join_no_namespace() -> None:
    limit = 0.5
    io = sockjet.Server(connect_timeout=limit)
    io.on("connection", with_sync)
    opened: dict[str, float] = {}
    closed: dict[str, tuple[str, float]] = {}

    @io.engine.on("connection")
    def track(socket: EngineSocket) -> None:
        opened[socket.sid] = time.monotonic()
        socket.on("close", lambda reason: closed.setdefault(socket.sid,
                                                            (reason, time.monotonic())))

    async with InProc(io) as clients:
        in_time, in_time_sid = await clients.open()
        await join(in_time)  # at once: well within the limit
        v2, v2_sid = await clients.open(eio=3)  # socket.io-client 2.x joins "/" implicitly
        assert await v2.next() == "40"
        silent, silent_sid = await clients.open()  # never sends a CONNECT
        refused, refused_sid = await clients.open()  # a refused CONNECT joins nothing either
        refused.client_send("40/nope,")
        assert await refused.next() == '44/nope,{"message":"Invalid namespace"}'

        await eventually(lambda: silent_sid in closed and refused_sid in closed, timeout=4)
        for sid in (silent_sid, refused_sid):
            reason, when = closed[sid]
            assert reason == "forced close"
            # at the limit: not at once, not at a default (45 s) or a heartbeat (25 s)
            assert limit - 0.1 <= when - opened[sid] <= limit + 0.8, when - opened[sid]
            assert sid not in io.engine.sessions
        assert await silent.next() is None and await refused.next() is None  # closed
        # opened before the silent one, so their limit passed too: they stay
        await sync(in_time)
        v2.client_send('421["sync"]')
        assert await v2.next() == '431["ok"]'
        assert {in_time_sid, v2_sid} <= set(io.engine.sessions)
        assert set(closed) == {silent_sid, refused_sid}


@pytest.mark.parametrize("value", [0, -1, "5", None])
def test_connect_timeout_must_be_positive(value: Any) -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        sockjet.Server(connect_timeout=value)


# -- close_timeout --------------------------------------------------------------------------------


@pytest.mark.parametrize("queued", [False, True], ids=["empty", "queued"])
async def test_close_timeout_forgets_a_closed_session_nobody_polls(
        queued: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 0.5
    engine = EngineServer(close_timeout=limit)
    forgotten: dict[str, float] = {}
    forget = engine.forget

    def record(socket: EngineSocket) -> None:  # when the session leaves the table
        forget(socket)
        forgotten.setdefault(socket.sid, time.monotonic())

    monkeypatch.setattr(engine, "forget", record)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)

    async def closed_session() -> tuple[str, EngineSocket]:
        sid = json.loads((await get(engine, pq())).body[1:])["sid"]
        socket = sockets[-1]
        if queued:
            socket.send("last words")
        socket.close()  # no poll pending: the close packet waits for one
        return sid, socket

    # a poll within close_timeout still carries what is owed, the close packet last
    sid, socket = await closed_session()
    assert socket.state == "closing" and sid in engine.sessions
    if queued:
        assert (await get(engine, pq(sid))).body == b"4last words"
    assert (await get(engine, pq(sid))).body == b"1"
    assert sid not in engine.sessions

    # nobody polls: the session waits until close_timeout, then is forgotten
    sid, socket = await closed_session()
    closed_at = time.monotonic()
    assert sid in engine.sessions
    await eventually(lambda: sid not in engine.sessions, timeout=4)
    waited = forgotten[sid] - closed_at
    assert limit - 0.1 <= waited <= limit + 0.8, waited  # present until just before the limit
    assert socket.state == "closed"
    late = await get(engine, pq(sid))  # a poll after close_timeout: the session is unknown
    assert (late.status, json.loads(late.body)) == (400, {"code": 1,
                                                          "message": "Session ID unknown"})


def test_close_timeout_must_be_positive() -> None:
    for value in (0, -0.5):
        with pytest.raises(ValueError, match="close_timeout"):
            EngineServer(close_timeout=value)


# -- adapter, io.local ----------------------------------------------------------------------------


class RecordingAdapter(sockjet.InMemoryAdapter):
    """The in-memory adapter, recording the broadcasts it is asked to deliver."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.broadcasts: list[tuple[list[Any], sockjet.BroadcastOptions]] = []

    def broadcast(self, data: list[Any], opts: sockjet.BroadcastOptions) -> None:
        self.broadcasts.append((list(data), opts))
        super().broadcast(data, opts)


async def test_custom_adapter_is_used_for_every_namespace_and_broadcast() -> None:
    io = sockjet.Server(adapter=RecordingAdapter)
    admin = io.of("/admin")
    teams = io.of(re.compile(r"/team-\d+"))
    sockets: dict[str, sockjet.Socket] = {}

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        sockets[socket.id] = socket
        with_sync(socket)

    async with InProc(io) as clients:
        main_adapter = io.sockets.adapter
        assert isinstance(main_adapter, RecordingAdapter) and main_adapter.nsp is io.sockets
        assert isinstance(admin.adapter, RecordingAdapter) and admin.adapter.nsp is admin
        assert admin.adapter is not main_adapter
        a, a_id = await clients.connected()
        b, _ = await clients.connected()
        sockets[a_id].join("room")
        assert main_adapter.rooms["room"] == {a_id}  # rooms live in our adapter

        io.to("room").emit("news", 1)
        sockets[a_id].broadcast.emit("from-a", 2)
        assert main_adapter.broadcasts == [
            (["news", 1], sockjet.BroadcastOptions(rooms=frozenset({"room"}))),
            (["from-a", 2], sockjet.BroadcastOptions(except_rooms=frozenset({a_id}))),
        ]
        assert await a.next() == '42["news",1]'
        assert await b.next() == '42["from-a",2]'
        await sync(a)  # nothing else came: the adapter's delivery is the only one
        await sync(b)

        team, _ = await clients.open()
        await join(team, "/team-7")
        child = io.namespaces["/team-7"]
        assert isinstance(child.adapter, RecordingAdapter)  # children of dynamic namespaces
        teams.emit("all-teams")
        assert child.adapter.broadcasts == [(["all-teams"], sockjet.BroadcastOptions())]
        assert await team.next() == '42/team-7,["all-teams"]'


async def test_io_local_passes_local_true_to_the_adapter() -> None:
    io = sockjet.Server(adapter=RecordingAdapter)
    io.on("connection", with_sync)
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        adapter = io.sockets.adapter
        assert isinstance(adapter, RecordingAdapter)
        io.local.emit("tick", 1)
        io.to(sid).local.emit("tock", 2)
        io.emit("plain", 3)
        assert [(data, opts.local, opts.rooms) for data, opts in adapter.broadcasts] == [
            (["tick", 1], True, frozenset()),
            (["tock", 2], True, frozenset({sid})),
            (["plain", 3], False, frozenset()),
        ]
        assert io.local.options.local is True and io.to("x").options.local is False
        # this server's sockets still get local broadcasts
        assert [await ws.next() for _ in range(3)] == [
            '42["tick",1]', '42["tock",2]', '42["plain",3]']


def test_adapter_must_be_a_factory() -> None:
    with pytest.raises(TypeError, match="adapter"):
        sockjet.Server(adapter=RecordingAdapter(None))  # an instance, not a factory


# -- socket.off_any -------------------------------------------------------------------------------


async def test_off_any_removes_one_catch_all_handler() -> None:
    io = sockjet.Server()
    first: list[tuple[Any, ...]] = []
    second: list[tuple[Any, ...]] = []
    sockets: list[sockjet.Socket] = []

    def catch_first(*event: Any) -> None:
        first.append(event)

    def catch_second(*event: Any) -> None:
        second.append(event)

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        sockets.append(socket)
        with_sync(socket)
        socket.on_any(catch_first)
        socket.on_any(catch_second)

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        ws.client_send('42["one",1]')
        await sync(ws)
        assert first == second == [("one", 1), ("sync",)]

        sockets[0].off_any(catch_first)
        sockets[0].off_any(lambda *event: None)  # not registered: nothing happens
        ws.client_send('42["two",2]')
        await sync(ws)  # the event was dispatched: its ack came after it
        assert first == [("one", 1), ("sync",)]
        assert second == [("one", 1), ("sync",), ("two", 2), ("sync",)]

        sockets[0].off_any()  # every catch-all handler
        ws.client_send('42["three"]')
        await sync(ws)
        assert len(first) == 2 and len(second) == 4


# -- sockets_leave --------------------------------------------------------------------------------


async def test_sockets_leave_removes_the_selected_sockets_from_rooms() -> None:
    io = sockjet.Server()
    sockets: dict[str, sockjet.Socket] = {}

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        sockets[socket.id] = socket
        socket.join(["r", "s", "t"])

    async with InProc(io) as clients:
        a, a_id = await clients.connected()
        b, b_id = await clients.connected()
        io.in_(a_id).sockets_leave("r")  # only a
        assert sockets[a_id].rooms == {a_id, "s", "t"}
        assert sockets[b_id].rooms == {b_id, "r", "s", "t"}
        io.to("r").emit("news", 1)
        io.emit("marker", 1)
        assert await a.next() == '42["marker",1]'  # the room broadcast did not reach a
        assert await b.next() == '42["news",1]'
        assert await b.next() == '42["marker",1]'

        io.sockets_leave(["r", "s"])  # every socket, several rooms
        assert sockets[a_id].rooms == {a_id, "t"} and sockets[b_id].rooms == {b_id, "t"}
        assert "r" not in io.sockets.adapter.rooms  # type: ignore[attr-defined]
        io.to(["r", "s"]).emit("news", 2)
        io.to("t").emit("still-in-t")
        for ws in (a, b):
            assert await ws.next() == '42["still-in-t"]'


# -- disconnect_sockets ---------------------------------------------------------------------------


class Tracked:
    """A server whose sockets (by namespace and id) and disconnect reasons are recorded."""

    def __init__(self) -> None:
        self.io = sockjet.Server()
        self.sockets: dict[str, sockjet.Socket] = {}
        self.reasons: dict[str, str] = {}
        for nsp in (self.io.sockets, self.io.of("/admin")):
            nsp.on("connection", self.connection)

    def connection(self, socket: sockjet.Socket) -> None:
        key = f"{socket.nsp.name}#{socket.id}"
        self.sockets[key] = socket
        with_sync(socket)
        socket.on("disconnect", lambda reason: self.reasons.setdefault(key, reason))
        if socket.handshake.auth.get("vip"):
            socket.join("vip")


async def test_disconnect_sockets_without_close_keeps_the_connection() -> None:
    app = Tracked()
    async with InProc(app.io) as clients:
        vip, vip_sid = await clients.open()
        vip_id = await join(vip, "/", {"vip": True})
        admin_id = await join(vip, "/admin")
        other, other_id = await clients.connected()

        app.io.in_("vip").disconnect_sockets()  # close=False
        assert await vip.next() == "41"  # a namespace DISCONNECT, not a closed connection
        assert app.reasons == {f"/#{vip_id}": "server namespace disconnect"}
        assert vip_sid in app.io.engine.sessions
        await sync(vip, "/admin")  # its other namespace works on the same connection
        again = await join(vip)  # and "/" can be joined again on it
        assert again != vip_id
        await sync(vip)
        await sync(other)  # not selected: untouched
        assert set(app.io.sockets.sockets) == {other_id, again}
        assert set(app.reasons) == {f"/#{vip_id}"}  # neither /admin nor the other client
        assert f"/admin#{admin_id}" in app.sockets


async def test_disconnect_sockets_with_close_closes_the_connection() -> None:
    app = Tracked()
    async with InProc(app.io) as clients:
        vip, vip_sid = await clients.open()
        vip_id = await join(vip, "/", {"vip": True})
        admin_id = await join(vip, "/admin")
        other, other_id = await clients.connected()

        app.io.in_("vip").disconnect_sockets(close=True)
        frames = [await vip.next(), await vip.next(), await vip.next()]
        assert frames[-1] is None  # the WebSocket is closed
        assert set(frames[:2]) == {"41", "41/admin,"}
        await eventually(lambda: vip_sid not in app.io.engine.sessions)
        # the whole connection went: its other namespace too
        assert app.reasons == {f"/#{vip_id}": "server namespace disconnect",
                               f"/admin#{admin_id}": "server namespace disconnect"}
        await sync(other)
        assert set(app.io.sockets.sockets) == {other_id}


# -- server_side_emit -----------------------------------------------------------------------------


async def test_server_side_emit_with_the_memory_adapter() -> None:
    io = sockjet.Server()
    io.on("connection", with_sync)
    called: list[tuple[Any, ...]] = []
    io.on("hello", lambda *args: called.append(args))
    admin = io.of("/admin")
    admin.on("hello", lambda *args: called.append(args))
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        assert await io.server_side_emit("hello", 1, {"x": 2}) == []
        assert await io.server_side_emit("hello", ack=True, timeout=1) == []
        assert await admin.server_side_emit("hello", b"\x01") == []
        assert await io.server_side_emit("connected") == []  # a name close to a reserved one
        assert called == []  # no other server: local handlers are not called
        await sync(ws)  # and clients get nothing
        for name in [*RESERVED, "connection"]:
            with pytest.raises(ValueError, match="reserved"):
                await io.server_side_emit(name)
            with pytest.raises(ValueError, match="reserved"):
                await admin.server_side_emit(name, ack=True)


# -- per-packet socket.use ------------------------------------------------------------------------


async def test_socket_use_sees_each_packet_and_can_stop_it() -> None:
    io = sockjet.Server()
    seen: list[tuple[str, list[Any]]] = []
    errors: list[Exception] = []
    handled: list[tuple[Any, ...]] = []

    def first(packet: list[Any]) -> None:
        seen.append(("first", list(packet)))
        if packet[0] == "blocked":
            raise PermissionError("blocked by first")

    async def second(packet: list[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(("second", list(packet)))
        if packet[0] == "blocked-later":
            raise LookupError("blocked by second")

    def count(*args: Any) -> int:
        handled.append(args)
        return len(args)

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        socket.use(first)
        socket.use(second)
        socket.on("error", errors.append)
        for event in ("ok", "blocked", "blocked-later"):
            socket.on(event, count)

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        ws.client_send('421["ok",1,{"a":[2]}]')
        assert await ws.next() == "431[2]"
        assert seen == [("first", ["ok", 1, {"a": [2]}]), ("second", ["ok", 1, {"a": [2]}])]
        ws.client_send('451-2["ok",{"_placeholder":true,"num":0}]')
        ws.client_send(b"\x01\x02")
        assert await ws.next() == "432[1]"
        assert seen[-1] == ("second", ["ok", b"\x01\x02"])  # binary arrives as bytes
        seen.clear()

        # one at a time: each packet has its own middleware run
        ws.client_send('423["blocked",3]')
        await eventually(lambda: len(errors) == 1)
        ws.client_send('424["blocked-later",4]')
        await eventually(lambda: len(errors) == 2)
        ws.client_send('425["ok","after"]')
        assert await ws.next() == "435[1]"  # no ack for the two stopped packets came first
        assert handled == [(1, {"a": [2]}), (b"\x01\x02",), ("after",)]
        assert seen == [("first", ["blocked", 3]),  # the chain stops at the one that raised
                        ("first", ["blocked-later", 4]), ("second", ["blocked-later", 4]),
                        ("first", ["ok", "after"]), ("second", ["ok", "after"])]
        assert [(type(e), str(e)) for e in errors] == [(PermissionError, "blocked by first"),
                                                       (LookupError, "blocked by second")]


# -- connection middlewares that crash ------------------------------------------------------------


def crash(socket: sockjet.Socket) -> None:
    raise RuntimeError("database down")


def refuse(socket: sockjet.Socket) -> None:
    raise sockjet.ConnectionRefused("not authorized", {"reason": "bad token"})


async def test_crashing_middleware_refuses_with_internal_server_error(
        caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    io.use(crash)
    io.of("/refused").use(refuse)

    async def async_crash(socket: sockjet.Socket) -> None:
        await asyncio.sleep(0)
        raise KeyError("token")

    io.of("/async-crash").use(async_crash)
    caplog.set_level(logging.ERROR, logger="sockjet.socketio")
    async with InProc(io) as clients:
        v5, _ = await clients.open()
        v5.client_send("40")
        assert await v5.next() == '44{"message":"Internal server error"}'
        v5.client_send("40/async-crash,")
        assert await v5.next() == '44/async-crash,{"message":"Internal server error"}'
        v5.client_send("40/refused,")  # ConnectionRefused: its own message and data
        assert await v5.next() == ('44/refused,{"message":"not authorized",'
                                   '"data":{"reason":"bad token"}}')
        v2, _ = await clients.open(eio=3)  # "/" joined implicitly: v2 error shape, a string
        assert await v2.next() == '44"Internal server error"'
        assert io.sockets.sockets == {}
        failures = [r for r in caplog.records if r.name == "sockjet.socketio"
                    and r.levelno == logging.ERROR]
        assert [type(r.exc_info[1]) for r in failures if r.exc_info] == [
            RuntimeError, KeyError, RuntimeError]  # logged with the exception, not sent


# -- reserved event names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESERVED)
async def test_reserved_event_names_cannot_be_emitted(name: str) -> None:
    io = sockjet.Server()
    admin = io.of("/admin")
    dynamic = io.of(re.compile(r"/dyn-\d+"))
    sockets: list[sockjet.Socket] = []

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        sockets.append(socket)
        with_sync(socket)
        socket.join("r")

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        socket = sockets[0]
        emits: list[Callable[[], Any]] = [
            lambda: socket.emit(name, 1), lambda: socket.emit(name, callback=print),
            lambda: socket.volatile.emit(name),
            lambda: socket.broadcast.emit(name), lambda: socket.to("r").emit(name),
            lambda: socket.except_("x").emit(name), lambda: io.emit(name),
            lambda: io.to("r").emit(name), lambda: io.in_("r").emit(name),
            lambda: io.except_("x").emit(name), lambda: io.volatile.emit(name),
            lambda: io.local.emit(name), lambda: io.compress(False).emit(name),
            lambda: io.timeout(1).emit(name), lambda: admin.emit(name),
            lambda: admin.to("r").emit(name), lambda: dynamic.emit(name),
        ]
        for emit in emits:
            with pytest.raises(ValueError, match="reserved"):
                emit()
        acks: list[Callable[[], Awaitable[Any]]] = [
            lambda: socket.emit_with_ack(name, timeout=1),
            lambda: socket.timeout(1).emit_with_ack(name),
            lambda: io.emit_with_ack(name), lambda: io.timeout(1).emit_with_ack(name),
            lambda: io.to("r").timeout(1).emit_with_ack(name),
        ]
        for ack in acks:
            with pytest.raises(ValueError, match="reserved"):
                await ack()
        await sync(ws)  # nothing reached the client
        # the boundary: names that merely resemble a reserved one go out
        socket.emit(name + "_", 1)
        io.to("r").emit(name.upper())
        assert await ws.next() == f'42["{name}_",1]'
        assert await ws.next() == f'42["{name.upper()}"]'


# -- dynamic namespaces with an async matcher -----------------------------------------------------


async def test_async_dynamic_namespace_matcher() -> None:
    io = sockjet.Server()
    asked: list[tuple[str, dict[str, Any]]] = []

    async def matcher(name: str, auth: dict[str, Any]) -> bool:
        asked.append((name, dict(auth)))
        await asyncio.sleep(0)  # really asynchronous
        return name.startswith("/team-") and auth.get("token") == "ok"

    teams = io.of(matcher)
    joined: list[str] = []

    @teams.on("connection")
    def on_team(socket: sockjet.Socket) -> None:
        joined.append(socket.nsp.name)

    async with InProc(io) as clients:
        ws, _ = await clients.open()
        await join(ws, "/team-1", {"token": "ok"})
        # a coroutine object is truthy: refusals show that the matcher's result was awaited
        ws.client_send('40/team-2,{"token":"bad"}')
        assert await ws.next() == '44/team-2,{"message":"Invalid namespace"}'
        ws.client_send('40/other,{"token":"ok"}')
        assert await ws.next() == '44/other,{"message":"Invalid namespace"}'
        assert asked == [("/team-1", {"token": "ok"}), ("/team-2", {"token": "bad"}),
                         ("/other", {"token": "ok"})]
        assert joined == ["/team-1"]
        assert "/team-1" in io.namespaces and "/team-2" not in io.namespaces
        teams.emit("hello")
        assert await ws.next() == '42/team-1,["hello"]'


# -- handshake fields -----------------------------------------------------------------------------

ORIGIN = "http://example.com:8080"
RFC1123 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|"
                     r"Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT")


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("origin", [None, ORIGIN], ids=["no-origin", "origin"])
async def test_handshake_fields(binding: str, transport: str, origin: str | None) -> None:
    io = sockjet.Server()
    sockets: list[sockjet.Socket] = []
    io.on("connection", sockets.append)
    query = f"EIO=4&transport={transport}&t=Pa%20b&x=%2F&flag"
    headers = {"Origin": origin} if origin else {}
    async with serve(io, binding) as url:
        before = time.time()
        if transport == "polling":
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.get("/socket.io/?" + query, headers=headers)
                sid = json.loads(r.text[1:])["sid"]
                session = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
                assert (await client.post(session, content=b"40", headers=headers)).text == "ok"
                assert (await client.get(session, headers=headers)).text.startswith("40{")
        else:
            async with websockets.connect("ws" + url[4:] + "/socket.io/?" + query,
                                          origin=origin) as ws:  # type: ignore[arg-type]
                assert str(await ws.recv()).startswith("0{")
                await ws.send("40")
                assert str(await ws.recv()).startswith("40{")
        after = time.time()
    (socket,) = sockets
    shake = socket.handshake
    assert shake.address == "127.0.0.1"
    assert int(before * 1000) <= shake.issued <= int(after * 1000) + 1  # ms since the epoch
    assert RFC1123.fullmatch(shake.time), shake.time
    # the same instant, to the second (an RFC 1123 date has no finer unit)
    assert shake.time == time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                       time.gmtime(shake.issued // 1000))
    assert shake.xdomain is (origin is not None)
    assert shake.url == "/socket.io/?" + query  # the handshake request's path and raw query
    assert shake.query == {"EIO": "4", "transport": transport, "t": "Pa b", "x": "/",
                           "flag": ""}
    assert shake.secure is False
    assert shake.headers.get("origin") == origin


# -- allow_upgrades=False -------------------------------------------------------------------------


async def test_allow_upgrades_false_refuses_the_upgrade_and_polling_goes_on(binding: str) -> None:
    engine = EngineServer(allow_upgrades=False)
    engine.on("connection", lambda socket: socket.on("message", socket.send))
    async with serve(engine, binding) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/engine.io/?EIO=4&transport=polling")
        handshake = json.loads(r.text[1:])
        sid = handshake["sid"]
        assert handshake["upgrades"] == []
        session = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        ws_url = "ws" + url[4:] + f"/engine.io/?EIO=4&transport=websocket&sid={sid}"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(ws_url):
                pass
        assert info.value.response.status_code == 400
        assert info.value.response.body == b"Bad request"
        socket = engine.sessions[sid]
        assert socket.transport == "polling" and socket.state == "open"
        assert (await client.post(session, content=b"4still polling")).text == "ok"
        assert (await client.get(session)).text == "4still polling"
        # a new session straight over WebSocket is no upgrade: still accepted
        async with websockets.connect("ws" + url[4:] + "/engine.io/?EIO=4&transport=websocket"
                                      ) as ws:
            assert json.loads(str(await ws.recv())[1:])["upgrades"] == []
            await ws.send("4direct")
            assert await ws.recv() == "4direct"


# -- the engine socket's upgrade event and buffered property ---------------------------------------


async def upgrade_in_process(engine: EngineServer, sid: str
                             ) -> tuple[InProcWebSocket, asyncio.Future[None]]:
    """Probe an upgrade of polling session ``sid`` (``2probe``/``3probe``), without the ``5``."""
    ws = InProcWebSocket({"EIO": "4", "transport": "websocket", "sid": sid})
    task = asyncio.ensure_future(engine.handle_websocket(ws))
    ws.client_send("2probe")
    assert await ws.next() == "3probe"
    return ws, task


async def test_engine_socket_upgrade_event_and_buffered() -> None:
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    upgraded: list[str] = []

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        sockets.append(socket)

        @socket.on("upgrade")
        def on_upgrade() -> None:
            upgraded.append(socket.sid)
            socket.send("from the upgrade handler")

    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    socket = sockets[0]
    assert socket.buffered == 0  # the open packet went out with the handshake
    socket.send("a")
    socket.send(b"\x01")
    assert socket.buffered == 4  # bytes: "4a" and the binary packet (type + 1 byte)
    assert (await get(engine, pq(sid))).body == b"4a\x1ebAQ=="
    assert socket.buffered == 0

    pending = asyncio.ensure_future(get(engine, pq(sid)))
    await eventually(lambda: socket.poll_pending)
    ws, task = await upgrade_in_process(engine, sid)
    assert (await pending).body == b"6"  # the waiting poll is released with a noop
    assert upgraded == [] and socket.transport == "polling"  # a probe is no upgrade yet
    socket.send("during the upgrade")
    assert socket.buffered == len("4during the upgrade")
    ws.client_send("5")
    assert await ws.next() == "4during the upgrade"
    assert await ws.next() == "4from the upgrade handler"
    assert upgraded == [sid]  # once
    assert socket.transport == "websocket"
    assert socket.buffered == 0  # everything written
    ws.client_send("4bye")
    ws.client_close()
    await asyncio.wait_for(task, 5)

    # an upgrade that does not complete emits nothing
    other = json.loads((await get(engine, pq())).body[1:])["sid"]
    ws, task = await upgrade_in_process(engine, other)
    ws.client_send("4not the upgrade packet")
    await asyncio.wait_for(task, 5)
    assert sockets[1].transport == "polling" and upgraded == [sid]
    await engine.shutdown()


async def test_engine_socket_transport_is_websocket_in_the_upgrade_handler() -> None:
    engine = EngineServer()
    seen: list[str] = []

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        socket.on("upgrade", lambda: seen.append(socket.transport))

    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    ws, task = await upgrade_in_process(engine, sid)
    ws.client_send("5")
    await eventually(lambda: seen)
    ws.client_close()
    await asyncio.wait_for(task, 5)
    assert seen == ["websocket"]  # as in engine.io: the session has moved when it fires


# -- the runner: sockjet.run(runner=..., sockets=...) ----------------------------------------------


async def asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI application (no sockjet server in it)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_forced_runner_choices_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "tune_gc", lambda: None)  # leave this process' collector alone
    port = free_port()
    with pytest.raises(TypeError, match="native runner serves sockjet servers"):
        sockjet.run(asgi_hello, port=port, runner="native")
    with pytest.raises(TypeError, match="native runner serves sockjet servers"):
        await sockjet.serve(asgi_hello, port=port, runner="native")
    with pytest.raises(TypeError, match="need runner='uvicorn'"):
        sockjet.run(sockjet.Server(), port=port, runner="native", ssl_keyfile="key.pem")
    with pytest.raises(ValueError, match="runner must be"):
        sockjet.run(sockjet.Server(), port=port, runner="fastest")
    # nothing was left listening
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/")


RUN_SCRIPT = """\
import socket
import sys

import sockjet

io = sockjet.Server()
io.on("connection", lambda sock: sock.on("echo", lambda value: value))

runner, mode, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "sockets":
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print("bound", listener.getsockname()[1], flush=True)
    sockjet.run(io, host="127.0.0.1", port=port, sockets=[listener], runner=runner)
else:
    sockjet.run(io, host="127.0.0.1", port=port, runner=runner)
"""


@asynccontextmanager
async def script_server(tmp_path: Path, *args: str) -> AsyncIterator[Path]:
    """``python sj_run_app.py args...`` with its output in ``tmp_path/server.log``."""
    script = tmp_path / "sj_run_app.py"
    script.write_text(RUN_SCRIPT)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        async with process(sys.executable, script, *args, cwd=tmp_path,
                           stdin=asyncio.subprocess.DEVNULL, stdout=out,
                           stderr=asyncio.subprocess.STDOUT):
            yield log


def read(path: Path) -> str:
    return path.read_text()


async def until_serving(url: str, log: Path, path: str = "/socket.io/") -> httpx.Response:
    """Poll ``url`` until the server answers a handshake (the server's own word that it runs)."""
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get(f"{url}{path}?EIO=4&transport=polling")
            except httpx.TransportError:  # not listening yet (or listening, but nobody serves)
                await asyncio.sleep(0.05)
                continue
            assert r.status_code == 200, r.text
            return r
    raise AssertionError(f"nothing serves {url}:\n{read(log)}")


async def echo_once(url: str) -> Any:
    async with sockjet.AsyncClient(url, reconnection=False, timeout=5) as client:
        return await client.emit_with_ack("echo", "hi", timeout=5)


SERVED_BY = {"native": "(native runner)", "uvicorn": "Uvicorn running on"}


@pytest.mark.parametrize("runner_name", ["native", "uvicorn"])
async def test_run_with_a_forced_runner(tmp_path: Path, runner_name: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with script_server(tmp_path, runner_name, "port", str(port)) as log:
        r = await until_serving(url, log)
        assert await echo_once(url) == "hi"  # a sockjet Server, whichever runner
        text = log.read_text()
    assert SERVED_BY[runner_name] in text, text
    assert SERVED_BY["uvicorn" if runner_name == "native" else "native"] not in text
    assert (r.headers.get("server") == "uvicorn") is (runner_name == "uvicorn")


@pytest.mark.parametrize("runner_name", ["native", "uvicorn"])
async def test_run_serves_already_bound_sockets(tmp_path: Path, runner_name: str) -> None:
    unused = free_port()  # what port= says; the sockets take its place
    async with script_server(tmp_path, runner_name, "sockets", str(unused)) as log:
        await eventually(lambda: "bound" in log.read_text(), timeout=15)
        match = re.search(r"bound (\d+)", log.read_text())
        assert match, log.read_text()
        url = f"http://127.0.0.1:{match.group(1)}"
        r = await until_serving(url, log)
        assert await echo_once(url) == "hi"
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{unused}/socket.io/?EIO=4&transport=polling")
        text = log.read_text()
    # served by the runner asked for (uvicorn logs no start-up line for given sockets)
    assert (r.headers.get("server") == "uvicorn") is (runner_name == "uvicorn")
    if runner_name == "native":
        assert f"on http://127.0.0.1:{match.group(1)} (native runner)" in text, text


# -- the CLI: sockjet run --runner, --log-level ----------------------------------------------------

CLI_APP = """\
import sockjet

io = sockjet.Server()
io.on("connection", lambda socket: socket.on("echo", lambda value: value))


async def plain(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""


@pytest.mark.parametrize("runner_name", ["native", "uvicorn"])
async def test_cli_run_with_a_forced_runner(tmp_path: Path, runner_name: str) -> None:
    (tmp_path / "sj_cli_app.py").write_text(CLI_APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with sockjet_process(tmp_path, "run", "sj_cli_app:io", "--port", str(port),
                               "--runner", runner_name):
        r = await until_serving(url, tmp_path / "sockjet.log")
        assert await echo_once(url) == "hi"
        text = (tmp_path / "sockjet.log").read_text()
    assert SERVED_BY[runner_name] in text, text
    assert (r.headers.get("server") == "uvicorn") is (runner_name == "uvicorn")


async def test_cli_native_runner_refuses_a_plain_asgi_app(tmp_path: Path) -> None:
    (tmp_path / "sj_cli_app.py").write_text(CLI_APP)
    async with sockjet_process(tmp_path, "run", "sj_cli_app:plain", "--port", str(free_port()),
                               "--runner", "native") as proc:
        code = await asyncio.wait_for(proc.wait(), 15)
    text = (tmp_path / "sockjet.log").read_text()
    assert code != 0
    assert "the native runner serves sockjet servers" in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("runner_name", ["native", "uvicorn"])
@pytest.mark.parametrize("level", ["debug", "warning"])
async def test_cli_log_level(tmp_path: Path, runner_name: str, level: str) -> None:
    (tmp_path / "sj_cli_app.py").write_text(CLI_APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "sockjet.log"
    async with sockjet_process(tmp_path, "run", "sj_cli_app:io", "--port", str(port),
                               "--runner", runner_name, "--log-level", level):
        await until_serving(url, log)
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/socket.io/?EIO=4&transport=polling")
            sid = json.loads(r.text[1:])["sid"]
            # an undecodable payload: the session is closed, logged at debug level *before*
            # the 400 is sent, so by the answer the line is written if the level lets it
            r = await client.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}",
                                  content=b"9nope")
            assert r.status_code == 400
        text = log.read_text()
    debug_line = f"session {sid} closed: parse error"
    if level == "debug":
        assert debug_line in text, text
        assert "DEBUG sockjet" in text
    else:
        assert debug_line not in text, text
        assert not re.search(r"^(DEBUG|INFO)", text, re.MULTILINE), text
        assert SERVED_BY[runner_name] not in text  # its start-up line is at info level


# -- sockjet doctor --timeout ---------------------------------------------------------------------


class Mute:
    """A TCP server that reads whatever comes and never answers; it records, per connection
    that sent something, when the first bytes came and when the client hung up."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, float]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first: float | None = None
        try:
            while await reader.read(65536):
                if first is None:
                    first = time.monotonic()
        except ConnectionError:
            pass
        if first is not None:
            self.requests.append((first, time.monotonic()))
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("timeout", [0.4, 1.5])
async def test_doctor_gives_up_after_its_timeout(timeout: float) -> None:
    mute = Mute()
    async with mute as url:
        started = time.monotonic()
        code, out, err = await run_command(SOCKJET, "doctor", url, "--timeout", str(timeout),
                                           "--json", timeout=20)
        elapsed = time.monotonic() - started
        await eventually(lambda: mute.requests, timeout=5)
    assert code == 1, (out, err)
    report = json.loads(out)
    assert report["ok"] is False
    assert [(s["name"], s["ok"], s["summary"]) for s in report["steps"]] == [
        ("handshake", False, "no answer")]
    assert "timed out" in report["steps"][0]["why"]
    ((asked, hung_up),) = mute.requests  # one request, abandoned after --timeout
    waited = hung_up - asked
    assert timeout - 0.05 <= waited <= timeout + 0.8, waited
    assert elapsed < 5  # not the 5 s default: the option was used (start-up included)
