"""``sockjet.instrument``: the Socket.IO Admin UI protocol (``@socket.io/admin-ui`` 0.5).

Protocol-level tests drive a real server with Python clients: the UI's side is a client of
the admin namespace, logged in as the UI logs in; the watched side are plain clients. The
browser test runs the Admin UI's own build (from the npm package) in headless Chromium against
a sockjet server with socket.io-client 2.x and 4.x sockets on both transports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from conftest import NODE_DIR, eventually, free_port, run_node_json, serve

import sockjet
from sockjet.codecs.engineio import byte_length
from sockjet.socketio.observer import Observers, SocketIOObserver
from sockjet.tools import admin as admin_module
from sockjet.tools.admin import EventBuffer

PASSWORD = "s3cret-é"
#: cost 4, the lowest bcrypt allows: the tests log in many times
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
AUTH = {"type": "basic", "username": "admin", "password": HASH}
CREDENTIALS = {"username": "admin", "password": PASSWORD}
ALL_FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT",
                "AGGREGATED_EVENTS", "ALL_EVENTS"]
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
#: where the screenshots of the docs are refreshed, when SOCKJET_DOC_SCREENSHOTS=1 asks for it
#: (else they go to the test's temporary directory, and the working tree stays as it was)
DOC_IMAGES = Path(__file__).parent.parent / "docs" / "images"


class Watcher:
    """A client of the admin namespace that records every event it gets."""

    def __init__(self, url: str, auth: Any = CREDENTIALS, nsp: str = "/admin",
                 **options: Any) -> None:
        self.client = sockjet.AsyncClient(url + nsp, auth=auth, reconnection=False, **options)
        self.events: list[tuple[str, list[Any]]] = []
        self.client.on_any(lambda event, *args: self.events.append((event, list(args))))

    async def __aenter__(self) -> Watcher:
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    def of(self, event: str) -> list[list[Any]]:
        return [args for name, args in self.events if name == event]

    async def next(self, event: str, where: Callable[..., bool] = lambda *a: True,
                   timeout: float = 5) -> list[Any]:
        """The first ``event`` whose arguments satisfy ``where`` (waiting for it)."""
        found: list[list[Any]] = []

        def seen() -> bool:
            found[:] = [args for args in self.of(event) if where(*args)]
            return bool(found)

        await eventually(seen, timeout)
        return found[0]

    def emit(self, event: str, *args: Any) -> None:
        self.client.emit(event, *args)


class User:
    """A watched client: what it receives, by event."""

    def __init__(self, url: str, nsp: str = "/", **options: Any) -> None:
        self.client = sockjet.AsyncClient(url + nsp, reconnection=False, **options)
        self.got: list[tuple[str, list[Any]]] = []
        self.client.on_any(lambda event, *args: self.got.append((event, list(args))))
        self.reasons: list[str] = []
        self.client.on("disconnect", self.reasons.append)

    async def __aenter__(self) -> User:
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    @property
    def id(self) -> str:
        assert self.client.id is not None
        return self.client.id


def app(server_options: dict[str, Any] | None = None,
        **instrument_options: Any) -> tuple[sockjet.Server, sockjet.AdminUI]:
    """A server whose sockets answer ``join``/``leave``/``shout`` and the admin UI on it."""
    io = sockjet.Server(**(server_options or {}))

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.data["user"] = socket.handshake.auth.get("user", "anon")
        socket.on("join", lambda room: socket.join(room))
        socket.on("leave", lambda room: socket.leave(room))
        socket.on("shout", lambda text: socket.emit("echo", text.upper()))

    io.of("/chat").on("connection", lambda socket: socket.join("general"))
    options = {"auth": AUTH, **instrument_options}
    return io, sockjet.instrument(io, **options)


@asynccontextmanager
async def running(**instrument_options: Any) -> AsyncIterator[tuple[str, sockjet.Server,
                                                                    sockjet.AdminUI]]:
    io, admin = app(**instrument_options)
    async with serve(io) as url:
        yield url, io, admin


# -- login ------------------------------------------------------------------------------------


async def test_login_gives_a_session_then_config_and_every_socket() -> None:
    async with running(server_id="alpha") as (url, io, admin), \
            User(url, auth={"user": "ann"}) as ann:
        io.of("/").sockets[ann.id].data.update(tags={"a"}, when=Path("/x"), deep={1: [(2,)]})
        ui = await Watcher(url).__aenter__()
        (session,) = await ui.next("session")
        assert re.fullmatch(r"[0-9a-f]+\.[0-9a-f]{16}\.[0-9a-f]{32}", session)
        assert admin.session_valid(session)
        (config,) = await ui.next("config")
        assert config == {"supportedFeatures": ALL_FEATURES}
        (sockets,) = await ui.next("all_sockets")
        by_id = {s["id"]: s for s in sockets}
        mine = by_id[ann.id]
        assert mine["nsp"] == "/"
        # made plain for JSON: sets as lists, keys as text, other objects as their str()
        assert mine["data"] == {"user": "ann", "tags": ["a"], "when": "/x", "deep": {"1": [[2]]}}
        assert mine["rooms"] == [ann.id]
        engine_sid = io.of("/").sockets[ann.id].conn.engine.sid
        assert mine["clientId"] == engine_sid[:12]
        assert mine["transport"] in ("polling", "websocket")
        hs = mine["handshake"]
        assert hs["address"] == "127.0.0.1" and hs["url"].startswith("/socket.io/?EIO=4")
        assert hs["query"]["EIO"] == "4" and hs["secure"] is False
        assert isinstance(hs["issued"], int) and hs["time"].endswith("GMT")
        assert "auth" not in hs  # never shown (tokens)
        # the UI's own socket is listed too, in its namespace, without the private _admin
        assert [s["nsp"] for s in sockets if s["id"] == ui.client.id] == ["/admin"]
        assert all("_admin" not in s["data"] for s in sockets)
        # the same session lets the UI back in without the password, as after a page reload
        async with Watcher(url, auth={"sessionId": session}) as again:
            await again.next("config")
            assert again.of("session") == []
        await ui.__aexit__()


def test_session_ids_are_signed_and_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = sockjet.instrument(sockjet.Server(), auth=AUTH)
    session = admin.new_session()
    assert admin.session_valid(session)
    # any server with the same credentials takes it (a cluster, worker processes, a restart)
    assert sockjet.instrument(sockjet.Server(), auth=AUTH).session_valid(session)
    other = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
    assert not sockjet.instrument(sockjet.Server(), auth={**AUTH, "password": other}) \
        .session_valid(session)
    body, _, mac = session.rpartition(".")
    forged = f"{int(body.split('.')[0], 16) + 1:x}.{body.split('.')[1]}.{mac}"
    for bad in (forged, session[:-1], "", 42, None, "a.b", "zz.00.00"):
        assert not admin.session_valid(bad)
    monkeypatch.setattr(admin_module, "SESSION_DURATION", 0)
    assert not admin.session_valid(session)
    open_ui = sockjet.instrument(sockjet.Server(), auth=False)
    assert not open_ui.session_valid(session)
    with pytest.raises(RuntimeError):
        open_ui.new_session()


@pytest.mark.parametrize("auth", [
    {"username": "admin", "password": "wrong"},
    {"username": "root", "password": PASSWORD},
    {"username": "admin"},
    {"sessionId": "0123456789abcdef"},
    None,
])
async def test_wrong_credentials_are_refused(auth: Any) -> None:
    async with running() as (url, _, _):
        ui = Watcher(url, auth=auth)
        with pytest.raises(sockjet.ConnectError, match="invalid credentials"):
            await ui.client.connect()
        await ui.client.disconnect()


async def test_without_auth_anyone_may_connect() -> None:
    async with running(auth=False) as (url, _, _), Watcher(url, auth=None) as ui:
        await ui.next("config")
        assert ui.of("session") == []


async def test_a_long_password_counts_by_its_first_72_bytes_as_bcrypt_does() -> None:
    long = "p" * 80
    hashed = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    async with running(auth={**AUTH, "password": hashed}) as (url, _, _):
        async with Watcher(url, auth={"username": "admin", "password": long}) as ui:
            await ui.next("config")


def test_the_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError):
        sockjet.instrument(sockjet.Server())  # type: ignore[call-arg]  # auth is required
    for auth in ({"type": "basic", "username": "admin", "password": "plain"},
                 {"type": "digest"}, True, {"type": "basic", "password": HASH}):
        with pytest.raises(ValueError):
            sockjet.instrument(sockjet.Server(), auth=auth)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        sockjet.instrument(sockjet.Server(), auth=False, mode="test")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sockjet.instrument(object(), auth=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sockjet.instrument(sockjet.Server(), auth=False, server_id=1)  # type: ignore[arg-type]
    io = sockjet.Server()
    sockjet.instrument(io, auth=False)
    with pytest.raises(RuntimeError, match="already"):
        sockjet.instrument(io, auth=False)
    with pytest.raises(TypeError, match="SocketIOObserver"):
        io.observe(object())  # type: ignore[arg-type]
    # another observer (the metrics, say) shares the slot: all are told
    assert isinstance(io.observer, Observers)  # the instrumentation's two already
    before, other = io.observer.observers, SocketIOObserver()
    io.observe(other)
    assert isinstance(io.observer, Observers) and io.observer.observers == (*before, other)
    assert io.of("/").observer is io.observer
    io.observe(other)  # twice is once
    assert io.observer.observers == (*before, other)
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    with pytest.raises(ImportError, match=r"sockjet\[admin\]"):
        sockjet.instrument(sockjet.Server(), auth=AUTH)
    sockjet.instrument(sockjet.Server(), auth=False)  # bcrypt is only needed for a password


# -- server_stats -----------------------------------------------------------------------------


async def test_server_stats_every_two_seconds_with_the_counts_of_each_second() -> None:
    async with running(server_id="alpha", mode="production") as (url, _, _), \
            Watcher(url) as ui, User(url) as ann, User(url, transports=["polling"],
                                                      upgrade=False):
        first = (await ui.next("server_stats"))[0]
        assert first["serverId"] == "alpha" and first["pid"] > 0 and first["hostname"]
        assert first["uptime"] > 0
        assert {n["name"] for n in first["namespaces"]} == {"/", "/admin", "/chat"}
        ann.client.emit("shout", "hé")
        await eventually(lambda: any(args == ["HÉ"] for _, args in ann.got))
        await eventually(lambda: len(ui.of("server_stats")) >= 2, 5)
        second = ui.of("server_stats")[1][0]
        assert second["clientsCount"] == 3 and second["pollingClientsCount"] >= 1
        assert {"name": "/", "socketsCount": 2} in second["namespaces"]
        counts: dict[str, int] = {}
        for stats in ui.of("server_stats"):
            for event in stats[0]["aggregatedEvents"]:
                assert event["timestamp"] % 1000 == 0
                key = event["type"] + ("/" + event["subType"] if "subType" in event else "")
                counts[key] = counts.get(key, 0) + event["count"]
        assert counts["rawConnection"] >= 3
        assert counts["packetsIn"] >= 4 and counts["packetsOut"] >= 4
        assert counts["bytesIn"] > counts["packetsIn"]


async def test_packets_and_bytes_are_counted_as_node_counts_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact counts for one known exchange: each Engine.IO message (a Socket.IO packet or a
    binary attachment) in and out, its UTF-8 bytes, connections and disconnections by reason."""
    monkeypatch.setattr(admin_module, "STATS_INTERVAL", 3600)  # no report takes the counts
    io, admin = app(auth=False, mode="production")
    io.on("connection", lambda socket: socket.on("bin", lambda data: ["ok", data]))
    async with serve(io) as url:
        admin.stats()  # what the start counted
        async with User(url, transports=["websocket"]) as ann:
            assert await ann.client.emit_with_ack("bin", b"\x01\x02\x03") == ["ok", b"\x01\x02\x03"]
            sid = ann.id
        await eventually(lambda: not io.engine.sessions)
        counts: dict[tuple[str, str | None], int] = {}
        for event in admin.stats()["aggregatedEvents"]:
            key = (event["type"], event.get("subType"))
            counts[key] = counts.get(key, 0) + event["count"]
    connect_reply = '0{"sid":"' + sid + '"}'
    ins = ["0", '51-0["bin",{"_placeholder":true,"num":0}]', b"\x01\x02\x03", "1"]
    outs = [connect_reply, '61-0[["ok",{"_placeholder":true,"num":0}]]', b"\x01\x02\x03"]
    assert counts == {
        ("rawConnection", None): 1,
        ("rawDisconnection", "transport close"): 1,
        ("packetsIn", None): len(ins),
        ("bytesIn", None): sum(byte_length(m) for m in ins),
        ("packetsOut", None): len(outs),
        ("bytesOut", None): sum(byte_length(m) for m in outs),
    }


def test_the_event_buffer_groups_by_second_and_kind() -> None:
    events = EventBuffer()
    events.push("packetsIn")
    events.push("packetsIn", count=2)
    events.push("rawDisconnection", "ping timeout")
    taken = events.take()
    assert {(e["type"], e.get("subType"), e["count"]) for e in taken} == {
        ("packetsIn", None, 3), ("rawDisconnection", "ping timeout", 1)}
    assert events.take() == []


# -- development mode: what happens, as it happens ----------------------------------------------


async def test_sockets_rooms_and_events_are_reported_as_they_happen() -> None:
    async with running() as (url, io, _), Watcher(url) as ui:
        await ui.next("config")
        async with User(url) as ann:
            sid = ann.id
            (socket, date) = await ui.next("socket_connected", lambda s, d: s["id"] == sid)
            assert socket["nsp"] == "/" and socket["rooms"] == [sid] and ISO_DATE.fullmatch(date)
            nsp, room, who, date = await ui.next("room_joined", lambda n, r, i, d: i == sid)
            assert (nsp, room, who) == ("/", sid, sid)
            ann.client.emit("join", "lobby")
            await ui.next("room_joined", lambda n, r, i, d: (n, r, i) == ("/", "lobby", sid))
            ann.client.emit("shout", "hi")
            nsp, who, args, date = await ui.next("event_received", lambda n, i, a, d: i == sid
                                                 and a[0] == "shout")
            assert (nsp, args) == ("/", ["shout", "hi"]) and ISO_DATE.fullmatch(date)
            await ui.next("event_sent", lambda n, i, a, d: (n, i, a) == ("/", sid,
                                                                          ["echo", "HI"]))
            io.to("lobby").emit("news", 1)  # a broadcast: one report per recipient
            await ui.next("event_sent", lambda n, i, a, d: (i, a) == (sid, ["news", 1]))
            ann.client.on("q", lambda n: n + 1)
            assert await io.of("/").sockets[sid].emit_with_ack("q", 1) == 2
            assert await io.timeout(5).emit_with_ack("q", 2) == [3]
            await ui.next("event_sent", lambda n, i, a, d: (i, a) == (sid, ["q", 1]))
            await ui.next("event_sent", lambda n, i, a, d: (i, a) == (sid, ["q", 2]))
            ann.client.emit("leave", "lobby")
            await ui.next("room_left", lambda n, r, i, d: (n, r, i) == ("/", "lobby", sid))
            (update,) = await ui.next("socket_updated",
                                      lambda u: u["id"] == sid and "transport" in u)
            assert update == {"id": sid, "nsp": "/", "transport": "websocket"}
        nsp, who, reason, date = await ui.next("socket_disconnected", lambda n, i, r, d: i == sid)
        assert (nsp, reason) == ("/", "client namespace disconnect")
        await ui.next("room_left", lambda n, r, i, d: (r, i) == (sid, sid))
        names = [name for name, args in ui.events
                 if name in ("socket_disconnected", "room_left") and sid in args]
        assert names[-2:] == ["socket_disconnected", "room_left"]  # as Node orders them
        # nothing about the UI's own traffic
        assert not [args for args in ui.of("event_sent") if args[0] == "/admin"]
        assert not [args for args in ui.of("event_received") if args[0] == "/admin"]


async def test_changes_of_socket_data_are_reported_within_a_second() -> None:
    """Node's package reports ``socket.data`` changes (it proxies the object); here the data of
    each socket is compared each second with what the UI last got, at any depth."""
    async with running() as (url, io, _), Watcher(url) as ui:
        await ui.next("config")
        async with User(url) as ann:
            sid = ann.id
            # the connection handler set data["user"] after the UI was told of the socket
            (update,) = await ui.next("socket_updated", lambda u: u["id"] == sid and "data" in u)
            assert update == {"id": sid, "nsp": "/", "data": {"user": "anon"}}
            socket = io.of("/").sockets[sid]
            socket.data["tags"] = ["a"]
            socket.data["tags"].append(b"\x01")  # nested, and binary
            (update,) = await ui.next("socket_updated", lambda u: "tags" in u.get("data", {}))
            assert update["data"] == {"user": "anon", "tags": ["a", b"\x01"]}
            def data_updates() -> list[Any]:
                return [u for (u,) in ui.of("socket_updated") if "data" in u]

            count = len(data_updates())
            await asyncio.sleep(2.2)  # unchanged: nothing more to say
            assert len(data_updates()) == count
            socket.data["_admin"]["transport"] = "changed by us"  # the UI's own field is not data
            del socket.data["tags"]
            await eventually(lambda: len(data_updates()) == count + 1)
            assert data_updates()[-1]["data"] == {"user": "anon"}


async def test_production_mode_sends_only_config_and_stats() -> None:
    async with running(mode="production") as (url, _, _), Watcher(url) as ui:
        (config,) = await ui.next("config")
        assert config == {"supportedFeatures": ALL_FEATURES[:-1]}
        async with User(url) as ann:
            ann.client.emit("shout", "hi")
            await eventually(lambda: bool(ann.got))
        await ui.next("server_stats")
        assert {name for name, _ in ui.events} == {"session", "config", "server_stats"}


# -- commands -----------------------------------------------------------------------------------


async def test_commands_emit_join_leave_and_disconnect() -> None:
    async with running() as (url, io, _), Watcher(url) as ui, \
            User(url) as ann, User(url) as bob:
        await ui.next("config")
        ui.emit("emit", "/", None, "hello", {"n": 1}, [2])  # every socket of "/"
        await eventually(lambda: ("hello", [{"n": 1}, [2]]) in ann.got
                         and ("hello", [{"n": 1}, [2]]) in bob.got)
        ui.emit("emit", "/", ann.id, "only-you", "x")  # one socket, by its id (a room)
        await eventually(lambda: ("only-you", ["x"]) in ann.got)
        ui.emit("join", "/", "team", bob.id)
        await eventually(lambda: "team" in io.of("/").adapter.socket_rooms(bob.id))
        ui.emit("join", "/", "all")  # no filter: every socket
        await eventually(lambda: all("all" in io.of("/").adapter.socket_rooms(u.id)
                                     for u in (ann, bob)))
        ui.emit("emit", "/", "team", "team-news")
        await eventually(lambda: ("team-news", []) in bob.got)
        assert ("team-news", []) not in ann.got
        ui.emit("leave", "/", "all", ann.id)
        await eventually(lambda: "all" not in io.of("/").adapter.socket_rooms(ann.id))
        ui.emit("leave", "/", "team")
        await eventually(lambda: "team" not in io.of("/").adapter.socket_rooms(bob.id))
        ui.emit("_disconnect", "/", False, ann.id)
        await eventually(lambda: ann.reasons == ["io server disconnect"])
        assert bob.client.connected
        ui.emit("_disconnect", "/", True)
        await eventually(lambda: bob.reasons != [])
        # malformed commands are ignored and the UI stays connected
        ui.emit("emit", 42, None, "x")
        ui.emit("emit", "/", None, "disconnect")  # a reserved name
        ui.emit("join", "/", 7)
        ui.emit("_disconnect", "/", True, {"not": "a room"})
        ui.emit("leave")
        await ui.next("server_stats")
        assert ui.client.connected


async def test_read_only_refuses_every_command() -> None:
    async with running(read_only=True) as (url, io, _), Watcher(url) as ui, User(url) as ann:
        (config,) = await ui.next("config")
        assert config == {"supportedFeatures": ["AGGREGATED_EVENTS", "ALL_EVENTS"]}
        ui.emit("emit", "/", None, "hello")
        ui.emit("join", "/", "team")
        ui.emit("_disconnect", "/", True)
        await asyncio.sleep(0.3)
        assert ann.got == [] and ann.client.connected
        assert "team" not in io.of("/").adapter.socket_rooms(ann.id)


async def test_instrumenting_a_server_that_already_serves() -> None:
    """Namespaces made before, dynamic children included, are watched too; the reports start
    at once."""
    io = sockjet.Server()
    io.of(re.compile(r"/room-\d+"))
    async with serve(io) as url, User(url, nsp="/room-1") as early:
        sockjet.instrument(io, auth=False, server_id="late")
        async with Watcher(url, auth=None) as ui:
            (sockets,) = await ui.next("all_sockets")
            assert early.id in {s["id"] for s in sockets}
            await ui.next("server_stats", lambda s: s["serverId"] == "late")
            early.client.emit("hello")
            await ui.next("event_received", lambda n, i, a, d: (n, a) == ("/room-1", ["hello"]))


async def test_another_namespace_name_and_a_dynamic_namespace() -> None:
    io, _ = app(namespace="/ops", auth=False)
    io.of(re.compile(r"/room-\d+"))
    async with serve(io) as url, Watcher(url, auth=None, nsp="/ops") as ui:
        await ui.next("config")
        async with User(url, nsp="/room-7") as guest:
            await ui.next("socket_connected", lambda s, d: s["id"] == guest.id
                          and s["nsp"] == "/room-7")
            guest.client.emit("hello")
            await ui.next("event_received", lambda n, i, a, d: (n, a) == ("/room-7", ["hello"]))
        with pytest.raises(sockjet.ConnectError):
            await sockjet.AsyncClient(url + "/admin", reconnection=False).connect()


# -- several servers ------------------------------------------------------------------------------


@asynccontextmanager
async def two_servers(kind: str) -> AsyncIterator[list[tuple[sockjet.Server, str]]]:
    """Two instrumented servers, "alpha" and "beta", on one of sockjet's cross-server adapters:
    the inter-worker link (in this process) or Redis."""
    import tempfile

    from sockjet.adapters.workers import WorkerLink

    async with AsyncExitStack() as stack:
        if kind == "redis":
            from redisutil import redis_server

            redis = await stack.enter_async_context(redis_server())
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="sj-"))
        servers = []
        for index, name in enumerate(("alpha", "beta")):
            if kind == "redis":
                io = sockjet.Server(adapter=sockjet.RedisAdapter(redis.url,
                                                                 requests_timeout=2.0))
            else:
                link = WorkerLink(index, 2, directory, requests_timeout=2.0,
                                  heartbeat_interval=0.1, heartbeat_timeout=1.0)
                io = sockjet.Server(adapter=link.adapter)
                await link.start()
                stack.push_async_callback(link.close)
            io.on("connection", lambda s: s.join("everyone"))
            sockjet.instrument(io, auth=AUTH, server_id=name)
            servers.append((io, await stack.enter_async_context(serve(io))))

        async def both_know() -> bool:
            counts = [await io.of(n).adapter.server_count()
                      for io, _ in servers for n in ("/", "/admin")]
            return counts == [2, 2, 2, 2]

        for _ in range(200):
            if await both_know():
                break
            await asyncio.sleep(0.02)
        yield servers


@pytest.mark.parametrize("kind", ["workers", "redis"])
async def test_every_server_of_a_cluster_reports_and_commands_reach_them_all(kind: str) -> None:
    """Two servers on one of sockjet's cross-server adapters: a UI logged in on the first sees
    the stats of both, the sockets of both (with their clients and transports), and its
    commands reach the sockets of the second; its session lets it into the second too."""
    async with two_servers(kind) as servers, AsyncExitStack() as stack:
        (_, url_a), (io_b, url_b) = servers
        far = await stack.enter_async_context(User(url_b, transports=["websocket"]))
        far_id = far.id
        ui = await stack.enter_async_context(Watcher(url_a))
        (session,) = await ui.next("session")
        async with Watcher(url_b, auth={"sessionId": session}) as there:  # same credentials
            await there.next("config")
        await ui.next("server_stats", lambda s: s["serverId"] == "alpha")
        await ui.next("server_stats", lambda s: s["serverId"] == "beta")
        (sockets,) = await ui.next("all_sockets")
        remote = next(s for s in sockets if s["id"] == far.id)
        engine = io_b.of("/").sockets[far.id].conn.engine
        assert remote["clientId"] == engine.sid[:12] and remote["transport"] == "websocket"
        assert sorted(remote["rooms"]) == sorted([far.id, "everyone"])
        near = await stack.enter_async_context(User(url_b))
        await ui.next("socket_connected", lambda s, d: s["id"] == near.id)
        ui.emit("emit", "/", "everyone", "hi-all")
        await eventually(lambda: ("hi-all", []) in far.got and ("hi-all", []) in near.got)
        ui.emit("join", "/", "vip", far.id)
        await ui.next("room_joined", lambda n, r, i, d: (r, i) == ("vip", far.id))
        ui.emit("_disconnect", "/", False, far.id)
        await eventually(lambda: far.reasons == ["io server disconnect"])
        await ui.next("socket_disconnected", lambda n, i, r, d: i == far_id)


async def test_every_worker_process_reports(tmp_path: Path) -> None:
    """``sockjet run app:io --workers 2``: each worker is a server of its own in the UI
    (``hostname#pid``), and the UI sees the sockets of both through the inter-worker adapter."""
    from test_workers import workers_serving

    (tmp_path / "app.py").write_text(
        "import sockjet\n"
        "io = sockjet.Server()\n"
        f"sockjet.instrument(io, auth={AUTH!r})\n")
    async with workers_serving(tmp_path, "app:io", 2) as (url, proc), AsyncExitStack() as stack:
        users = [await stack.enter_async_context(User(url)) for _ in range(6)]
        ui = await stack.enter_async_context(Watcher(url))
        (sockets,) = await ui.next("all_sockets")
        assert {u.id for u in users} <= {s["id"] for s in sockets}
        await eventually(lambda: len({s[0]["serverId"] for s in ui.of("server_stats")}) == 2, 6)
        ids = {s[0]["serverId"]: s[0]["pid"] for s in ui.of("server_stats")}
        assert all(server_id.endswith(f"#{pid}") for server_id, pid in ids.items())
        assert proc.pid not in ids.values()  # the workers', not the supervisor's


# -- in a browser: the Admin UI's own build ---------------------------------------------------


def ui_dist() -> Path:
    dist = NODE_DIR / "node_modules" / "admin-ui" / "ui" / "dist"
    if not (dist / "index.html").is_file():
        pytest.fail("tests/node/node_modules lacks admin-ui: run `npm ci` in tests/node")
    return dist


def static_files(root: Path) -> Any:
    """A tiny ASGI app serving the files under ``root`` (the UI is a static single page)."""
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
             ".png": "image/png", ".svg": "image/svg+xml", ".map": "application/json"}

    top = root.resolve()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = (root / scope["path"].lstrip("/")).resolve()
        if scope["path"] == "/":
            path = root / "index.html"
        if not path.is_relative_to(top) or not path.is_file():
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        kind = types.get(path.suffix, "application/octet-stream").encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": path.read_bytes()})

    return app


async def test_the_admin_ui_in_a_browser(tmp_path: Path) -> None:
    """Chromium runs the UI of ``@socket.io/admin-ui``, served from another origin than the
    server (CORS with credentials, as the hosted UI needs): a wrong password is refused, the
    right one logs in; the server, its v2 and v4 sockets (polling and WebSocket) and their
    rooms show; a room joined and a disconnect clicked in the UI, and an emit sent over the
    UI's connection, reach the clients. Screenshots go to docs/images/ with
    ``SOCKJET_DOC_SCREENSHOTS=1``."""
    from nodepeers import NodeClients

    page_port = free_port()
    io, _ = app({"cors": sockjet.CORS(origin=[f"http://127.0.0.1:{page_port}"],
                                      credentials=True)}, server_id="sockjet-demo")
    io.on("connection", lambda socket: socket.join(f"user:{socket.handshake.query.get('n')}"))
    images = DOC_IMAGES if os.environ.get("SOCKJET_DOC_SCREENSHOTS") == "1" else tmp_path
    images.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(io))
        page = await stack.enter_async_context(serve(static_files(ui_dist()), port=page_port))
        clients = await stack.enter_async_context(NodeClients())
        ids = {}
        for name, version, transport in (("v4-ws", 4, "websocket"), ("v4-poll", 4, "polling"),
                                         ("v2-ws", 2, "websocket"), ("v2-poll", 2, "polling")):
            ids[name] = await clients.connect(name, url, version=version, transport=transport,
                                              opts={"query": {"n": name}})
        chat = await clients.connect("v4-chat", url, nsp="/chat")
        shots = {name: str(images / f"admin-ui{suffix}.png") for name, suffix in (
            ("sockets", ""), ("dashboard", "-dashboard"), ("socket", "-socket"),
            ("refused", "-login-refused"))}
        config = {"ui": page + "/", "server": url, "password": PASSWORD, "ids": ids,
                  "chat": chat, "screenshots": shots}
        out = await run_node_json("admin_ui_browser.js", config, timeout=60)
        assert out["exit_code"] == 0, json.dumps(out, indent=1)
        # what the UI's clicks and its emit did to the clients
        assert await clients.wait("v2-poll", "disconnect") == ["io server disconnect"]
        assert await clients.wait("v4-ws", "from-ui") == ["hello from the Admin UI"]
        assert "from-the-ui" in io.of("/").adapter.socket_rooms(ids["v4-ws"])
    assert out["refused"] == "Invalid credentials"  # the UI's words for the server's refusal
    assert out["servers"] == ["sockjet-demo"] and "sockjet-demo" in out["servers_text"]
    for name, sid in ids.items():
        assert sid in out["sockets_text"], (name, out["sockets_text"])
    assert sorted(out["transports"]) == ["polling", "polling", "websocket", "websocket"]
    assert "user:v4-ws" in out["rooms_text"] and "general" in out["rooms_text"]
    for path in shots.values():
        assert Path(path).stat().st_size > 10_000  # noqa: ASYNC240
