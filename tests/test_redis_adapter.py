"""sockjet servers scaled out on a real Redis (a redis-server started by the test on a free
port): two and three ``sockjet.Server`` instances in this process, each with its own Redis
adapter (classic pub/sub or sharded), each serving real socket.io-client 4 and 2 sockets (Node,
polling and WebSocket). Every adapter operation must reach the sockets of every server exactly
once, binary payloads included; Redis may stop and come back without the application noticing
more than failed cross-server requests."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import SOCKJET, eventually, free_port, run_command, serve, sockjet_process
from nodepeers import NodeClients
from redisutil import redis_cluster, redis_server

import sockjet
from sockjet.adapters.cluster import RemoteSocket
from sockjet.adapters.wire import unpack

KINDS = ("classic", "sharded")
FACTORY_NAMES = {"classic": "RedisAdapter", "sharded": "RedisShardedAdapter"}


def factory(kind: str, url: str, **options: Any) -> Any:
    if kind == "classic":
        return sockjet.RedisAdapter(url, **options)
    return sockjet.RedisShardedAdapter(url, **options)


class Node:
    """One sockjet server of the fleet."""

    def __init__(self, index: int, io: sockjet.Server, url: str) -> None:
        self.index = index
        self.io = io
        self.url = url
        #: server-side events received from other servers (event, args)
        self.server_side: list[tuple[str, tuple[Any, ...]]] = []


def setup_server(index: int, io: sockjet.Server, node: list[Node]) -> None:
    """Every server: sockets named after their ``name`` query parameter (socket.data), a
    ``join`` event, server-side ``hello`` (answered with the server's index)."""

    def connection(socket: sockjet.Socket) -> None:
        socket.data["name"] = socket.handshake.query.get("name")
        socket.data["server"] = index
        socket.data["blob"] = b"\x00\xfe"
        socket.on("join", lambda room: socket.join(room))

    io.on("connection", connection)
    io.of("/chat").on("connection", connection)

    def hello(*args: Any) -> Any:
        node[0].server_side.append(("hello", args))
        return {"server": index, "args": list(args)}

    io.on("hello", hello)


@asynccontextmanager
async def fleet(kind: str, redis_url: str, count: int = 2, others: int = 0,
                **options: Any) -> AsyncIterator[list[Node]]:
    """``count`` sockjet servers on ``redis_url`` (where ``others`` serve already), each
    serving on a free port."""
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for index in range(count):
            io = sockjet.Server(adapter=factory(kind, redis_url, **options))
            holder: list[Node] = []
            setup_server(index, io, holder)
            url = await stack.enter_async_context(serve(io))
            holder.append(Node(index, io, url))
            nodes.append(holder[0])
        for node in nodes:
            assert await node.io.of("/").adapter.server_count() == count + others
        yield nodes


#: the Node clients of each test: (name, server index, socket.io-client version, transport)
CLIENTS = (("a", 0, 4, "websocket"), ("b", 1, 2, "polling"), ("c", 2, 4, "polling"),
           ("d", 1, 4, None))


@asynccontextmanager
async def clients(nodes: list[Node], which: tuple[tuple[str, int, int, str | None], ...] = CLIENTS,
                  nsp: str = "/") -> AsyncIterator[tuple[NodeClients, dict[str, str]]]:
    """The Node clients of ``which`` on the servers of ``nodes`` (those of missing servers
    skipped); yields the peer and name -> socket id."""
    async with NodeClients() as peer:
        sids: dict[str, str] = {}
        for name, index, version, transport in which:
            if index < len(nodes):
                sids[name] = await peer.connect(name, nodes[index].url, version=version,
                                                transport=transport, nsp=nsp,
                                                opts={"query": {"name": name}})
        await eventually(lambda: sum(len(n.io.of(nsp).sockets) for n in nodes) == len(sids))
        yield peer, sids


async def received(peer: NodeClients, names: list[str], event: str) -> dict[str, list[Any]]:
    """Wait for ``event`` at every client of ``names``; their args."""
    return {name: await peer.wait(name, event) for name in names}


async def nothing_more(peer: NodeClients, nodes: list[Node], names: list[str],
                       event: str) -> None:
    """No client of ``names`` got another ``event``: checked after a marker broadcast sent
    later from every server has reached them all (Redis keeps each publisher's order)."""
    for node in nodes:
        node.io.emit("marker", node.index)
    for name in names:
        for _ in nodes:
            await peer.wait(name, "marker")
        assert await peer.drain(name, event) == [], f"{name} got more {event}"


# -- broadcasts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_broadcasts_reach_every_client_of_every_server_exactly_once(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3) as nodes, \
            clients(nodes) as (peer, sids):
        everyone = list(sids)
        nodes[0].io.emit("news", "all", {"n": 1}, b"\x00\x01\xff")
        got = await received(peer, everyone, "news")
        assert all(args == ["all", {"n": 1}, b"\x00\x01\xff"] for args in got.values()), got
        # rooms: c joins "r1" on server 2, d joins "r1" and "r2" on server 1
        await peer.emit("c", "join", "r1")
        await peer.emit("d", "join", "r1")
        await peer.emit("d", "join", "r2")
        await eventually(lambda: "r1" in nodes[2].io.of("/").adapter.rooms
                         and "r2" in nodes[1].io.of("/").adapter.rooms)
        nodes[0].io.to("r1").emit("news", "r1")  # one room: its own channel
        assert await received(peer, ["c", "d"], "news") == {"c": ["r1"], "d": ["r1"]}
        nodes[2].io.to(["r1", "r2"]).except_("r2").emit("news", "r1-not-r2")
        assert await peer.wait("c", "news") == ["r1-not-r2"]
        nodes[1].io.to(sids["a"]).emit("news", "to a")  # a socket id is a room
        assert await peer.wait("a", "news") == ["to a"]
        nodes[0].io.except_("r1").emit("news", "not r1")
        assert await received(peer, ["a", "b"], "news") == {"a": ["not r1"], "b": ["not r1"]}
        nodes[1].io.local.emit("news", "local")  # server 1's clients only
        assert await received(peer, ["b", "d"], "news") == {"b": ["local"], "d": ["local"]}
        await nothing_more(peer, nodes, everyone, "news")
        # volatile: dropped for a polling client between two polls, so only the WebSocket one
        # is sure to get it
        nodes[2].io.volatile.compress(False).emit("news", "volatile")
        assert await peer.wait("a", "news") == ["volatile"]


@pytest.mark.parametrize("kind", KINDS)
async def test_namespaces_are_kept_apart(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 2) as nodes, \
            clients(nodes, (("a", 0, 4, "websocket"), ("b", 1, 4, "polling")), "/chat") as (
                peer, _):
        async with clients(nodes, (("m", 1, 2, "websocket"),)) as (main, _):
            nodes[0].io.of("/chat").emit("said", "hi", b"\x01")
            assert await received(peer, ["a", "b"], "said") == {
                "a": ["hi", b"\x01"], "b": ["hi", b"\x01"]}
            nodes[0].io.emit("said", "main")
            assert await main.wait("m", "said") == ["main"]
            await nothing_more(main, nodes, ["m"], "said")
            assert await peer.drain("b", "said") == []


# -- acks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_broadcast_with_acks_collects_the_answers_of_every_server(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3) as nodes, \
            clients(nodes) as (peer, sids):
        for name in sids:
            await peer.reply(name, "ask", f"answer-{name}", b"\x02")
        replies = await nodes[1].io.timeout(5).emit_with_ack("ask", "q")
        # each client answers with two values: a tuple between sockjet servers
        assert sorted(replies) == sorted((f"answer-{n}", b"\x02") for n in sids)
        # to one room across servers
        await peer.emit("b", "join", "r1")
        await peer.emit("c", "join", "r1")
        await eventually(lambda: "r1" in nodes[2].io.of("/").adapter.rooms)
        replies = await nodes[0].io.to("r1").timeout(5).emit_with_ack("ask")
        assert sorted(r[0] for r in replies) == ["answer-b", "answer-c"]


@pytest.mark.parametrize("kind", KINDS)
async def test_broadcast_with_acks_times_out_naming_the_clients_that_did_not_answer(
        kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 2) as nodes, \
            clients(nodes, (("a", 0, 4, "websocket"), ("b", 1, 4, "polling"),
                            ("c", 1, 2, "websocket"))) as (peer, sids):
        await peer.reply("a", "ask", "from a")
        await peer.reply("b", "ask", "from b")  # c never answers
        with pytest.raises(sockjet.AckTimeout) as caught:
            await nodes[0].io.timeout(0.5).emit_with_ack("ask")
        assert caught.value.missing == [sids["c"]]
        assert sorted(caught.value.responses) == ["from a", "from b"]


# -- fetch_sockets and remote sockets -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_fetch_sockets_returns_remote_sockets_that_act_through_redis(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3) as nodes, \
            clients(nodes) as (peer, sids):
        await peer.emit("c", "join", "r1")
        await eventually(lambda: "r1" in nodes[2].io.of("/").adapter.rooms)
        found = await nodes[0].io.fetch_sockets()
        assert sorted(s.id for s in found) == sorted(sids.values())
        by_name = {s.data["name"]: s for s in found}
        assert isinstance(by_name["a"], sockjet.Socket)
        remote = by_name["c"]
        assert isinstance(remote, RemoteSocket)
        assert remote.data == {"name": "c", "server": 2, "blob": b"\x00\xfe"}
        assert remote.rooms == {sids["c"], "r1"}
        assert remote.handshake.query["name"] == "c"
        assert remote.handshake.address == "127.0.0.1"
        # one room, on another server
        in_r1 = await nodes[1].io.in_("r1").fetch_sockets()
        assert [s.id for s in in_r1] == [sids["c"]]
        # what a remote socket does reaches the server that holds it
        remote.emit("direct", "to c", b"\x03")
        assert await peer.wait("c", "direct") == ["to c", b"\x03"]
        await remote.join("r9")
        await eventually(lambda: "r9" in nodes[2].io.of("/").adapter.rooms)
        await remote.leave("r1")
        await eventually(lambda: "r1" not in nodes[2].io.of("/").adapter.rooms)
        remote.disconnect()
        assert (await peer.wait("c", "disconnect"))[0] == "io server disconnect"
        await eventually(lambda: not nodes[2].io.of("/").sockets)
        assert len(await nodes[0].io.fetch_sockets()) == len(sids) - 1
        # local only
        assert [s.data["name"] for s in await nodes[0].io.local.fetch_sockets()] == ["a"]


# -- sockets_join / sockets_leave / disconnect_sockets --------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_sockets_join_leave_and_disconnect_reach_every_server(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3) as nodes, \
            clients(nodes) as (peer, sids):

        def rooms_of(name: str) -> set[str]:
            for node in nodes:
                if sids[name] in node.io.of("/").sockets:
                    return node.io.of("/").adapter.socket_rooms(sids[name])
            return set()

        nodes[0].io.sockets_join(["g1", "g2"])
        await eventually(lambda: all({"g1", "g2"} <= rooms_of(n) for n in sids))
        # a later one-room broadcast reaches them on every server (sharded: the room channel
        # that sockets_join made each server subscribe to)
        nodes[1].io.to("g1").emit("news", "g1")
        assert all(a == ["g1"] for a in (await received(peer, list(sids), "news")).values())
        nodes[2].io.in_(sids["b"]).sockets_leave("g1")
        await eventually(lambda: rooms_of("b") == {sids["b"], "g2"})
        nodes[1].io.in_("g1").except_(sids["a"]).disconnect_sockets()
        for name in ("c", "d"):
            assert (await peer.wait(name, "disconnect"))[0] == "io server disconnect"
        await eventually(lambda: sum(len(n.io.of("/").sockets) for n in nodes) == 2)
        nodes[0].io.disconnect_sockets(close=True)
        await eventually(lambda: sum(len(n.io.of("/").sockets) for n in nodes) == 0)


# -- server_side_emit -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_server_side_emit_with_and_without_ack(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3, requests_timeout=0.5) as nodes:
        assert await nodes[0].io.server_side_emit("hello", 1, b"\x04") == []
        await eventually(lambda: all(len(n.server_side) == 1 for n in nodes[1:]))
        assert nodes[1].server_side == [("hello", (1, b"\x04"))]
        assert nodes[0].server_side == []  # not to itself
        replies = await nodes[0].io.server_side_emit("hello", "q", ack=True)
        assert sorted(r["server"] for r in replies) == [1, 2]
        # a server without a handler never answers: AckTimeout with what came
        nodes[2].io.of("/").handlers.off("hello")
        with pytest.raises(sockjet.AckTimeout) as caught:
            await nodes[0].io.server_side_emit("hello", ack=True, timeout=0.3)
        assert [r["server"] for r in caught.value.responses] == [1]


# -- all_rooms, server_count ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_all_rooms_and_server_count_span_the_fleet(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 3) as nodes, \
            clients(nodes) as (peer, sids):
        await peer.emit("b", "join", "r-b")
        await peer.emit("c", "join", "r-c")
        await eventually(lambda: "r-c" in nodes[2].io.of("/").adapter.rooms)
        assert await nodes[0].io.all_rooms() == {*sids.values(), "r-b", "r-c"}
        assert await nodes[0].io.of("/chat").adapter.server_count() == 3
        async with fleet(kind, r.url, 1, others=3) as more:
            assert await more[0].io.of("/").adapter.server_count() == 4
        assert await nodes[0].io.of("/").adapter.server_count() == 3


# -- Redis going away -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_redis_restarting_never_stops_local_delivery_and_cross_server_resumes(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sockjet.adapters")
    async with redis_server() as r, fleet(kind, r.url, 2, requests_timeout=1) as nodes, \
            clients(nodes, (("a", 0, 4, "websocket"), ("b", 1, 2, "polling"))) as (peer, _):
        links = [n.io.of("/").adapter.link for n in nodes]  # type: ignore[attr-defined]
        await r.stop()
        await eventually(lambda: not any(link.up for link in links))
        nodes[0].io.emit("news", "during")  # this server's clients still get it
        assert await peer.wait("a", "news") == ["during"]
        with pytest.raises(sockjet.AdapterError, match="unreachable"):
            await nodes[0].io.fetch_sockets()
        with pytest.raises(sockjet.AdapterError):
            await nodes[0].io.server_side_emit("hello", ack=True)
        assert await nodes[0].io.local.fetch_sockets()  # local operations are fine
        await r.start()
        await eventually(lambda: all(link.up for link in links), timeout=10)
        nodes[0].io.emit("news", "after")
        assert await received(peer, ["a", "b"], "news") == {"a": ["after"], "b": ["after"]}
        assert await peer.drain("b", "news") == []  # "during" was not kept for later
        assert len(await nodes[1].io.fetch_sockets()) == 2
        messages = [rec.getMessage() for rec in caplog.records
                    if rec.name == "sockjet.adapters"]
        assert sum(" lost (" in m for m in messages) == 2  # once per server and outage
        assert sum("is back after" in m for m in messages) == 2
        assert not [rec for rec in caplog.records if rec.exc_info]


async def test_a_request_pending_when_redis_goes_away_fails_at_once() -> None:
    async with redis_server() as r, fleet("classic", r.url, 2, requests_timeout=30) as nodes:
        nodes[1].io.of("/").handlers.off("hello")  # never answers
        task = asyncio.ensure_future(nodes[0].io.server_side_emit("hello", ack=True))
        await asyncio.sleep(0)
        await r.stop()
        with pytest.raises(sockjet.AdapterError):
            await asyncio.wait_for(task, 5)  # not after the 30 s of requests_timeout


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreachable_redis_stops_the_server_from_starting_with_a_clear_error(
        kind: str, binding: str) -> None:
    async with redis_server() as r:
        url = r.url
    io = sockjet.Server(adapter=factory(kind, url))
    if binding == "native":
        with pytest.raises(sockjet.AdapterError, match=f"cannot reach Redis at {url}"):
            async with serve(io):
                pass
    else:
        from sockjet.bindings.asgi import ASGIApp

        sent: list[dict[str, Any]] = []
        messages = iter([{"type": "lifespan.startup"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await ASGIApp(io)({"type": "lifespan"}, receive, send)
        assert sent[0]["type"] == "lifespan.startup.failed"
        assert f"cannot reach Redis at {url}" in sent[0]["message"]
        # on uvicorn, the runner starts the server before lifespan
        with pytest.raises(sockjet.AdapterError, match=f"cannot reach Redis at {url}"):
            async with serve(io):
                pass


@pytest.mark.parametrize("kind", KINDS)
async def test_a_start_that_failed_on_redis_succeeds_once_redis_is_back(kind: str) -> None:
    async with redis_server() as r, fleet(kind, r.url, 1) as nodes:
        io = sockjet.Server(adapter=factory(kind, r.url))
        await r.stop()
        with pytest.raises(sockjet.AdapterError, match="cannot reach Redis"):
            await io.engine.startup()
        assert not io.engine.started
        await r.start()
        await io.engine.startup()  # tried again: subscribes and connects this time
        try:
            await eventually(lambda: nodes[0].io.of("/").adapter.link.up)
            assert await io.of("/").adapter.server_count() == 2
            heard: list[Any] = []
            io.on("hello", lambda *args: heard.append(args))
            await nodes[0].io.server_side_emit("hello", "again")
            await eventually(lambda: heard == [("again",)])
        finally:
            await io.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_server_stopped_and_started_again_is_in_the_fleet_again(kind: str) -> None:
    """A start that fails after the adapters connected closes them (the unwind), as does a
    shutdown: the next start makes new adapters on new connections."""
    async with redis_server() as r, fleet(kind, r.url, 1) as nodes:
        io = sockjet.Server(adapter=factory(kind, r.url))
        heard: list[Any] = []
        io.on("hello", lambda *args: heard.append(args))
        failures = [RuntimeError("a later hook failed")]

        async def later() -> None:
            if failures:
                raise failures.pop()

        async def nothing() -> None:
            pass

        io.engine.add_serving_hooks(later, nothing)

        async def in_the_fleet(word: str) -> None:
            assert await io.of("/").adapter.server_count() == 2
            await nodes[0].io.server_side_emit("hello", word)
            await eventually(lambda: heard[-1:] == [(word,)])

        with pytest.raises(RuntimeError, match="a later hook failed"):
            await io.engine.startup()
        first = io.of("/").adapter
        await io.engine.startup()
        assert io.of("/").adapter is not first
        await in_the_fleet("after a failed start")
        await io.engine.shutdown()
        await io.engine.startup()
        await in_the_fleet("after a shutdown")
        await io.close()
        assert io.of("/").adapter.closed


async def test_mounted_in_a_framework_the_adapter_connects_with_the_first_request() -> None:
    """A server mounted in Starlette gets no lifespan: its adapter connects before the first
    request it serves, and it is one of the fleet from then on."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    async with redis_server() as r, fleet("classic", r.url, 1, others=0) as nodes:
        io = sockjet.Server(adapter=factory("classic", r.url))
        app = Starlette(routes=[Mount("/live", app=io.asgi_app())])
        async with serve(app) as url:
            assert await nodes[0].io.of("/").adapter.server_count() == 1  # not connected yet
            client = sockjet.AsyncClient(url, path="/live/socket.io/", reconnection=False,
                                           transports=["websocket"])
            news: list[Any] = []
            client.on("news", news.append)
            await client.connect()
            try:
                assert io.engine.started
                assert await nodes[0].io.of("/").adapter.server_count() == 2
                nodes[0].io.emit("news", "from the other server")
                await eventually(lambda: news == ["from the other server"])
            finally:
                await client.disconnect()
                await io.close()  # nothing else would: Starlette never passes lifespan on


# -- what goes over Redis -------------------------------------------------------------------------


async def test_classic_wire_format_is_nodes() -> None:
    async with redis_server() as r, fleet("classic", r.url, 1) as nodes:
        watcher = aioredis.from_url(r.url)
        pubsub = watcher.pubsub()
        await pubsub.psubscribe("socket.io*")
        await pubsub.get_message(timeout=1)
        uid = nodes[0].io.of("/").adapter.uid  # type: ignore[attr-defined]
        assert len(uid) == 6 and uid.isalnum()
        nodes[0].io.to("room1").emit("hello", "world")
        message = await pubsub.get_message(timeout=5)
        assert message["channel"] == b"socket.io#/#room1#"
        assert unpack(message["data"]) == [
            uid, {"type": 2, "data": ["hello", "world"], "nsp": "/"},
            {"rooms": ["room1"], "except": [], "flags": {}}]
        nodes[0].io.sockets_join("r2")
        message = await pubsub.get_message(timeout=5)
        assert message["channel"] == b"socket.io-request#/#"
        assert unpack(message["data"]) == {"uid": uid, "type": 2, "opts": {
            "rooms": [], "except": []}, "rooms": ["r2"]}
        await pubsub.aclose()
        await watcher.aclose()


@pytest.mark.parametrize("mode", ["dynamic", "dynamic-private", "static"])
async def test_sharded_room_channels_follow_the_subscription_mode(mode: str) -> None:
    async with redis_server() as r, fleet("sharded", r.url, 2,
                                          subscription_mode=mode) as nodes, \
            clients(nodes, (("a", 0, 4, "websocket"), ("b", 1, 4, "websocket"))) as (
                peer, sids):
        await peer.emit("a", "join", "lobby")
        nodes[0].io.sockets_join("everyone")  # remote join: server 1 subscribes too

        async def channels() -> set[bytes]:
            return set(await r.command("PUBSUB", "SHARDCHANNELS"))

        base = {b"socket.io#/#", b"socket.io#/chat#"}
        uids = {f"socket.io#{nsp}#{n.io.of(nsp).adapter.uid}#".encode()  # type: ignore
                for n in nodes for nsp in ("/", "/chat")}
        if mode == "static":
            await eventually(lambda: "everyone" in nodes[1].io.of("/").adapter.rooms)
            assert {c for c in await channels() if c.count(b"#") == 3} - uids == set()
        else:
            expected = {b"socket.io#/#lobby#", b"socket.io#/#everyone#"}
            if mode == "dynamic-private":
                expected |= {f"socket.io#/#{sid}#".encode() for sid in sids.values()}
            for _ in range(200):
                found = {c for c in await channels() if c.count(b"#") == 3} - uids - base
                if found == expected:
                    break
                await asyncio.sleep(0.02)
            assert found == expected
        nodes[1].io.to("lobby").emit("news", "lobby")
        assert await peer.wait("a", "news") == ["lobby"]
        # the room empties: its channel goes (dynamic modes)
        await peer.disconnect("a")
        if mode != "static":
            await eventually(lambda: "lobby" not in nodes[0].io.of("/").adapter.rooms)
            for _ in range(200):
                if b"socket.io#/#lobby#" not in await channels():
                    break
                await asyncio.sleep(0.02)
            assert b"socket.io#/#lobby#" not in await channels()


async def test_responses_on_the_requesters_own_channel() -> None:
    async with redis_server() as r, fleet("classic", r.url, 2,
                                          publish_on_specific_response_channel=True) as nodes:
        watcher = aioredis.from_url(r.url)
        pubsub = watcher.pubsub()
        await pubsub.psubscribe("socket.io-response*")
        await pubsub.get_message(timeout=1)
        replies = await nodes[0].io.server_side_emit("hello", ack=True)
        assert [r["server"] for r in replies] == [1]
        message = await pubsub.get_message(timeout=5)
        uid = nodes[0].io.of("/").adapter.uid  # type: ignore[attr-defined]
        assert message["channel"] == f"socket.io-response#/#{uid}#".encode()
        await pubsub.aclose()
        await watcher.aclose()


# -- the emitter ----------------------------------------------------------------------------------


async def test_the_emitter_reaches_the_clients_of_every_server() -> None:
    async with redis_server() as r, fleet("classic", r.url, 2) as nodes, \
            clients(nodes, (("a", 0, 4, "websocket"), ("b", 1, 2, "polling"),
                            ("c", 1, 4, "polling"))) as (peer, sids):
        async with clients(nodes, (("x", 0, 4, "websocket"),), "/chat") as (chat, _):
            await peer.emit("b", "join", "r1")
            await eventually(lambda: "r1" in nodes[1].io.of("/").adapter.rooms)
            emitter = sockjet.RedisEmitter(r.url)
            await emitter.emit("news", "all", b"\x05")
            got = await received(peer, ["a", "b", "c"], "news")
            assert all(args == ["all", b"\x05"] for args in got.values())
            await emitter.to("r1").emit("news", "r1")
            assert await peer.wait("b", "news") == ["r1"]
            await emitter.except_("r1").volatile.emit("news", "not r1")
            assert await received(peer, ["a", "c"], "news") == {
                "a": ["not r1"], "c": ["not r1"]}
            await emitter.of("chat").emit("said", "to chat")
            assert await chat.wait("x", "said") == ["to chat"]
            await emitter.to(sids["a"]).sockets_join("fromemitter")
            await eventually(lambda: "fromemitter" in nodes[0].io.of("/").adapter.rooms)
            await emitter.in_("fromemitter").sockets_leave("fromemitter")
            await eventually(lambda: "fromemitter" not in nodes[0].io.of("/").adapter.rooms)
            await emitter.server_side_emit("hello", "from emitter")
            await eventually(lambda: all(n.server_side for n in nodes))
            assert nodes[0].server_side == [("hello", ("from emitter",))]
            await emitter.to("r1").disconnect_sockets()
            assert (await peer.wait("b", "disconnect"))[0] == "io server disconnect"
            with pytest.raises(ValueError, match="reserved"):
                await emitter.emit("connect")
            await emitter.close()
            # the blocking one, from a thread as a web view or a task would
            blocking = sockjet.BlockingRedisEmitter(r.url)
            await asyncio.to_thread(blocking.to(sids["c"]).emit, "news", "blocking")
            assert await peer.wait("c", "news") == ["blocking"]
            blocking.close()
            await nothing_more(peer, nodes, ["a", "c"], "news")


async def test_the_emitter_fails_clearly_without_redis() -> None:
    async with redis_server() as r:
        url = r.url
    with pytest.raises(sockjet.AdapterError, match=f"cannot publish to Redis at {url}"):
        await sockjet.RedisEmitter(url).emit("news")
    with pytest.raises(sockjet.AdapterError, match=f"cannot publish to Redis at {url}"):
        sockjet.BlockingRedisEmitter(url).emit("news")


# -- arguments ------------------------------------------------------------------------------------


async def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="key"):
        sockjet.RedisAdapter("redis://127.0.0.1:1", key="")
    with pytest.raises(ValueError, match="requests_timeout"):
        sockjet.RedisAdapter("redis://127.0.0.1:1", requests_timeout=0)
    with pytest.raises(ValueError, match="subscription_mode"):
        sockjet.RedisShardedAdapter("redis://127.0.0.1:1", subscription_mode="sometimes")
    with pytest.raises(ValueError, match="channel_prefix"):
        sockjet.RedisShardedAdapter("redis://127.0.0.1:1", channel_prefix="")
    with pytest.raises(TypeError, match=r"redis:// URL or a redis\.asyncio client"):
        sockjet.RedisAdapter(6379)
    with pytest.raises(ValueError, match="decode_responses=False"):
        sockjet.RedisAdapter(aioredis.Redis(decode_responses=True))
    with pytest.raises(ValueError, match="key"):
        sockjet.RedisEmitter("redis://127.0.0.1:1", key="")


@pytest.mark.parametrize("runner", ["native", "uvicorn"])
async def test_sockjet_run_says_in_one_line_that_redis_is_unreachable(
        runner: str, tmp_path: Path) -> None:
    async with redis_server() as r:
        url = r.url
    (tmp_path / "fleetapp.py").write_text(
        f"import sockjet\nio = sockjet.Server(adapter=sockjet.RedisAdapter({url!r}))\n")
    code, _, err = await run_command(SOCKJET, "run", "fleetapp:io", "--port", str(free_port()),
                                     "--runner", runner, cwd=tmp_path)
    assert code == 1
    assert err.decode().splitlines()[-1].startswith(f"sockjet: cannot reach Redis at {url}")
    assert b"Traceback" not in err and b"cannot listen" not in err


async def test_workers_that_cannot_reach_redis_say_so_and_serve_once_it_is_back(
        tmp_path: Path) -> None:
    """With --workers, a worker that cannot reach Redis logs one line and is tried again: the
    supervisor keeps the port, and the workers serve once Redis answers."""
    async with redis_server() as r:
        await r.stop()
        (tmp_path / "fleetapp.py").write_text(
            f"import sockjet\nio = sockjet.Server(adapter=sockjet.RedisAdapter({r.url!r}))\n")
        port = free_port()
        log = tmp_path / "sockjet.log"
        async with sockjet_process(tmp_path, "run", "fleetapp:io", "--port", str(port),
                                   "--workers", "2") as proc:
            await eventually(lambda: log.read_text().count(
                f"cannot start: cannot reach Redis at {r.url}") >= 2, timeout=10)
            assert "Traceback" not in log.read_text()
            await r.start()
            client = sockjet.AsyncClient(f"http://127.0.0.1:{port}", reconnection=False)
            for _ in range(50):  # until a worker is up
                try:
                    await client.connect()
                    break
                except (sockjet.ConnectError, OSError):
                    await asyncio.sleep(0.2)
            assert client.connected
            await client.disconnect()
            proc.send_signal(signal.SIGTERM)  # stopped as it should be: nothing left behind
            assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_a_missing_redis_package_names_the_extra() -> None:
    code, _, err = await run_command(sys.executable, "-c", (
        "import sys; sys.modules['redis'] = None\n"
        "import sockjet\n"
        "sockjet.RedisAdapter"))
    assert code != 0
    assert b"pip install 'sockjet[redis]'" in err


async def test_a_given_client_is_used_and_left_open() -> None:
    async with redis_server() as r:
        client = aioredis.from_url(r.url)
        io = sockjet.Server(adapter=sockjet.RedisAdapter(client, key="mine"))
        async with serve(io):
            assert await io.of("/").adapter.server_count() == 1
            assert await client.pubsub_numsub("mine-request#/#") == [(b"mine-request#/#", 1)]
        assert await client.ping()  # still usable: the application owns it
        await client.aclose()



# -- Redis Cluster --------------------------------------------------------------------------------


async def test_both_adapters_work_against_a_redis_cluster(
        caplog: pytest.LogCaptureFixture) -> None:
    """A ``redis://`` URL of any node of a cluster: sharded channels are read from the node
    owning their slot, plain pub/sub reaches every node, and the server count sums the
    nodes' subscriber counts."""
    async with redis_cluster(3) as rc:
        for kind in KINDS:
            async with AsyncExitStack() as stack:
                nodes: list[Node] = []
                for index, url in enumerate(rc.urls[:2]):
                    io = sockjet.Server(adapter=factory(kind, url))
                    holder: list[Node] = []
                    setup_server(index, io, holder)
                    holder.append(Node(index, io, await stack.enter_async_context(serve(io))))
                    nodes.append(holder[0])
                assert nodes[0].io.of("/").adapter.link.cluster  # type: ignore[attr-defined]
                assert await nodes[0].io.of("/").adapter.server_count() == 2
                peer, sids = await stack.enter_async_context(clients(
                    nodes, (("a", 0, 4, "websocket"), ("b", 1, 2, "polling"))))
                nodes[0].io.emit("news", "all", b"\x06")
                assert await received(peer, ["a", "b"], "news") == {
                    "a": ["all", b"\x06"], "b": ["all", b"\x06"]}
                await peer.emit("b", "join", "lobby")
                lobby_server = nodes[1].io.of("/").adapter
                await eventually(lambda a=lobby_server: "lobby" in a.rooms)  # type: ignore
                if kind == "sharded":  # server 1 reads the room's channel, on its owner node
                    await until_subscribed(rc, b"socket.io#/#lobby#")
                nodes[0].io.to("lobby").emit("news", "lobby")
                assert await peer.wait("b", "news") == ["lobby"]
                found = await nodes[0].io.fetch_sockets()
                assert sorted(s.id for s in found) == sorted(sids.values())
                replies = await nodes[0].io.server_side_emit("hello", ack=True)
                assert [r["server"] for r in replies] == [1]
                await peer.reply("b", "ask", "from b")
                await peer.reply("a", "ask", "from a")
                assert sorted(await nodes[1].io.timeout(5).emit_with_ack("ask")) == [
                    "from a", "from b"]
                # the room empties: its channel (maybe the only one on its node) goes
                await peer.disconnect("b")
                await eventually(lambda a=lobby_server: "lobby" not in a.rooms)  # type: ignore
                nodes[0].io.emit("news", "still")
                assert await peer.wait("a", "news") == ["still"]
        assert not [r for r in caplog.records if r.name == "sockjet.adapters"
                    and r.levelno >= logging.WARNING], caplog.text


async def until_subscribed(rc: Any, channel: bytes) -> None:
    for _ in range(250):
        counts = [await node.command("PUBSUB", "SHARDNUMSUB", channel) for node in rc.nodes]
        if sum(int(reply[1]) for reply in counts) >= 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"nobody subscribed to {channel!r}")


# -- worker processes on Redis --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_worker_processes_keep_a_redis_adapter_each_one_server_of_the_fleet(
        kind: str, tmp_path: Any) -> None:
    """``--workers 2`` with ``adapter=RedisAdapter(...)``: each worker connects on its own and
    is one server of the fleet, next to a third server in this process."""
    from test_workers import workers_serving, write_app

    async with redis_server() as r:
        write_app(tmp_path, f"""
            import os
            import sockjet

            io = sockjet.Server(adapter=sockjet.{FACTORY_NAMES[kind]}({r.url!r}))
            io.on("connection", lambda socket: socket.on("pid", os.getpid))
            io.on("pid", os.getpid)
            """)
        async with workers_serving(tmp_path, "app:io", 2) as (workers_url, _), \
                fleet(kind, r.url, 1, others=2) as nodes:
            pids = await nodes[0].io.server_side_emit("pid", ack=True)
            assert len(set(pids)) == 2  # both workers answered
            got: dict[int, list[Any]] = {}
            clients = []
            try:
                while len(got) < 2:  # clients until both workers have some
                    client = sockjet.AsyncClient(workers_url, transports=["websocket"])
                    news: list[Any] = []
                    client.on("news", lambda *args, news=news: news.append(args))
                    await client.connect()
                    clients.append(client)
                    got.setdefault(await client.emit_with_ack("pid"), []).append(news)
                    assert len(clients) < 50
                nodes[0].io.emit("news", "to every worker")
                await eventually(lambda: all(news == [("to every worker",)]
                                             for lists in got.values() for news in lists))
            finally:
                for client in clients:
                    await client.disconnect()
