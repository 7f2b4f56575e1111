"""The cross-server adapter over the inter-worker link: several ``sockjet.Server`` instances in
this one process and event loop, each with its own ``WorkerLink`` (worker i of n, Unix sockets in
a temporary directory), served on 127.0.0.1 with real Python clients connected to different
servers. Every adapter operation must reach the sockets of every server exactly once; requests
must wait for every live server and time out when one does not answer; a server that stops is
dropped and its restart is reconnected to. Each test fails if the behaviour it names breaks."""

from __future__ import annotations

import asyncio
import os
import socket as stdsocket
import struct
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from conftest import eventually, serve

import sockjet
from sockjet.adapters.cluster import (
    ClusterAdapter,
    MessageType,
    decode_options,
    encode_options,
    handshake_from_dict,
    handshake_to_dict,
)
from sockjet.adapters.workers import WorkerAdapter, WorkerLink

#: quick timings, so that the tests of timeouts and heartbeats take a fraction of a second
FAST = {"requests_timeout": 1.0, "heartbeat_interval": 0.1, "heartbeat_timeout": 0.5}


class Node:
    """One server of the cluster: its ``io``, ``link``, URL, and the server-side sockets of its
    clients by the client's name (``auth={"name": ...}``)."""

    def __init__(self, io: sockjet.Server, link: WorkerLink, url: str) -> None:
        self.io = io
        self.link = link
        self.url = url

    def adapter(self, nsp: str = "/") -> ClusterAdapter:
        adapter = self.io.of(nsp).adapter
        assert isinstance(adapter, ClusterAdapter)
        return adapter


def app(index: int) -> Callable[[sockjet.Socket], None]:
    """The connection handler of every server: names the socket after the client's auth,
    stores it in ``socket.data``, and lets the client join rooms."""

    def connection(socket: sockjet.Socket) -> None:
        socket.data["name"] = socket.handshake.auth.get("name")
        socket.data["server"] = index
        socket.data["blob"] = b"\x00\xfe"
        socket.on("join", lambda room: socket.join(room))

    return connection


@asynccontextmanager
async def worker(index: int, count: int, directory: str,
                 setup: Callable[[sockjet.Server], None] | None = None,
                 **options: Any) -> AsyncIterator[Node]:
    link = WorkerLink(index, count, directory, **{**FAST, **options})
    io = sockjet.Server(adapter=link.adapter)
    io.on("connection", app(index))
    if setup is not None:
        setup(io)
    await link.start()
    try:
        async with serve(io) as url:
            yield Node(io, link, url)
    finally:
        await io.close()
        await link.close()


async def knows(nodes: list[Node], count: int, nsp: str = "/") -> None:
    """Wait until every node's adapter of ``nsp`` counts ``count`` servers."""
    await eventually(lambda: all(len(n.adapter(nsp).servers) + 1 == count for n in nodes))


@asynccontextmanager
async def cluster(count: int, **options: Any) -> AsyncIterator[list[Node]]:
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        async with AsyncExitStack() as stack:
            nodes = [await stack.enter_async_context(worker(i, count, directory, **options))
                     for i in range(count)]
            await knows(nodes, count)
            yield nodes


class Client:
    """A Python client of one server, recording the events it receives; it answers ``ask``
    with its name (unless ``mute``) and ``bin-ask`` with bytes."""

    def __init__(self, node: Node, name: str, mute: bool = False) -> None:
        self.name = name
        self.client = sockjet.AsyncClient(node.url, transports=("websocket",),
                                          reconnection=False, auth={"name": name})
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.client.on_any(lambda event, *args: self.events.append((event, args)))
        if not mute:
            self.client.on("ask", lambda *args: f"{name}")
            self.client.on("bin-ask", lambda blob: (name, blob + b"\x01"))

    @property
    def id(self) -> str:
        sid = self.client.id
        assert sid is not None
        return sid

    def got(self, event: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.events if name == event]


@asynccontextmanager
async def clients(*specs: tuple[Node, str]) -> AsyncIterator[dict[str, Client]]:
    made = {name: Client(node, name, mute=name.startswith("mute")) for node, name in specs}
    async with AsyncExitStack() as stack:
        for c in made.values():
            await stack.enter_async_context(c.client)
        yield made


async def join(c: Client, room: str) -> None:
    await c.client.emit_with_ack("join", room, timeout=5)


async def marked(nodes: list[Node], everyone: dict[str, Client], mark: str) -> None:
    """Each node broadcasts ``mark`` and every client receives it from each: what a node
    broadcast before has then arrived everywhere (one ordered connection per sender and
    receiver, one per server and client)."""
    for node in nodes:
        node.io.emit(mark)
    await eventually(lambda: all(len(c.got(mark)) == len(nodes) for c in everyone.values()))


# -- broadcasts -----------------------------------------------------------------------------------


async def test_a_broadcast_from_any_server_reaches_every_client_exactly_once() -> None:
    async with cluster(3) as nodes, clients(
            (nodes[0], "a"), (nodes[0], "b"), (nodes[1], "c"), (nodes[2], "d")) as everyone:
        _, b, c, d = everyone.values()
        await join(b, "room")
        await join(d, "room")
        for node in nodes:
            node.io.emit("news", node.link.index)
        nodes[1].io.to("room").emit("room-news")
        nodes[2].io.except_("room").emit("not-room")
        nodes[0].io.to("room").except_(d.id).emit("room-but-d")
        nodes[1].io.volatile.emit("volatile")
        nodes[2].io.local.emit("local-only")
        nodes[0].io.to(c.id).emit("to-c")
        await marked(nodes, everyone, "mark")
        for one in everyone.values():
            assert sorted(one.got("news")) == [(0,), (1,), (2,)], one.name
            assert len(one.got("volatile")) == 1
        assert [x.name for x in everyone.values() if x.got("room-news")] == ["b", "d"]
        assert all(len(x.got("room-news")) <= 1 for x in everyone.values())
        assert [x.name for x in everyone.values() if x.got("not-room")] == ["a", "c"]
        assert [x.name for x in everyone.values() if x.got("room-but-d")] == ["b"]
        assert [x.name for x in everyone.values() if x.got("local-only")] == ["d"]
        assert [x.name for x in everyone.values() if x.got("to-c")] == ["c"]


async def test_binary_arguments_survive_the_link() -> None:
    async with cluster(2) as nodes, clients((nodes[0], "a"), (nodes[1], "b")) as everyone:
        payload = (b"\x00\xff", {"k": [b"\x01\x02", "text", 3]}, bytearray(b"\x07"))
        nodes[0].io.emit("bin", *payload)
        await eventually(lambda: all(x.got("bin") for x in everyone.values()))
        expected = (b"\x00\xff", {"k": [b"\x01\x02", "text", 3]}, b"\x07")
        assert everyone["b"].got("bin") == [expected] == everyone["a"].got("bin")
        replies = await nodes[0].io.timeout(3).emit_with_ack("bin-ask", b"\x10")
        assert sorted(replies) == [("a", b"\x10\x01"), ("b", b"\x10\x01")]


def test_options_and_handshakes_travel_as_node_writes_them() -> None:
    opts = sockjet.BroadcastOptions(rooms=frozenset({"r1", "r2"}), except_rooms=frozenset({"x"}),
                                    volatile=True, compress=False, timeout=1.5)
    wire = encode_options(opts)
    assert wire == {"rooms": ["r1", "r2"], "except": ["x"],
                    "flags": {"volatile": True, "compress": False, "timeout": 1500}}
    assert decode_options(msgpack.unpackb(msgpack.packb(wire))) == sockjet.BroadcastOptions(
        rooms=opts.rooms, except_rooms=opts.except_rooms, volatile=True, compress=False,
        local=True, timeout=1.5)  # applied to the receiver's own sockets only
    assert encode_options(sockjet.BroadcastOptions()) == {"rooms": [], "except": [],
                                                          "flags": {}}
    handshake = sockjet.Handshake(headers={"host": "h"}, query={"EIO": "4"}, auth={"t": 1},
                                  address="127.0.0.1", time="now", issued=5, secure=False,
                                  xdomain=True, url="/socket.io/?EIO=4", extra={"e": b"\x01"})
    assert handshake_from_dict(msgpack.unpackb(msgpack.packb(
        handshake_to_dict(handshake), use_bin_type=True))) == handshake
    assert [int(t) for t in MessageType][:13] == list(range(1, 14))
    assert MessageType.ADAPTER_CLOSE == 13 and MessageType.BROADCAST_ACK == 12


# -- broadcasts with acks -------------------------------------------------------------------------


async def test_broadcast_with_acks_collects_the_replies_of_every_server() -> None:
    async with cluster(3) as nodes, clients(
            (nodes[0], "a"), (nodes[1], "b"), (nodes[1], "c"), (nodes[2], "d")) as everyone:
        for node in nodes:
            replies = await asyncio.wait_for(node.io.timeout(3).emit_with_ack("ask"), 5)
            assert sorted(replies) == ["a", "b", "c", "d"]
        # without a timeout it waits for the remote counts, then for every reply
        assert sorted(await asyncio.wait_for(nodes[2].io.emit_with_ack("ask"), 5)) == [
            "a", "b", "c", "d"]
        await join(everyone["c"], "room")
        await join(everyone["d"], "room")
        assert sorted(await nodes[0].io.to("room").timeout(3).emit_with_ack("ask")) == ["c", "d"]
        # nobody selected anywhere: every server reports zero clients, at once
        assert await asyncio.wait_for(nodes[0].io.to("nobody").emit_with_ack("ask"), 2) == []
        # local: this server's clients only
        assert await nodes[1].io.local.timeout(3).emit_with_ack("ask") in (["b", "c"],
                                                                         ["c", "b"])


async def test_broadcast_with_acks_times_out_naming_the_remote_clients_that_did_not_answer(
) -> None:
    async with cluster(2) as nodes, clients(
            (nodes[0], "a"), (nodes[1], "b"), (nodes[1], "mute")) as everyone:
        started = time.monotonic()
        with pytest.raises(sockjet.AckTimeout, match="1 of 3 clients") as info:
            await nodes[0].io.timeout(0.5).emit_with_ack("ask")
        assert 0.4 < time.monotonic() - started < 2
        assert sorted(info.value.responses) == ["a", "b"]
        assert info.value.missing == [everyone["mute"].id]


# -- fetch_sockets and remote sockets -------------------------------------------------------------


async def test_fetch_sockets_returns_local_and_remote_sockets_that_act_through_the_cluster(
) -> None:
    async with cluster(3) as nodes, clients(
            (nodes[0], "a"), (nodes[1], "b"), (nodes[2], "c")) as everyone:
        a, b, c = everyone.values()
        found = await nodes[0].io.fetch_sockets()
        assert sorted(s.id for s in found) == sorted([a.id, b.id, c.id])
        local = [s for s in found if isinstance(s, sockjet.Socket)]
        remote = {s.id: s for s in found if isinstance(s, sockjet.RemoteSocket)}
        assert [s.id for s in local] == [a.id] and set(remote) == {b.id, c.id}
        rb = remote[b.id]
        assert rb.rooms == {b.id}
        assert rb.data == {"name": "b", "server": 1, "blob": b"\x00\xfe"}
        assert rb.handshake.auth == {"name": "b"}
        assert rb.handshake.query["EIO"] == "4" and rb.handshake.address == "127.0.0.1"
        assert rb.handshake.url.startswith("/socket.io/?") and rb.handshake.headers["host"]
        assert isinstance(rb.handshake, sockjet.Handshake)

        rb.emit("direct", b"\x05")
        await marked(nodes, everyone, "m1")
        assert b.got("direct") == [(b"\x05",)] and not a.got("direct") and not c.got("direct")

        await rb.join(["vip", "gold"])
        await eventually(lambda: nodes[1].io.sockets.sockets[b.id].rooms == {b.id, "vip",
                                                                             "gold"})
        rb.leave("gold")
        await eventually(lambda: nodes[1].io.sockets.sockets[b.id].rooms == {b.id, "vip"})
        in_vip = await nodes[2].io.in_("vip").fetch_sockets()
        assert [(s.id, s.rooms) for s in in_vip] == [(b.id, {b.id, "vip"})]
        assert await nodes[0].io.local.fetch_sockets() == local

        remote[c.id].disconnect()
        await eventually(lambda: not c.client.connected)
        assert sorted(s.id for s in await nodes[1].io.fetch_sockets()) == sorted([a.id, b.id])


async def test_fetch_sockets_times_out_when_a_server_does_not_answer() -> None:
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        async with worker(0, 2, directory, requests_timeout=0.3,
                          heartbeat_timeout=5.0) as node, silent_peer(
                directory, 1, 2) as _:
            await eventually(lambda: len(node.adapter().servers) == 1)
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="1 of 1 servers did not answer"):
                await node.io.fetch_sockets()
            assert time.monotonic() - started < 1.5


# -- rooms and disconnections across servers ------------------------------------------------------


async def test_sockets_join_leave_and_disconnect_reach_every_server() -> None:
    async with cluster(3) as nodes, clients(
            (nodes[0], "a"), (nodes[1], "b"), (nodes[2], "c"), (nodes[2], "d")) as everyone:
        a, b, c, d = everyone.values()

        def rooms(node: Node, client: Client) -> set[str]:
            return node.io.sockets.sockets[client.id].rooms

        nodes[0].io.sockets_join("all")
        await eventually(lambda: all("all" in rooms(n, x) for n, x in
                                     ((nodes[0], a), (nodes[1], b), (nodes[2], c),
                                      (nodes[2], d))))
        nodes[1].io.except_(d.id).sockets_join(["x", "y"])
        nodes[1].io.in_("x").sockets_leave("y")
        await marked(nodes, everyone, "m")
        assert rooms(nodes[2], c) == {c.id, "all", "x"} and rooms(nodes[2], d) == {d.id, "all"}
        assert rooms(nodes[0], a) == {a.id, "all", "x"}
        nodes[0].io.local.sockets_join("only-0")
        await marked(nodes, everyone, "m2")
        assert "only-0" in rooms(nodes[0], a) and "only-0" not in rooms(nodes[1], b)

        nodes[2].io.in_("x").except_(a.id).disconnect_sockets()
        await eventually(lambda: not b.client.connected and not c.client.connected)
        await marked(nodes, {"a": a, "d": d}, "m3")
        assert a.client.connected and d.client.connected
        nodes[0].io.disconnect_sockets(close=True)
        await eventually(lambda: not a.client.connected and not d.client.connected)


# -- server-side emits ----------------------------------------------------------------------------


async def test_server_side_emit_reaches_the_other_servers_with_and_without_ack() -> None:
    async with cluster(3) as nodes:
        seen: list[tuple[int, tuple[Any, ...]]] = []
        for node in nodes:
            index = node.link.index
            node.io.on("hello", lambda *args, i=index: seen.append((i, args)))
            node.io.on("who", lambda *args, i=index: f"server {i}")

            async def slow(delay: float, i: int = index) -> Any:
                await asyncio.sleep(delay)
                return {"i": i, "bin": b"\x01"}

            node.io.on("slow", slow)
        assert await nodes[0].io.server_side_emit("hello", 1, b"\x02") == []
        await eventually(lambda: len(seen) == 2)
        assert sorted(seen) == [(1, (1, b"\x02")), (2, (1, b"\x02"))]  # not the sender
        replies = await nodes[1].io.server_side_emit("who", ack=True)
        assert sorted(replies) == ["server 0", "server 2"]
        replies = await nodes[2].io.server_side_emit("slow", 0.05, ack=True, timeout=3)
        assert sorted(r["i"] for r in replies) == [0, 1] and replies[0]["bin"] == b"\x01"
        # only server 2 answers in time: the others are missing, by uid
        nodes[0].io.on("partial", lambda: "0")
        nodes[2].io.on("partial", lambda: "2")
        with pytest.raises(sockjet.AckTimeout, match="1 of 2 servers") as info:
            await nodes[0].io.server_side_emit("partial", ack=True, timeout=0.3)
        assert info.value.responses == ["2"]
        assert info.value.missing == [nodes[1].adapter().uid]


# -- server_count and all_rooms -------------------------------------------------------------------


async def test_server_count_and_all_rooms_span_the_cluster() -> None:
    async with cluster(3) as nodes, clients(
            (nodes[0], "a"), (nodes[1], "b"), (nodes[2], "c")) as everyone:
        a, b, c = everyone.values()
        for node in nodes:
            assert await node.adapter().server_count() == 3
        await join(a, "red")
        await join(c, "blue")
        for node in nodes:
            assert await node.io.all_rooms() == {a.id, b.id, c.id, "red", "blue"}
        assert await nodes[1].io.sockets.all_rooms() == {a.id, b.id, c.id, "red", "blue"}
        assert await nodes[1].io.local.fetch_sockets() != []
        # the in-memory adapter: its own rooms, one server
        single = sockjet.Server()
        assert await single.all_rooms() == set()
        assert await single.sockets.adapter.server_count() == 1


# -- servers that stop, restart, or go silent -----------------------------------------------------


async def test_a_server_that_stops_is_dropped_at_once_and_its_restart_reconnects() -> None:
    slow = {"heartbeat_interval": 30.0, "heartbeat_timeout": 60.0}  # heartbeats play no part
    notes: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        async with worker(0, 3, directory, **slow) as first, worker(2, 3, directory,
                                                                   **slow) as third:
            async with worker(1, 3, directory, **slow) as second:
                await knows([first, second, third], 3)
                async with clients((second, "b")) as everyone:
                    first.io.emit("before")
                    await eventually(lambda: len(everyone["b"].got("before")) == 1)
            # ADAPTER_CLOSE: the others forget it at once, not after a heartbeat timeout
            await knows([first, third], 2)
            started = time.monotonic()
            assert await first.io.fetch_sockets() == []
            assert time.monotonic() - started < 0.5
            # queued for worker 1 while it is down, delivered to its next process
            await first.io.server_side_emit("note", "while-down")
            async with worker(1, 3, directory, lambda io: io.on("note", notes.append),
                              **slow) as again:
                await knows([first, again, third], 3)
                await eventually(lambda: notes == ["while-down"])
                async with clients((again, "b2"), (third, "c")) as everyone:
                    first.io.emit("after")
                    await marked([first, again, third], everyone, "m")
                    assert [len(x.got("after")) for x in everyone.values()] == [1, 1]
                    replies = await first.io.timeout(2).emit_with_ack("ask")
                    assert sorted(replies) == ["b2", "c"]


async def test_messages_queued_for_a_missing_worker_are_bounded_in_age() -> None:
    notes: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        async with worker(0, 2, directory, queue_max_age=0.0) as first:
            await first.io.server_side_emit("note", "stale")  # worker 1 is not up yet
            async with worker(1, 2, directory, lambda io: io.on("note", notes.append)) as second:
                await knows([first, second], 2)  # by the periodic heartbeats
                await first.io.server_side_emit("note", "fresh")
                await eventually(lambda: notes == ["fresh"])


@asynccontextmanager
async def silent_peer(directory: str, index: int, count: int,
                      nsp: str = "/") -> AsyncIterator[stdsocket.socket]:
    """A worker that announces itself to worker 0 (hello, then an INITIAL_HEARTBEAT of a made-up
    adapter) over a real Unix socket, then says nothing more."""
    raw = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, f"{directory}/bus-0.sock")
    for message in ({"hello": index}, {"uid": "silent", "nsp": nsp,
                                       "type": int(MessageType.INITIAL_HEARTBEAT)}):
        await loop.sock_sendall(raw, frame(message))
    try:
        yield raw
    finally:
        raw.close()


def frame(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


async def test_a_silent_server_is_dropped_after_the_heartbeat_timeout() -> None:
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        async with worker(0, 2, directory, requests_timeout=5.0) as node:
            async with silent_peer(directory, 1, 2):
                await eventually(lambda: node.adapter().servers == {"silent"})
                assert await node.adapter().server_count() == 2
                started = time.monotonic()
                # a request waits for it... until the heartbeat timeout (0.5 s) drops it
                assert await node.io.all_rooms() == set()
                assert 0.3 < time.monotonic() - started < 2
                assert node.adapter().servers == frozenset()
            async with silent_peer(directory, 1, 2):
                await eventually(lambda: node.adapter().servers == {"silent"})
            # its connection closed: dropped at once
            await eventually(lambda: node.adapter().servers == frozenset(), timeout=0.3)


async def test_a_message_for_a_namespace_the_receiver_does_not_have_is_ignored() -> None:
    async with cluster(2) as nodes:
        chat = nodes[0].io.of("/chat")
        async with clients((nodes[0], "a"), (nodes[1], "b")) as everyone:
            chat.emit("hi")
            chat.sockets_join("room")
            assert await chat.server_side_emit("x", ack=True) == []  # nobody else has /chat
            assert await chat.adapter.server_count() == 1
            assert "/chat" not in nodes[1].io.namespaces
            # a raw frame for an unknown namespace, and one of an unknown type: ignored
            async with silent_peer(nodes[0].link.directory, 1, 2, nsp="/nowhere") as raw:
                loop = asyncio.get_running_loop()
                await loop.sock_sendall(raw, frame({"uid": "z", "nsp": "/", "type": 99}))
                await loop.sock_sendall(raw, frame({"uid": "z", "nsp": "/nowhere", "type": 3,
                                                    "data": {}}))
                await marked(nodes, everyone, "still-fine")
                assert nodes[0].adapter().servers == {nodes[1].adapter().uid}
            nodes[1].io.of("/chat")  # now it exists there too: the link routes to it
            await knows(nodes, 2, "/chat")
            assert await chat.adapter.server_count() == 2
            # that adapter closes while the link stays: ADAPTER_CLOSE drops it at once
            await nodes[1].io.of("/chat").adapter.close()
            await eventually(lambda: chat.adapter.servers == frozenset(), timeout=0.2)
            assert nodes[0].adapter().servers == {nodes[1].adapter().uid}


# -- replacing the adapter after construction -----------------------------------------------------


async def test_replace_adapter_switches_existing_namespaces_only_while_nobody_is_connected(
) -> None:
    with tempfile.TemporaryDirectory(prefix="sj-") as directory:
        io = sockjet.Server()
        chat = io.of("/chat")
        assert io.uses_default_adapter
        link = WorkerLink(0, 2, directory, **FAST)
        io.replace_adapter(link.adapter)
        assert not io.uses_default_adapter and io.adapter_factory == link.adapter
        assert isinstance(io.sockets.adapter, WorkerAdapter)
        assert isinstance(chat.adapter, WorkerAdapter)
        assert isinstance(io.of("/later").adapter, WorkerAdapter)
        with pytest.raises(TypeError):
            io.replace_adapter("nope")  # type: ignore[arg-type]
        await link.start()
        async with worker(1, 2, directory) as other:
            async with serve(io) as url:
                await eventually(lambda: len(other.adapter().servers) == 1)
                async with sockjet.AsyncClient(url, transports=("websocket",),
                                               reconnection=False) as client:
                    await eventually(lambda: len(io.sockets.sockets) == 1)
                    with pytest.raises(RuntimeError, match="sockets are connected"):
                        io.replace_adapter(sockjet.InMemoryAdapter)
                    got: list[Any] = []
                    client.on("x", got.append)
                    other.io.emit("x", 1)
                    await eventually(lambda: got == [1])
            await io.close()
            await link.close()
        assert os.listdir(directory) == []  # each worker removed its socket file


def test_worker_link_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        WorkerLink(2, 2, "/tmp")
    with pytest.raises(ValueError):
        WorkerLink(0, 0, "/tmp")
    assert Counter(WorkerLink(1, 3, "/tmp").path(i) for i in range(3)) == Counter(
        ["/tmp/bus-0.sock", "/tmp/bus-1.sock", "/tmp/bus-2.sock"])
