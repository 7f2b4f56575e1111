"""The Redis Streams adapter on a real Redis (a redis-server started by the test on a free
port): sockjet servers in this process and real Node socket.io 4.8 servers on
``@socket.io/redis-streams-adapter`` 0.3 share one stream. Cross-server operations reach every
server (the logic is ClusterAdapter's, so a few of them), and with connection state recovery a
client cut from one server comes back on another, sockjet or Node, with its id, rooms, data
and exactly the events it missed, in order, none twice. Redis stopping and starting again
never stops local delivery, and the stream is read again from where it was left."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson
import pytest
from conftest import eventually, free_port, serve
from nodepeers import NodeClients, NodeRedisServer
from redisutil import RedisServer, redis_cluster, redis_server

import sockjet
from sockjet.adapters.cluster import RemoteSocket
from sockjet.adapters.redis_stream_link import parse_id
from sockjet.adapters.redis_streams import StreamsNamespaceAdapter

BLOB = b"\x00\x01\xfe\xff"
STREAM = "socket.io"


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the async ``check()`` holds (polling), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def adapter_of(io: sockjet.Server, nsp: str = "/") -> StreamsNamespaceAdapter:
    adapter = io.of(nsp).adapter
    assert isinstance(adapter, StreamsNamespaceAdapter)
    return adapter


@dataclass
class Box:
    """One sockjet server of a fleet."""

    io: sockjet.Server
    url: str
    #: server-side events it received: (event, args)
    heard: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def socket(self, sid: str) -> sockjet.Socket:
        return self.io.of("/").sockets[sid]

    def only_socket(self) -> sockjet.Socket:
        (socket,) = self.io.of("/").sockets.values()
        return socket


def make_server(redis_url: str, name: str, recovery: bool = True,
                **options: Any) -> tuple[sockjet.Server, list[tuple[str, tuple[Any, ...]]]]:
    io = sockjet.Server(adapter=sockjet.RedisStreamsAdapter(redis_url, **options),
                        connection_state_recovery=recovery or None)
    heard: list[tuple[str, tuple[Any, ...]]] = []

    def connection(socket: sockjet.Socket) -> None:
        socket.data.setdefault("visits", 0)
        socket.data["visits"] += 1
        socket.data.setdefault("first", name)
        socket.on("join", lambda room: socket.join(room))

    def hello(*args: Any) -> Any:
        heard.append(("hello", args))
        return {"server": name, "args": list(args)}

    io.on("connection", connection)
    io.on("hello", hello)
    return io, heard


@asynccontextmanager
async def fleet(redis_url: str, count: int = 2, recovery: bool = True,
                **options: Any) -> AsyncIterator[list[Box]]:
    """``count`` sockjet servers on the stream of ``redis_url``."""
    async with AsyncExitStack() as stack:
        boxes: list[Box] = []
        for index in range(count):
            io, heard = make_server(redis_url, "abcdef"[index], recovery, **options)
            url = await stack.enter_async_context(serve(io))
            boxes.append(Box(io, url, heard))
        yield boxes


async def stream_length(redis: RedisServer) -> int:
    return int(await redis.command("XLEN", STREAM))


async def entries(redis: RedisServer) -> list[tuple[str, dict[str, str]]]:
    reply = await redis.command("XRANGE", STREAM, "-", "+")
    return [(entry_id.decode(), {reply_fields[i].decode(): reply_fields[i + 1].decode()
                                 for i in range(0, len(reply_fields), 2)})
            for entry_id, reply_fields in reply]


def without_offsets(events: list[list[Any]]) -> list[list[Any]]:
    """The args as the application sent them (socket.io-client hands the offset, a stream
    entry id, to handlers as the last argument)."""
    for args in events:
        assert isinstance(args[-1], str) and args[-1].count("-") == 1, events
    return [args[:-1] for args in events]


# -- cross-server operations ----------------------------------------------------------------------


async def test_broadcasts_rooms_and_requests_span_the_servers() -> None:
    async with redis_server() as r, fleet(r.url, recovery=False) as (a, b), \
            NodeClients() as peer:
        sa = await peer.connect("a", a.url, transport="websocket")
        sb = await peer.connect("b", b.url, transport="polling", version=2)
        await peer.emit("b", "join", "rb")
        await eventually(lambda: "rb" in b.socket(sb).rooms)
        assert await adapter_of(a.io).server_count() == 2

        a.io.emit("news", "to all", BLOB)
        a.io.to("rb").emit("news", "to rb")
        b.io.except_("rb").emit("news", "not to rb")
        assert await peer.wait("a", "news") == ["to all", BLOB]
        assert await peer.wait("a", "news") == ["not to rb"]
        assert await peer.wait("b", "news") == ["to all", BLOB]
        assert await peer.wait("b", "news") == ["to rb"]  # no offsets without recovery

        sockets = await a.io.fetch_sockets()
        assert {s.id for s in sockets} == {sa, sb}
        (remote,) = [s for s in sockets if isinstance(s, RemoteSocket)]
        assert remote.id == sb and remote.rooms == {sb, "rb"}
        assert remote.data == {"visits": 1, "first": "b"}
        assert await a.io.all_rooms() == {sa, sb, "rb"}

        a.io.in_(sa).sockets_join("ra")
        await eventually(lambda: "ra" in a.socket(sa).rooms)
        b.io.to("ra").emit("news", "to ra")
        assert await peer.wait("a", "news") == ["to ra"]

        assert await a.io.server_side_emit("hello", 1, ack=True) == [
            {"server": "b", "args": [1]}]
        await peer.reply("a", "ask", "from a")
        await peer.reply("b", "ask", "from b")
        answers = await b.io.timeout(3).emit_with_ack("ask")
        assert sorted(answers) == ["from a", "from b"]

        b.io.in_(sa).disconnect_sockets()
        assert (await peer.wait("a", "disconnect"))[0] == "io server disconnect"
        assert await peer.drain("b", "news") == []


async def test_what_the_stream_and_the_channels_hold_is_nodes_format() -> None:
    async with redis_server() as r, fleet(r.url) as (a, _):
        a.io.to("r1").except_("r2").emit("hello", {"x": 1})
        a.io.emit("bin", BLOB)
        a.io.in_("r1").sockets_join("r3")
        await until(lambda: _len_is(r, 3))
        (_, first), (_, second), (_, third) = await entries(r)
        uid = adapter_of(a.io).uid
        assert len(uid) == 16
        assert first == {"uid": uid, "nsp": "/", "type": "3", "data": first["data"]}
        assert orjson.loads(first["data"]) == {
            "opts": {"rooms": ["r1"], "except": ["r2"], "flags": {}},
            "packet": {"type": 2, "data": ["hello", {"x": 1}], "nsp": "/"}}
        assert not second["data"].startswith("{")  # binary: base64 of msgpack
        assert msgpack.unpackb(base64.b64decode(second["data"]))["packet"]["data"] == [
            "bin", BLOB]
        assert third["type"] == "4" and orjson.loads(third["data"])["rooms"] == ["r3"]
        reply = await r.command("PUBSUB", "NUMSUB", "socket.io#/#",
                                f"socket.io#/#{uid}#")
        assert reply[1] == 2 and reply[3] == 1
        info = await r.command("XINFO", "STREAM", STREAM)
        assert info[info.index(b"length") + 1] == 3


async def _len_is(r: RedisServer, n: int) -> bool:
    return await stream_length(r) == n


async def test_namespaces_share_one_stream_and_stay_apart() -> None:
    async with redis_server() as r, fleet(r.url, recovery=False) as (a, b), \
            NodeClients() as peer:
        for box in (a, b):
            box.io.of("/chat")
        await peer.connect("root", b.url, transport="websocket")
        await peer.connect("chat", b.url, transport="websocket", nsp="/chat")
        a.io.of("/chat").emit("said", "in chat")
        a.io.emit("said", "in root")
        assert await peer.wait("chat", "said") == ["in chat"]
        assert await peer.wait("root", "said") == ["in root"]
        assert await peer.drain("chat", "said") == []
        assert await stream_length(r) == 2


# -- connection state recovery across sockjet servers ---------------------------------------------


async def emit_while_away(r: RedisServer, boxes: list[Box], sid: str) -> list[list[Any]]:
    """Each server in turn sends what the away client must get (to all, to its room, to it
    alone, binary) and what it must not (another room, volatile, excepting its room); each
    entry is in the stream before the next is sent, so that their order is known. Returns
    what the client must get, in order."""
    expected: list[list[Any]] = []
    count = await stream_length(r)
    for box in boxes:
        name = box.url.rsplit(":", 1)[1]
        for send, args, wanted in (
                (box.io.emit, ("all", name), True),
                (box.io.to("room1").emit, ("room1", name), True),
                (box.io.to(sid).emit, ("to it", name), True),
                (box.io.to("elsewhere").emit, ("not for it", name), False),
                (box.io.volatile.emit, ("volatile", name), False),
                (box.io.except_("room1").emit, ("not for room1", name), False),
                (box.io.emit, ("bin", name, BLOB), True)):
            send("tick", *args)
            count += 1
            await until(lambda count=count: _len_is(r, count))
            if wanted:
                expected.append(list(args))
    return expected


@asynccontextmanager
async def node_client(peer: NodeClients, name: str, url: str,
                      transport: str = "websocket") -> AsyncIterator[str]:
    """socket.io-client 4.8 socket ``name`` on ``url`` with reconnection on (after 30 s: it
    stays away for the test once cut); yields its id."""
    yield await peer.connect(name, url, transport=transport,
                             opts={"reconnection": True, "reconnectionDelay": 30000,
                                   "reconnectionDelayMax": 30000, "randomizationFactor": 0})


async def first_contact(peer: NodeClients, name: str, box: Box, sid: str) -> str:
    """The client joins room1 and gets one event: its last offset."""
    await peer.emit(name, "join", "room1")
    await eventually(lambda: "room1" in box.socket(sid).rooms)
    box.io.emit("tick", "before")
    args = await peer.wait(name, "tick")
    assert without_offsets([args]) == [["before"]]
    offset = args[-1]
    assert isinstance(offset, str)
    return offset


@pytest.mark.parametrize("cut", ["server", "client"])
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_node_client_recovers_on_another_sockjet_server(cut: str, transport: str) -> None:
    async with redis_server() as r, fleet(r.url) as (a, b), NodeClients() as peer, \
            node_client(peer, "c", a.url, transport) as sid:
        first = a.socket(sid)
        pid = first.pid
        assert pid is not None
        offset = await first_contact(peer, "c", a, sid)
        if cut == "server":
            first.conn.engine.close()
        else:
            await peer.close_transport("c")
        await eventually(lambda: not a.io.of("/").sockets)
        await until(lambda: _session_saved(r, pid))
        expected = await emit_while_away(r, [a, b, a], sid)

        back_id = await peer.connect("d", b.url, transport=transport,
                                     opts={"auth": {"pid": pid, "offset": offset}})
        assert back_id == sid
        back = b.socket(sid)
        assert (back.recovered, back.pid) == (True, pid)
        assert back.rooms == {sid, "room1"}
        assert back.data == {"visits": 2, "first": "a"}  # back, then the handler ran again
        missed = [await peer.wait("d", "tick") for _ in expected]
        assert without_offsets(missed) == expected
        a.io.emit("tick", "after")
        assert without_offsets([await peer.wait("d", "tick")]) == [["after"]]
        assert await peer.drain("d", "tick") == []
        assert await r.command("EXISTS", f"sio:session:{pid}") == 0  # taken once


async def test_recovery_while_both_servers_keep_emitting_misses_nothing_and_repeats_nothing(
        ) -> None:
    """The client comes back on B while A and B broadcast without a pause: what it gets is
    every broadcast after its offset, each once (those that were in the stream before it was
    back as missed events, in the stream's order; the others live), each server's in the
    order it sent them."""
    async with redis_server() as r, fleet(r.url) as (a, b), NodeClients() as peer, \
            node_client(peer, "c", a.url) as sid:
        pid = a.socket(sid).pid
        assert pid is not None
        stop = asyncio.Event()

        async def emit() -> None:
            for i in range(0, 30000, 5):  # bounded: a few seconds at most
                if stop.is_set():
                    return
                for j in range(i, i + 5):  # bursts: entries on their way all the time
                    a.io.emit("seq", "a", j)
                    b.io.emit("seq", "b", j)
                await asyncio.sleep(0.002)

        emitter = asyncio.ensure_future(emit())
        try:
            seen = [await peer.wait("c", "seq") for _ in range(2)]
            a.socket(sid).conn.engine.close()
            await peer.wait("c", "disconnect")
            offset = [*seen, *await peer.drain("c", "seq")][-1][-1]
            await until(lambda: _session_saved(r, pid))
            await asyncio.sleep(0.05)  # some more are missed
            assert await peer.connect("d", b.url, transport="websocket",
                                      opts={"auth": {"pid": pid, "offset": offset}}) == sid
            assert b.socket(sid).recovered
            await asyncio.sleep(0.05)  # and some come live
        finally:
            stop.set()
            await emitter
        after = parse_id(offset)
        sent = {entry_id: orjson.loads(fields["data"])["packet"]["data"][1:]
                for entry_id, fields in await entries(r)
                if fields["type"] == "3" and parse_id(entry_id) > after}
        assert len(sent) > 20
        got = [await peer.wait("d", "seq") for _ in sent]
        assert await peer.drain("d", "seq") == []
        assert len({args[-1] for args in got}) == len(got)  # none twice
        assert {args[-1]: args[:-1] for args in got} == sent  # none missing
        for server in ("a", "b"):  # each server's in order, none skipped
            numbers = [args[1] for args in got if args[0] == server]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def _session_saved(r: RedisServer, pid: str) -> bool:
    return bool(await r.command("EXISTS", f"sio:session:{pid}"))


@pytest.mark.parametrize("how", ["server stops", "transport cut, then server stops"])
async def test_the_python_client_recovers_on_the_server_that_took_over_the_address(
        how: str) -> None:
    """Server A goes away; another server comes up at its address (behind a load balancer,
    say): the Python client reconnects there and gets what server B sent meanwhile."""
    async with redis_server() as r, fleet(r.url, 1) as (b,):
        port = free_port()
        io_a, _ = make_server(r.url, "a")
        got: list[tuple[Any, ...]] = []
        delay = 0.1 if how == "server stops" else 1.0  # after a cut: once A is gone
        client = sockjet.AsyncClient(f"http://127.0.0.1:{port}", transports=["websocket"],
                                     reconnection_delay=delay, reconnection_delay_max=delay,
                                     randomization_factor=0)
        client.on("tick", lambda *args: got.append(args))
        async with serve(io_a, port=port) as url_a:
            a = Box(io_a, url_a)
            await client.connect()
            client.emit("join", "room1")
            sid = client.id
            assert sid is not None
            await eventually(lambda: "room1" in a.socket(sid).rooms)
            a.io.to(sid).emit("tick", "before")
            await eventually(lambda: len(got) == 1)
            pid = a.socket(sid).pid
            assert pid is not None
            if how != "server stops":
                a.socket(sid).conn.engine.close()
                await eventually(lambda: not a.io.of("/").sockets)
        # A stopped (its sockets left with "server shutting down"): the client keeps trying
        assert await _session_saved(r, pid)
        expected = await emit_while_away(r, [b], sid)
        io_c, _ = make_server(r.url, "c")
        async with serve(io_c, port=port):
            await eventually(lambda: len(got) == 1 + len(expected), timeout=10)
            c = Box(io_c, "")
            assert client.of("/").recovered and client.id == sid
            assert c.socket(sid).recovered and c.socket(sid).rooms == {sid, "room1"}
            assert [list(args[:-1]) for args in got] == [["before"], *expected]
            b.io.emit("tick", "after")
            await eventually(lambda: len(got) == 2 + len(expected))
            assert list(got[-1][:-1]) == ["after"]
            await client.disconnect()


async def test_an_unknown_session_or_offset_gives_a_new_session() -> None:
    async with redis_server() as r, fleet(r.url) as (a, b), NodeClients() as peer:
        sid = await peer.connect("c", a.url, transport="websocket")
        first = a.socket(sid)
        pid = first.pid
        assert pid is not None
        a.io.emit("tick", "x")
        offset = (await peer.wait("c", "tick"))[-1]
        a.io.emit("tick", "y")
        gone = (await peer.wait("c", "tick"))[-1]
        await r.command("XDEL", STREAM, gone)  # as trimming would
        first.conn.engine.close()
        await until(lambda: _session_saved(r, pid))

        async def attempt(auth: dict[str, str]) -> bool:
            new = await peer.connect("d", b.url, transport="websocket", opts={"auth": auth})
            recovered = b.socket(new).recovered
            assert recovered == (new == sid)
            await peer.disconnect("d")
            await eventually(lambda: not b.io.of("/").sockets)
            return recovered

        assert not await attempt({"pid": "nobody", "offset": offset})
        # not an offset: refused before the session is looked at (as Node does)
        assert not await attempt({"pid": pid, "offset": "x-1"})
        assert await _session_saved(r, pid)
        # an offset no longer in the stream: no session, and it is gone (taken, as Node does)
        assert not await attempt({"pid": pid, "offset": gone})
        assert not await _session_saved(r, pid)
        assert not await attempt({"pid": pid, "offset": offset})


async def test_sessions_are_kept_in_redis_as_node_keeps_them() -> None:
    async with redis_server() as r, fleet(r.url, 1) as (a,), NodeClients() as peer:
        sid = await peer.connect("c", a.url, transport="websocket")
        socket = a.socket(sid)
        socket.data["blob"] = BLOB
        await peer.emit("c", "join", "room1")
        await eventually(lambda: "room1" in socket.rooms)
        pid = socket.pid
        socket.conn.engine.close()
        await until(lambda: _session_saved(r, pid))  # type: ignore[arg-type]
        raw = await r.command("GET", f"sio:session:{pid}")
        session = msgpack.unpackb(base64.b64decode(raw))
        assert list(session) == ["sid", "pid", "rooms", "data"]
        assert session["sid"] == sid and session["pid"] == pid
        assert sorted(session["rooms"]) == sorted([sid, "room1"])
        assert session["data"] == {"visits": 1, "first": "a", "blob": BLOB}
        ttl = await r.command("PTTL", f"sio:session:{pid}")
        assert 110_000 < ttl <= 120_000  # max_disconnection_duration, in ms


# -- next to Node's adapter -----------------------------------------------------------------------


@asynccontextmanager
async def with_node(recovery: bool = True) -> AsyncIterator[tuple[RedisServer, NodeRedisServer,
                                                                   Box]]:
    """A Node server on ``@socket.io/redis-streams-adapter`` and a sockjet server, one Redis."""
    async with AsyncExitStack() as stack:
        r = await stack.enter_async_context(redis_server())
        node = await stack.enter_async_context(NodeRedisServer(
            None, r.url, adapter="streams", recovery={} if recovery else None))
        (box,) = await stack.enter_async_context(fleet(r.url, 1, recovery))
        yield r, node, box


async def node_emit(r: RedisServer, node: NodeRedisServer, *args: Any,
                    to: list[str] | None = None, except_: list[str] | None = None) -> None:
    """Node broadcasts ``tick`` ``args``; returns once its entry is in the stream."""
    count = await stream_length(r)
    await node.call("emit", event="tick", args=list(args), to=to or [], except_=except_ or [])
    await until(lambda: _len_is(r, count + 1))


async def test_node_and_sockjet_servers_share_the_stream() -> None:
    async with with_node() as (r, node, box), NodeClients() as peer:
        sn = await peer.connect("n", node.url, transport="websocket")
        ss = await peer.connect("s", box.url, transport="polling")
        await node.call("socket_join", sid=sn, room="rn")
        await node.call("socket_data", sid=sn, data={"server": "node", "blob": BLOB})
        assert await adapter_of(box.io).server_count() == 2
        assert await node.call("server_count") == 2

        box.io.emit("tick", "from sockjet", BLOB)
        await until(lambda: _len_is(r, 1))
        ((first, _),) = await entries(r)
        for name in ("n", "s"):  # the offset is the id of the stream entry
            assert await peer.wait(name, "tick") == ["from sockjet", BLOB, first]
        await node_emit(r, node, "from node", BLOB)
        (_, (second, _)) = await entries(r)
        for name in ("n", "s"):
            assert await peer.wait(name, "tick") == ["from node", BLOB, second]
        box.io.to("rn").emit("tick", "to rn")
        assert without_offsets([await peer.wait("n", "tick")]) == [["to rn"]]

        sockets = {s.id: s for s in await box.io.fetch_sockets()}
        assert set(sockets) == {sn, ss}
        assert isinstance(sockets[sn], RemoteSocket)
        assert sockets[sn].rooms == {sn, "rn"}
        assert sockets[sn].data == {"server": "node", "blob": BLOB}
        node_view = {s["id"]: s for s in await node.call("fetch_sockets")}
        assert set(node_view) == {sn, ss} and node_view[ss]["data"]["first"] == "a"

        box.io.in_(ss).sockets_join("both")
        await node.call("sockets_join", to=[sn], rooms=["both"])
        await eventually(lambda: "both" in box.socket(ss).rooms)
        await until(lambda: _node_has_room(node, sn, "both"))
        await node_emit(r, node, "to both", to=["both"])
        for name in ("n", "s"):
            assert without_offsets([await peer.wait(name, "tick")]) == [["to both"]]

        assert await box.io.server_side_emit("hello", 1, ack=True) == [{"node": node.pid}]
        reply = await node.call("server_side_emit", event="hello", args=[2], ack=True)
        assert reply == {"responses": [{"server": "a", "args": [2]}]}
        await peer.reply("n", "ask", "from n")
        await peer.reply("s", "ask", "from s")
        assert sorted(await box.io.timeout(3).emit_with_ack("ask")) == ["from n", "from s"]
        reply = await node.call("emit_with_ack", event="ask", args=[], timeout_ms=3000)
        assert sorted(reply["responses"]) == ["from n", "from s"]
        assert await peer.drain("n", "tick") == [] and await peer.drain("s", "tick") == []


async def _node_has_room(node: NodeRedisServer, sid: str, room: str) -> bool:
    return room in (await node.call("socket_info", sid=sid))["rooms"]


async def away_with_node(r: RedisServer, node: NodeRedisServer, box: Box,
                         sid: str) -> list[list[Any]]:
    """Both servers send, one after the other, what the away client must get and what it
    must not (no volatile event: Node replays those too); what it must get, in order."""
    expected: list[list[Any]] = []
    for who in ("sockjet", "node", "sockjet"):
        for args, to, except_, wanted in (
                (("all", who), None, None, True),
                (("room1", who), ["room1"], None, True),
                (("to it", who, BLOB), [sid], None, True),
                (("not for it", who), ["elsewhere"], None, False),
                (("not for room1", who), None, ["room1"], False)):
            if who == "node":
                await node_emit(r, node, *args, to=to, except_=except_)
            else:
                count = await stream_length(r)
                operator = box.io.to(to) if to else box.io.except_(except_) if except_ \
                    else box.io
                operator.emit("tick", *args)
                await until(lambda count=count: _len_is(r, count + 1))
            if wanted:
                expected.append(list(args))
    return expected


@pytest.mark.parametrize("cut", ["server", "client"])
async def test_a_client_of_sockjet_recovers_on_node(cut: str) -> None:
    async with with_node() as (r, node, box), NodeClients() as peer, \
            node_client(peer, "c", box.url) as sid:
        socket = box.socket(sid)
        socket.data["blob"] = BLOB
        pid = socket.pid
        assert pid is not None
        offset = await first_contact(peer, "c", box, sid)
        if cut == "server":
            socket.conn.engine.close()
        else:
            await peer.close_transport("c")
        await until(lambda: _session_saved(r, pid))
        expected = await away_with_node(r, node, box, sid)
        back = await peer.connect("d", node.url, transport="websocket",
                                  opts={"auth": {"pid": pid, "offset": offset}})
        assert back == sid
        info = await node.call("socket_info", sid=sid)
        assert info["recovered"] and info["pid"] == pid
        assert sorted(info["rooms"]) == sorted([sid, "room1"])
        assert info["data"] == {"visits": 1, "first": "a", "blob": BLOB}
        missed = [await peer.wait("d", "tick") for _ in expected]
        assert without_offsets(missed) == expected
        box.io.emit("tick", "after")
        assert without_offsets([await peer.wait("d", "tick")]) == [["after"]]
        assert await peer.drain("d", "tick") == []


@pytest.mark.parametrize("cut", ["server", "client"])
async def test_a_client_of_node_recovers_on_sockjet(cut: str) -> None:
    async with with_node() as (r, node, box), NodeClients() as peer, \
            node_client(peer, "c", node.url) as sid:
        await node.call("socket_join", sid=sid, room="room1")
        await node.call("socket_data", sid=sid, data={"first": "node", "blob": BLOB})
        await node_emit(r, node, "before", to=[sid])
        args = await peer.wait("c", "tick")
        assert without_offsets([args]) == [["before"]]
        offset = args[-1]
        pid = (await node.call("socket_info", sid=sid))["pid"]
        assert isinstance(pid, str)
        if cut == "server":
            await node.call("close_transport", sid=sid)
        else:
            await peer.close_transport("c")
        await until(lambda: _session_saved(r, pid))
        raw = await r.command("GET", f"sio:session:{pid}")
        session = msgpack.unpackb(base64.b64decode(raw))
        assert list(session) == ["sid", "pid", "rooms", "data"]  # what Node writes
        ttl = await r.command("PTTL", f"sio:session:{pid}")
        assert 110_000 < ttl <= 120_000
        expected = await away_with_node(r, node, box, sid)
        back = await peer.connect("d", box.url, transport="websocket",
                                  opts={"auth": {"pid": pid, "offset": offset}})
        assert back == sid
        socket = box.socket(sid)
        assert (socket.recovered, socket.pid) == (True, pid)
        assert socket.rooms == {sid, "room1"}
        assert socket.data == {"first": "node", "blob": BLOB, "visits": 1}
        missed = [await peer.wait("d", "tick") for _ in expected]
        assert without_offsets(missed) == expected
        await node_emit(r, node, "after")
        assert without_offsets([await peer.wait("d", "tick")]) == [["after"]]
        assert await peer.drain("d", "tick") == []


async def test_without_recovery_node_and_sockjet_still_share_broadcasts() -> None:
    async with with_node(recovery=False) as (r, node, box), NodeClients() as peer:
        await peer.connect("n", node.url, transport="websocket")
        await peer.connect("s", box.url, transport="websocket")
        box.io.emit("tick", "from sockjet")
        for name in ("n", "s"):
            assert await peer.wait(name, "tick") == ["from sockjet"]  # no offset
        await node_emit(r, node, "from node")
        for name in ("n", "s"):
            assert await peer.wait(name, "tick") == ["from node"]
        assert await stream_length(r) == 2


async def test_a_redis_cluster_carries_the_stream_and_the_sessions() -> None:
    async with redis_cluster() as rc, AsyncExitStack() as stack, NodeClients() as peer:
        boxes: list[Box] = []
        for index, url in enumerate(rc.urls[:2]):  # each server knows another node
            io, heard = make_server(url, "ab"[index])
            boxes.append(Box(io, await stack.enter_async_context(serve(io)), heard))
        a, b = boxes
        assert adapter_of(a.io).link.cluster
        async with node_client(peer, "c", a.url) as sid:
            pid = a.socket(sid).pid
            assert pid is not None
            offset = await first_contact(peer, "c", a, sid)
            a.socket(sid).conn.engine.close()
            await eventually(lambda: not a.io.of("/").sockets)
            b.io.emit("tick", "while away")
            a.io.to("room1").emit("tick", "to room1")
            assert await a.io.server_side_emit("hello", ack=True) == [
                {"server": "b", "args": []}]
            client = adapter_of(a.io).link.client

            async def saved() -> bool:
                return bool(await client.exists(f"sio:session:{pid}"))

            await until(saved)
            assert await peer.connect("d", b.url, transport="websocket",
                                      opts={"auth": {"pid": pid, "offset": offset}}) == sid
            assert b.socket(sid).recovered
            got = [await peer.wait("d", "tick") for _ in range(2)]
            assert sorted(without_offsets(got)) == [["to room1"], ["while away"]]


# -- Redis going away -----------------------------------------------------------------------------


async def test_redis_restarting_never_stops_local_delivery_and_reading_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sockjet.adapters")
    async with redis_server() as r, fleet(r.url, requests_timeout=1) as (a, b), \
            NodeClients() as peer:
        await peer.connect("a", a.url, transport="websocket")
        await peer.connect("b", b.url, transport="websocket")
        a.io.emit("news", "first")
        for name in ("a", "b"):
            assert (await peer.wait(name, "news"))[0] == "first"
        links = [adapter_of(box.io).link for box in (a, b)]
        await r.stop()
        await eventually(lambda: not any(link.up for link in links))
        a.io.emit("news", "during")  # this server's clients still get it, with no offset
        assert await peer.wait("a", "news") == ["during"]
        with pytest.raises(sockjet.AdapterError, match="unreachable"):
            await a.io.fetch_sockets()
        with pytest.raises(sockjet.AdapterError):
            await a.io.server_side_emit("hello", ack=True)
        await r.start()
        await eventually(lambda: all(link.up for link in links), timeout=10)
        a.io.emit("news", "after")
        for name in ("a", "b"):
            assert (await peer.wait(name, "news"))[0] == "after"
        assert await peer.drain("b", "news") == []  # "during" was not kept for later
        b.io.emit("news", "and back")
        for name in ("a", "b"):
            assert (await peer.wait(name, "news"))[0] == "and back"
        assert len(await b.io.fetch_sockets()) == 2
        messages = [rec.getMessage() for rec in caplog.records
                    if rec.name == "sockjet.adapters"]
        assert sum(" lost (" in m for m in messages) == 2  # once per server and outage
        assert sum("is back after" in m for m in messages) == 2
        assert not [rec for rec in caplog.records if rec.exc_info]


async def test_an_unreachable_redis_stops_the_server_from_starting() -> None:
    async with redis_server() as r:
        url = r.url
    io = sockjet.Server(adapter=sockjet.RedisStreamsAdapter(url))
    with pytest.raises(sockjet.AdapterError, match=f"cannot reach Redis at {url}"):
        async with serve(io):
            pass


async def serves_the_stream(io: sockjet.Server, r: RedisServer) -> None:
    """``io`` (started, alone on ``r``) is heard by Redis and writes the stream; then closed."""
    try:
        assert await io.of("/").adapter.server_count() == 1
        io.emit("news", 1)
        await until(lambda: _len_is(r, 1))
    finally:
        await io.close()


async def test_a_start_that_failed_on_redis_succeeds_once_redis_is_back() -> None:
    async with redis_server() as r:
        await r.stop()
        io = sockjet.Server(adapter=sockjet.RedisStreamsAdapter(r.url))
        with pytest.raises(sockjet.AdapterError, match="cannot reach Redis"):
            await io.engine.startup()
        await r.start()
        await io.engine.startup()  # tried again: connects, reads the stream
        await serves_the_stream(io, r)


async def test_a_server_stopped_and_started_again_reads_and_writes_the_stream_again() -> None:
    async with redis_server() as r:
        io = sockjet.Server(adapter=sockjet.RedisStreamsAdapter(r.url))
        await io.engine.startup()
        await io.engine.shutdown()
        await io.engine.startup()  # new connections, a new reader and writer
        await serves_the_stream(io, r)


async def test_a_key_that_is_not_a_stream_stops_the_server_from_starting() -> None:
    async with redis_server() as r:
        await r.command("SET", STREAM, "not a stream")
        io = sockjet.Server(adapter=sockjet.RedisStreamsAdapter(r.url))
        with pytest.raises(sockjet.AdapterError, match="cannot read the Redis stream"):
            async with serve(io):
                pass


async def test_arguments_are_checked() -> None:
    for bad in ({"stream_name": ""}, {"max_len": 0}, {"read_count": -1},
                {"requests_timeout": 0}, {"channel_prefix": ""}, {"max_len": True}):
        with pytest.raises(ValueError):
            sockjet.RedisStreamsAdapter("redis://127.0.0.1:1", **bad)
