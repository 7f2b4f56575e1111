"""The real npm socket.io-client 2.4 (protocol 4 over Engine.IO 3) and 4.8 (protocol 5 over
Engine.IO 4), run by Node through tests/node/sio_client.js, against ``sockjet.Server``.

Every scenario runs for both client versions and, where it applies, over polling only and over
WebSocket only. Results of the runner's steps are picked by the ``as`` key a step carries (the
runner ignores it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_node_json, serve

import sockjet
from sockjet import AckTimeout, ConnectionRefused, Disconnected, Socket

#: everything here goes through a binding: each test runs on both
pytestmark = pytest.mark.usefixtures("binding")

VERSIONS = [2, 4]
TRANSPORTS = ["polling", "websocket"]

each_client = pytest.mark.parametrize(
    ("version", "transport"),
    [(v, t) for v in VERSIONS for t in TRANSPORTS],
    ids=[f"v{v}-{t}" for v in VERSIONS for t in TRANSPORTS],
)


# -- helpers ------------------------------------------------------------------------------------


def js(value: Any) -> Any:
    """A Python value as the runner writes it (bytes -> {"$bin": hex}; tuples -> lists)."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list | tuple):
        return [js(v) for v in value]
    if isinstance(value, dict):
        return {k: js(v) for k, v in value.items()}
    return value


def creds(version: int, auth: dict[str, Any]) -> dict[str, Any]:
    """Client options carrying ``auth``: v4 ``opts.auth``; v2 ``opts.query`` (strings only)."""
    if version == 4:
        return {"auth": auth}
    return {"query": {k: str(v) for k, v in auth.items()}}


def connect(name: str, nsp: str = "", *, listen: tuple[str, ...] = (),
            multiplex: bool = False, **opts: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "connect", "name": name, "nsp": nsp, "opts": opts,
                            "listen": list(listen)}
    if multiplex:
        step["multiplex"] = True
    return step


def wait(name: str, event: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"op": "wait", "name": name, "event": event, "as": key or f"{name}:{event}", **extra}


def emit(name: str, event: str, *args: Any, ack: bool = False, key: str | None = None,
         **extra: Any) -> dict[str, Any]:
    step = {"op": "emit", "name": name, "event": event, "args": js(list(args)), "ack": ack,
            **extra}
    if key:
        step["as"] = key
    return step


def reply(name: str, event: str, *values: Any) -> dict[str, Any]:
    return {"op": "reply", "name": name, "event": event, "reply": js(list(values))}


def state(name: str) -> dict[str, Any]:
    return {"op": "state", "name": name, "as": f"{name}:state"}


def drain(name: str, event: str) -> dict[str, Any]:
    return {"op": "drain", "name": name, "event": event, "as": f"{name}:drain:{event}"}


async def run_client(url: str, version: int, transport: str | None, steps: list[dict[str, Any]],
                     timeout_ms: int = 5000) -> dict[str, Any]:
    """Run one Node process; return ``{as-key: result}``. Fails on a runner-level error."""
    for step in steps:
        if step["op"] == "connect" and transport is not None:
            step["opts"].setdefault("transports", [transport])
    out = await run_node_json(
        "sio_client.js",
        {"version": version, "url": url, "timeout": timeout_ms, "steps": steps},
        timeout=40,
    )
    assert out.get("error") is None, out
    assert out["exit_code"] == 0, out
    results = out["results"]
    assert len(results) == len(steps), out
    keyed: dict[str, Any] = {}
    for step, result in zip(steps, results, strict=True):
        if "as" in step:
            keyed[step["as"]] = result
        elif isinstance(result, dict) and "$error" in result:
            raise AssertionError(f"step {step} failed: {result}\n{out['stderr']}")
    return keyed


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- connecting ---------------------------------------------------------------------------------


@each_client
async def test_connect_ids_auth_and_query(version: int, transport: str) -> None:
    io = sockjet.Server()
    seen: dict[str, Socket] = {}

    def on_connection(socket: Socket) -> None:
        seen[socket.id] = socket

        @socket.on("whoami")
        def whoami() -> dict[str, Any]:
            return {"id": socket.id, "nsp": socket.nsp.name, "transport": socket.transport,
                    "protocol": socket.socketio_protocol, "engine": socket.conn.engine.sid}

    io.on("connection", on_connection)
    io.of("/admin").on("connection", on_connection)

    root_auth = {"token": "r-tok", "n": 7}
    if version == 4:
        admin_auth: dict[str, Any] = {"token": "a-tok", "n": 1, "nested": {"x": [1, "é"]}}
    else:
        admin_auth = {"token": "a-tok", "n": "1", "text": "é 😀 &=?#+/"}
    names = {"root": "/", "adm": "/admin", "plain_root": "/", "plain_adm": "/admin"}
    steps = [
        connect("root", "", **creds(version, root_auth)),
        connect("adm", "/admin", **creds(version, admin_auth)),
        connect("plain_root", ""),
        connect("plain_adm", "/admin"),
    ]
    for name in names:
        steps += [wait(name, "connect"), emit(name, "whoami", ack=True, key=f"{name}:who"),
                  state(name)]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)

    ids = set()
    for name, nsp in names.items():
        st = r[f"{name}:state"]
        assert st["connected"] is True, (name, r)
        assert st["transport"] == transport
        sid = st["id"]
        ids.add(sid)
        socket = seen[sid]  # the client's socket.id is the server's socket.id
        assert socket.nsp.name == nsp
        assert socket.conn.engine.sid == st["engineId"]
        assert r[f"{name}:who"] == [{
            "id": sid, "nsp": nsp, "transport": transport,
            "protocol": 4 if version == 2 else 5, "engine": st["engineId"],
        }]
        assert socket.handshake.query["EIO"] == ("3" if version == 2 else "4")
        if version == 2:  # v2 ids: "/" -> engine id, other namespaces -> "<nsp>#<engine id>"
            assert sid == (st["engineId"] if nsp == "/" else f"{nsp}#{st['engineId']}")
        else:  # v5 socket ids are not the engine id
            assert sid != st["engineId"]
            assert not sid.startswith("/")
    assert len(ids) == 4

    root = seen[r["root:state"]["id"]]
    adm = seen[r["adm:state"]["id"]]
    if version == 4:
        assert root.handshake.auth == root_auth
        assert "token" not in root.handshake.query
    else:  # the v2 "/" socket: no CONNECT packet, the query is the engine handshake's
        assert root.handshake.auth == {}
        assert root.handshake.query["token"] == "r-tok"
        assert root.handshake.query["n"] == "7"
    assert adm.handshake.auth == admin_auth
    assert seen[r["plain_root:state"]["id"]].handshake.auth == {}
    assert seen[r["plain_adm:state"]["id"]].handshake.auth == {}


@each_client
async def test_middleware_refusal(version: int, transport: str) -> None:
    io = sockjet.Server()

    @io.use
    def root_mw(socket: Socket) -> None:
        source = socket.handshake.auth if socket.socketio_protocol == 5 else socket.handshake.query
        if source.get("deny"):
            raise ConnectionRefused("not authorized", {"reason": "root", "n": [1, 2]})

    admin = io.of("/admin")

    @admin.use
    async def admin_mw(socket: Socket) -> None:
        await asyncio.sleep(0.01)
        if socket.handshake.auth.get("token") != "ok":
            raise ConnectionRefused("admin denied", {"reason": "bad token"})
        socket.data["user"] = "alice"

    @admin.on("connection")
    def admin_conn(socket: Socket) -> None:
        socket.emit("welcome", socket.data["user"])

    def message_only(socket: Socket) -> None:
        raise ConnectionRefused("only message")

    io.of("/msgonly").use(message_only)
    refused: list[str] = []
    io.of("/msgonly").on("connection", lambda s: refused.append(s.id))

    failure = "connect_error" if version == 4 else "error"
    steps = [
        connect("r", "", **creds(version, {"deny": 1})),
        connect("a", "/admin", **creds(version, {"token": "bad"})),
        connect("m", "/msgonly"),
        connect("ok", "/admin", listen=("welcome",), **creds(version, {"token": "ok"})),
        wait("r", failure), wait("a", failure), wait("m", failure),
        wait("ok", "connect"), wait("ok", "welcome"),
        state("r"), state("a"), state("m"), state("ok"),
    ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)

    if version == 4:  # CONNECT_ERROR {message, data} -> Error(message) with .data
        assert r["r:connect_error"] == [{"$error": "not authorized",
                                         "data": {"reason": "root", "n": [1, 2]}}]
        assert r["a:connect_error"] == [{"$error": "admin denied",
                                         "data": {"reason": "bad token"}}]
        assert r["m:connect_error"] == [{"$error": "only message", "data": None}]
    else:  # ERROR with err.data || err.message -> an "error" event carrying it
        assert r["r:error"] == [{"reason": "root", "n": [1, 2]}]
        assert r["a:error"] == [{"reason": "bad token"}]
        assert r["m:error"] == ["only message"]
    assert r["ok:welcome"] == ["alice"]
    for name in ("r", "a", "m"):
        assert r[f"{name}:state"]["connected"] is False
    assert r["ok:state"]["connected"] is True
    assert refused == []
    assert not io.of("/msgonly").sockets


@each_client
async def test_unknown_namespace(version: int, transport: str) -> None:
    io = sockjet.Server()
    io.on("connection", lambda s: s.on("echo", lambda *a: a))
    failure = "connect_error" if version == 4 else "error"
    steps = [
        connect("root", "", multiplex=True),
        connect("nope", "/nope", multiplex=True),
        wait("root", "connect"),
        wait("nope", failure),
        emit("root", "echo", "still here", ack=True, key="echo"),
        state("root"), state("nope"),
    ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)
    if version == 4:
        assert r["nope:connect_error"] == [{"$error": "Invalid namespace", "data": None}]
    else:
        assert r["nope:error"] == [{"message": "Invalid namespace"}]
    assert r["echo"] == ["still here"]  # the shared connection survives the refusal
    assert r["nope:state"]["connected"] is False
    assert r["root:state"]["connected"] is True
    assert "/nope" not in io.namespaces


# -- events, binary, acks -----------------------------------------------------------------------

VALUES: list[Any] = [
    "plain",
    "héllo wörld € ünïcødé",
    "astral 😀🎉 𝄞 and 中文",
    'quotes " backslash \\ newline \n tab \t nul \x00 ls \u2028',
    "",
    "x" * 20000 + "😀",
    0, -42, 2**53 - 1, 3.25, -1e-7,
    True, False, None,
    {"nested": {"list": [1, "two", None, {"deep": [True, 2.5]}]}, "clé 😀": "v"},
    [], {}, [[], {}],
    [1, [2, [3, [4, [5]]]]],
]


@each_client
async def test_event_argument_types(version: int, transport: str) -> None:
    io = sockjet.Server()
    received: list[tuple[Any, ...]] = []

    @io.on("connection")
    def conn(socket: Socket) -> None:
        @socket.on("echo")
        def echo(*args: Any) -> tuple[Any, ...]:
            received.append(args)
            return args

        @socket.on("send-back")
        def send_back(*args: Any) -> None:
            socket.emit("values", *args)
            socket.emit("many", *range(40))
            socket.emit("nothing")

    many = [{"i": i, "s": "é" * i} for i in range(25)]
    steps = [
        connect("c", "", listen=("values", "many", "nothing")),
        wait("c", "connect"),
        emit("c", "echo", *VALUES, ack=True, key="all"),
        emit("c", "echo", ack=True, key="none"),
        emit("c", "echo", "solo", ack=True, key="solo"),
        emit("c", "echo", *many, ack=True, key="many"),
        emit("c", "send-back", *VALUES),
        wait("c", "values"), wait("c", "many"), wait("c", "nothing"),
    ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)
    assert received == [tuple(VALUES), (), ("solo",), tuple(many)]
    assert r["all"] == VALUES
    assert r["none"] == []
    assert r["solo"] == ["solo"]
    assert r["many"] == many
    assert r["c:values"] == VALUES
    assert r["c:many"] == list(range(40))
    assert r["c:nothing"] == []


BIN_ARGS: list[Any] = [
    b"\x00\xff\x10",
    {"nested": {"b": b"\xde\xad\xbe\xef", "t": "é😀"}, "list": [b"\x01", "t", 3, {"x": b"\x02"}]},
    "text é😀",
    bytes(range(256)) * 3,
    b"",
    [b"\x7f", [b"\x80\x81"]],
]


@each_client
async def test_binary_both_ways(version: int, transport: str) -> None:
    """Bytes in events and acks, both ways, on "/" and on a multiplexed namespace (whose
    BINARY_EVENT/BINARY_ACK headers carry the namespace)."""
    io = sockjet.Server()
    received: dict[str, list[tuple[Any, ...]]] = {"/": [], "/admin": []}
    asked: dict[str, list[Any]] = {"/": [], "/admin": []}

    def setup(socket: Socket) -> None:
        nsp = socket.nsp.name

        @socket.on("bin-echo")
        def bin_echo(*args: Any) -> tuple[Any, ...]:
            received[nsp].append(args)
            return args

        socket.on("bin-ack", lambda: (b"\x00\x01", {"x": b"\xff" * 3, "l": [b"a", "text"]}))

        @socket.on("bin-push")
        async def bin_push() -> str:
            socket.emit("bin", b"\x01\x02", {"nested": {"deep": [b"\x03", 4]}}, nsp)
            asked[nsp].append(await socket.emit_with_ack("bin-ask", b"\xde\xad", {"k": b""},
                                                         timeout=5))
            return "pushed"

    io.on("connection", setup)
    io.of("/admin").on("connection", setup)
    steps = [connect("root", "", listen=("bin",), multiplex=True),
             connect("adm", "/admin", listen=("bin",), multiplex=True)]
    for name in ("root", "adm"):
        steps += [
            reply(name, "bin-ask", b"\xbe\xef", {"k": b"\x00", "s": name}),
            wait(name, "connect"),
            emit(name, "bin-echo", *BIN_ARGS, ack=True, key=f"{name}:echo"),
            emit(name, "bin-ack", ack=True, key=f"{name}:ack"),
            emit(name, "bin-push", ack=True, key=f"{name}:push"),
            wait(name, "bin"), wait(name, "bin-ask"),
        ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)
    for name, nsp in (("root", "/"), ("adm", "/admin")):
        # bytes arrive as bytes, wherever they are nested
        assert received[nsp] == [tuple(BIN_ARGS)]
        assert r[f"{name}:echo"] == js(BIN_ARGS)
        assert r[f"{name}:ack"] == js([b"\x00\x01", {"x": b"\xff" * 3, "l": [b"a", "text"]}])
        assert r[f"{name}:push"] == ["pushed"]
        assert r[f"{name}:bin"] == js([b"\x01\x02", {"nested": {"deep": [b"\x03", 4]}}, nsp])
        assert r[f"{name}:bin-ask"] == js([b"\xde\xad", {"k": b""}])
        assert asked[nsp] == [(b"\xbe\xef", {"k": b"\x00", "s": name})]


@each_client
async def test_acks_and_timeouts(version: int, transport: str) -> None:
    io = sockjet.Server()
    outcomes: dict[str, dict[str, Any]] = {}
    unhandled: list[tuple[str, str]] = []

    def setup(socket: Socket) -> None:
        nsp = socket.nsp

        @socket.on_any
        def record(event: str, *args: Any) -> None:
            if event == "nohandler":
                unhandled.append((nsp.name, event))

        socket.on("tuple", lambda *a: ("one", 2, [3], {"four": None}))
        socket.on("single", lambda x: {"got": x})
        socket.on("none", lambda: None)

        async def slow(x: int) -> int:
            await asyncio.sleep(0.05)
            return x * 2

        socket.on("async", slow)

        @socket.on("start")
        async def start() -> str:
            out: dict[str, Any] = {}
            out["several"] = await socket.emit_with_ack("ask", "q1", timeout=5)
            out["one"] = await socket.emit_with_ack("ask1", timeout=5)
            out["zero"] = await socket.emit_with_ack("ask0", timeout=5)
            done: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
            socket.emit("ask", "q2", callback=lambda *a: done.set_result(a))
            out["callback"] = await asyncio.wait_for(done, 5)
            out["broadcast"] = await nsp.timeout(5).emit_with_ack("ask1")
            try:
                await socket.timeout(0.3).emit_with_ack("ignored", 1)
            except AckTimeout:
                out["timeout"] = True
            try:
                await nsp.timeout(0.3).emit_with_ack("ignored", 2)
            except AckTimeout as exc:
                out["broadcast_timeout"] = (exc.responses, exc.missing)
            outcomes[nsp.name] = out
            return "done"

    io.on("connection", setup)
    io.of("/admin").on("connection", setup)

    steps: list[dict[str, Any]] = [connect("root", "", multiplex=True),
                                   connect("adm", "/admin", multiplex=True)]
    for name in ("root", "adm"):
        steps += [reply(name, "ask", "yes", 2), reply(name, "ask1", "only"), reply(name, "ask0")]
    for name in ("root", "adm"):
        steps += [
            wait(name, "connect"),
            state(name),
            emit(name, "tuple", ack=True, key=f"{name}:tuple"),
            emit(name, "single", {"a": 1}, ack=True, key=f"{name}:single"),
            emit(name, "none", ack=True, key=f"{name}:none"),
            emit(name, "async", 21, ack=True, key=f"{name}:async"),
            emit(name, "nohandler", "x", ack=True, timeout=400, key=f"{name}:nohandler"),
            emit(name, "start", ack=True, timeout=8000, key=f"{name}:start"),
        ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)

    for name, nsp in (("root", "/"), ("adm", "/admin")):
        assert r[f"{name}:tuple"] == ["one", 2, [3], {"four": None}]
        assert r[f"{name}:single"] == [{"got": {"a": 1}}]
        assert r[f"{name}:none"] == []  # a handler returning None still acknowledges
        assert r[f"{name}:async"] == [42]
        assert r[f"{name}:nohandler"] == {"$timeout": True}  # client-side ack timeout
        assert r[f"{name}:start"] == ["done"]
        assert outcomes[nsp] == {
            "several": ("yes", 2),
            "one": "only",
            "zero": None,
            "callback": ("yes", 2),
            "broadcast": ["only"],
            "timeout": True,
            "broadcast_timeout": ([], [r[f"{name}:state"]["id"]]),
        }
    assert unhandled == [("/", "nohandler"), ("/admin", "nohandler")]


# -- rooms and broadcasts -----------------------------------------------------------------------


@each_client
async def test_rooms_and_except(version: int, transport: str) -> None:
    io = sockjet.Server()
    fetched: list[set[str]] = []
    admin = io.of("/admin")

    @io.on("connection")
    def conn(socket: Socket) -> None:
        @socket.on("join")
        def join(*rooms: str) -> list[str]:
            for room in rooms:
                socket.join(room)
            return sorted(socket.rooms - {socket.id})

        @socket.on("go")
        async def go() -> str:
            io.to("red").emit("m", "red")
            io.to("red").except_("blue").emit("m", "red-not-blue")
            io.to(["red", "blue"]).emit("m", "red-or-blue")
            io.in_("blue").to("red").emit("m", "union")
            io.except_("red").emit("m", "not-red")
            io.except_(["red", "blue"]).emit("m", "neither")
            socket.to("red").emit("m", "red-from-a")
            socket.broadcast.emit("m", "broadcast-from-a")
            socket.except_("blue").emit("m", "a-except-blue")
            admin.to("red").emit("m", "admin-red")
            io.in_("blue").sockets_join("green")
            io.to("green").emit("m", "green")
            fetched.append({s.id for s in await io.in_("green").fetch_sockets()})
            for s in io.sockets.sockets.values():
                if "blue" in s.rooms:
                    s.leave("red")
            io.to("red").emit("m", "red-after-leave")
            io.emit("end")
            admin.emit("end")
            return "ok"

    @admin.on("connection")
    def admin_conn(socket: Socket) -> None:
        socket.on("join", lambda room: socket.join(room))

    steps = [connect(n, "", listen=("m", "end")) for n in ("a", "b", "c", "d")]
    steps.append(connect("x", "/admin", listen=("m", "end")))
    steps += [wait(n, "connect") for n in ("a", "b", "c", "d", "x")]
    steps += [
        emit("a", "join", "red", ack=True, key="a:rooms"),
        emit("b", "join", "red", "blue", ack=True, key="b:rooms"),
        emit("c", "join", "blue", ack=True, key="c:rooms"),
        emit("x", "join", "red", ack=True, key="x:joined"),
        state("a"), state("b"), state("c"), state("d"),
        emit("a", "go", ack=True, key="go"),
    ]
    for n in ("a", "b", "c", "d", "x"):
        steps += [wait(n, "end"), drain(n, "m")]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)

    assert r["a:rooms"] == [["red"]]
    assert r["b:rooms"] == [["blue", "red"]]
    assert r["c:rooms"] == [["blue"]]
    assert r["go"] == ["ok"]

    def got(name: str) -> list[str]:
        return [args[0] for args in r[f"{name}:drain:m"]]

    assert got("a") == ["red", "red-not-blue", "red-or-blue", "union", "red-after-leave"]
    assert got("b") == ["red", "red-or-blue", "union", "red-from-a", "broadcast-from-a",
                        "green"]
    assert got("c") == ["red-or-blue", "union", "not-red", "broadcast-from-a", "green"]
    assert got("d") == ["not-red", "neither", "broadcast-from-a", "a-except-blue"]
    assert got("x") == ["admin-red"]  # rooms are per namespace
    assert fetched == [{r["b:state"]["id"], r["c:state"]["id"]}]


async def test_broadcast_reaches_mixed_clients() -> None:
    """One emit reaches v2 and v4 clients, over polling, over WebSocket and upgrading from one
    to the other, text and binary; a broadcast with ack collects every client's (binary) reply."""
    io = sockjet.Server()
    labels: dict[str, str] = {}
    io.on("connection", lambda s: labels.__setitem__(s.id, s.handshake.query["label"]))
    combos = [(v, t) for v in VERSIONS for t in [*TRANSPORTS, "upgrade"]]
    text_args = ["text é😀", {"n": 1, "l": [None, True]}]
    bin_args = [b"\x00\x01\xff", {"nested": b"\xca\xfe", "s": "é"}, [b""]]

    def plan(label: str) -> list[dict[str, Any]]:
        return [
            connect("c", "", listen=("text", "bin", "end"), query={"label": label}),
            reply("c", "roll-call", label, {"$bin": label.encode().hex()}),
            wait("c", "connect", timeout=10000),
            wait("c", "text", timeout=10000), wait("c", "bin"),
            wait("c", "roll-call"), wait("c", "end"),
        ]

    async with serve(io) as url:
        clients = [
            asyncio.ensure_future(run_client(url, v, None if t == "upgrade" else t,
                                             plan(f"v{v}-{t}")))
            for v, t in combos
        ]
        await until(lambda: len(io.sockets.sockets) == len(combos) or any(
            c.done() for c in clients), timeout=15)
        assert len(io.sockets.sockets) == len(combos)
        protocols = {s.handshake.query["label"]: (s.socketio_protocol, s.transport)
                     for s in io.sockets.sockets.values()}
        for v, t in combos:
            if t != "upgrade":  # the upgrading ones may be on either transport by now
                assert protocols[f"v{v}-{t}"] == (4 if v == 2 else 5, t)
        io.emit("text", *text_args)
        io.emit("bin", *bin_args)
        replies = await io.timeout(5).emit_with_ack("roll-call", "who?")
        io.emit("end")
        results = await asyncio.gather(*clients)

    for r in results:
        assert r["c:text"] == js(text_args)
        assert r["c:bin"] == js(bin_args)
        assert r["c:roll-call"] == ["who?"]
    assert sorted(replies) == sorted(
        (f"v{v}-{t}", f"v{v}-{t}".encode()) for v, t in combos)
    assert sorted(labels.values()) == sorted(f"v{v}-{t}" for v, t in combos)


@pytest.mark.parametrize("version", VERSIONS, ids=[f"v{v}" for v in VERSIONS])
async def test_volatile_over_websocket(version: int, binding: str) -> None:
    """A volatile packet goes out when the WebSocket queue has room, and is dropped once the
    queue holds ``queue_high_water`` bytes (a burst emitted without yielding)."""
    # frames '42["b",0]' (9 bytes) and '42["vb",0]' (10 bytes): after two of either 18-20
    # bytes are queued (< 27, room left), after three 27-30 (full)
    io = sockjet.Server(queue_high_water=27)
    sent: dict[str, list[bool]] = {}

    @io.on("connection")
    def conn(socket: Socket) -> None:
        @socket.on("one")
        def one() -> None:
            sent["one"] = [socket.volatile.emit("v", "single", b"\x01")]

        @socket.on("burst")
        def burst() -> None:
            sent["burst"] = [socket.volatile.emit("b", i) for i in range(10)]
            socket.emit("end")

        @socket.on("burst-io")
        def burst_io() -> None:
            for i in range(10):
                io.volatile.emit("vb", i)
            io.emit("end2")

    steps = [
        connect("c", "", listen=("v", "b", "vb", "end", "end2")),
        wait("c", "connect"),
        emit("c", "one"), wait("c", "v"),
        emit("c", "burst"), wait("c", "end"), drain("c", "b"),
        emit("c", "burst-io"), wait("c", "end2"), drain("c", "vb"),
    ]
    async with serve(io) as url:
        r = await run_client(url, version, "websocket", steps)
    assert r["c:v"] == ["single", {"$bin": "01"}]
    assert sent["one"] == [True]
    if binding == "native":
        # the first frame of a loop turn goes to the kernel at once (then nothing is unsent);
        # the rest of the burst is coalesced for the end of the turn and counts as unsent
        assert r["c:drain:b"] == [[0], [1], [2], [3]]
        assert sent["burst"] == [True] * 4 + [False] * 6
        assert r["c:drain:vb"] == [[0], [1], [2], [3]]
    else:  # the reader sends the replies once the handler returned: all of them are unsent
        assert r["c:drain:b"] == [[0], [1], [2]]
        assert sent["burst"] == [True] * 3 + [False] * 7
        assert r["c:drain:vb"] == [[0], [1], [2]]


# -- disconnects ----------------------------------------------------------------------------------


@each_client
async def test_namespace_disconnect_keeps_connection(version: int, transport: str) -> None:
    io = sockjet.Server()
    reasons: list[tuple[str, str]] = []
    engines: dict[str, str] = {}

    pending: list[BaseException | None] = []

    def setup(socket: Socket) -> None:
        engines[socket.nsp.name] = socket.conn.engine.sid
        socket.on("disconnect", lambda reason: reasons.append((socket.nsp.name, reason)))
        socket.on("echo", lambda *a: a)

        @socket.on("kick-me")
        async def kick_me() -> None:
            waiting = asyncio.ensure_future(socket.emit_with_ack("never-answered"))
            await asyncio.sleep(0)  # the emit is sent and its ack awaited
            socket.disconnect()
            try:
                await asyncio.wait_for(waiting, 1)
            except Disconnected as exc:  # the pending ack fails with the disconnect
                pending.append(exc)
            else:
                pending.append(None)

    for nsp in ("/", "/admin", "/other"):
        io.of(nsp).on("connection", setup)

    steps = [
        connect("root", "", multiplex=True),
        connect("adm", "/admin", multiplex=True),
        connect("oth", "/other", multiplex=True),
        wait("root", "connect"), wait("adm", "connect"), wait("oth", "connect"),
        {**state("root"), "as": "root:before"},
        emit("adm", "kick-me"),
        wait("adm", "disconnect"),
        {"op": "disconnect", "name": "oth"},
        # one connection, packets in order: the server has the DISCONNECT before this echo
        emit("root", "echo", "still", "here", ack=True, key="echo"),
        state("root"), state("adm"), state("oth"),
    ]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)
        # the client's own reason for the kick, and what the server saw before the client left
        assert r["adm:disconnect"][0] == "io server disconnect"
        assert reasons[:2] == [("/admin", "server namespace disconnect"),
                               ("/other", "client namespace disconnect")]
    assert r["echo"] == ["still", "here"]
    assert r["root:state"]["connected"] is True
    assert r["root:state"]["engineId"] == r["root:before"]["engineId"]  # same connection
    assert r["root:state"]["transport"] == transport
    assert r["adm:state"]["connected"] is False
    assert r["oth:state"]["connected"] is False
    assert len(set(engines.values())) == 1  # all three namespaces were multiplexed
    assert len(pending) == 1
    assert isinstance(pending[0], Disconnected)


@each_client
async def test_disconnect_reasons(version: int, transport: str, tmp_path: Path) -> None:
    io = sockjet.Server()
    # a second server with a fast heartbeat for the client that stops answering
    io_fast = sockjet.Server(ping_interval=0.25, ping_timeout=0.25)
    reasons: dict[str, str] = {}
    disconnecting: dict[str, tuple[str, bool]] = {}
    engines: dict[str, Any] = {}

    def conn(socket: Socket) -> None:
        label = socket.handshake.query["label"]
        engines[label] = socket.conn.engine
        socket.join("room-x")
        socket.on("kick", lambda: socket.disconnect())

        @socket.on("kick-close")
        def kick_close() -> None:
            socket.emit("bye", "last words")  # must still reach the client, before the close
            socket.disconnect(close=True)

        socket.on("disconnecting", lambda reason: disconnecting.__setitem__(
            label, (reason, "room-x" in socket.rooms)))
        socket.on("disconnect", lambda reason: reasons.__setitem__(label, reason))

    io.on("connection", conn)
    io_fast.on("connection", conn)

    def client(label: str, *then: dict[str, Any]) -> list[dict[str, Any]]:
        return [connect("c", "", query={"label": label}, listen=("bye",)), wait("c", "connect"),
                *then]

    def go(label: str) -> dict[str, Any]:  # the client process stays until the test says
        return {"op": "until_file", "path": str(tmp_path / label)}

    plans = {
        "client-ns": client("client-ns", {"op": "disconnect", "name": "c"}, go("client-ns")),
        "server-ns": client("server-ns", emit("c", "kick"), wait("c", "disconnect"),
                            go("server-ns")),
        "server-close": client("server-close", emit("c", "kick-close"),
                               wait("c", "disconnect"), wait("c", "bye"), go("server-close")),
        "closed": client("closed", {"op": "close_transport", "name": "c"}, go("closed")),
        "killed": client("killed", go("killed"), {"op": "exit"}),
    }
    frozen = client("frozen", {"op": "freeze", "ms": 1500})

    async def release() -> None:
        """Each client may leave once the server saw its disconnect; the one to be killed once
        its transport is what a death would cut (over polling: a GET waiting in the server)."""
        waiting = set(plans) - {"killed"}
        while True:
            for label in list(waiting):
                if label in reasons:
                    (tmp_path / label).touch()
                    waiting.discard(label)
            killed = engines.get("killed")
            if killed is not None and not (tmp_path / "killed").exists() and (
                    transport == "websocket" or killed.poll_pending):
                (tmp_path / "killed").touch()
            if not waiting and (tmp_path / "killed").exists():
                return
            await asyncio.sleep(0.01)

    async with serve(io) as url, serve(io_fast) as fast_url:
        results, _ = await asyncio.gather(
            asyncio.gather(run_client(fast_url, version, transport, frozen),
                           *(run_client(url, version, transport, steps)
                             for steps in plans.values())),
            asyncio.wait_for(release(), 30))
        await until(lambda: len(reasons) == len(plans) + 1)
    by_label = dict(zip(plans, results[1:], strict=True))
    assert by_label["server-ns"]["c:disconnect"][0] == "io server disconnect"
    # the DISCONNECT (and an event emitted just before) are handled before the engine close
    assert by_label["server-close"]["c:disconnect"][0] == "io server disconnect"
    assert by_label["server-close"]["c:bye"] == ["last words"]
    expected = {
        "client-ns": "client namespace disconnect",
        "server-ns": "server namespace disconnect",
        "server-close": "server namespace disconnect",  # disconnect(close=True)
        "closed": "transport close",
        # a killed process: the WebSocket ends; over polling the pending GET is aborted
        "killed": "transport close" if transport == "websocket" else "transport error",
        "frozen": "ping timeout",
    }
    assert reasons == expected
    # "disconnecting" comes first, with the same reason, while the socket is still in its rooms
    assert disconnecting == {label: (reason, True) for label, reason in expected.items()}


# -- dynamic namespaces ---------------------------------------------------------------------------


@each_client
async def test_dynamic_namespaces(version: int, transport: str) -> None:
    io = sockjet.Server()
    children: list[tuple[str, str]] = []
    by_regex = io.of(re.compile(r"/dyn-\d+"))
    by_callable = io.of(lambda name, auth: name.startswith("/team-") and auth.get("key") == "k")

    @by_regex.use
    def mark(socket: Socket) -> None:
        socket.data["via"] = "regex"

    def setup(socket: Socket) -> None:
        children.append((socket.nsp.name, socket.data.get("via", "callable")))
        socket.on("who", lambda: {"nsp": socket.nsp.name, "via": socket.data.get("via"),
                                  "child_of_parent": socket.nsp.parent is not None})

    by_regex.on("connection", setup)
    by_callable.on("connection", setup)

    live: dict[str, Any] = {}  # the namespaces while every client is connected

    @io.on("connection")
    def root(socket: Socket) -> None:
        @socket.on("broadcast-dyn")
        def broadcast_dyn() -> str:
            live.update(names=set(io.namespaces), children=set(by_regex.children),
                        parent=io.namespaces["/dyn-1"].parent)
            by_regex.emit("hello-all", "from parent")
            io.of("/dyn-1").emit("hello-one", "only dyn-1")
            by_regex.emit("end")
            return "sent"

    failure = "connect_error" if version == 4 else "error"
    steps = [
        connect("d1", "/dyn-1", listen=("hello-all", "hello-one", "end")),
        connect("d22", "/dyn-22", listen=("hello-all", "hello-one", "end")),
        connect("d1b", "/dyn-1", listen=("hello-all", "hello-one", "end")),
        connect("dx", "/dyn-x"),
        connect("ta", "/team-a", **creds(version, {"key": "k"})),
        connect("tb", "/team-b", **creds(version, {"key": "nope"})),
        connect("root", ""),
        wait("d1", "connect"), wait("d22", "connect"), wait("d1b", "connect"),
        wait("ta", "connect"), wait("root", "connect"),
        wait("dx", failure), wait("tb", failure),
        emit("d1", "who", ack=True, key="d1:who"),
        emit("d22", "who", ack=True, key="d22:who"),
        emit("ta", "who", ack=True, key="ta:who"),
        emit("root", "broadcast-dyn", ack=True, key="bcast"),
    ]
    for name in ("d1", "d22", "d1b"):
        steps.append(wait(name, "hello-all"))
    steps += [wait("d1", "hello-one"), wait("d1b", "hello-one"), wait("d22", "end"),
              drain("d22", "hello-one")]
    async with serve(io) as url:
        r = await run_client(url, version, transport, steps)

    assert sorted(children) == [("/dyn-1", "regex"), ("/dyn-1", "regex"),
                                ("/dyn-22", "regex"), ("/team-a", "callable")]
    assert r["d1:who"] == [{"nsp": "/dyn-1", "via": "regex", "child_of_parent": True}]
    assert r["d22:who"] == [{"nsp": "/dyn-22", "via": "regex", "child_of_parent": True}]
    assert r["ta:who"] == [{"nsp": "/team-a", "via": None, "child_of_parent": True}]
    if version == 4:
        assert r["dx:connect_error"] == [{"$error": "Invalid namespace", "data": None}]
        assert r["tb:connect_error"] == [{"$error": "Invalid namespace", "data": None}]
    else:
        assert r["dx:error"] == [{"message": "Invalid namespace"}]
        assert r["tb:error"] == [{"message": "Invalid namespace"}]
    assert r["bcast"] == ["sent"]
    for name in ("d1", "d22", "d1b"):
        assert r[f"{name}:hello-all"] == ["from parent"]
    assert r["d1:hello-one"] == r["d1b:hello-one"] == ["only dyn-1"]
    assert r["d22:drain:hello-one"] == []
    assert {"/dyn-1", "/dyn-22", "/team-a"} <= live["names"]
    assert not live["names"] & {"/dyn-x", "/team-b"}
    assert live["parent"] is by_regex
    assert live["children"] == {"/dyn-1", "/dyn-22"}
    # every client gone: the children went with them (cleanup_empty_child_namespaces)
    assert set(io.namespaces) == {"/"}
    assert by_regex.children == {} and by_callable.children == {}
