"""The Python client (``sockjet.AsyncClient`` and the blocking ``sockjet.Client``) against the
real npm servers socket.io 2.5 (Engine.IO 3) and socket.io 4.8 (without and with ``allowEIO3``,
and with connection state recovery), run by Node from tests/node/sio_server.js, and against our
own ``sockjet.Server`` set up to behave the same way (``py_app`` below).

Targets (server, client ``eio``): node2/3, node4/4, node4compat/4, node4compat/3, py/4, py/3.
The long-lived Node servers are started together once for the module; tests that kill or restart
a server start their own process (or in-process server) on a port of their own.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import IO, Any

import pytest
from conftest import NODE_DIR, free_port, kill_group, serve

import sockjet

NODE_CONFIGS: dict[str, dict[str, Any]] = {
    "node2": {"version": 2, "cookie": True},
    "node4": {"version": 4, "cookie": True},
    "node4compat": {"version": 4, "allowEIO3": True, "cookie": True},
    "node4csr": {"version": 4, "connectionStateRecovery": True, "cookie": True},
}

#: our own server ("py") on each binding, and the Node servers
TARGETS = [("node2", 3), ("node4", 4), ("node4compat", 4), ("node4compat", 3),
           ("py-native", 4), ("py-native", 3), ("py-asgi", 4), ("py-asgi", 3)]
each_target = pytest.mark.parametrize(("kind", "eio"), TARGETS,
                                      ids=[f"{k}-eio{e}" for k, e in TARGETS])
TRANSPORT_MODES = {
    "polling": ("polling",),
    "websocket": ("websocket",),
    "upgrade": ("polling", "websocket"),
}
each_transport = pytest.mark.parametrize("mode", list(TRANSPORT_MODES))

WAIT = 10.0  # seconds for anything that should happen "soon"
FAST_RECONNECT = {"reconnection_delay": 0.2, "reconnection_delay_max": 0.4,
                  "randomization_factor": 0.0}


# -- servers ------------------------------------------------------------------------------------


class NodeServer:
    """``node tests/node/sio_server.js <config>``: started by us, always killed by us."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> None:
        if not (NODE_DIR / "node_modules" / "srv4").is_dir():
            pytest.fail("tests/node/node_modules lacks the servers: run npm ci in tests/node")
        self.port = port or free_port()
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "sio_server.js"), json.dumps({**self.config,
                                                                   "port": self.port})],
            cwd=NODE_DIR, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def _state(self) -> str | None:
        """``"ready"``, ``None`` (not yet), or raises when the process ended."""
        assert self.proc is not None and self._log is not None
        self._log.seek(0)
        output = self._log.read().decode(errors="replace")
        if "listening" in output.splitlines():
            return "ready"
        if self.proc.poll() is not None:
            raise RuntimeError(f"node sio_server.js {self.config} exited: {output}")
        return None

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self._state() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"node sio_server.js {self.config} did not start")
            time.sleep(0.02)

    async def wait_ready_async(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self._state() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"node sio_server.js {self.config} did not start")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc.pid)
            self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(scope="module")
def node_servers() -> Iterator[dict[str, str]]:
    """The four long-lived Node servers, started concurrently; their URLs by kind."""
    servers = {kind: NodeServer(config) for kind, config in NODE_CONFIGS.items()}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        yield {kind: server.url for kind, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


class CookieRecorder:
    """Records the Cookie header of every request of an Engine.IO session (those carrying
    ``?sid=``), like sio_server.js does, by wrapping the engine's two entry points: it works
    on either binding."""

    def __init__(self, io: sockjet.Server) -> None:
        self.cookies: dict[str, list[str | None]] = {}
        engine = io.engine
        handle_request, handle_websocket = engine.handle_request, engine.handle_websocket

        async def request(req: Any) -> Any:
            self._record(req)
            return await handle_request(req)

        async def websocket(ws: Any) -> None:
            self._record(ws)
            await handle_websocket(ws)

        engine.handle_request = request  # type: ignore[method-assign]
        engine.handle_websocket = websocket  # type: ignore[method-assign]

    def _record(self, req: Any) -> None:
        sid = req.query.get("sid")
        if sid:
            self.cookies.setdefault(sid, []).append(req.headers.get("cookie"))


def py_app() -> sockjet.Server:
    """Our server with the behaviour of sio_server.js (socket.io 4 flavour: auth in
    ``handshake.auth``; refusals with ``{"reason": "bad token"}``; no state recovery)."""
    io = sockjet.Server(cookie=True)
    app = CookieRecorder(io)

    @io.on("connection")
    def on_connection(socket: sockjet.Socket) -> None:
        socket.emit("welcome", {"id": socket.id, "auth": socket.handshake.auth,
                                "headers": dict(socket.handshake.headers),
                                "query": socket.handshake.query, "recovered": False})
        socket.on("echo", lambda *args: args)
        socket.on("ask-me", lambda *_: socket.emit(
            "question", "what?", bytes([0, 1, 2, 255]),
            callback=lambda *answer: socket.emit("answer", *answer)))
        socket.on("cookies", lambda *_: app.cookies.get(socket.conn.engine.sid, []))

        async def drop_me(*_: Any) -> None:
            socket.conn.engine.close()
            await asyncio.sleep(0.1)
            io.emit("news", "while away")

        socket.on("drop-me", drop_me)

    admin = io.of("/admin")

    @admin.use
    def only_admins(socket: sockjet.Socket) -> None:
        if socket.handshake.auth.get("token") != "admin-token":
            raise sockjet.ConnectionRefused("not authorized", {"reason": "bad token"})

    @admin.on("connection")
    def on_admin(socket: sockjet.Socket) -> None:
        socket.emit("admin-welcome", {"id": socket.id, "token": socket.handshake.auth["token"]})
        socket.on("echo", lambda *args: args)

    return io


@asynccontextmanager
async def target_url(kind: str, node_servers: dict[str, str]) -> AsyncIterator[str]:
    if kind.startswith("py-"):
        async with serve(py_app(), binding=kind.removeprefix("py-")) as url:
            yield url
    else:
        yield node_servers[kind]


class OwnServer:
    """A server of ``kind`` on a fixed port of its own, to stop and start again (a new Node
    process, or a new ``sockjet.Server`` on the binding under test, on the same port)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self._node: NodeServer | None = None
        self._ours: AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self.kind.startswith("py-"):
            self._ours = AsyncExitStack()
            await self._ours.enter_async_context(
                serve(py_app(), binding=self.kind.removeprefix("py-"), port=self.port))
        else:
            self._node = NodeServer(NODE_CONFIGS[self.kind])
            self._node.start(self.port)
            await self._node.wait_ready_async()

    async def stop(self) -> None:
        if self._node is not None:
            self._node.stop()
            self._node = None
        if self._ours is not None:
            ours, self._ours = self._ours, None
            await ours.aclose()


@asynccontextmanager
async def own_server(kind: str) -> AsyncIterator[OwnServer]:
    server = OwnServer(kind)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- client helpers -----------------------------------------------------------------------------


class Inbox:
    """Events received by a client, per name, in order."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}

    def _q(self, event: str) -> asyncio.Queue[tuple[Any, ...]]:
        return self._queues.setdefault(event, asyncio.Queue())

    def handler(self, event: str) -> Any:
        return lambda *args: self._q(event).put_nowait(args)

    def listen(self, target: Any, *events: str) -> None:
        for event in events:
            target.on(event, self.handler(event))

    async def get(self, event: str, timeout: float = WAIT) -> tuple[Any, ...]:
        try:
            return await asyncio.wait_for(self._q(event).get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {event!r} within {timeout} s") from None

    def drain(self, event: str) -> list[tuple[Any, ...]]:
        q, items = self._q(event), []
        while not q.empty():
            items.append(q.get_nowait())
        return items


async def until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[sockjet.AsyncClient]:
    c = sockjet.AsyncClient(url, **options)
    try:
        yield c
    finally:
        await c.disconnect()


def main_token(welcome: dict[str, Any], eio: int) -> Any:
    """Where the main namespace's auth arrives: the CONNECT payload (protocol 5) or, for
    Engine.IO 3 clients (socket.io 2.x connects "/" implicitly), the handshake query."""
    return welcome["auth"].get("token") if eio == 4 else welcome["query"].get("token")


def expected_refusal(kind: str) -> tuple[str, Any]:
    """(message, data) of the ConnectError for /admin with a bad token."""
    if kind == "node2":  # socket.io 2.x sends err.message: 4/admin,"not authorized"
        return "not authorized", "not authorized"
    return "not authorized", {"reason": "bad token"}


# -- connect, auth, namespaces, events, binary, acks, transports, headers ----------------------


@each_target
@each_transport
async def test_core(node_servers: dict[str, str], kind: str, eio: int, mode: str) -> None:
    transports = TRANSPORT_MODES[mode]
    async with target_url(kind, node_servers) as url, client(
            url, eio=eio, transports=transports, auth={"token": "t"}, query={"q": "1"},
            extra_headers={"x-extra": "everywhere"},
            transport_options={"polling": {"extra_headers": {"x-polling": "only-polls"}}},
            reconnection=False) as c:
        inbox = Inbox()
        inbox.listen(c, "welcome", "answer", "connect")
        c.on("question", lambda *args: ("answered", args[0], args[1][::-1]))
        admin = c.of("/admin", auth={"token": "admin-token"})
        inbox.listen(admin, "admin-welcome")
        await c.connect()
        assert c.connected and admin.connected

        (welcome,) = await inbox.get("welcome")
        assert welcome["id"] == c.id
        assert main_token(welcome, eio) == "t"
        assert welcome["query"]["q"] == "1"
        assert welcome["query"]["EIO"] == str(eio)
        headers = welcome["headers"]
        assert headers["x-extra"] == "everywhere"
        if transports[0] == "polling":  # the handshake request was a poll
            assert headers["x-polling"] == "only-polls"
            assert welcome["query"]["transport"] == "polling"
        else:
            assert "x-polling" not in headers
            assert welcome["query"]["transport"] == "websocket"
        (admin_welcome,) = await inbox.get("admin-welcome")
        assert admin_welcome == {"id": admin.id, "token": "admin-token"}
        if eio == 3:  # v2-style ids: the Engine.IO sid, "<nsp>#<sid>" for others
            assert c.id == c.engine.sid and admin.id == f"/admin#{c.id}"
        else:
            assert c.id != admin.id and c.engine.sid not in (c.id, admin.id)
        await inbox.get("connect")

        # client -> server events with binary, server acks with binary
        payload = ("text é😀", 42, b"\x00\x01\xfe\xff", {"nested": [b"\x10", None, True]})
        assert await c.emit_with_ack("echo", *payload, timeout=WAIT) == payload
        assert await c.emit_with_ack("echo", b"\x07", timeout=WAIT) == b"\x07"
        assert await c.emit_with_ack("echo", timeout=WAIT) is None
        assert await admin.emit_with_ack("echo", "admin", b"\xaa", timeout=WAIT) == (
            "admin", b"\xaa")
        acked: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        c.emit("echo", "cb", b"\x01", callback=lambda *a: acked.set_result(a))
        assert await asyncio.wait_for(acked, WAIT) == ("cb", b"\x01")

        # server -> client event with binary and an ack; our ack (binary) comes back
        c.emit("ask-me")
        assert await inbox.get("answer") == ("answered", "what?", b"\xff\x02\x01\x00")

        if mode == "upgrade":
            await until(lambda: c.transport == "websocket", "the upgrade to websocket")
            assert await c.emit_with_ack("echo", b"\x05", "after upgrade",
                                         timeout=WAIT) == (b"\x05", "after upgrade")
        else:  # no upgrade: had one been tried, it would have happened during the acks above
            assert c.transport == transports[0]

        # a namespace refusal: ConnectError with the server's message and data
        refused = sockjet.AsyncClient(url, eio=eio, transports=transports, reconnection=False)
        errors: list[Any] = []
        bad = refused.of("/admin", auth={"token": "not-it"})
        bad.on("connect_error", errors.append)
        try:
            with pytest.raises(sockjet.ConnectError) as info:
                await refused.connect()
        finally:
            await refused.disconnect()
        message, data = expected_refusal(kind)
        if eio == 3 and kind != "node2":  # err.data only: the message is not on the wire
            assert info.value.data == data
        else:
            assert (info.value.message, info.value.data) == (message, data)
        assert errors == [info.value]
        assert not bad.connected
        assert c.connected and admin.connected  # the other client is not affected


# -- cookies (with_credentials) -----------------------------------------------------------------


@each_target
@pytest.mark.parametrize("with_credentials", [True, False], ids=["credentials", "no-credentials"])
async def test_cookies(node_servers: dict[str, str], kind: str, eio: int,
                       with_credentials: bool) -> None:
    async with target_url(kind, node_servers) as url, client(
            url, eio=eio, with_credentials=with_credentials, reconnection=False) as c:
        inbox = Inbox()
        inbox.listen(c, "welcome")
        await c.connect()
        (welcome,) = await inbox.get("welcome")
        assert "cookie" not in welcome["headers"]  # the first request has nothing to send
        sid = c.engine.sid
        await until(lambda: c.transport == "websocket", "the upgrade")
        assert await c.emit_with_ack("echo", 1, timeout=WAIT) == 1
        seen = await c.emit_with_ack("cookies", timeout=WAIT)
        assert seen, "the server saw no request of this session after the handshake"
        if with_credentials:
            assert all(cookie == f"io={sid}" for cookie in seen), seen
            assert c.cookies.get("io") == sid
        else:
            assert seen == [None] * len(seen)

        # the jar outlives the connection: the next handshake sends it (only with credentials)
        await c.disconnect()
        await c.connect()
        (welcome,) = await inbox.get("welcome")
        if with_credentials:
            assert welcome["headers"]["cookie"] == f"io={sid}"
        else:
            assert "cookie" not in welcome["headers"]


# -- reconnection -------------------------------------------------------------------------------


@each_target
async def test_reconnect_after_server_restart(kind: str, eio: int) -> None:
    async with own_server(kind) as server, client(server.url, eio=eio, auth={"token": "t"},
                                                  **FAST_RECONNECT) as c:
        inbox = Inbox()
        inbox.listen(c, "welcome", "disconnect", "reconnect_attempt", "reconnect",
                     "reconnect_error", "reconnect_failed")
        admin = c.of("/admin", auth={"token": "admin-token"})
        inbox.listen(admin, "admin-welcome", "disconnect")
        await c.connect()
        (first,) = await inbox.get("welcome")
        await inbox.get("admin-welcome")

        await server.stop()
        (reason,) = await inbox.get("disconnect")
        assert reason in ("transport close", "transport error")
        assert not c.connected and not admin.connected
        # emits while disconnected are buffered (acks included)
        acked: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        c.emit("echo", "buffered", b"\x09", callback=lambda *a: acked.set_result(a))
        admin_ack = asyncio.ensure_future(admin.emit_with_ack("echo", "admin-buffered",
                                                              timeout=30))
        # at least one attempt fails while the server is down
        (error,) = await inbox.get("reconnect_error")
        assert isinstance(error, ConnectionError)

        await server.start()  # same port
        (attempts,) = await inbox.get("reconnect")
        assert attempts >= 2
        assert [a for (a,) in inbox.drain("reconnect_attempt")] == list(range(1, attempts + 1))
        await until(lambda: c.connected and admin.connected, "both namespaces reconnected")
        (second,) = await inbox.get("welcome")
        assert second["id"] == c.id != first["id"]
        assert main_token(second, eio) == "t"
        await inbox.get("admin-welcome")
        assert await asyncio.wait_for(acked, WAIT) == ("buffered", b"\x09")
        assert await admin_ack == "admin-buffered"
        assert await c.emit_with_ack("echo", "after", timeout=WAIT) == "after"
        assert inbox.drain("reconnect_failed") == []


@each_target
async def test_reconnection_attempts_limit(kind: str, eio: int) -> None:
    async with own_server(kind) as server, client(
            server.url, eio=eio, reconnection_attempts=2, reconnection_delay=0.1,
            reconnection_delay_max=0.2, randomization_factor=0.0) as c:
        inbox = Inbox()
        inbox.listen(c, "disconnect", "reconnect_attempt", "reconnect_error", "reconnect_failed",
                     "reconnect")
        await c.connect()
        await server.stop()
        await inbox.get("disconnect")
        await inbox.get("reconnect_failed")
        await asyncio.wait_for(c.wait(), WAIT)  # done for good
        assert [a for (a,) in inbox.drain("reconnect_attempt")] == [1, 2]
        assert len(inbox.drain("reconnect_error")) == 2
        assert inbox.drain("reconnect") == [] and inbox.drain("reconnect_failed") == []
        assert not c.connected


# -- server-side drop: connection state recovery (socket.io 4) or a fresh session -------------


@each_transport
async def test_connection_state_recovery(node_servers: dict[str, str], mode: str) -> None:
    async with client(node_servers["node4csr"], transports=TRANSPORT_MODES[mode],
                      auth={"token": "t"}, reconnection_delay=0.4, reconnection_delay_max=0.4,
                      randomization_factor=0.0) as c:
        inbox = Inbox()
        inbox.listen(c, "welcome", "news", "disconnect", "reconnect")
        await c.connect()
        welcome, offset = await inbox.get("welcome")  # the offset rides as a last argument
        assert isinstance(offset, str) and not c.main.recovered
        if mode == "upgrade":
            await until(lambda: c.transport == "websocket", "the upgrade")
        first_id = c.id

        c.emit("drop-me")
        (reason,) = await inbox.get("disconnect")
        assert reason in ("transport close", "transport error")
        await inbox.get("reconnect")
        assert c.connected and c.main.recovered
        assert c.id == first_id  # the same session
        news = await inbox.get("news")  # emitted while we were away, replayed on recovery
        assert news[0] == "while away" and isinstance(news[-1], str)
        assert await c.emit_with_ack("echo", b"\x01", timeout=WAIT) == b"\x01"

        # the recovered socket is announced again, flagged as recovered
        welcome, _ = await inbox.get("welcome")
        assert welcome["recovered"] is True and welcome["id"] == first_id

    # another client starts afresh: nothing to recover
    async with client(node_servers["node4csr"], transports=TRANSPORT_MODES[mode]) as other:
        others = Inbox()
        others.listen(other, "welcome")
        await other.connect()
        welcome, _ = await others.get("welcome")
        assert welcome["recovered"] is False and not other.main.recovered
        assert other.id == welcome["id"] != first_id


@each_target
async def test_server_drop_without_recovery(node_servers: dict[str, str], kind: str,
                                            eio: int) -> None:
    async with target_url(kind, node_servers) as url, client(
            url, eio=eio, reconnection_delay=0.4, reconnection_delay_max=0.4,
            randomization_factor=0.0) as c:
        inbox = Inbox()
        inbox.listen(c, "welcome", "news", "disconnect", "reconnect")
        await c.connect()
        await inbox.get("welcome")
        first_id = c.id
        c.emit("drop-me")
        (reason,) = await inbox.get("disconnect")
        assert reason in ("transport close", "transport error")
        await inbox.get("reconnect")
        (welcome,) = await inbox.get("welcome")
        assert c.connected and not c.main.recovered
        assert c.id == welcome["id"] != first_id
        # sent while we were away, lost without recovery: a replay would have come before the
        # welcome (missed events precede the CONNECT reply, and the welcome follows it)
        assert inbox.drain("news") == []


# -- the blocking facade ------------------------------------------------------------------------


def sync_session(url: str, eio: int) -> dict[str, Any]:
    """Plain synchronous code: no event loop in this thread."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    got: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
    c = sockjet.Client(url, eio=eio, auth={"token": "t"}, reconnection=False)
    c.on("welcome", lambda *a: got.put(("welcome", a)))
    c.on("answer", lambda *a: got.put(("answer", a)))
    c.on("question", lambda *a: ("sync", a[1]))
    admin = c.of("/admin", auth={"token": "admin-token"})
    admin.on("admin-welcome", lambda *a: got.put(("admin-welcome", a)))
    result: dict[str, Any] = {}
    with c:
        result["connected"] = (c.connected, admin.connected)
        result["ids"] = (c.id, admin.id)
        result["echo"] = c.emit_with_ack("echo", "sync", b"\x00\x01", timeout=WAIT)
        result["admin-echo"] = admin.emit_with_ack("echo", b"\xff", timeout=WAIT)
        c.emit("ask-me")
        while len(result) < 7:
            event, args = got.get(timeout=WAIT)
            result[event] = args
        try:
            c.emit_with_ack("echo", 1, timeout=0.000001)
        except sockjet.AckTimeout:
            result["ack-timeout"] = True
    result["after"] = c.connected

    refused = sockjet.Client(url, eio=eio, reconnection=False)
    refused.of("/admin", auth={"token": "wrong"})
    try:
        refused.connect()
    except sockjet.ConnectError as exc:
        result["refused"] = exc.data
    finally:
        refused.disconnect()
    return result


@each_target
async def test_sync_client(node_servers: dict[str, str], kind: str, eio: int) -> None:
    async with target_url(kind, node_servers) as url:
        # the server (ours: on this loop) keeps running while the sync code blocks a thread
        result = await asyncio.wait_for(asyncio.to_thread(sync_session, url, eio), 60)
    assert result["connected"] == (True, True)
    (welcome,) = result["welcome"]
    assert welcome["id"] == result["ids"][0] and main_token(welcome, eio) == "t"
    assert result["admin-welcome"] == ({"id": result["ids"][1], "token": "admin-token"},)
    assert result["echo"] == ("sync", b"\x00\x01")
    assert result["admin-echo"] == b"\xff"
    assert result["answer"] == ("sync", b"\x00\x01\x02\xff")
    assert result.get("ack-timeout") is True
    assert result["after"] is False
    assert result["refused"] == expected_refusal(kind)[1]


@pytest.mark.parametrize("binding", ["native", "asgi"], indirect=True)
async def test_connection_closes_when_no_namespace_is_left(binding: str) -> None:
    """As socket.io-client: once the server disconnected every namespace, the connection
    closes and wait() returns; one namespace left keeps it open."""
    io = sockjet.Server()
    sockets: dict[str, sockjet.Socket] = {}
    for name in ("/", "/chat"):
        io.of(name).on("connection", lambda s, name=name: (sockets.__setitem__(name, s),
                                                          s.on("echo", lambda x: x)))
    async with serve(io, binding) as url:
        c = sockjet.AsyncClient(url, transports=["websocket"])
        c.of("/chat")
        await c.connect()
        await until(lambda: len(sockets) == 2, "both namespaces")
        sockets["/chat"].disconnect()
        await until(lambda: not c.of("/chat").connected, "the /chat disconnect")
        assert await c.emit_with_ack("echo", 1, timeout=5) == 1  # "/" goes on
        assert c.engine is not None and c.engine.state == "open"
        sockets["/"].disconnect()
        await asyncio.wait_for(c.wait(), 5)
        assert c.engine.state == "closed"
        await until(lambda: not io.engine.sessions, "the session's end on the server")
