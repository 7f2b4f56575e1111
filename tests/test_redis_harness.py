"""The harness of the Redis cross-server tests, checked with Node peers only: real Redis
(standalone, restarted, cluster), real socket.io 4.8 servers on the official Redis adapters,
real 2.x/4.x clients and the official Redis emitter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nodepeers import NodeClients, NodeRedisServer, node_emitter
from redisutil import redis_cluster, redis_server


async def retry(attempt: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """``attempt()``'s result once it does not raise an AssertionError (a NodePeerError, such
    as a ``wait`` timing out, is one); after ``timeout`` its last error is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def test_classic_adapter_servers_clients_emitter_and_redis_restart() -> None:
    async with (redis_server() as redis,
                NodeRedisServer(None, redis.url, requestsTimeout=3000) as a,
                NodeRedisServer(None, redis.url, requestsTimeout=3000) as b,
                NodeClients() as clients):
        sid4 = await clients.connect("c4", a.url, version=4, transport="websocket")
        sid2 = await clients.connect("c2", b.url, version=2, transport="polling")
        assert await a.call("server_count") == 2

        # a broadcast from A reaches A's client and, over Redis, B's; binary kept
        await a.call("emit", event="news", args=["hi", b"\x00\xff"])
        assert await clients.wait("c4", "news") == ["hi", b"\x00\xff"]
        assert await clients.wait("c2", "news") == ["hi", b"\x00\xff"]

        # what A's server sees of the cluster: both sockets, data set on B included
        await b.call("socket_data", sid=sid2, data={"user": "bea"})
        sockets = {s["id"]: s for s in await a.call("fetch_sockets")}
        assert set(sockets) == {sid4, sid2}
        assert sockets[sid2]["data"] == {"user": "bea"}
        assert sid4 in sockets[sid4]["rooms"]

        # a server-side emit with an ack is answered by B only
        reply = await a.call("server_side_emit", event="ping", args=[1], ack=True)
        assert reply == {"responses": [{"node": b.pid}]}
        assert [e for e in await b.events() if e["type"] == "server_side"] == [
            {"type": "server_side", "nsp": "/", "event": "ping", "args": [1], "ack": True}]
        assert [e for e in await a.events() if e["type"] == "server_side"] == []

        # client acks over Redis: A asks both clients
        await clients.reply("c4", "question", "from v4")
        await clients.reply("c2", "question", "from v2")
        answer = await a.call("emit_with_ack", event="question", args=[], timeout_ms=3000)
        assert sorted(answer["responses"]) == ["from v2", "from v4"]
        assert await clients.emit("c2", "hello", 2, ack=True) == [{"node": True,
                                                                   "event": "hello"}]
        assert {"type": "event", "nsp": "/", "id": sid2, "event": "hello", "args": [2],
                "ack": True} in await b.events()

        # the emitter: a room of A's client only, then a broadcast that B's client gets after
        # the room broadcast (one Redis connection, in order): B's client never got the first
        await a.call("socket_join", sid=sid4, room="room4")
        await node_emitter(redis.url, [
            {"to": ["room4"], "event": "from-emitter", "args": ["room4", b"\x01"]},
            {"event": "barrier", "args": []},
            {"op": "sockets_join", "rooms": ["everyone"]},
        ])
        assert await clients.wait("c4", "from-emitter") == ["room4", b"\x01"]
        await clients.wait("c2", "barrier")
        assert await clients.drain("c2", "from-emitter") == []

        async def everyone_joined() -> None:
            joined = await a.call("fetch_sockets", to=["everyone"])
            assert {s["id"] for s in joined} == {sid4, sid2}

        await retry(everyone_joined)

        # Redis goes away and comes back on the same port: the node-redis clients reconnect
        # and resubscribe on their own (an emit published before B's subscription is back is
        # lost, hence the retries)
        await redis.stop()
        await redis.start()

        async def broadcast_through() -> None:
            await a.call("emit", event="after-restart", args=[])
            await clients.wait("c2", "after-restart", timeout=0.2)

        async def both_subscribed() -> None:
            assert await a.call("server_count") == 2

        await retry(broadcast_through)
        await retry(both_subscribed)


async def test_sharded_adapter_broadcast() -> None:
    sharded = {"adapter": "sharded", "subscriptionMode": "dynamic"}
    async with (redis_server() as redis,
                NodeRedisServer(None, redis.url, **sharded) as a,
                NodeRedisServer(None, redis.url, **sharded) as b,
                NodeClients() as clients):
        await clients.connect("c4", a.url, version=4, transport="websocket")
        sid2 = await clients.connect("c2", b.url, version=2, transport="polling")
        assert await a.call("server_count") == 2
        await a.call("emit", event="news", args=["sharded"])
        assert await clients.wait("c4", "news") == ["sharded"]
        assert await clients.wait("c2", "news") == ["sharded"]

        # a room of its own channel in "dynamic" mode, which B subscribes to on the join
        # without waiting for Redis: retried until the subscription is in place
        await b.call("socket_join", sid=sid2, room="lobby")

        async def room_broadcast() -> None:
            await a.call("emit", to=["lobby"], event="lobby-news", args=[])
            await clients.wait("c2", "lobby-news", timeout=0.2)

        await retry(room_broadcast, timeout=5)
        assert await clients.drain("c4", "lobby-news") == []


async def test_redis_cluster_comes_up() -> None:
    async with redis_cluster(3) as cluster:
        assert len(set(cluster.ports)) == 3
        infos = await cluster.info()
        assert [i["cluster_state"] for i in infos] == ["ok"] * 3
        assert all(i["cluster_known_nodes"] == "3" for i in infos)
