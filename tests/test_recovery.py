"""Connection state recovery on one server (``connection_state_recovery``), with the real
socket.io-client 4.8 (Node; polling and WebSocket) and sockjet's Python client: a client whose
connection is cut while the server keeps emitting comes back with the same id, its rooms and
data, and exactly the events it missed, in order, none twice; too late, it gets a new session.
Protocol 4 clients are unaffected."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import eventually, serve
from inproc import InProc
from nodepeers import NodeClients

import sockjet
from sockjet.adapters import packet_log
from sockjet.adapters.memory import InMemoryAdapter
from sockjet.socketio import socket as socket_module
from sockjet.socketio.recovery import RecoveryOptions, Session, recovery_options


def recovering_server(**options: Any) -> sockjet.Server:
    io = sockjet.Server(connection_state_recovery=options or True)

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.data.setdefault("visits", 0)
        socket.data["visits"] += 1
        socket.on("join", lambda room: socket.join(room))

    return io


def the_socket(io: sockjet.Server) -> sockjet.Socket:
    (socket,) = io.of("/").sockets.values()
    return socket


def emit_while_away(io: sockjet.Server, sid: str) -> None:
    """What the server sends while the client is away: to everyone, to its room, to it alone,
    and what it must not get (another room, volatile)."""
    io.emit("tick", "all")
    io.to("room1").emit("tick", "room1")
    io.to(sid).emit("tick", "to it")
    io.to("elsewhere").emit("tick", "not for it")
    io.volatile.emit("tick", "volatile")
    io.except_("room1").emit("tick", "not for room1")
    io.emit("tick", "last", b"\x01")


EXPECTED = [["all"], ["room1"], ["to it"], ["last", b"\x01"]]


def without_offsets(events: list[list[Any]]) -> list[list[Any]]:
    """The args as the application sent them: socket.io-client hands the offset to handlers
    as the last argument."""
    assert all(isinstance(args[-1], str) for args in events), events
    return [args[:-1] for args in events]


@asynccontextmanager
async def node_client(url: str, transport: str,
                      delay_ms: int = 50) -> AsyncIterator[NodeClients]:
    """A socket.io-client 4.8 socket "c" that reconnects ``delay_ms`` after losing its
    connection."""
    async with NodeClients() as peer:
        await peer.connect("c", url, transport=transport,
                           opts={"reconnection": True, "reconnectionDelay": delay_ms,
                                 "reconnectionDelayMax": delay_ms, "randomizationFactor": 0})
        yield peer


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("cut", ["server", "client"])
async def test_a_node_client_recovers_its_session_and_the_events_it_missed(
        transport: str, cut: str) -> None:
    io = recovering_server()
    async with serve(io) as url, node_client(url, transport) as peer:
        await peer.emit("c", "join", "room1")
        await eventually(lambda: "room1" in the_socket(io).rooms)
        first = the_socket(io)
        sid, pid = first.id, first.pid
        io.emit("tick", "before")
        (before,) = without_offsets([await peer.wait("c", "tick")])
        assert before == ["before"]
        if cut == "server":  # the server closes the connection
            first.conn.engine.close()
        else:  # the client's network goes: it closes its connection without a word
            await peer.close_transport("c")
        await eventually(lambda: not io.of("/").sockets)
        emit_while_away(io, sid)
        await eventually(lambda: io.of("/").sockets, timeout=10)
        back = the_socket(io)
        assert (back.id, back.pid, back.recovered) == (sid, pid, True)
        assert back.rooms == {sid, "room1"}
        assert back.data == {"visits": 2}  # data came back, then the handler ran again
        await peer.wait("c", "connect")  # the reconnection
        missed = [await peer.wait("c", "tick") for _ in EXPECTED]
        assert without_offsets(missed) == EXPECTED
        io.emit("tick", "after")  # and nothing else came meanwhile
        assert without_offsets([await peer.wait("c", "tick")]) == [["after"]]
        assert await peer.drain("c", "tick") == []
        assert (await peer.state("c"))["id"] == sid


async def test_the_python_client_recovers_too() -> None:
    io = recovering_server()
    async with serve(io) as url:
        client = sockjet.AsyncClient(url, transports=["websocket"], reconnection_delay=0.05)
        got: list[tuple[Any, ...]] = []
        client.on("tick", lambda *args: got.append(args))
        client.on("hello", lambda *args: got.append(("hello", *args)))
        await client.connect()
        client.emit("join", "room1")
        await eventually(lambda: "room1" in the_socket(io).rooms)
        first = the_socket(io)
        first.emit("hello", "one socket")  # socket.emit is logged too
        await eventually(lambda: len(got) == 1)
        first.conn.engine.close()
        await eventually(lambda: not io.of("/").sockets)
        emit_while_away(io, first.id)
        await eventually(lambda: len(got) == 1 + len(EXPECTED), timeout=10)
        assert client.of("/").recovered
        assert client.id == first.id
        assert [list(args[:-1]) for args in got[1:]] == EXPECTED
        assert got[0][:-1] == ("hello", "one socket")
        await client.disconnect()


async def test_too_late_a_client_gets_a_new_session() -> None:
    io = recovering_server(max_disconnection_duration=0.2)
    async with serve(io) as url, node_client(url, "websocket", delay_ms=600) as peer:
        first = the_socket(io)
        io.emit("tick", "before")
        await peer.wait("c", "tick")
        log = io.of("/").adapter.log  # type: ignore[attr-defined]
        first.conn.engine.close()
        await eventually(lambda: not io.of("/").sockets)
        # the session and the events are pruned once older than 0.2 s, before it is back
        await eventually(lambda: not log.sessions and not log.entries, timeout=5)
        assert not io.of("/").sockets
        await eventually(lambda: io.of("/").sockets, timeout=10)
        back = the_socket(io)
        assert not back.recovered
        assert back.id != first.id and back.pid != first.pid
        assert back.data == {"visits": 1}


async def test_an_unknown_offset_or_session_means_a_new_session() -> None:
    io = recovering_server()
    async with serve(io) as url:
        async with NodeClients() as peer:
            await peer.connect("c", url, opts={"auth": {"pid": "nobody", "offset": "x-1"}})
            assert not the_socket(io).recovered
            first = the_socket(io)
            io.emit("tick", "before")
            await peer.wait("c", "tick")
            first.conn.engine.close()  # no reconnection here: the session stays
            await eventually(lambda: not io.of("/").sockets)
            # its pid with an offset this server never gave: a new session
            await peer.connect("d", url, opts={"auth": {"pid": first.pid,
                                                        "offset": "ffffff-0"}})
            assert not the_socket(io).recovered
            assert the_socket(io).id != first.id


async def test_middlewares_are_skipped_on_recovery_unless_told_otherwise() -> None:
    for skip in (True, False):
        io = recovering_server(skip_middlewares=skip)
        seen: list[bool] = []

        def middleware(socket: sockjet.Socket, seen: list[bool] = seen) -> None:
            seen.append(socket.recovered)

        io.use(middleware)
        async with serve(io) as url, node_client(url, "websocket") as peer:
            io.emit("tick", "x")
            await peer.wait("c", "tick")
            the_socket(io).conn.engine.close()
            await eventually(lambda io=io: not io.of("/").sockets)
            await eventually(lambda io=io: io.of("/").sockets, timeout=10)
            assert the_socket(io).recovered
            assert seen == ([False] if skip else [False, True])


async def test_protocol_4_clients_and_acks_and_explicit_disconnects_are_left_alone() -> None:
    io = recovering_server()
    async with serve(io) as url, NodeClients() as peer:
        await peer.connect("old", url, version=2, transport="websocket")
        await peer.connect("new", url, transport="websocket")
        await peer.reply("new", "ask", "yes")
        await peer.reply("old", "ask", "yes too")
        sockets = {s.socketio_protocol: s for s in io.of("/").sockets.values()}
        assert sockets[4].pid is None and sockets[5].pid is not None
        io.emit("tick", "both")
        assert await peer.wait("old", "tick") == ["both"]  # no offset for a 2.x client
        assert without_offsets([await peer.wait("new", "tick")]) == [["both"]]
        # acks carry no offset
        assert sorted(await io.timeout(5).emit_with_ack("ask")) == ["yes", "yes too"]
        # a client that leaves on purpose leaves no session behind
        log = io.of("/").adapter.log  # type: ignore[attr-defined]
        await peer.disconnect("new")
        await eventually(lambda: len(io.of("/").sockets) == 1)
        assert log.sessions == {}


class Clock:
    """A monotonic clock the test moves (the log's and the sockets' idea of now)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


async def test_10000_sessions_that_went_away_and_expired_leave_nothing_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()  # stands still while the sessions come and go, then jumps past expiry
    monkeypatch.setattr(packet_log, "time", clock)
    monkeypatch.setattr(socket_module, "time", clock)
    io = sockjet.Server(connection_state_recovery={"max_disconnection_duration": 0.2})
    io.on("connection", lambda socket: socket.join("lobby"))
    log = io.of("/").adapter.log  # type: ignore[attr-defined]
    sample: list[weakref.ref[Any]] = []
    async with InProc(io) as inproc:
        for n in range(10_000):
            ws, sid = await inproc.connected()
            if n % 500 == 0:
                sample.append(weakref.ref(io.of("/").sockets[sid]))
                io.to("lobby").emit("tick", n)
            ws.client_close()  # a lost connection: the session is kept
        await eventually(lambda: not io.engine.sessions)
        assert len(log.sessions) == 10_000 and len(log) == 20
        clock.now += 1  # all expired: the next pruning (every 0.2 s here) takes them
        await eventually(lambda: not log.sessions and not log.entries, timeout=5)
        gc.collect()
        assert all(ref() is None for ref in sample)


async def test_memory_stays_bounded_sessions_and_events_are_pruned() -> None:
    io = sockjet.Server(connection_state_recovery={"max_disconnection_duration": 0.2})
    adapter = io.of("/").adapter
    assert isinstance(adapter, InMemoryAdapter) and adapter.log is not None
    log = adapter.log
    async with serve(io):
        for n in range(10_000):
            adapter.persist_session(Session(f"s{n}", f"p{n}", [f"s{n}"], {"n": n},
                                            time.monotonic()))
            io.emit("tick", n)
        assert len(log.sessions) == 10_000 and len(log) == 10_000
        await eventually(lambda: not log.sessions and not log.entries, timeout=5)
    gc.collect()


def test_the_option_is_checked() -> None:
    assert recovery_options(None) is None and recovery_options(False) is None
    assert recovery_options(True) == RecoveryOptions(120.0, True)
    assert recovery_options({"max_disconnection_duration": 5, "skip_middlewares": False}) == \
        RecoveryOptions(5.0, False)
    for bad in ({"max_disconnection_duration": 0}, {"max_disconnection_duration": True},
                {"maxDisconnectionDuration": 5}):
        with pytest.raises(ValueError):
            sockjet.Server(connection_state_recovery=bad)
    with pytest.raises(TypeError):
        sockjet.Server(connection_state_recovery="yes")
    assert sockjet.Server().recovery is None
