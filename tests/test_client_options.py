"""Documented options of the Python client (docs/client.md), each shown to take effect against
our own server on 127.0.0.1: ``upgrade``, ``buffer_while_disconnected``, a callable ``auth`` and
``async with``. A test here fails if its option were ignored or broken."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from conftest import eventually, serve

import sockjet

FAST_RECONNECT = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.05,
                  "randomization_factor": 0.0}


class App:
    """A server recording its sockets, the events they receive (in order) and why they left;
    ``echo`` acknowledges with its argument. ``/admin`` is served the same way."""

    def __init__(self, **options: Any) -> None:
        self.io = sockjet.Server(**options)
        self.sockets: list[sockjet.Socket] = []
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.reasons: list[str] = []
        #: engine sids named by WebSocket requests (upgrade attempts), on either binding
        self.websocket_sids: list[str | None] = []
        for nsp in (self.io.sockets, self.io.of("/admin")):
            nsp.on("connection", self.connection)
        handle_websocket = self.io.engine.handle_websocket

        async def websocket(ws: Any) -> None:
            self.websocket_sids.append(ws.query.get("sid"))
            await handle_websocket(ws)

        self.io.engine.handle_websocket = websocket  # type: ignore[method-assign]

    def connection(self, socket: sockjet.Socket) -> None:
        self.sockets.append(socket)
        socket.on_any(lambda event, *args: self.events.append((event, args)))
        socket.on("echo", lambda value: value)
        socket.on("disconnect", self.reasons.append)

    def of(self, nsp: str) -> list[sockjet.Socket]:
        return [s for s in self.sockets if s.nsp.name == nsp]

    def drop_transport(self) -> None:
        """Close every Engine.IO session from the server: clients see a transport close (no
        namespace DISCONNECT first), so they reconnect."""
        for session in list(self.io.engine.sessions.values()):
            session.close()


# -- upgrade=False --------------------------------------------------------------------------------


async def test_upgrade_false_stays_on_polling() -> None:
    app = App()
    async with serve(app.io) as url:
        stay = sockjet.AsyncClient(url, upgrade=False, reconnection=False)
        control = sockjet.AsyncClient(url, reconnection=False)  # default: upgrade=True
        async with stay, control:
            # the server offers the upgrade: the control client, connected after, takes it
            await eventually(lambda: control.transport == "websocket")
            assert app.websocket_sids == [control.engine.sid]  # type: ignore[union-attr]
            for n in range(5):
                assert await stay.emit_with_ack("echo", n, timeout=5) == n
            assert stay.transport == "polling"
            (server_side,) = [s for s in app.sockets if s.id == stay.id]
            assert server_side.transport == "polling"
            # it never even tried: no WebSocket request named its session
            assert stay.engine is not None
            assert stay.engine.sid not in app.websocket_sids


# -- buffer_while_disconnected ---------------------------------------------------------------------


@pytest.mark.parametrize("buffer", [None, False], ids=["default", "off"])
async def test_buffer_while_disconnected_before_the_first_connect(buffer: bool | None) -> None:
    app = App()
    options = {} if buffer is None else {"buffer_while_disconnected": buffer}
    async with serve(app.io) as url:
        client = sockjet.AsyncClient(url, reconnection=False, **options)
        client.emit("early", 1)
        client.of("/admin").emit("early-admin", 2)
        await client.connect()
        try:
            # acks on both namespaces: what was buffered has been received before them
            assert await client.emit_with_ack("echo", "late", timeout=5) == "late"
            assert await client.of("/admin").emit_with_ack("echo", "late", timeout=5) == "late"
        finally:
            await client.disconnect()
    got = sorted(event for event, _ in app.events)
    if buffer is None:  # True by default: sent on connection, before later emits
        assert got == ["early", "early-admin", "echo", "echo"]
        assert app.events.index(("early", (1,))) < app.events.index(("echo", ("late",)))
    else:
        assert got == ["echo", "echo"]


@pytest.mark.parametrize("buffer", [None, False], ids=["default", "off"])
async def test_buffer_while_disconnected_across_a_reconnection(buffer: bool | None) -> None:
    app = App()
    options = {} if buffer is None else {"buffer_while_disconnected": buffer}
    async with serve(app.io) as url:
        client = sockjet.AsyncClient(url, **FAST_RECONNECT, **options)
        reconnected = asyncio.Event()
        # emitted while disconnected: the handler runs once the namespace is down
        client.on("disconnect", lambda reason: client.emit("while-away", client.connected))
        client.on("reconnect", lambda attempt: reconnected.set())
        await client.connect()
        try:
            assert await client.emit_with_ack("echo", "before", timeout=5) == "before"
            await eventually(lambda: client.transport == "websocket")  # settled
            app.drop_transport()
            await asyncio.wait_for(reconnected.wait(), 5)
            assert await client.emit_with_ack("echo", "after", timeout=5) == "after"
        finally:
            await client.disconnect()
    expected = [("echo", ("before",)), ("echo", ("after",))]
    if buffer is None:
        expected.insert(1, ("while-away", (False,)))
    assert app.events == expected
    assert len(app.of("/")) == 2  # a second connection took place


def blocking_session(url: str, buffer: bool) -> Any:
    client = sockjet.Client(url, reconnection=False, buffer_while_disconnected=buffer)
    try:
        client.emit("early")
        client.connect()
        return client.emit_with_ack("echo", "late", timeout=5)
    finally:
        client.disconnect()


@pytest.mark.parametrize("buffer", [True, False])
async def test_blocking_client_buffer_while_disconnected(buffer: bool) -> None:
    app = App()
    async with serve(app.io) as url:
        # the server runs on this loop while the blocking client works in a thread
        result = await asyncio.wait_for(asyncio.to_thread(blocking_session, url, buffer), 20)
    assert result == "late"
    assert [event for event, _ in app.events] == (["early", "echo"] if buffer else ["echo"])


# -- callable auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eio", [4, 3])
async def test_callable_auth_is_called_at_each_connection(eio: int) -> None:
    app = App()
    main_tokens = itertools.count(1)
    admin_tokens = itertools.count(1)
    async with serve(app.io) as url:
        client = sockjet.AsyncClient(url, eio=eio, **FAST_RECONNECT,
                                     auth=lambda: {"token": f"main-{next(main_tokens)}"})
        client.of("/admin", auth=lambda: {"token": f"admin-{next(admin_tokens)}"})
        reconnected = asyncio.Event()
        client.on("reconnect", lambda attempt: reconnected.set())
        await client.connect()
        try:
            await eventually(lambda: client.transport == "websocket")  # settled
            app.drop_transport()
            await asyncio.wait_for(reconnected.wait(), 5)
        finally:
            await client.disconnect()

    def main_token(socket: sockjet.Socket) -> Any:
        # protocol 5: the CONNECT payload; Engine.IO 3 (socket.io 2.x joins "/" implicitly):
        # the handshake query
        return socket.handshake.auth.get("token") if eio == 4 else socket.handshake.query.get(
            "token")

    assert [main_token(s) for s in app.of("/")] == ["main-1", "main-2"]
    assert [s.handshake.auth for s in app.of("/admin")] == [{"token": "admin-1"},
                                                             {"token": "admin-2"}]


# -- async with ------------------------------------------------------------------------------------


async def test_async_with_connects_on_enter_and_disconnects_on_exit() -> None:
    app = App()

    @app.io.of("/private").use
    def members_only(socket: sockjet.Socket) -> None:
        raise sockjet.ConnectionRefused("members only")

    async with serve(app.io) as url:
        client = sockjet.AsyncClient(url, reconnection=False)
        assert not client.connected and app.sockets == []
        async with client as entered:
            assert entered is client
            assert client.connected
            assert [s.id for s in app.sockets] == [client.id]
            assert await client.emit_with_ack("echo", 1, timeout=5) == 1
        assert not client.connected
        await eventually(lambda: not app.io.engine.sessions)
        assert app.reasons == ["client namespace disconnect"]

        # leaving the block by an exception disconnects too
        with pytest.raises(LookupError):
            async with sockjet.AsyncClient(url, reconnection=False) as second:
                assert second.connected
                raise LookupError("inside the block")
        assert not second.connected
        await eventually(lambda: not app.io.engine.sessions)
        assert app.reasons == ["client namespace disconnect"] * 2

        # a refused connection raises on entering, and leaves no session behind
        with pytest.raises(sockjet.ConnectError, match="members only"):
            async with sockjet.AsyncClient(url + "/private", reconnection=False):
                raise AssertionError("the block must not run")
        await eventually(lambda: not app.io.engine.sessions)
