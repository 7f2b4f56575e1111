"""The Admin UI over a mixed fleet: a Node socket.io 4.8 server instrumented with the official
``@socket.io/admin-ui`` 0.5 and a sockjet server instrumented with ``sockjet.instrument``, on
one real Redis with the classic Redis adapter on both sides. A UI connected to either server
sees the whole fleet: the stats of both servers, the sockets of both (with their clients and
transports, carried in ``socket.data._admin`` by ``fetchSockets``), the sockets that connect
to the other server as they do; and its commands reach the clients of the other server."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from conftest import eventually, serve
from nodepeers import NodeClients, NodeRedisServer
from redisutil import redis_server
from test_admin_ui import Watcher

import sockjet

#: what a JavaScript Date becomes in a Socket.IO packet (toISOString), which the UI parses
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
STATS_FIELDS = {"serverId", "hostname", "pid", "uptime", "clientsCount", "pollingClientsCount",
                "aggregatedEvents", "namespaces"}


@dataclass
class Fleet:
    """The two servers and the clients of ``peer``: ``n`` (WebSocket) on the Node server, ``s``
    (polling only) on the sockjet server."""

    node: NodeRedisServer
    io: sockjet.Server
    url: str
    peer: NodeClients
    sids: dict[str, str]

    async def node_client_id(self, sid: str) -> str:
        """The client id the UI shows for a socket of the Node server: the first 12
        characters of its Engine.IO id, as the Node package takes them."""
        return str((await self.node.call("socket_info", sid=sid))["engineId"])[:12]

    def sockjet_client_id(self, sid: str) -> str:
        return self.io.of("/").sockets[sid].conn.engine.sid[:12]


@asynccontextmanager
async def fleet() -> AsyncIterator[Fleet]:
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(redis_server())
        node = await stack.enter_async_context(NodeRedisServer(
            None, redis.url, requestsTimeout=2000,
            admin={"serverId": "node-1", "mode": "development"}))
        io = sockjet.Server(adapter=sockjet.RedisAdapter(redis.url, requests_timeout=2))
        io.on("connection", lambda socket: socket.data.update(server="sockjet"))
        sockjet.instrument(io, auth=False, server_id="py-1")
        url = await stack.enter_async_context(serve(io))
        peer = await stack.enter_async_context(NodeClients())
        sids = {"n": await peer.connect("n", node.url, transport="websocket"),
                "s": await peer.connect("s", url, transport="polling")}
        await eventually(lambda: sids["s"] in io.of("/").sockets)
        yield Fleet(node, io, url, peer, sids)


def check_stats(stats: dict[str, Any], pid: int) -> None:
    """A ``server_stats`` report has what the UI reads, of the right types."""
    assert set(stats) == STATS_FIELDS, stats
    assert stats["pid"] == pid and stats["hostname"]
    assert isinstance(stats["uptime"], int | float) and stats["uptime"] > 0
    assert isinstance(stats["clientsCount"], int) and stats["clientsCount"] >= 1
    assert isinstance(stats["pollingClientsCount"], int)
    for event in stats["aggregatedEvents"]:
        assert {"timestamp", "type", "count"} <= set(event) <= {"timestamp", "type", "count",
                                                                "subType"}
    # each server counts its own sockets: one client on "/" each
    assert {"name": "/", "socketsCount": 1} in stats["namespaces"]
    assert "/admin" in {n["name"] for n in stats["namespaces"]}


async def test_a_ui_on_either_server_sees_the_stats_and_sockets_of_both() -> None:
    async with fleet() as fl, Watcher(fl.url, auth=None) as on_py, \
            Watcher(fl.node.url, auth=None) as on_node:
        n, s = fl.sids["n"], fl.sids["s"]
        expected = {
            n: ("websocket", await fl.node_client_id(n), {}),
            s: ("polling", fl.sockjet_client_id(s), {"server": "sockjet"}),
        }
        for ui in (on_py, on_node):
            # every server's report reaches the UIs of every server (a broadcast on the admin
            # namespace, through Redis); both report every 2 s
            for server_id, pid in (("node-1", fl.node.pid), ("py-1", os.getpid())):
                stats = await ui.next("server_stats", lambda st, i=server_id: st["serverId"] == i)
                check_stats(stats[0], pid)
            (sockets,) = await ui.next("all_sockets")
            by_id = {sock["id"]: sock for sock in sockets}
            for sid, (transport, client_id, data) in expected.items():
                sock = by_id[sid]
                # Node leaves out what it lacks (JSON drops undefined)
                assert (sock["nsp"], sock.get("transport"), sock.get("clientId"),
                        sock["data"]) == ("/", transport, client_id, data), sock
                assert sock["rooms"] == [sid]
                assert sock["handshake"]["query"]["EIO"] == "4"
                assert sock["handshake"]["address"].endswith("127.0.0.1")
        # the UI on the Node server, connected second, lists the first UI's socket (of the
        # sockjet server's admin namespace) too
        (sockets,) = await on_node.next("all_sockets")
        assert {"nsp": "/admin", "id": on_py.client.id} in [
            {"nsp": sock["nsp"], "id": sock["id"]} for sock in sockets]


async def test_events_and_commands_cross_between_node_and_sockjet() -> None:
    async with fleet() as fl, Watcher(fl.url, auth=None) as on_py, \
            Watcher(fl.node.url, auth=None) as on_node:
        for ui in (on_py, on_node):
            await ui.next("all_sockets")
        peer = fl.peer
        # a socket connecting to one server shows on the UI of the other (Node's report goes
        # through Redis with a Date, which must reach the UI as Node's own UIs get it)
        n2 = await peer.connect("n2", fl.node.url, transport="websocket")
        socket, date = await on_py.next("socket_connected", lambda sock, d: sock["id"] == n2)
        assert (socket["nsp"], socket["transport"]) == ("/", "websocket")
        assert socket["clientId"] == await fl.node_client_id(n2)
        assert isinstance(date, str) and ISO_DATE.fullmatch(date), date
        s2 = await peer.connect("s2", fl.url, transport="polling")
        socket, date = await on_node.next("socket_connected", lambda sock, d: sock["id"] == s2)
        assert (socket["nsp"], socket["transport"]) == ("/", "polling")
        assert socket["clientId"] == fl.sockjet_client_id(s2) and ISO_DATE.fullmatch(date)
        # reported before the server's connection handlers run (Node's listener is prepended
        # too): the data they set follows as an update
        assert socket["data"] == {}
        (update,) = await on_node.next("socket_updated", lambda u: u["id"] == s2)
        assert update == {"id": s2, "nsp": "/", "data": {"server": "sockjet"}}

        # an emit to the whole namespace from either UI reaches the clients of both servers
        on_py.emit("emit", "/", None, "from-py", {"n": 1})
        on_node.emit("emit", "/", None, "from-node", {"n": 2})
        for name in ("n", "s", "n2", "s2"):
            assert await peer.wait(name, "from-py") == [{"n": 1}]
            assert await peer.wait(name, "from-node") == [{"n": 2}]

        # each UI disconnects a socket of the other server; the other server's report of it
        # comes back to the UI that asked
        on_py.emit("_disconnect", "/", False, n2)
        on_node.emit("_disconnect", "/", False, s2)
        assert (await peer.wait("n2", "disconnect"))[0] == "io server disconnect"
        assert (await peer.wait("s2", "disconnect"))[0] == "io server disconnect"
        _, _, reason, date = await on_py.next("socket_disconnected",
                                              lambda nsp, i, r, d: i == n2)
        assert reason == "server namespace disconnect" and ISO_DATE.fullmatch(date)
        _, _, reason, _ = await on_node.next("socket_disconnected",
                                             lambda nsp, i, r, d: i == s2)
        assert reason == "server namespace disconnect"
        # the others stay
        assert (await peer.state("n"))["connected"] and (await peer.state("s"))["connected"]
