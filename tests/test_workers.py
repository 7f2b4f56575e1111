"""``--workers N``: a supervisor and N worker processes on one port, no sticky sessions.

The servers run as users run them (``sockjet run app:io --workers N``, a subprocess in its own
process group); clients are raw HTTP connections, the real socket.io-client 2.x and 4.x run by
Node, and headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import SOCKJET, eventually, free_port, run_command, serve, sockjet_process
from rawclient import RawConnection, request
from test_cors_browser import Chromium, page_app
from test_socketio_node_clients import connect, drain, emit, run_client, state, wait

import sockjet
from sockjet.bindings.native.handoff import (
    ALPHABET,
    owner_of,
    sid_in_request_line,
    tagged_sid_factory,
)
from sockjet.bindings.workers import worker_count

pytestmark = pytest.mark.single_binding  # the workers run the native binding

E = "/engine.io/"  # the EngineServer's path

# an Engine.IO echo server that says which process answered ("<pid> <message>"); "watch" makes
# it create the file pending-<sid> once a long-poll of that session waits in it
ENGINE_APP = """
import asyncio
import os
from pathlib import Path

import sockjet

engine = sockjet.EngineServer(ping_interval=2, ping_timeout=5)
watching = set()


async def watch(socket):
    while not socket.poll_pending:
        await asyncio.sleep(0.01)
    Path(f"pending-{socket.sid}").touch()


@engine.on("connection")
def connection(socket):
    def message(data):
        if data == "watch":
            task = asyncio.ensure_future(watch(socket))
            watching.add(task)
            task.add_done_callback(watching.discard)
        else:
            socket.send(f"{os.getpid()} {data}")

    socket.on("message", message)
"""


def write_app(directory: Path, source: str, name: str = "app") -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def read_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def socket_directories() -> set[Path]:
    """The directories of worker sockets that exist now (supervisors make them in the temporary
    directory)."""
    return set(Path(tempfile.gettempdir()).glob("sockjet-workers-*"))


@asynccontextmanager
async def workers_serving(directory: Path, target: str, workers: int,
                          *options: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``sockjet run TARGET --workers N`` run from ``directory`` on a free port, once every
    worker listens: its URL and the supervisor's process."""
    port = free_port()
    before = socket_directories()
    async with sockjet_process(directory, "run", target, "--workers", str(workers), "--port",
                               str(port), *options) as proc:
        await until_serving(directory / "sockjet.log", workers, proc)
        yield f"http://127.0.0.1:{port}", proc
        if proc.returncode is None:  # stopped as users stop it
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
    # the workers' socket directory is gone, even when the supervisor was killed
    await eventually(lambda: not socket_directories() - before)


async def until_serving(log: Path, workers: int, proc: asyncio.subprocess.Process,
                        timeout: float = 15) -> None:
    """Every worker listens (each logs it once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = read_log(log)
        if len(re.findall(r"\[worker \d+\] sockjet serving", text)) >= workers:
            return
        if proc.returncode is not None or loop.time() > deadline:
            raise AssertionError(f"the workers did not start:\n{text}")
        await asyncio.sleep(0.05)


async def until_async(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    """Wait until ``await check()`` is true (it asks the servers)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{check.__name__}: not within {timeout} s"
        await asyncio.sleep(0.05)


async def exchange(conn: RawConnection, method: str, target: str,
                   body: bytes = b"") -> tuple[int, bytes]:
    headers = {"Content-Type": "text/plain;charset=UTF-8"} if body else None
    await conn.send(request(method, target, headers, body))
    response = await conn.response()
    return response.status, response.body


# -- units ----------------------------------------------------------------------------------------


def test_session_ids_name_their_worker() -> None:
    for index in (0, 1, 7, 63):
        make = tagged_sid_factory(index)
        sids = {make() for _ in range(200)}
        assert len(sids) == 200
        for sid in sids:
            assert len(sid) == 20 and re.fullmatch(r"[A-Za-z0-9_-]{20}", sid)
            assert owner_of(sid.encode(), 64) == index
            assert owner_of(sid.encode(), index) is None  # no such worker in a smaller pool
    assert owner_of(b"short", 4) is None
    assert owner_of(b"\xff" * 20, 4) is None
    with pytest.raises(ValueError, match="at most 64 workers"):
        tagged_sid_factory(64)
    assert len(ALPHABET) == 64


@pytest.mark.parametrize(("line", "sid"), [
    (b"GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1", b"abc"),
    (b"POST /socket.io/?sid=abc&EIO=4&transport=polling HTTP/1.1", b"abc"),
    (b"GET /socket.io/?EIO=4&transport=websocket&xsid=no&sid=abc HTTP/1.1", b"abc"),
    (b"GET /socket.io/?EIO=4&transport=polling&xsid=no HTTP/1.1", None),
    (b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1", None),
    (b"GET /socket.io/?EIO=4&sid=abc#frag HTTP/1.1", b"abc"),
])
def test_the_session_of_a_request_line(line: bytes, sid: bytes | None) -> None:
    assert sid_in_request_line(line) == sid


def test_worker_counts() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == worker_count("auto") == min(os.cpu_count() or 1, 64)
    for bad in (-1, 1.5, "two", True, 65):
        with pytest.raises(ValueError, match="workers must be"):
            worker_count(bad)  # type: ignore[arg-type]


def test_workers_refuse_what_cannot_share_sessions() -> None:
    io = sockjet.Server()
    with pytest.raises(TypeError, match="workers need the native runner"):
        sockjet.run(io.asgi_app(), workers=2)
    with pytest.raises(TypeError, match="workers need the native runner"):
        sockjet.run(io, workers=2, runner="uvicorn")
    with pytest.raises(TypeError, match="workers need the native runner"):
        sockjet.run(io, workers=2, proxy_headers=True)


async def test_the_cli_refuses_workers_on_uvicorn(tmp_path: Path) -> None:
    write_app(tmp_path, "import sockjet\nio = sockjet.Server()\n")
    code, _, err = await run_command(SOCKJET, "run", "app:io", "--workers", "2", "--runner",
                                     "uvicorn", "--port", str(free_port()), cwd=tmp_path)
    assert code == 1
    assert b"workers need the native runner" in err
    code, _, err = await run_command(SOCKJET, "run", "app:io", "--workers", "-2", cwd=tmp_path)
    assert code == 2 and b"a number of processes, 0 or 'auto'" in err


# -- connections handed to the owner of their session ---------------------------------------------


async def open_sessions(url: str, count: int) -> dict[str, int]:
    """``count`` polling sessions, each opened on a new connection: sid -> pid of its worker."""
    owners: dict[str, int] = {}
    for i in range(count):
        conn = await RawConnection.open(url)
        status, body = await exchange(conn, "GET", f"{E}?EIO=4&transport=polling")
        assert status == 200, body
        sid = json.loads(body[1:])["sid"]
        status, body = await exchange(conn, "POST", f"{E}?EIO=4&transport=polling&sid={sid}",
                                      f"4hello {i}".encode())
        assert (status, body) == (200, b"ok")
        status, body = await exchange(conn, "GET", f"{E}?EIO=4&transport=polling&sid={sid}")
        pid, _, text = body.decode()[1:].partition(" ")
        assert (status, text) == (200, f"hello {i}")
        owners[sid] = int(pid)
        conn.close()
    return owners


async def test_requests_reach_the_worker_that_owns_their_session(tmp_path: Path) -> None:
    write_app(tmp_path, ENGINE_APP)
    async with workers_serving(tmp_path, "app:engine", 2) as (url, _):
        owners = await open_sessions(url, 24)
        pids = set(owners.values())
        assert len(pids) == 2, "the kernel gave every connection to one worker"
        # one keep-alive connection (accepted by one worker) serves the sessions of both
        # workers in turn: a connection is passed to the owner, then on again
        for round_ in range(3):
            conn = await RawConnection.open(url)
            for sid, pid in owners.items():
                message = f"m{round_} {sid}"
                status, body = await exchange(conn, "POST",
                                              f"{E}?EIO=4&transport=polling&sid={sid}",
                                              f"4{message}".encode())
                assert (status, body) == (200, b"ok")
                status, body = await exchange(conn, "GET",
                                              f"{E}?EIO=4&transport=polling&sid={sid}")
                assert (status, body.decode()) == (200, f"4{pid} {message}")
            conn.close()
        # an unknown session gets the usual answer, from whichever worker reads it
        for sid in ("A" * 20, "B" * 20, "nope"):
            conn = await RawConnection.open(url)
            status, body = await exchange(conn, "GET", f"{E}?EIO=4&transport=polling&sid={sid}")
            assert (status, json.loads(body)) == (400, {"code": 1,
                                                        "message": "Session ID unknown"})
            conn.close()


async def test_a_request_line_split_over_reads_is_routed_too(tmp_path: Path) -> None:
    write_app(tmp_path, ENGINE_APP)
    async with workers_serving(tmp_path, "app:engine", 2) as (url, _):
        owners = await open_sessions(url, 12)
        for sid, pid in owners.items():
            conn = await RawConnection.open(url)
            data = request("POST", f"{E}?EIO=4&transport=polling&sid={sid}",
                           {"Content-Type": "text/plain"}, b"4split")
            for piece in (data[:9], data[9:30], data[30:]):  # the sid arrives in pieces
                await conn.send(piece)
                await asyncio.sleep(0.01)
            response = await conn.response()
            assert (response.status, response.body) == (200, b"ok")
            status, body = await exchange(conn, "GET", f"{E}?EIO=4&transport=polling&sid={sid}")
            assert (status, body.decode()) == (200, f"4{pid} split")
            conn.close()


async def test_pipelined_requests_for_sessions_of_both_workers(tmp_path: Path) -> None:
    # two requests in one write, for sessions of different workers: whichever worker accepts
    # the connection, one of them is another's, and begins inside the read behind the other
    write_app(tmp_path, ENGINE_APP)
    async with workers_serving(tmp_path, "app:engine", 2) as (url, _):
        owners = await open_sessions(url, 16)
        by_worker: dict[int, list[str]] = {}
        for sid, pid in owners.items():
            by_worker.setdefault(pid, []).append(sid)
        (pid_a, sids_a), (pid_b, sids_b) = by_worker.items()
        for round_, (a, b) in enumerate(zip(sids_a, sids_b, strict=False)):
            for first, second in ((a, b), (b, a)):
                conn = await RawConnection.open(url)
                await conn.send(
                    request("POST", f"{E}?EIO=4&transport=polling&sid={first}",
                            {"Content-Type": "text/plain"}, f"4p{round_}".encode())
                    + request("POST", f"{E}?EIO=4&transport=polling&sid={second}",
                              {"Content-Type": "text/plain"}, f"4q{round_}".encode()))
                for _ in range(2):  # in order, on the same connection
                    response = await conn.response()
                    assert (response.status, response.body) == (200, b"ok")
                await conn.send(request("GET", f"{E}?EIO=4&transport=polling&sid={first}")
                                + request("GET", f"{E}?EIO=4&transport=polling&sid={second}"))
                for sid, message in ((first, f"p{round_}"), (second, f"q{round_}")):
                    response = await conn.response()
                    pid = pid_a if sid in sids_a else pid_b
                    assert (response.status, response.body.decode()) == (
                        200, f"4{pid} {message}"), sid
                conn.close()


async def test_sigterm_answers_pending_polls_and_exits_0(tmp_path: Path) -> None:
    write_app(tmp_path, ENGINE_APP)
    async with workers_serving(tmp_path, "app:engine", 2) as (url, proc):
        owners = await open_sessions(url, 8)
        polls = []
        for sid in owners:
            conn = await RawConnection.open(url)
            status, body = await exchange(conn, "POST",
                                          f"{E}?EIO=4&transport=polling&sid={sid}", b"4watch")
            assert (status, body) == (200, b"ok")
            await conn.send(request("GET", f"{E}?EIO=4&transport=polling&sid={sid}"))
            polls.append(conn)
        for sid in owners:  # each poll waits in its owner (nothing to send)
            await eventually(lambda sid=sid: (tmp_path / f"pending-{sid}").exists())
        proc.send_signal(signal.SIGTERM)
        for conn in polls:  # each pending poll is answered with the close packet
            response = await conn.response(timeout=10)
            assert (response.status, response.body) == (200, b"1")
            conn.close()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    log = (tmp_path / "sockjet.log").read_text()
    assert "stopping 2 workers" in log
    assert "Traceback" not in log and "ERROR" not in log, log



# -- Socket.IO across workers: the real clients ---------------------------------------------------

SOCKETIO_APP = """
import os
import sockjet

io = sockjet.Server()


@io.on("connection")
def connection(socket):
    socket.on("echo", lambda *args: [*args, os.getpid()])
    socket.on("whoami", lambda: os.getpid())

    @socket.on("checkin")
    def checkin():
        socket.join("seen")
        return os.getpid()

    @socket.on("join")
    def join(rooms):
        socket.join(rooms)
        return True

    # what the test's controller clients ask for, from the worker that owns them
    @socket.on("broadcast")
    def broadcast(spec):
        io.to(spec.get("to", [])).except_(spec.get("except", [])).emit(spec["event"],
                                                                    *spec["args"])
        return True

    @socket.on("count")
    async def count(room):
        found = await (io.in_(room) if room else io).fetch_sockets()
        return sorted(s.id for s in found)

    @socket.on("kick")
    def kick(room):
        io.in_(room).disconnect_sockets()
        return True

    @socket.on("whisper")
    async def whisper(room, text):
        for remote in await io.in_(room).fetch_sockets():
            remote.emit("whisper", text)
        return True
"""


async def controllers(url: str, workers: int) -> dict[int, sockjet.AsyncClient]:
    """Python clients, one owned by each worker: pid -> client."""
    found: dict[int, sockjet.AsyncClient] = {}
    spare: list[sockjet.AsyncClient] = []
    for _ in range(60):
        client = sockjet.AsyncClient(url, transports=["websocket"], reconnection=False)
        await client.connect()
        pid = await client.emit_with_ack("whoami", timeout=5)
        if pid in found:
            spare.append(client)
        else:
            found[pid] = client
        if len(found) == workers:
            break
    for client in spare:
        await client.disconnect()
    assert len(found) == workers, f"connections reached {len(found)} of {workers} workers"
    return found


def rooms_of(i: int) -> list[str]:
    return ["odd" if i % 2 else "even", f"g{i % 3}"]


def client_steps(names: list[tuple[int, str]], opts: dict[str, Any],
                 workers: int) -> list[dict[str, Any]]:
    """The script of the Node clients ``names`` ((index, name) pairs) in one process."""
    listen = ("news", "room", "whisper", "end", "end2")
    steps = [connect(name, listen=listen, **opts) for _, name in names]
    steps += [wait(name, "connect") for _, name in names]
    for i, name in names:
        steps.append(emit(name, "join", rooms_of(i), ack=True, key=f"{name}:join"))
        steps.append(emit(name, "echo", "hi", i, ack=True, key=f"{name}:echo"))
    for i, name in names:
        steps += [wait(name, "news", f"{name}:news{k}") for k in range(workers)]
        if i % 2 and i % 3:
            steps.append(wait(name, "room"))
        if i % 3 == 2:
            steps.append(wait(name, "whisper"))
        steps += [wait(name, "end", f"{name}:end{k}") for k in range(workers)]
        # everything sent before the ends has arrived (each worker keeps its order): no copy,
        # nothing for a socket outside the room
        steps += [drain(name, event) for event in ("news", "room", "whisper")]
    for i, name in names:
        if i % 3 == 1:
            steps.append(wait(name, "disconnect"))
        else:
            steps += [wait(name, "end2", f"{name}:end2{k}") for k in range(workers)]
            steps.append(drain(name, "disconnect"))
            steps.append(state(name))
    return steps


async def test_socketio_clients_of_every_version_and_transport_across_4_workers(
        tmp_path: Path) -> None:
    workers = 4
    write_app(tmp_path, SOCKETIO_APP)
    v4_polling = [(i, f"p{i}") for i in range(20)]
    v4_upgrading = [(i, f"w{i}") for i in range(20, 40)]
    v2 = [(i, f"o{i}") for i in range(40, 50)]
    everyone = v4_polling + v4_upgrading + v2

    async def control() -> None:
        admins = await controllers(url, workers)
        first, *others = admins.values()
        odd = sorted(i for i, _ in everyone if i % 2)

        async def count(room: str | None) -> int:
            return len(await first.emit_with_ack("count", room, timeout=5))

        async def joined() -> bool:  # everyone connected and joined
            return (await count("odd"), await count("g1"), await count(None)) == (
                len(odd), 17, len(everyone) + workers)

        await until_async(joined, 30)
        for k, admin in enumerate(admins.values()):  # a broadcast from each worker
            assert await admin.emit_with_ack("broadcast", {"event": "news", "args": [k]},
                                             timeout=5)
        assert await first.emit_with_ack(
            "broadcast", {"event": "room", "args": ["odd, not g0"], "to": ["odd"],
                          "except": ["g0"]}, timeout=5)
        assert await others[0].emit_with_ack("whisper", "g2", "psst", timeout=5)
        for k, admin in enumerate(admins.values()):
            await admin.emit_with_ack("broadcast", {"event": "end", "args": [k]}, timeout=5)
        assert await others[1].emit_with_ack("kick", "g1", timeout=5)
        async def kicked() -> bool:  # the kicked sockets are gone from every worker
            return await count("g1") == 0

        await until_async(kicked)
        for k, admin in enumerate(admins.values()):
            await admin.emit_with_ack("broadcast", {"event": "end2", "args": [k]}, timeout=5)
        for admin in admins.values():
            await admin.disconnect()

    async with workers_serving(tmp_path, "app:io", workers) as (url, _):
        r4p, r4w, r2, _ = await asyncio.gather(
            run_client(url, 4, None, client_steps(v4_polling, {"transports": ["polling"]},
                                                  workers), timeout_ms=20000),
            run_client(url, 4, None, client_steps(v4_upgrading, {}, workers),
                       timeout_ms=20000),
            run_client(url, 2, None, client_steps(v2, {}, workers), timeout_ms=20000),
            control())
    results = {**r4p, **r4w, **r2}
    pids = set()
    for i, name in everyone:
        assert results[f"{name}:join"] == [True]
        said, index, pid = results[f"{name}:echo"][0]
        assert (said, index) == ("hi", i)  # every ack answered
        pids.add(pid)
        assert sorted(results[f"{name}:news{k}"][0] for k in range(workers)) == list(
            range(workers))
        if i % 2 and i % 3:
            assert results[f"{name}:room"] == ["odd, not g0"]
        if i % 3 == 2:
            assert results[f"{name}:whisper"] == ["psst"]
        for event in ("news", "room", "whisper"):
            assert results[f"{name}:drain:{event}"] == [], (name, event)
        if i % 3 == 1:
            assert results[f"{name}:disconnect"][0] == "io server disconnect"
        else:
            assert results[f"{name}:drain:disconnect"] == [], name
            expected = "polling" if name.startswith("p") else "websocket"
            assert results[f"{name}:state"]["transport"] == expected, name
    assert len(pids) == workers  # the sessions are spread over every worker
    log = read_log(tmp_path / "sockjet.log")
    assert "Traceback" not in log and "ERROR" not in log, log


async def test_a_killed_worker_is_replaced_and_only_its_clients_reconnect(
        tmp_path: Path) -> None:
    workers = 2
    write_app(tmp_path, SOCKETIO_APP)
    names = [f"w{i}" for i in range(10)] + [f"p{i}" for i in range(10)]
    go = tmp_path / "killed"
    steps = [connect(name, transports=["websocket"] if name.startswith("w") else ["polling"],
                     reconnection=True, reconnectionDelay=200, reconnectionDelayMax=1000)
             for name in names]
    steps += [wait(name, "connect") for name in names]
    steps += [emit(name, "checkin", ack=True, key=f"{name}:before") for name in names]
    steps.append({"op": "until_file", "path": str(go)})
    # emits while disconnected wait in the client until it has reconnected
    steps += [emit(name, "whoami", ack=True, key=f"{name}:after", timeout=20000)
              for name in names]
    steps += [drain(name, event) for name in names for event in ("disconnect", "connect")]

    async def kill_one() -> int:
        admins = await controllers(url, workers)
        victim, admin = next(iter(admins.items()))
        async def seen() -> bool:  # every client knows its worker
            return len(await admin.emit_with_ack("count", "seen", timeout=5)) == len(names)

        await until_async(seen)
        for admin in admins.values():
            await admin.disconnect()
        os.kill(victim, signal.SIGKILL)
        log = tmp_path / "sockjet.log"
        await eventually(lambda: "died (signal SIGKILL); starting a new one" in read_log(log))
        await eventually(lambda: len(re.findall(r"\[worker \d+\] sockjet serving",
                                                read_log(log))) == workers + 1, timeout=10)
        go.touch()
        return victim

    async with workers_serving(tmp_path, "app:io", workers) as (url, proc):
        results, victim = await asyncio.gather(
            run_client(url, 4, None, steps, timeout_ms=30000), kill_one())
        assert proc.returncode is None  # the supervisor carries on
    hit = [name for name in names if results[f"{name}:before"] == [victim]]
    spared = [name for name in names if name not in hit]
    assert hit and spared
    for name in hit:  # lost its session, reconnected on its own, served again
        assert len(results[f"{name}:drain:disconnect"]) == 1, name
        assert len(results[f"{name}:drain:connect"]) == 1, name
        assert results[f"{name}:after"] != [victim]
    for name in spared:  # noticed nothing
        assert results[f"{name}:drain:disconnect"] == [], name
        assert results[f"{name}:drain:connect"] == [], name
        assert results[f"{name}:after"] == results[f"{name}:before"], name


# -- a browser from another origin ----------------------------------------------------------------

BROWSER_APP = """
import os
import sockjet

io = sockjet.Server({options})


@io.on("connection")
def connection(socket):
    headers = socket.handshake.headers
    socket.on("whoami", lambda: {{"pid": os.getpid(), "origin": headers.get("origin")}})
"""


@pytest.mark.parametrize("credentials", [False, True], ids=["default", "with-credentials"])
async def test_chromium_from_another_origin_against_2_workers(tmp_path: Path,
                                                              credentials: bool) -> None:
    page_port = free_port()
    page = f"http://127.0.0.1:{page_port}"
    # the Socket.IO docs' two setups: every origin (the default), and the page's origin listed
    # with credentials (withCredentials: the io cookie must come back on every request)
    options = f"origins=[{page!r}], cookie=True" if credentials else ""
    write_app(tmp_path, BROWSER_APP.format(options=options))
    browser = Chromium(tmp_path / "cors_page.log")
    try:
        async with (workers_serving(tmp_path, "app:io", 2, "--log-level", "debug") as (server, _),
                    serve(page_app, "asgi", port=page_port)):
            for version in (2, 4):
                cfg = {"version": version, "url": server, "waitUpgrade": True,
                       "connections": 6, "opts": {"withCredentials": credentials}}
                out = await browser.load(f"{page}/#{quote(json.dumps(cfg))}")
                result = out.get("result")
                assert result is not None, out
                for outcome in [result, *result["later"]]:
                    assert outcome["connected"], (version, outcome, out["console"])
                    assert outcome["transport"] == "websocket", outcome  # upgraded
                    info = outcome["server"]
                    assert info["origin"] == page
                assert not [line for line in out["console"] if "CORS" in line], out["console"]
                if credentials:  # the browser kept the session cookie (withCredentials)
                    last = [result, *result["later"]][-1]
                    assert {(c["name"], c["value"]) for c in out["cookies"]} == {
                        ("io", last["sid"])}, out["cookies"]
        # Chromium keeps one pool of connections per origin, so the sessions often all open
        # on one worker; the WebSocket of an upgrade is a new connection that any worker may
        # accept, and some were passed to the owner of their session
        assert "passed a connection to worker" in read_log(tmp_path / "sockjet.log")
    finally:
        browser.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    workers = 2
    write_app(tmp_path, SOCKETIO_APP)
    async with workers_serving(tmp_path, "app:io", workers) as (url, proc):
        admins = await controllers(url, workers)
        gone: list[str] = []
        for admin in admins.values():
            admin.on("disconnect", gone.append)
        proc.kill()  # SIGKILL: the supervisor cannot tell anyone
        await proc.wait()
        for pid in admins:  # no orphan keeps serving the port
            await eventually(lambda pid=pid: not alive(pid))
        await eventually(lambda: len(gone) == workers)  # each closed its sessions
    log = read_log(tmp_path / "sockjet.log")
    assert log.count("the supervisor is gone: stopping") == workers, log


async def test_an_adapter_of_the_users_own_is_kept_by_the_workers(tmp_path: Path) -> None:
    write_app(tmp_path, """
        import os
        import sockjet

        class Mine(sockjet.InMemoryAdapter):
            pass

        io = sockjet.Server(adapter=Mine)
        plain = sockjet.Server()
        for server in (io, plain):
            server.on("connection", lambda socket, server=server: socket.on(
                "whoami", lambda: [os.getpid(), type(server.sockets.adapter).__name__]))
    """)
    for name, adapter in (("io", "Mine"), ("plain", "WorkerAdapter")):
        async with workers_serving(tmp_path, f"app:{name}", 2) as (url, _):
            client = sockjet.AsyncClient(url, transports=["websocket"], reconnection=False)
            async with client:
                _, used = await client.emit_with_ack("whoami", timeout=5)
            assert used == adapter
