"""The Socket.IO server API at its edges, in process (tests/inproc.py): argument checks, the
shortcuts of the server and of namespaces, dynamic namespaces fanning out to their children,
protocol violations, connections that go away halfway through a connect, and what a socket does
with acks, handlers and operations once it has left. Each test fails if the behaviour it names
were missing or wrong."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Any

import pytest
from conftest import eventually
from inproc import InProc, join, joined, sync, with_sync

import sockjet
from sockjet.socketio.observer import SocketIOObserver


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Errors logged by anyone (sockjet, or asyncio for a failing callback)."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


class Recorder:
    """Every socket of the given namespaces by namespace name, with the ``sync`` handler."""

    def __init__(self, *namespaces: sockjet.Namespace) -> None:
        self.sockets: dict[str, sockjet.Socket] = {}
        for nsp in namespaces:
            nsp.on("connection", self.connection)

    def connection(self, socket: sockjet.Socket) -> None:
        self.sockets[socket.nsp.name] = socket
        with_sync(socket)


# -- argument checks ------------------------------------------------------------------------------


async def test_selections_refuse_non_string_rooms_event_names_and_bad_timeouts() -> None:
    io = sockjet.Server()
    with pytest.raises(TypeError, match="room names must be strings"):
        io.to(["lobby", 1])
    with pytest.raises(TypeError, match="room names must be strings"):
        io.except_(("lobby", None))
    assert io.to(["a", "b"]).in_("c").options.rooms == {"a", "b", "c"}  # strings are fine
    for name in (1, None, b"news"):
        with pytest.raises(TypeError, match="event name must be a string"):
            io.emit(name)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="event name must be a string"):
            await io.timeout(1).emit_with_ack(name)  # type: ignore[arg-type]
    for seconds in (0, -1, "5", None):
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            io.timeout(seconds)  # type: ignore[arg-type]
    assert io.timeout(2).options.timeout == 2.0 and io.timeout(0.01).options.timeout == 0.01


def test_of_adds_the_leading_slash_and_refuses_other_names() -> None:
    io = sockjet.Server()
    chat = io.of("chat")
    assert chat.name == "/chat" and io.of("/chat") is chat
    for bad in (42, None, b"/chat"):
        with pytest.raises(TypeError, match="namespace must be a name"):
            io.of(bad)
    assert set(io.namespaces) == {"/", "/chat"}


async def test_reprs_and_properties_describe_sockets_and_namespaces() -> None:
    io = sockjet.Server()
    chat = io.of("/chat")
    dynamic = io.of(lambda name, auth: name.startswith("/dyn-"))  # a plain (sync) matcher
    app = Recorder(chat)
    assert repr(chat) == "<Namespace '/chat' sockets=0>"
    async with InProc(io) as clients:
        _, sid = await clients.connected("/chat")
        await clients.connected("/dyn-1")
        socket = app.sockets["/chat"]
        assert repr(socket) == f"<Socket {sid!r} nsp='/chat' connected=True>"
        assert repr(chat) == "<Namespace '/chat' sockets=1>"
        assert repr(dynamic) == f"<ParentNamespace {dynamic.matcher!r} children=1>"
        assert (socket.socketio_protocol, socket.transport) == (5, "websocket")
        socket.disconnect()
        assert repr(socket) == f"<Socket {sid!r} nsp='/chat' connected=False>"
        assert repr(chat) == "<Namespace '/chat' sockets=0>"
        assert await io.sockets.adapter.server_count() == 1  # the in-memory adapter: one server


# -- the shortcuts of the server and of namespaces ------------------------------------------------


async def test_send_is_an_emit_of_message_at_every_level() -> None:
    io = sockjet.Server()
    chat = io.of("/chat")
    app = Recorder(io.sockets, chat)
    acks: list[tuple[Any, ...]] = []
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        await join(ws, "/chat")
        io.send("to all", 1)
        chat.send("to chat")
        io.to("nobody").send("lost")
        assert app.sockets["/"].volatile.emit("volatile", 2) is True  # writable: sent
        assert app.sockets["/"].compress(False).emit("uncompressed") is True  # API parity only
        assert app.sockets["/chat"].send("hi", b"\x01", callback=lambda *a: acks.append(a))
        assert await ws.next() == '42["message","to all",1]'
        assert await ws.next() == '42/chat,["message","to chat"]'
        assert await ws.next() == '42["volatile",2]'
        assert await ws.next() == '42["uncompressed"]'
        assert await ws.next() == '451-/chat,0["message","hi",{"_placeholder":true,"num":0}]'
        assert await ws.next() == b"\x01"
        ws.client_send('43/chat,0["got it",3]')
        await eventually(lambda: acks)
        assert acks == [("got it", 3)]


async def test_fetch_join_and_disconnect_shortcuts_select_their_own_namespace() -> None:
    io = sockjet.Server()
    chat = io.of("/chat")
    reasons: list[tuple[str, str]] = []

    def connection(socket: sockjet.Socket) -> None:
        with_sync(socket)
        socket.on("disconnect", lambda r: reasons.append((socket.nsp.name, r)))

    io.on("connection", connection)
    chat.on("connection", connection)
    async with InProc(io) as clients:
        both, both_main = await clients.connected()
        both_chat = await join(both, "/chat")
        main_only, main_id = await clients.connected()

        assert {s.id for s in await io.fetch_sockets()} == {both_main, main_id}
        assert [s.id for s in await chat.fetch_sockets()] == [both_chat]
        chat.sockets_join("chatters")
        io.sockets_join("lobby")
        assert [s.rooms for s in await chat.fetch_sockets()] == [{both_chat, "chatters"}]
        assert {frozenset(s.rooms) for s in await io.fetch_sockets()} == {
            frozenset({both_main, "lobby"}), frozenset({main_id, "lobby"})}
        assert await io.in_("chatters").fetch_sockets() == []  # rooms are per namespace

        chat.disconnect_sockets()
        assert await both.next() == "41/chat,"
        assert reasons == [("/chat", "server namespace disconnect")]
        await sync(both)  # its "/" socket is still there
        await sync(main_only)
        io.disconnect_sockets()
        assert await both.next() == "41"
        assert await main_only.next() == "41"
        assert io.sockets.sockets == {} and chat.sockets == {}


# -- broadcasts with acks -------------------------------------------------------------------------


async def test_broadcast_emit_with_ack_without_timeout_waits_for_every_reply() -> None:
    io = sockjet.Server()
    io.on("connection", with_sync)
    async with InProc(io) as clients:
        a, _ = await clients.connected()
        b, _ = await clients.connected()
        # nobody selected: the answer is at once, not a wait for replies that cannot come
        assert await asyncio.wait_for(io.to("nobody").emit_with_ack("poll"), 1) == []

        task = asyncio.ensure_future(io.emit_with_ack("poll", 1))
        assert await a.next() == await b.next() == '420["poll",1]'  # one ack id for all
        b.client_send('430["from b"]')
        await sync(b)  # b's reply has been handled
        assert not task.done()  # no timeout: it waits for a
        a.client_send('430["from a",2]')
        # in the order of the sockets, several arguments as a tuple
        assert await asyncio.wait_for(task, 2) == [("from a", 2), "from b"]


async def test_broadcast_emit_with_ack_timeout_keeps_the_replies_that_came() -> None:
    io = sockjet.Server()
    io.on("connection", with_sync)
    async with InProc(io) as clients:
        a, _ = await clients.connected()
        b, b_id = await clients.connected()
        task = asyncio.ensure_future(io.timeout(0.5).emit_with_ack("poll"))
        assert await a.next() == await b.next() == '420["poll"]'
        a.client_send('430["yes"]')
        with pytest.raises(sockjet.AckTimeout, match="1 of 2 clients") as info:
            await asyncio.wait_for(task, 3)
        assert info.value.responses == ["yes"] and info.value.missing == [b_id]


# -- dynamic namespaces ---------------------------------------------------------------------------


async def test_dynamic_namespace_operations_reach_every_child() -> None:
    io = sockjet.Server()
    io.on("connection", with_sync)
    dynamic = io.of(re.compile(r"/dyn-\d+"))
    app = Recorder(dynamic)
    async with InProc(io) as clients:
        one, one_id = await clients.connected("/dyn-1")
        two, two_id = await clients.connected("/dyn-2")
        main, _ = await clients.connected()  # "/" is no child of it
        first, second = app.sockets["/dyn-1"], app.sockets["/dyn-2"]

        assert {s.id for s in await dynamic.fetch_sockets()} == {one_id, two_id}
        dynamic.sockets_join("team")
        assert first.rooms == {one_id, "team"} and second.rooms == {two_id, "team"}
        dynamic.in_(one_id).sockets_leave("team")  # that id is in one child only
        assert first.rooms == {one_id} and second.rooms == {two_id, "team"}
        assert [s.id for s in await dynamic.in_("team").fetch_sockets()] == [two_id]
        dynamic.to("team").emit("news", 1)
        dynamic.emit("all")
        assert await one.next() == '42/dyn-1,["all"]'
        assert await two.next() == '42/dyn-2,["news",1]'
        assert await two.next() == '42/dyn-2,["all"]'

        task = asyncio.ensure_future(dynamic.timeout(2).emit_with_ack("vote"))
        assert await one.next() == '42/dyn-1,0["vote"]'  # ack ids are per child namespace
        assert await two.next() == '42/dyn-2,0["vote"]'
        two.client_send('43/dyn-2,0["no"]')
        one.client_send('43/dyn-1,0["yes"]')
        assert await asyncio.wait_for(task, 2) == ["yes", "no"]

        dynamic.disconnect_sockets()
        assert await one.next() == "41/dyn-1,"
        assert await two.next() == "41/dyn-2,"
        assert dynamic.children == {} and "/dyn-1" not in io.namespaces  # empty: removed
        await sync(main)  # the main namespace was not touched
        assert len(io.sockets.sockets) == 1


def test_a_dynamic_namespace_has_no_rooms_of_its_own() -> None:
    io = sockjet.Server()
    dynamic = io.of(lambda name, auth: name.startswith("/team-"))
    assert dynamic.adapter.socket_rooms("any") == set()
    assert dynamic.adapter.local_rooms() == {}
    changes = [lambda: dynamic.adapter.add_all("sid", ["r"]),
               lambda: dynamic.adapter.delete("sid", "r"),
               lambda: dynamic.adapter.delete_all("sid")]
    for change in changes:
        with pytest.raises(TypeError, match="no sockets of its own"):
            change()


class ClusterAdapter(sockjet.InMemoryAdapter):
    """The in-memory adapter, as if one other server answered each ``server_side_emit``."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.asked: list[tuple[list[Any], bool, float | None]] = []

    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        self.asked.append((data, ack, timeout))
        return [f"{self.nsp.name}: {data[0]}"] if ack else []


async def test_dynamic_namespace_server_side_emit_goes_through_every_child_adapter() -> None:
    io = sockjet.Server(adapter=ClusterAdapter)
    dynamic = io.of(re.compile(r"/dyn-\d+"))
    assert await dynamic.server_side_emit("hello", ack=True) == []  # no child yet
    async with InProc(io) as clients:
        await clients.connected("/dyn-1")
        await clients.connected("/dyn-2")
        assert await dynamic.server_side_emit("hello", 1, ack=True, timeout=2) == [
            "/dyn-1: hello", "/dyn-2: hello"]
        assert await dynamic.server_side_emit("bye") == []
        for child in dynamic.children.values():
            assert isinstance(child.adapter, ClusterAdapter)
            assert child.adapter.asked == [(["hello", 1], True, 2), (["bye"], False, None)]
        assert isinstance(io.sockets.adapter, ClusterAdapter) and io.sockets.adapter.asked == []


async def test_concurrent_connections_to_a_new_dynamic_name_share_one_namespace() -> None:
    io = sockjet.Server()
    gate = asyncio.Event()
    asked: list[str] = []

    async def matcher(name: str, auth: dict[str, Any]) -> bool:
        asked.append(name)
        await gate.wait()
        return True

    rooms = io.of(matcher)
    async with InProc(io) as clients:
        a, _ = await clients.open()
        b, _ = await clients.open()
        a.client_send("40/room-1,")
        b.client_send("40/room-1,")
        await eventually(lambda: len(asked) == 2)  # both looked for /room-1: not there yet
        gate.set()
        a_id, b_id = await joined(a, "/room-1"), await joined(b, "/room-1")
        child = io.namespaces["/room-1"]
        assert rooms.children == {"/room-1": child}
        assert set(child.sockets) == {a_id, b_id}  # the second one found the first one's
        child.emit("hi")
        assert await a.next() == await b.next() == '42/room-1,["hi"]'


class ClosingAdapter(sockjet.InMemoryAdapter):
    """The in-memory adapter, counting the calls of its ``close``."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


class Refusals(SocketIOObserver):
    """Notes the reasons of refused CONNECTs (in a list made anew with each observer)."""

    reasons: list[str] = []

    def __init__(self) -> None:
        Refusals.reasons = []

    def connect_refused(self, reason: str) -> None:
        self.reasons.append(reason)


class StartingAdapter(ClosingAdapter):
    """An adapter whose ``init`` waits for ``gate`` and then raises what ``failures`` holds
    (each test makes its own class: :func:`starting_adapter`)."""

    gate: asyncio.Event | None = None
    failures: list[Exception] = []
    made: list[StartingAdapter] = []

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.made.append(self)

    async def init(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)


def starting_adapter(gated: bool = False,
                     failures: tuple[Exception, ...] = ()) -> type[StartingAdapter]:
    """A :class:`StartingAdapter` class of the test's own: gated (``gate`` to set), failing
    with ``failures`` in turn, noting every adapter it makes in ``made``."""
    return type("Adapter", (StartingAdapter,), {
        "gate": asyncio.Event() if gated else None, "failures": list(failures), "made": []})


async def test_a_dynamic_child_whose_adapter_cannot_start_is_refused_and_not_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    Adapter = starting_adapter(failures=(sockjet.AdapterError("cannot reach Redis"),))

    io = sockjet.Server(adapter=Adapter)
    dynamic = io.of(re.compile(r"/dyn-\d+"))
    io.observe(Refusals())
    async with InProc(io) as clients:
        ws, _ = await clients.open()
        ws.client_send("40/dyn-1,")
        assert await ws.next() == '44/dyn-1,{"message":"Internal server error"}'
        assert "/dyn-1" not in io.namespaces and dynamic.children == {}
        failed = Adapter.made[-1]
        await eventually(lambda: failed.closed == 1)  # what it half-opened is released
        assert [r.getMessage() for r in errors(caplog)] == [
            "cannot open the dynamic namespace /dyn-1"]
        assert Refusals.reasons == ["namespace_error"]  # counted as such
        await join(ws, "/dyn-1")  # the next CONNECT tries again, and works
        assert io.namespaces["/dyn-1"].adapter is Adapter.made[-1] is not failed


async def test_a_dynamic_matcher_that_raises_refuses_the_client_with_a_log(
        caplog: pytest.LogCaptureFixture) -> None:
    def matcher(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("matcher broke")

    io = sockjet.Server()
    io.of(matcher)
    async with InProc(io) as clients:
        ws, _ = await clients.open()
        ws.client_send("40/any,")
        assert await ws.next() == '44/any,{"message":"Internal server error"}'
        assert [r.getMessage() for r in errors(caplog)] == [
            "cannot open the dynamic namespace /any"]
        assert await join(ws)  # the connection serves on


async def test_a_matcher_that_raises_after_its_client_left_answers_nobody(
        caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Event()

    async def matcher(name: str, auth: dict[str, Any]) -> bool:
        await gate.wait()
        raise RuntimeError("matcher broke")

    io = sockjet.Server()
    io.of(matcher)
    io.observe(Refusals())
    async with InProc(io) as clients:
        ws, sid = await clients.open()
        ws.client_send("40/any,")
        ws.client_close()
        await eventually(lambda: sid not in io.engine.sessions)
        gate.set()
        await eventually(lambda: errors(caplog))  # still logged: the matcher is broken
        assert Refusals.reasons == []  # but no refusal sent or counted for a gone client


async def test_a_dynamic_child_whose_adapter_started_after_the_server_stopped_is_dropped() -> None:
    Adapter = starting_adapter(gated=True)

    io = sockjet.Server(adapter=Adapter)
    io.of(re.compile(r"/dyn-\d+"))
    async with InProc(io) as clients:
        ws, _ = await clients.open()
        ws.client_send("40/dyn-1,")
        await eventually(lambda: len(Adapter.made) == 2)
        await io.close()  # the adapters close while the child's one is still starting
        Adapter.gate.set()
        child = Adapter.made[1]
        await eventually(lambda: child.closed == 1)
        assert "/dyn-1" not in io.namespaces


async def test_a_dynamic_child_is_reachable_only_once_its_adapter_started() -> None:
    """Two clients ask for a new child together: whichever adapter starts first is the child's,
    the other is closed, and nobody joins before the adapter works."""

    Adapter = starting_adapter(gated=True)

    io = sockjet.Server(adapter=Adapter)
    io.of(re.compile(r"/dyn-\d+"))
    async with InProc(io) as clients:
        a, _ = await clients.open()
        b, _ = await clients.open()
        a.client_send("40/dyn-1,")
        b.client_send("40/dyn-1,")
        await eventually(lambda: len(Adapter.made) == 3)  # "/" and one child each
        assert "/dyn-1" not in io.namespaces
        Adapter.gate.set()
        a_id, b_id = await joined(a, "/dyn-1"), await joined(b, "/dyn-1")
        child = io.namespaces["/dyn-1"]
        assert set(child.sockets) == {a_id, b_id}
        spare = [adapter for adapter in Adapter.made[1:] if adapter is not child.adapter]
        await eventually(lambda: [adapter.closed for adapter in spare] == [1])


async def test_remove_child_namespace_leaves_static_and_removed_namespaces_alone() -> None:
    io = sockjet.Server(adapter=ClosingAdapter)
    chat = io.of("/chat")
    io.of(re.compile(r"/dyn-\d+"))
    io.remove_child_namespace(chat)  # not a child of a dynamic namespace
    assert io.namespaces["/chat"] is chat
    async with InProc(io) as clients:
        ws, _ = await clients.connected("/dyn-1")
        child = io.namespaces["/dyn-1"]
        assert isinstance(child.adapter, ClosingAdapter)
        ws.client_send("41/dyn-1,")  # its last socket leaves: the child goes
        await eventually(lambda: child.adapter.closed == 1)
        assert "/dyn-1" not in io.namespaces
        await join(ws, "/dyn-1")  # a new child of the same name
        io.remove_child_namespace(child)  # the old one again: nothing happens
        assert io.namespaces["/dyn-1"] is not child
        assert set(io.namespaces) == {"/", "/chat", "/dyn-1"}
    assert isinstance(chat.adapter, ClosingAdapter) and chat.adapter.closed == 1  # by io.close()


# -- threads --------------------------------------------------------------------------------------


async def test_emit_threadsafe_to_a_room_reaches_only_that_room() -> None:
    io = sockjet.Server()

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        with_sync(socket)
        if socket.handshake.auth.get("vip"):
            socket.join("vip")

    async with InProc(io) as clients:
        vip, _ = await clients.connected(auth={"vip": True})
        other, _ = await clients.connected()
        await asyncio.to_thread(io.emit_threadsafe, "news", 1, to="vip")
        assert await vip.next() == '42["news",1]'
        await sync(other)  # the emit is done, and it did not reach the other client


# -- protocol violations and connect flows cut short ----------------------------------------------


@pytest.mark.parametrize("packet", [
    "40",  # a second CONNECT for a namespace already joined
    '42/never,["x"]',  # an event for a namespace the client did not join
    '44{"message":"no"}',  # CONNECT_ERROR is for servers to send
])
async def test_protocol_violations_close_the_connection(packet: str) -> None:
    io = sockjet.Server()
    reasons: list[str] = []
    io.on("connection", lambda socket: socket.on("disconnect", reasons.append))
    async with InProc(io) as clients:
        ws, sid = await clients.open()
        await join(ws)
        ws.client_send(packet)
        assert await ws.next() is None  # closed, nothing sent first
        await eventually(lambda: sid not in io.engine.sessions)
        assert reasons == ["forced close"]


async def test_second_connect_during_middleware_closes_and_the_first_never_connects() -> None:
    io = sockjet.Server()
    slow = io.of("/slow")
    gate = asyncio.Event()
    entered: list[str] = []
    left: list[str] = []
    connected: list[sockjet.Socket] = []

    @slow.use
    async def wait_for_gate(socket: sockjet.Socket) -> None:
        entered.append(socket.id)
        await gate.wait()
        left.append(socket.id)

    slow.on("connection", connected.append)
    async with InProc(io) as clients:
        ws, sid = await clients.open()
        ws.client_send("40/slow,")
        await eventually(lambda: entered)
        ws.client_send("40/slow,")  # again while the first is on its way in
        assert await ws.next() is None
        await eventually(lambda: sid not in io.engine.sessions)
        gate.set()
        await eventually(lambda: left)  # the middleware let it through...
        assert connected == [] and slow.sockets == {}  # ...but the connection was gone
        assert len(entered) == 1


async def test_connection_closed_while_a_dynamic_matcher_runs_joins_nothing() -> None:
    io = sockjet.Server()
    gate = asyncio.Event()
    asked: list[str] = []
    answered: list[str] = []

    async def matcher(name: str, auth: dict[str, Any]) -> bool:
        asked.append(name)
        await gate.wait()
        answered.append(name)
        return True

    dynamic = io.of(matcher)
    middleware: list[sockjet.Socket] = []
    connected: list[sockjet.Socket] = []
    dynamic.use(middleware.append)
    dynamic.on("connection", connected.append)
    async with InProc(io) as clients:
        ws, sid = await clients.open()
        ws.client_send("40/late,")
        await eventually(lambda: asked)
        ws.client_close()
        await eventually(lambda: sid not in io.engine.sessions)
        gate.set()
        await eventually(lambda: answered)  # the match completed after the close
        assert middleware == [] and connected == []  # no middleware ran for a gone client
        assert "/late" not in io.namespaces and dynamic.children == {}  # nothing left behind


# -- sockets: handlers ----------------------------------------------------------------------------


async def test_off_removes_one_handler_or_every_handler_of_an_event() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    calls: list[str] = []

    def first(*args: Any) -> None:
        calls.append("first")

    def second(*args: Any) -> None:
        calls.append("second")

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        socket = app.sockets["/"]
        socket.on("e", first)
        socket.on("e", second)
        ws.client_send('42["e"]')
        await sync(ws)
        assert sorted(calls) == ["first", "second"]
        calls.clear()

        socket.off("e", first)
        socket.off("e", lambda: None)  # not registered: nothing happens
        socket.off("other", second)
        ws.client_send('42["e"]')
        await sync(ws)
        assert calls == ["second"]
        calls.clear()

        socket.off("e")  # every handler of the event
        socket.off("never registered")
        ws.client_send('42["e"]')
        await sync(ws)
        assert calls == []


def handler(calls: list[tuple[str, int]], name: str) -> Any:
    """A handler recording ``(name, n)`` and answering ``"from <name>"``."""

    def handle(n: int) -> str:
        calls.append((name, n))
        return f"from {name}"

    return handle


async def test_every_handler_runs_and_the_first_one_answers_the_ack(
        caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    calls: list[tuple[str, int]] = []

    def failing(n: int) -> None:
        raise RuntimeError("first handler fails")

    caplog.set_level(logging.ERROR)
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        socket = app.sockets["/"]
        for name in ("first", "second", "third"):
            socket.on("e", handler(calls, name))
        ws.client_send('427["e",1]')
        assert await ws.next() == '437["from first"]'
        assert sorted(calls) == [("first", 1), ("second", 1), ("third", 1)]
        calls.clear()

        socket.on("f", failing)
        socket.on("f", handler(calls, "after a failure"))
        ws.client_send('428["f",2]')
        await sync(ws)  # no ack from a failed first handler...
        assert calls == [("after a failure", 2)]  # ...and the others ran all the same
        assert [str(r.exc_info[1]) for r in errors(caplog) if r.exc_info] == [
            "first handler fails"]


async def test_handlers_of_one_event_run_in_registration_order() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    calls: list[tuple[str, int]] = []
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        for name in ("first", "second", "third"):
            app.sockets["/"].on("e", handler(calls, name))
        ws.client_send('42["e",1]')
        await sync(ws)
        assert calls == [("first", 1), ("second", 1), ("third", 1)]


async def test_a_failing_later_handler_is_logged_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    calls: list[str] = []

    def sync_boom(n: int) -> None:
        raise RuntimeError("sync boom")

    async def async_boom(n: int) -> None:
        await asyncio.sleep(0)
        raise KeyError("async boom")

    async def last(n: int) -> None:
        await asyncio.sleep(0)
        calls.append(f"last {n}")

    caplog.set_level(logging.ERROR, logger="sockjet")
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        socket = app.sockets["/"]
        for fn in (lambda n: n * 2, sync_boom, async_boom, last):
            socket.on("e", fn)
        ws.client_send('421["e",21]')
        assert await ws.next() == "431[42]"  # the first handler's value is the ack
        await eventually(lambda: calls == ["last 21"] and len(errors(caplog)) == 2)
        failures = errors(caplog)
        assert [type(r.exc_info[1]) if r.exc_info else None for r in failures] == [
            RuntimeError, KeyError]
        for record in failures:  # each says which event of which socket failed
            assert record.name == "sockjet.socketio"
            assert record.getMessage() == f"error in handler for 'e' on {sid}"


async def test_handler_return_values_become_the_ack_arguments() -> None:
    io = sockjet.Server()

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.on("none", lambda: None)
        socket.on("tuple", lambda: (1, "two"))
        socket.on("list", lambda: [1, "two"])

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        ws.client_send('421["none"]')
        assert await ws.next() == "431[]"
        ws.client_send('422["tuple"]')
        assert await ws.next() == '432[1,"two"]'
        ws.client_send('423["list"]')
        assert await ws.next() == '433[[1,"two"]]'


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def test_handler_values_that_are_not_awaitable_are_never_awaited() -> None:
    # a dataclass (like an enum member or a datetime) is none of the common plain types, nor a
    # coroutine: the first handler's value is the ack, a later one's is dropped
    io = sockjet.Server()

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        with_sync(socket)
        socket.on("where", lambda: Point(1, 2))
        socket.on("where", lambda: Point(3, 4))

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        ws.client_send('421["where"]')
        assert await ws.next() == '431[{"x":1,"y":2}]'
        await sync(ws)  # nothing else was sent, and the connection still answers


async def test_handler_failures_are_logged_and_answer_no_ack(
        caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    background: list[int] = []

    def boom() -> None:
        raise RuntimeError("sync boom")

    async def async_boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("async boom")

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    async def remember(n: int) -> None:
        await asyncio.sleep(0)
        background.append(n)

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        with_sync(socket)
        socket.on("boom", boom)
        socket.on("async-boom", async_boom)
        socket.on("double", double)
        socket.on("remember", remember)

    caplog.set_level(logging.ERROR, logger="sockjet")
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        ws.client_send('421["boom"]')
        ws.client_send('422["async-boom"]')
        ws.client_send('423["double",21]')
        assert await ws.next() == "433[42]"  # an async handler's result, when it returns
        await eventually(lambda: len(errors(caplog)) == 2)
        ws.client_send('42["remember",7]')  # async, no ack asked
        await eventually(lambda: background == [7])
        await sync(ws)  # neither failing handler answered
        failures = errors(caplog)
        assert [(r.name, type(r.exc_info[1]) if r.exc_info else None) for r in failures] == [
            ("sockjet.socketio", RuntimeError), ("sockjet.socketio", KeyError)]
        # each says which event of which socket failed, the async one too
        assert [r.getMessage() for r in failures] == [
            f"error in handler for 'boom' on {sid}", f"error in handler for 'async-boom' on {sid}"]


async def test_packet_refused_by_middleware_without_error_handler_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    handled: list[str] = []

    def no_secrets(packet: list[Any]) -> None:
        if packet[0] == "secret":
            raise PermissionError("no secrets here")

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        with_sync(socket)
        socket.use(no_secrets)
        socket.on("secret", lambda: handled.append("secret"))

    caplog.set_level(logging.WARNING, logger="sockjet.socketio")
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        ws.client_send('421["secret"]')
        await sync(ws)  # the next packet went through: the first one was refused, not answered
        assert handled == []
        [record] = [r for r in caplog.records if r.name == "sockjet.socketio"]
        assert record.levelno == logging.WARNING
        assert record.getMessage() == (
            f"packet refused by middleware on {sid}: PermissionError('no secrets here')")


async def test_disconnecting_handlers_still_see_the_rooms() -> None:
    io = sockjet.Server()
    seen: list[tuple[str, str, set[str]]] = []

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.join("r")
        for event in ("disconnecting", "disconnect"):
            socket.on(event, lambda reason, event=event: seen.append(
                (event, reason, socket.rooms)))

    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        ws.client_send("41")
        await eventually(lambda: len(seen) == 2)
        assert seen == [("disconnecting", "client namespace disconnect", {sid, "r"}),
                        ("disconnect", "client namespace disconnect", set())]


# -- sockets: acks --------------------------------------------------------------------------------


async def test_socket_emit_with_ack_without_timeout_returns_the_clients_arguments() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        socket = app.sockets["/"]
        replies = [('430[1,"two"]', (1, "two")), ("431[]", None), ('432["one"]', "one")]
        for ack_id, (reply, value) in enumerate(replies):
            task = asyncio.ensure_future(socket.emit_with_ack("q", b"\x00"))
            assert await ws.next() == f'451-{ack_id}["q",{{"_placeholder":true,"num":0}}]'
            assert await ws.next() == b"\x00"
            ws.client_send(reply)
            assert await asyncio.wait_for(task, 2) == value


async def test_an_ack_timeout_forgets_only_its_own_callback() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    first: list[tuple[Any, ...]] = []
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        socket = app.sockets["/"]
        socket.emit("first", callback=lambda *args: first.append(args))
        with pytest.raises(sockjet.AckTimeout, match="'second' was not acknowledged within"):
            await socket.timeout(0.05).emit_with_ack("second")
        assert await ws.next() == '420["first"]'
        assert await ws.next() == '421["second"]'
        # the timed-out ack is no longer waited for (nothing kept for it); the other one is
        assert list(socket.acks) == [0]
        ws.client_send('431["too late"]')
        ws.client_send('430["on time"]')
        await eventually(lambda: first)
        assert first == [("on time",)]


async def test_pending_acks_end_with_the_socket() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets, io.of("/other"))
    plain: list[tuple[Any, ...]] = []
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        await join(ws, "/other")
        socket = app.sockets["/"]
        socket.emit("plain", callback=lambda *args: plain.append(args))
        waiting = asyncio.ensure_future(socket.emit_with_ack("awaited"))
        assert await ws.next() == '420["plain"]'
        assert await ws.next() == '421["awaited"]'
        ws.client_send("41")  # the client leaves "/" before answering either
        with pytest.raises(sockjet.Disconnected):
            await asyncio.wait_for(waiting, 2)
        await sync(ws, "/other")  # the connection goes on
        assert plain == []  # a plain callback is simply never called


async def test_acks_nobody_waits_for_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets)
    caplog.set_level(logging.DEBUG, logger="sockjet")
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        ws.client_send('43999["never asked"]')  # an id the server never used
        await sync(ws)
        task = asyncio.ensure_future(app.sockets["/"].emit_with_ack("q"))
        assert await ws.next() == '420["q"]'
        task.cancel()  # the application stopped waiting
        with pytest.raises(asyncio.CancelledError):
            await task
        ws.client_send('430["late"]')
        await sync(ws)
        assert errors(caplog) == []
        assert sid in io.sockets.sockets


async def test_no_ack_from_an_async_handler_once_its_socket_has_left() -> None:
    io = sockjet.Server()
    app = Recorder(io.sockets, io.of("/other"))
    gate = asyncio.Event()
    started: list[bool] = []
    finished: list[bool] = []

    async def slow() -> str:
        started.append(True)
        await gate.wait()
        finished.append(True)
        return "late"

    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        await join(ws, "/other")
        app.sockets["/"].on("slow", slow)
        ws.client_send('421["slow"]')
        await eventually(lambda: started)
        ws.client_send("41")  # leaves "/" (the connection stays, with "/other")
        await eventually(lambda: not app.sockets["/"].connected)
        gate.set()
        await eventually(lambda: finished)
        await sync(ws, "/other")  # an ack for "/" would have come first


# -- sockets: operations after leaving ------------------------------------------------------------


class RoomLog(sockjet.InMemoryAdapter):
    """The in-memory adapter, recording the room changes it is asked for."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.changes: list[tuple[str, str, Any]] = []

    def add_all(self, sid: str, rooms: Any) -> None:
        self.changes.append(("add_all", sid, set(rooms)))
        super().add_all(sid, rooms)

    def delete(self, sid: str, room: str) -> None:
        self.changes.append(("delete", sid, room))
        super().delete(sid, room)


async def test_a_socket_that_left_sends_nothing_and_changes_no_room() -> None:
    io = sockjet.Server(adapter=RoomLog)
    app = Recorder(io.sockets, io.of("/other"))
    async with InProc(io) as clients:
        ws, _ = await clients.connected()
        await join(ws, "/other")
        socket = app.sockets["/"]
        socket.join(["before", "gone"])
        socket.leave("gone")
        assert socket.rooms == {socket.id, "before"}
        assert socket.disconnect() is socket
        assert await ws.next() == "41"
        adapter = io.sockets.adapter
        assert isinstance(adapter, RoomLog)
        changes = list(adapter.changes)

        called: list[Any] = []
        assert socket.emit("late", 1) is False
        assert socket.send("late", callback=called.append) is False
        assert socket.volatile.emit("late") is False
        with pytest.raises(sockjet.Disconnected):
            await socket.emit_with_ack("late", timeout=1)
        socket.join("after")
        socket.leave("before")
        assert socket.rooms == set() and "after" not in adapter.rooms
        assert adapter.changes == changes  # the adapter was not asked for anything
        assert socket.disconnect() is socket  # a second time: no second DISCONNECT
        await sync(ws, "/other")  # nothing at all was sent before this reply
        assert called == []


async def test_a_disconnect_handler_may_disconnect_the_clients_other_namespace(
        caplog: pytest.LogCaptureFixture) -> None:
    # the connection closes; "/" is told first and its handler disconnects "/chat", which the
    # connection was about to tell too: each socket is disconnected once, with its own reason
    io = sockjet.Server()
    chat = io.of("/chat")
    app = Recorder(io.sockets, chat)
    reasons: list[tuple[str, str]] = []

    def on_main_disconnect(reason: str) -> None:
        reasons.append(("/", reason))
        app.sockets["/chat"].disconnect()

    caplog.set_level(logging.ERROR)
    async with InProc(io) as clients:
        ws, sid = await clients.connected()
        await join(ws, "/chat")
        app.sockets["/"].on("disconnect", on_main_disconnect)
        app.sockets["/chat"].on("disconnect", lambda reason: reasons.append(("/chat", reason)))
        ws.client_close()
        await eventually(lambda: sid not in io.engine.sessions)
        await eventually(lambda: len(reasons) == 2)
        assert reasons == [("/", "transport close"), ("/chat", "server namespace disconnect")]
        assert io.sockets.sockets == {} and chat.sockets == {} and errors(caplog) == []


# -- bookkeeping of broadcasts with acks, and rooms of every namespace ---------------------------


async def test_ack_collector_counts_each_target_and_reply_once() -> None:
    from sockjet.socketio.operator import AckCollector

    acks = AckCollector()
    acks.expect_servers(1)  # another server will report its targets
    acks("remote-1", ["early"])  # its client answered before the server's report came
    acks("stranger", ["?"])  # not a target (yet): kept, but counts for nothing
    acks.seal(["local-1", "local-1"])  # the local targets (a repeat counts once)
    assert not acks.done.done() and acks.missing() == ["local-1"]
    acks("local-1", [1])
    acks("local-1", [1])  # a repeated answer counts once
    assert not acks.done.done()  # the other server has not reported
    acks.server_targets(["remote-1", "remote-2"])
    assert acks.missing() == ["remote-2"] and not acks.done.done()
    acks("remote-2", [2, 3])
    assert acks.done.done() and acks.complete
    assert acks.targets == ["local-1", "remote-1", "remote-2"]
    assert acks.responses() == [1, "early", (2, 3)]
    gone = AckCollector()
    gone.expect_servers(2)
    gone.seal([])
    gone.expect_servers(-2)  # both servers left before reporting: nothing to wait for
    assert gone.done.done() and gone.responses() == []


async def test_all_rooms_of_a_dynamic_namespace_span_its_children() -> None:
    io = sockjet.Server()
    dynamic = io.of(re.compile(r"^/dyn-\d+$"))

    @dynamic.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.join(f"room{socket.nsp.name}")

    assert await dynamic.all_rooms() == set()
    async with InProc(io) as clients:
        _, one = await clients.connected("/dyn-1")
        _, two = await clients.connected("/dyn-2")
        assert await dynamic.all_rooms() == {one, two, "room/dyn-1", "room/dyn-2"}
        assert await io.of("/dyn-1").all_rooms() == {one, "room/dyn-1"}
        assert await io.all_rooms() == set()  # nobody on "/"
