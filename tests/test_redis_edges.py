"""The Redis adapters' edges, driven with raw Redis commands against a real redis-server: what
older or foreign peers may send (the per-socket requests of earlier adapters, SOCKETS, unknown
types, garbage), the bounds on what waits for Redis, and the emitter's smaller paths."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from conftest import eventually, serve
from redisutil import redis_server

import sockjet
from sockjet.adapters.wire import pack, unpack


@asynccontextmanager
async def one_server(url: str, **options: Any) -> AsyncIterator[tuple[sockjet.Server, Any]]:
    """A sockjet server on the classic adapter with one Python client, and a raw Redis client
    subscribed to the response channel (what the server answers)."""
    io = sockjet.Server(adapter=sockjet.RedisAdapter(url, **options))
    async with serve(io) as http:
        client = sockjet.AsyncClient(http)
        await client.connect()
        raw = aioredis.from_url(url)
        pubsub = raw.pubsub()
        await pubsub.subscribe("socket.io-response#/#")
        await pubsub.get_message(timeout=2)
        try:
            yield io, (raw, pubsub, client)
        finally:
            await client.disconnect()
            await pubsub.aclose()
            await raw.aclose()


async def answer(pubsub: Any) -> Any:
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None, "no answer"
    return unpack(message["data"])


async def test_requests_of_earlier_adapters_and_foreign_peers() -> None:
    async with redis_server() as r, one_server(r.url) as (io, (raw, pubsub, _client)):
        sid = next(iter(io.of("/").sockets))
        request = "socket.io-request#/#"
        # SOCKETS (type 0): answered with the ids of the sockets in the rooms
        await raw.publish(request, json.dumps({"uid": "other", "type": 0, "requestId": "q1",
                                               "rooms": [sid]}))
        assert await answer(pubsub) == {"requestId": "q1", "sockets": [sid]}
        # the per-socket join / leave / disconnect of earlier adapters
        await raw.publish(request, json.dumps({"uid": "other", "type": 2, "sid": sid,
                                               "room": "old", "requestId": "q2"}))
        assert await answer(pubsub) == {"requestId": "q2"}
        assert "old" in io.of("/").adapter.socket_rooms(sid)
        await raw.publish(request, pack({"uid": "other", "type": 3, "sid": sid, "room": "old",
                                         "requestId": "q3"}))
        assert await answer(pubsub) == {"requestId": "q3"}
        assert "old" not in io.of("/").adapter.socket_rooms(sid)
        # garbage, an unknown type, a socket that is not here, a foreign broadcast: ignored
        await raw.publish(request, b"\xc1not msgpack")
        await raw.publish(request, json.dumps({"uid": "other", "type": 42}))
        await raw.publish(request, json.dumps([1, 2]))
        await raw.publish(request, json.dumps({"uid": "other", "type": 2, "sid": "nobody",
                                               "room": "x", "requestId": "q4"}))
        await raw.publish("socket.io#/#", b"\xc1")
        await raw.publish("socket.io#/#", pack(["other", {"type": 2, "data": ["x"],
                                                          "nsp": "/elsewhere"}, {}]))
        await raw.publish(request, json.dumps({"uid": "other", "type": 4, "sid": sid,
                                               "close": False, "requestId": "q5"}))
        assert await answer(pubsub) == {"requestId": "q5"}  # the previous ones had no answer
        await eventually(lambda: not io.of("/").sockets)


async def test_a_burst_beyond_max_pending_is_dropped_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sockjet.adapters")
    async with redis_server() as r, one_server(r.url) as (io, _):
        link = io.of("/").adapter.link  # type: ignore[attr-defined]
        link.max_pending = 10_000
        for _ in range(5):
            io.emit("big", b"x" * 4000)  # two fit, the other three do not
        assert link.dropped == 3
        warnings = [rec for rec in caplog.records if "waiting for Redis" in rec.getMessage()]
        assert len(warnings) == 1
        await eventually(lambda: not link._outgoing)
        io.emit("small", "after")  # sent again once the writer caught up
        assert link.dropped == 3


async def test_broadcast_acks_pending_when_redis_goes_away_fail_at_once_with_what_came() -> None:
    async with redis_server() as r:
        servers = [sockjet.Server(adapter=sockjet.RedisAdapter(r.url)) for _ in range(2)]
        async with serve(servers[0]) as url0, serve(servers[1]) as url1:
            clients = [sockjet.AsyncClient(url0), sockjet.AsyncClient(url1)]
            clients[0].on("ask", lambda: "near")
            answered = asyncio.Event()

            async def far() -> str:
                await answered.wait()  # does not answer until Redis is gone
                return "far"

            clients[1].on("ask", far)
            for client in clients:
                await client.connect()
            pending = asyncio.ensure_future(servers[0].timeout(30).emit_with_ack("ask"))
            asking: Any = servers[0].of("/").adapter
            # the other server reported its client, which has not answered
            await eventually(lambda: any(request.pending_acks
                                         for request in asking._ack_requests.values()))
            await r.stop()
            with pytest.raises(sockjet.AdapterError, match="unreachable") as caught:
                await asyncio.wait_for(pending, 5)  # not after 30 s
            assert caught.value.responses == ["near"]
            assert caught.value.missing == [clients[1].id]
            answered.set()
            for client in clients:
                await client.disconnect()


async def test_the_emitter_with_given_clients_and_its_arguments() -> None:
    async with redis_server() as r, one_server(r.url) as (_io, (raw, _, client)):
        got: list[Any] = []
        client.on("message", lambda *args: got.append(args))
        emitter = sockjet.RedisEmitter(raw, key="socket.io")
        await emitter.compress(False).send("hi")
        await eventually(lambda: got == [("hi",)])
        given = redis.Redis.from_url(r.url)
        blocking = sockjet.BlockingRedisEmitter(given)
        blocking.of("/").send("again")
        await eventually(lambda: got == [("hi",), ("again",)])
        # a client given to an emitter stays the caller's: close() leaves it open
        blocking.close()
        await emitter.close()
        assert given.ping() and await raw.ping()
        blocking.send("still")
        await emitter.send("open")
        await eventually(lambda: got[2:] == [("still",), ("open",)])
        given.close()
        assert emitter.of("chat").emission.nsp == "/chat"
        with pytest.raises(TypeError):
            emitter.of(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="key"):
            sockjet.BlockingRedisEmitter(r.url, key="")
        with pytest.raises(TypeError):
            await emitter.to([1]).emit("x")  # type: ignore[list-item]


def test_what_goes_over_redis_is_packed_once_and_read_both_ways() -> None:
    packed = pack({"set": {1}, "tuple": (1, 2), "bytes": b"\x00"})
    assert unpack(packed) == {"set": [1], "tuple": [1, 2], "bytes": b"\x00"}
    assert unpack(b'{"json": true}') == {"json": True}
    with pytest.raises(ValueError):
        unpack(b"\xc1")


def test_javascript_dates_in_nodes_msgpack_read_as_node_sends_them_to_clients() -> None:
    """notepack.io (Node's classic adapter) packs a Date as a msgpack timestamp (32, 64 or 96
    bits; the bytes below are its own); a Node server sends its clients ``date.toJSON()``."""
    for timestamp, iso in (
            ("d6ff66322ec0", "2024-05-01T12:00:00.000Z"),
            ("d7ff1d53530066322ec0", "2024-05-01T12:00:00.123Z"),
            ("c70cff3b8b87c0ffffffffffffffff", "1969-12-31T23:59:59.999Z"),
            ("c70cff1dcd6500fffffff18ff42880", "0005-01-01T00:00:00.500Z")):
        date = bytes.fromhex(timestamp)
        payload = b"\x93" + pack("socket_connected") + b"\x81" + pack("at") + date + date
        assert unpack(payload) == ["socket_connected", {"at": iso}, iso]
    # outside years 1-9999 (JavaScript writes "+010000-01-01T00:00:00.000Z"): its count of ms
    assert unpack(bytes.fromhex("c70cff000000000000003afff44180")) == 253402300800000
    # what only looks like one (those bytes in a binary argument) stays as it is
    data = ["x", {"bin": b"\xd6\xff\x00\x00\x00\x00", "n": [1.5, None]}]
    assert unpack(pack(data)) == data
