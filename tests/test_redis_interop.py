"""A sockjet server and a real Node socket.io 4.8 server on the official Redis adapter share one
real Redis (classic adapter or sharded): every cross-server operation started on either side
reaches the clients and sockets of the other; the official Node emitter reaches sockjet's
clients and sockjet's emitter reaches Node's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import eventually, serve
from nodepeers import NodeClients, NodePeerError, NodeRedisServer, node_emitter
from redisutil import RedisServer, redis_server

import sockjet
from sockjet.adapters.cluster import RemoteSocket

KINDS = ("classic", "sharded")
BLOB = b"\x00\x01\xfe\xff"
#: BLOB as a Node Buffer reads once through JSON.stringify: how Node's classic adapter (and its
#: emitter) carries binary in its JSON requests and answers, to Node servers as well
BLOB_JSON = {"type": "Buffer", "data": list(BLOB)}


@dataclass
class Mixed:
    """One Node server and one sockjet server on one Redis, with their clients: ``n`` and ``m``
    (socket.io-client 4) on the Node server, ``s`` (4, WebSocket) and ``t`` (2 on the classic
    adapter, 4 on the sharded one; polling) on the sockjet server."""

    kind: str
    redis: RedisServer
    node: NodeRedisServer
    io: sockjet.Server
    peer: NodeClients
    sids: dict[str, str]
    #: server-side events the sockjet server's handler received: (event, args)
    heard: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def sockjet_rooms(self, name: str) -> set[str]:
        return self.io.of("/").adapter.socket_rooms(self.sids[name])

    async def node_rooms(self) -> dict[str, set[str]]:
        """The rooms of the Node server's sockets, as the Node server's fetchSockets sees them."""
        ids = {self.sids["n"]: "n", self.sids["m"]: "m"}
        return {ids[s["id"]]: set(s["rooms"]) for s in await self.node.call("fetch_sockets")
                if s["id"] in ids}

    async def room_channel_ready(self, room: str, servers: int) -> None:
        """Sharded adapters subscribe to a room's channel without waiting for Redis: wait until
        ``servers`` servers are subscribed to it before a one-room broadcast (nothing to wait
        for on the classic adapter, which reads every room through one pattern)."""
        if self.kind == "classic":
            return
        channel = f"socket.io#/#{room}#"

        async def subscribed() -> bool:
            reply = await self.redis.command("PUBSUB", "SHARDNUMSUB", channel)
            return int(reply[1]) == servers

        await until(subscribed)

    async def nothing_more(self, names: list[str], event: str) -> None:
        """No client of ``names`` got another ``event``: checked once a marker broadcast sent
        afterwards by each server has reached them all (Redis keeps each publisher's order)."""
        await self.node.call("emit", event="marker", args=["node"])
        self.io.emit("marker", "sockjet")
        for name in names:
            got = [(await self.peer.wait(name, "marker"))[0] for _ in range(2)]
            assert sorted(got) == ["node", "sockjet"]
            assert await self.peer.drain(name, event) == [], f"{name} got more {event}"


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the async ``check()`` holds (polling), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def adapter(kind: str, url: str) -> Any:
    if kind == "classic":
        return sockjet.RedisAdapter(url, requests_timeout=2)
    return sockjet.RedisShardedAdapter(url, requests_timeout=2)


@asynccontextmanager
async def mixed(kind: str) -> AsyncIterator[Mixed]:
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(redis_server())
        opts = {"requestsTimeout": 2000} if kind == "classic" else {}
        node = await stack.enter_async_context(
            NodeRedisServer(None, redis.url, adapter=kind, **opts))
        io = sockjet.Server(adapter=adapter(kind, redis.url))
        heard: list[tuple[str, tuple[Any, ...]]] = []

        def connection(socket: sockjet.Socket) -> None:
            socket.data["name"] = socket.handshake.query.get("name")
            socket.data["server"] = "sockjet"
            socket.data["blob"] = BLOB
            socket.on("join", lambda room: socket.join(room))

        def hello(*args: Any) -> Any:
            heard.append(("hello", args))
            return {"sockjet": True, "args": list(args)}

        io.on("connection", connection)
        io.on("hello", hello)
        url = await stack.enter_async_context(serve(io))
        peer = await stack.enter_async_context(NodeClients())
        sids: dict[str, str] = {}
        for name, server, version, transport in (
                ("n", node.url, 4, "websocket"), ("m", node.url, 4, "polling"),
                ("s", url, 4, "websocket"),
                ("t", url, 2 if kind == "classic" else 4, "polling")):
            sids[name] = await peer.connect(name, server, version=version, transport=transport,
                                            opts={"query": {"name": name}})
        await eventually(lambda: len(io.of("/").sockets) == 2)
        yield Mixed(kind, redis, node, io, peer, sids, heard)


async def join_rooms(mx: Mixed) -> None:
    """n: rn, both; m: rn, quiet (joined on the Node server); s: rs, both, quiet; t: rs
    (joined on the sockjet server, by a client event)."""
    for name, room in (("n", "rn"), ("n", "both"), ("m", "rn"), ("m", "quiet")):
        await mx.node.call("socket_join", sid=mx.sids[name], room=room)
    for name, room in (("s", "rs"), ("s", "both"), ("s", "quiet"), ("t", "rs")):
        await mx.peer.emit(name, "join", room)
    await eventually(lambda: mx.sockjet_rooms("s") == {mx.sids["s"], "rs", "both", "quiet"}
                     and mx.sockjet_rooms("t") == {mx.sids["t"], "rs"})
    for room, servers in (("rn", 1), ("rs", 1), ("both", 2), ("quiet", 2)):
        await mx.room_channel_ready(room, servers)


async def received(peer: NodeClients, names: list[str], event: str) -> dict[str, list[Any]]:
    return {name: await peer.wait(name, event) for name in names}


EVERYONE = ["n", "m", "s", "t"]

# -- broadcasts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_broadcasts_reach_the_clients_of_the_other_server_both_ways(kind: str) -> None:
    async with mixed(kind) as mx:
        peer = mx.peer
        await join_rooms(mx)
        # to everyone: from Node (binary: a Buffer, nested too), then from sockjet (bytes)
        await mx.node.call("emit", event="news", args=["node-all", {"b": BLOB}, BLOB])
        got = await received(peer, EVERYONE, "news")
        assert all(a == ["node-all", {"b": BLOB}, BLOB] for a in got.values()), got
        mx.io.emit("news", "sockjet-all", {"n": 1, "b": BLOB}, BLOB)
        got = await received(peer, EVERYONE, "news")
        assert all(a == ["sockjet-all", {"n": 1, "b": BLOB}, BLOB] for a in got.values()), got
        # without binary (the sharded adapter then speaks JSON instead of msgpack)
        await mx.node.call("emit", event="news", args=["node-text", {"k": [1, None]}])
        got = await received(peer, EVERYONE, "news")
        assert all(a == ["node-text", {"k": [1, None]}] for a in got.values()), got

        # to one room of the other server only
        await mx.node.call("emit", to=["rs"], event="news", args=["node-to-rs", BLOB])
        assert await received(peer, ["s", "t"], "news") == {
            "s": ["node-to-rs", BLOB], "t": ["node-to-rs", BLOB]}
        mx.io.to("rn").emit("news", "sockjet-to-rn", BLOB)
        assert await received(peer, ["n", "m"], "news") == {
            "n": ["sockjet-to-rn", BLOB], "m": ["sockjet-to-rn", BLOB]}
        # to a room of both servers
        await mx.node.call("emit", to=["both"], event="news", args=["node-to-both"])
        assert await received(peer, ["n", "s"], "news") == {
            "n": ["node-to-both"], "s": ["node-to-both"]}
        mx.io.to("both").emit("news", "sockjet-to-both")
        assert await received(peer, ["n", "s"], "news") == {
            "n": ["sockjet-to-both"], "s": ["sockjet-to-both"]}
        # several rooms, except one: n and t only, whoever sends
        await mx.node.call("emit", to=["rn", "rs"], except_=["quiet"], event="news",
                           args=["node-except"])
        assert await received(peer, ["n", "t"], "news") == {
            "n": ["node-except"], "t": ["node-except"]}
        mx.io.to(["rn", "rs"]).except_("quiet").emit("news", "sockjet-except")
        assert await received(peer, ["n", "t"], "news") == {
            "n": ["sockjet-except"], "t": ["sockjet-except"]}
        # everyone except one room
        mx.io.except_("rn").emit("news", "sockjet-not-rn")
        assert await received(peer, ["s", "t"], "news") == {
            "s": ["sockjet-not-rn"], "t": ["sockjet-not-rn"]}
        await mx.node.call("emit", except_=["rs"], event="news", args=["node-not-rs"])
        assert await received(peer, ["n", "m"], "news") == {
            "n": ["node-not-rs"], "m": ["node-not-rs"]}
        # to a socket id of the other server
        await mx.node.call("emit", to=[mx.sids["t"]], event="news", args=["node-to-t"])
        assert await peer.wait("t", "news") == ["node-to-t"]
        mx.io.to(mx.sids["m"]).emit("news", "sockjet-to-m")
        assert await peer.wait("m", "news") == ["sockjet-to-m"]
        await mx.nothing_more(EVERYONE, "news")


# -- fetch_sockets --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_fetch_sockets_returns_the_other_servers_sockets_both_ways(kind: str) -> None:
    async with mixed(kind) as mx:
        sids = mx.sids
        await join_rooms(mx)
        await mx.node.call("socket_data", sid=sids["n"], data={"user": "nora", "blob": BLOB})

        # from Node: sockjet's sockets with their rooms, data (bytes kept) and handshake
        found = {s["id"]: s for s in await mx.node.call("fetch_sockets")}
        assert set(found) == set(sids.values())
        s = found[sids["s"]]
        assert set(s["rooms"]) == {sids["s"], "rs", "both", "quiet"}
        assert s["data"] == {"name": "s", "server": "sockjet", "blob": BLOB}
        assert s["handshake"]["query"]["name"] == "s"
        assert s["handshake"]["address"] == "127.0.0.1"
        assert found[sids["t"]]["data"]["name"] == "t"
        assert found[sids["n"]]["data"] == {"user": "nora", "blob": BLOB}
        in_rs = await mx.node.call("fetch_sockets", to=["rs"])
        assert sorted(x["id"] for x in in_rs) == sorted([sids["s"], sids["t"]])
        in_quiet = await mx.node.call("fetch_sockets", to=["quiet"], except_=["rs"])
        assert [x["id"] for x in in_quiet] == [sids["m"]]

        # from sockjet: Node's sockets as RemoteSocket objects
        fetched = await mx.io.fetch_sockets()
        assert sorted(x.id for x in fetched) == sorted(sids.values())
        remote = {x.id: x for x in fetched if isinstance(x, RemoteSocket)}
        assert set(remote) == {sids["n"], sids["m"]}
        n = remote[sids["n"]]
        assert n.rooms == {sids["n"], "rn", "both"}
        # Node's classic adapter answers fetchSockets in JSON, the sharded one in msgpack
        assert n.data == {"user": "nora", "blob": BLOB_JSON if kind == "classic" else BLOB}
        assert n.handshake.query["name"] == "n"
        assert n.handshake.address == "127.0.0.1"
        assert remote[sids["m"]].data == {}
        assert remote[sids["m"]].rooms == {sids["m"], "rn", "quiet"}
        in_rn = await mx.io.in_("rn").except_("both").fetch_sockets()
        assert [x.id for x in in_rn] == [sids["m"]]
        in_both = await mx.io.in_("both").fetch_sockets()
        assert sorted(x.id for x in in_both) == sorted([sids["n"], sids["s"]])

        # what a remote socket does reaches the Node server that holds it
        n.emit("direct", "to n", BLOB)
        assert await mx.peer.wait("n", "direct") == ["to n", BLOB]
        await n.join("joined-remotely")
        await until(lambda: has_room(mx, "n", "joined-remotely"))
        await n.leave("rn")
        await until(lambda: has_room(mx, "n", "rn", False))
        n.disconnect()
        assert (await mx.peer.wait("n", "disconnect"))[0] == "io server disconnect"
        await until(lambda: count(mx.io.fetch_sockets(), 3))


async def has_room(mx: Mixed, name: str, room: str, expected: bool = True) -> bool:
    return (room in (await mx.node_rooms()).get(name, set())) is expected


async def count(fetching: Awaitable[list[Any]], expected: int) -> bool:
    return len(await fetching) == expected


# -- server_side_emit -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_server_side_emit_reaches_the_other_server_and_its_ack_comes_back(
        kind: str) -> None:
    async with mixed(kind) as mx:
        node = mx.node
        # Node -> sockjet: the handler's return value is Node's response (Node's classic
        # adapter sends its requests in JSON, the sharded one msgpack when there is binary)
        blob = BLOB_JSON if kind == "classic" else BLOB
        reply = await node.call("server_side_emit", event="hello", args=[1, BLOB], ack=True)
        assert reply == {"responses": [{"sockjet": True, "args": [1, blob]}]}
        assert mx.heard == [("hello", (1, blob))]
        await node.call("server_side_emit", event="hello", args=["no ack", {"k": "v"}])
        await eventually(lambda: len(mx.heard) == 2)
        assert mx.heard[1] == ("hello", ("no ack", {"k": "v"}))

        # sockjet -> Node: Node's handler answers {"node": pid}
        replies = await mx.io.server_side_emit("ping", "q", BLOB, ack=True)
        assert replies == [{"node": node.pid}]
        await mx.io.server_side_emit("hello", "no ack", 2)
        events: list[dict[str, Any]] = []

        async def both_heard() -> bool:
            events.extend(e for e in await node.events() if e["type"] == "server_side")
            return len(events) >= 2

        await until(both_heard)
        assert events == [
            {"type": "server_side", "nsp": "/", "event": "ping", "args": ["q", BLOB],
             "ack": True},
            {"type": "server_side", "nsp": "/", "event": "hello", "args": ["no ack", 2],
             "ack": False}]
        # the Node server has no handler for this one, so it never answers
        with pytest.raises(sockjet.AckTimeout) as caught:
            await mx.io.server_side_emit("unheard", ack=True, timeout=0.3)
        assert caught.value.responses == []
        assert len(mx.heard) == 2  # sockjet's own handlers never hear what sockjet sent


# -- broadcasts with acks -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_broadcast_acks_come_back_from_the_other_servers_clients_both_ways(
        kind: str) -> None:
    async with mixed(kind) as mx:
        peer, sids = mx.peer, mx.sids
        for name in EVERYONE:
            await peer.reply(name, "ask", f"answer-{name}")
        answers = sorted(f"answer-{name}" for name in EVERYONE)
        # from Node: the sockjet server reports its two clients, their answers come back
        reply = await mx.node.call("emit_with_ack", event="ask", args=["q", BLOB],
                                   timeout_ms=3000)
        assert sorted(reply["responses"]) == answers
        for name in EVERYONE:
            assert await peer.wait(name, "ask") == ["q", BLOB]
        # from sockjet: the Node server reports how many (not which) clients, both answer
        replies = await mx.io.timeout(3).emit_with_ack("ask", "q2", BLOB)
        assert sorted(replies) == answers
        # to one room of the other server
        await join_rooms(mx)
        assert sorted(await mx.io.to("rn").timeout(3).emit_with_ack("ask")) == [
            "answer-m", "answer-n"]
        reply = await mx.node.call("emit_with_ack", to=["rs"], event="ask", args=[],
                                   timeout_ms=3000)
        assert sorted(reply["responses"]) == ["answer-s", "answer-t"]

        # a silent client of the Node server: sockjet's AckTimeout names it by a placeholder
        for name in ("n", "s", "t"):
            await peer.reply(name, "quiz", f"quiz-{name}")
        with pytest.raises(sockjet.AckTimeout) as caught:
            await mx.io.timeout(0.5).emit_with_ack("quiz")
        assert sorted(caught.value.responses) == ["quiz-n", "quiz-s", "quiz-t"]
        assert len(caught.value.missing) == 1
        assert caught.value.missing[0] not in sids.values()
        assert caught.value.missing[0].startswith("?")
        # a silent client of the sockjet server, asked from Node: an error with what came
        await peer.reply("m", "quiz", "quiz-m")
        await peer.reply("s", "other", "x")
        reply = await mx.node.call("emit_with_ack", event="other", args=[], timeout_ms=500)
        assert reply["error"] and reply["responses"] == ["x"]


# -- sockets_join / sockets_leave / disconnect_sockets --------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_sockets_join_leave_and_disconnect_reach_the_other_server_both_ways(
        kind: str) -> None:
    async with mixed(kind) as mx:
        peer, sids = mx.peer, mx.sids
        await join_rooms(mx)
        # Node makes everyone join g1: the sockjet server's sockets too
        await mx.node.call("sockets_join", rooms=["g1"])
        await eventually(lambda: "g1" in mx.sockjet_rooms("s") and "g1" in mx.sockjet_rooms("t"))
        # sockjet makes the sockets of rn (Node's) join g2, and Node's sockets of rs (sockjet's)
        # join g3
        mx.io.in_("rn").sockets_join(["g2"])
        await mx.node.call("sockets_join", to=["rs"], except_=["quiet"], rooms=["g3"])
        await until(lambda: nodes_rooms_are(mx, {"n": {"rn", "both", "g1", "g2"},
                                                  "m": {"rn", "quiet", "g1", "g2"}}))
        await eventually(lambda: mx.sockjet_rooms("t") == {sids["t"], "rs", "g1", "g3"})
        assert mx.sockjet_rooms("s") == {sids["s"], "rs", "both", "quiet", "g1"}
        # a one-room broadcast to what they joined, from the other side
        await mx.room_channel_ready("g2", 1)
        mx.io.to("g2").emit("news", "g2")
        assert await received(peer, ["n", "m"], "news") == {"n": ["g2"], "m": ["g2"]}
        await mx.room_channel_ready("g3", 1)
        await mx.node.call("emit", to=["g3"], event="news", args=["g3"])
        assert await peer.wait("t", "news") == ["g3"]
        # leaving, both ways
        await mx.node.call("sockets_leave", to=[sids["s"]], rooms=["g1", "both"])
        await eventually(lambda: mx.sockjet_rooms("s") == {sids["s"], "rs", "quiet"})
        mx.io.in_("quiet").sockets_leave("g1")
        await until(lambda: nodes_rooms_are(mx, {"n": {"rn", "both", "g1", "g2"},
                                                  "m": {"rn", "quiet", "g2"}}))
        assert mx.sockjet_rooms("t") == {sids["t"], "rs", "g1", "g3"}
        await mx.room_channel_ready("g1", 2)
        await mx.node.call("emit", to=["g1"], event="news", args=["g1"])
        assert await received(peer, ["n", "t"], "news") == {"n": ["g1"], "t": ["g1"]}
        await mx.nothing_more(EVERYONE, "news")

        # disconnecting, both ways: Node disconnects quiet (m, here, and s, there)
        await mx.node.call("disconnect_sockets", to=["quiet"])
        for name in ("m", "s"):
            assert (await peer.wait(name, "disconnect"))[0] == "io server disconnect"
        await eventually(lambda: list(mx.io.of("/").sockets) == [sids["t"]])
        # sockjet disconnects n (Node's) by room, then everyone left, closing the connection
        mx.io.in_("rn").disconnect_sockets()
        assert (await peer.wait("n", "disconnect"))[0] == "io server disconnect"
        mx.io.disconnect_sockets(close=True)
        assert (await peer.wait("t", "disconnect"))[0] in ("io server disconnect",
                                                           "transport close")
        await eventually(lambda: not mx.io.of("/").sockets)
        assert await mx.node.call("fetch_sockets") == []
        reasons = {e["id"]: e["reason"] for e in await mx.node.events()
                   if e["type"] == "disconnect"}
        assert reasons == {sids["m"]: "server namespace disconnect",
                           sids["n"]: "server namespace disconnect"}


async def nodes_rooms_are(mx: Mixed, expected: dict[str, set[str]]) -> bool:
    rooms = await mx.node_rooms()
    return {name: found - {mx.sids[name]} for name, found in rooms.items()} == expected


# -- server_count and all_rooms -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_server_count_and_all_rooms_span_both_servers(kind: str) -> None:
    async with mixed(kind) as mx:
        assert await mx.node.call("server_count") == 2
        assert await mx.io.of("/").adapter.server_count() == 2
        await join_rooms(mx)
        everything = {*mx.sids.values(), "rn", "rs", "both", "quiet"}
        assert await mx.io.all_rooms() == everything
        if kind == "classic":
            assert set(await mx.node.call("all_rooms")) == everything
        else:  # Node's sharded adapter has no allRooms
            with pytest.raises(NodePeerError, match="allRooms"):
                await mx.node.call("all_rooms")


# -- emitters -------------------------------------------------------------------------------------


async def test_nodes_emitter_reaches_the_sockjet_servers_clients_and_handlers() -> None:
    async with mixed("classic") as mx:
        peer, sids = mx.peer, mx.sids
        await join_rooms(mx)
        await node_emitter(mx.redis.url, [
            {"event": "news", "args": ["emitter-all", BLOB]},
            {"to": ["rs"], "event": "news", "args": ["emitter-rs", {"b": BLOB}]},
            {"to": ["rs", "rn"], "except": ["quiet"], "event": "news",
             "args": ["emitter-except"]},
            {"op": "sockets_join", "to": [sids["t"]], "rooms": ["from-emitter"]},
            {"op": "sockets_leave", "to": ["quiet"], "rooms": ["rs"]},
            {"op": "server_side_emit", "event": "hello", "args": ["from emitter", BLOB]},
        ])
        got = await received(peer, EVERYONE, "news")
        assert all(a == ["emitter-all", BLOB] for a in got.values()), got
        assert await received(peer, ["s", "t"], "news") == {
            "s": ["emitter-rs", {"b": BLOB}], "t": ["emitter-rs", {"b": BLOB}]}
        assert await received(peer, ["n", "t"], "news") == {
            "n": ["emitter-except"], "t": ["emitter-except"]}
        await eventually(lambda: mx.sockjet_rooms("t") == {sids["t"], "rs", "from-emitter"})
        await eventually(lambda: mx.sockjet_rooms("s") == {sids["s"], "both", "quiet"})
        await eventually(lambda: len(mx.heard) == 1)
        assert mx.heard == [("hello", ("from emitter", BLOB_JSON))]  # a JSON request
        await mx.nothing_more(EVERYONE, "news")
        await node_emitter(mx.redis.url, [{"op": "disconnect_sockets", "to": ["rs"]}])
        assert (await peer.wait("t", "disconnect"))[0] == "io server disconnect"
        await eventually(lambda: list(mx.io.of("/").sockets) == [sids["s"]])


async def test_sockjets_emitter_reaches_the_node_servers_clients_and_handlers() -> None:
    async with mixed("classic") as mx:
        peer, sids = mx.peer, mx.sids
        await join_rooms(mx)
        emitter = sockjet.RedisEmitter(mx.redis.url)
        try:
            await emitter.emit("news", "emitter-all", BLOB)
            got = await received(peer, EVERYONE, "news")
            assert all(a == ["emitter-all", BLOB] for a in got.values()), got
            await emitter.to("rn").emit("news", "emitter-rn", {"b": BLOB})
            assert await received(peer, ["n", "m"], "news") == {
                "n": ["emitter-rn", {"b": BLOB}], "m": ["emitter-rn", {"b": BLOB}]}
            await emitter.to(["rn", "rs"]).except_("quiet").emit("news", "emitter-except")
            assert await received(peer, ["n", "t"], "news") == {
                "n": ["emitter-except"], "t": ["emitter-except"]}
            await emitter.to(sids["m"]).sockets_join("from-emitter")
            await emitter.in_("both").sockets_leave("rn")
            await until(lambda: nodes_rooms_are(mx, {"n": {"both"},
                                                      "m": {"rn", "quiet", "from-emitter"}}))
            await emitter.server_side_emit("ping", "from emitter", BLOB)
            events: list[dict[str, Any]] = []

            async def heard() -> bool:
                events.extend(e for e in await mx.node.events() if e["type"] == "server_side")
                return bool(events)

            await until(heard)
            assert events == [{"type": "server_side", "nsp": "/", "event": "ping",
                               "args": ["from emitter", BLOB], "ack": False}]
            await mx.nothing_more(EVERYONE, "news")
            await emitter.to("quiet").disconnect_sockets()
            for name in ("m", "s"):
                assert (await peer.wait(name, "disconnect"))[0] == "io server disconnect"
        finally:
            await emitter.close()


async def test_emitters_reach_no_client_of_sharded_servers() -> None:
    async with mixed("sharded") as mx:
        await node_emitter(mx.redis.url, [{"event": "news", "args": ["node emitter"]},
                                          {"op": "server_side_emit", "event": "hello",
                                           "args": ["node emitter"]}])
        emitter = sockjet.RedisEmitter(mx.redis.url)
        try:
            await emitter.emit("news", "sockjet emitter")
            await emitter.server_side_emit("ping", "sockjet emitter")
        finally:
            await emitter.close()
        await mx.nothing_more(EVERYONE, "news")
        assert mx.heard == []
        assert [e for e in await mx.node.events() if e["type"] == "server_side"] == []
