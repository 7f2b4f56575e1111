"""Engine options and bindings over real sockets: cookie, HTTP compression, JSONP, the ASGI app
(wrapping, custom paths, Starlette mount, lifespan), the runner and the ``sockjet`` CLI."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import re
import signal
import socket
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from conftest import BINDINGS, eventually, free_port, serve, sockjet_process
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import sockjet
from sockjet import EngineServer, EngineSocket
from sockjet.bindings import asgi, runner, uvicorn_protocols, uvicorn_runner
from sockjet.codecs.engineio import jsonp_escape

SEP = "\x1e"


# -- helpers ------------------------------------------------------------------------------------


class Recorder:
    """An engine whose sessions and received messages the test can reach."""

    def __init__(self, echo: bool = False, **options: Any) -> None:
        self.engine = EngineServer(**options)
        self.sockets: dict[str, EngineSocket] = {}
        self.messages: list[str | bytes] = []
        self.closed: list[str] = []

        @self.engine.on("connection")
        def connection(socket: EngineSocket) -> None:
            self.sockets[socket.sid] = socket
            socket.on("message", self.messages.append)
            socket.on("close", self.closed.append)
            if echo:
                socket.on("message", socket.send)


def v4_open(body: str) -> dict[str, Any]:
    first = body.split(SEP)[0]
    assert first.startswith("0"), body
    return json.loads(first[1:])


async def handshake(
    client: httpx.AsyncClient, base: str, path: str = "/engine.io/", **headers: str
) -> tuple[str, httpx.Response]:
    r = await client.get(f"{base}{path}?EIO=4&transport=polling", headers=headers)
    assert r.status_code == 200, r.text
    return v4_open(r.text)["sid"], r


async def raw_get(client: httpx.AsyncClient, url: str, accept_encoding: str | None
                  ) -> tuple[httpx.Response, bytes]:
    """GET without letting httpx decode the body: (response, bytes as sent on the wire)."""
    headers = {"accept-encoding": accept_encoding if accept_encoding is not None else "identity"}
    async with client.stream("GET", url, headers=headers) as r:
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
    return r, raw


# -- 1. cookie ----------------------------------------------------------------------------------


async def test_cookie_off_by_default() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        _, r = await handshake(client, url)
        assert "set-cookie" not in r.headers


@pytest.mark.parametrize(("option", "name"), [(True, "io"), ("sticky", "sticky")])
async def test_cookie_on_handshake_only(option: Any, name: str) -> None:
    rec = Recorder(echo=True, cookie=option)
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        sid, r = await handshake(client, url)
        assert r.headers.get_list("set-cookie") == [
            f"{name}={sid}; Path=/; HttpOnly; SameSite=Lax"
        ]
        session = f"{url}/engine.io/?EIO=4&transport=polling&sid={sid}"
        post = await client.post(session, content="4hello",
                                 headers={"content-type": "text/plain;charset=UTF-8"})
        assert post.status_code == 200 and post.text == "ok"
        assert "set-cookie" not in post.headers
        poll = await client.get(session)
        assert (poll.status_code, poll.text) == (200, "4hello")
        assert "set-cookie" not in poll.headers
        assert rec.messages == ["hello"]


async def test_cookie_dict_renders_every_attribute() -> None:
    rec = Recorder(cookie={"name": "sticky", "path": "/x", "http_only": False,
                           "same_site": "Strict", "secure": True, "max_age": 60,
                           "domain": "example.com"})
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        sid, r = await handshake(client, url)
    (cookie,) = r.headers.get_list("set-cookie")
    first, *attributes = cookie.split("; ")
    assert first == f"sticky={sid}"
    assert sorted(attributes) == sorted(
        ["Path=/x", "Secure", "SameSite=Strict", "Max-Age=60", "Domain=example.com"]
    )
    assert "HttpOnly" not in cookie


@pytest.mark.parametrize(
    "option",
    [
        {"nmae": "io"},
        {"expires": "tomorrow"},
        {"same_site": "sometimes"},
        {"name": "bad name"},
        {"name": "a;b"},
        {"name": "a=b"},
        {"name": ""},
        "bad,name",
        42,
    ],
)
def test_cookie_bad_options_raise(option: Any) -> None:
    with pytest.raises(ValueError):
        EngineServer(cookie=option)


# -- 2. HTTP compression -----------------------------------------------------------------------


async def _poll_after_send(options: dict[str, Any], message: str, accept: str | None
                           ) -> tuple[httpx.Response, bytes]:
    rec = Recorder(**options)
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        sid, _ = await handshake(client, url)
        assert rec.sockets[sid].send(message)
        return await raw_get(client, f"{url}/engine.io/?EIO=4&transport=polling&sid={sid}",
                             accept)


@pytest.mark.parametrize(
    ("accept", "encoding", "decompress"),
    [
        ("gzip", "gzip", gzip.decompress),
        ("gzip, deflate, br", "gzip", gzip.decompress),
        ("deflate", "deflate", zlib.decompress),
    ],
)
async def test_poll_compressed_per_accept_encoding(accept: str, encoding: str,
                                                   decompress: Any) -> None:
    big = "big message " * 200  # payload well over 1024 bytes
    r, raw = await _poll_after_send({}, big, accept)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == encoding
    assert "accept-encoding" in r.headers.get("vary", "").lower()
    assert int(r.headers["content-length"]) == len(raw) < len(big)
    assert decompress(raw) == ("4" + big).encode()


async def test_poll_compression_threshold_is_1024_bytes() -> None:
    r, raw = await _poll_after_send({}, "x" * 1022, "gzip")  # body "4" + 1022 = 1023 bytes
    assert "content-encoding" not in r.headers
    assert raw == b"4" + b"x" * 1022
    r, raw = await _poll_after_send({}, "x" * 1023, "gzip")  # 1024 bytes: compressed
    assert r.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"4" + b"x" * 1023


async def test_poll_not_compressed_without_accept_encoding_or_when_disabled() -> None:
    big = "y" * 5000
    r, raw = await _poll_after_send({}, big, None)  # identity only
    assert "content-encoding" not in r.headers
    assert raw == ("4" + big).encode()
    r, raw = await _poll_after_send({"http_compression": False}, big, "gzip, deflate")
    assert "content-encoding" not in r.headers
    assert raw == ("4" + big).encode()


async def test_poll_compression_custom_threshold() -> None:
    msg = "twenty bytes message"
    r, raw = await _poll_after_send({"http_compression": {"threshold": 10}}, msg, "gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == ("4" + msg).encode()
    r, raw = await _poll_after_send({"http_compression": {"threshold": 10}}, "short", "gzip")
    assert "content-encoding" not in r.headers
    assert raw == b"4short"


@pytest.mark.parametrize(
    "option", [{"threshold": -1}, {"threshold": "1024"}, {"threshold": 1.5}, {"level": 9},
               "gzip", 1, 0]
)
def test_http_compression_bad_options_raise(option: Any) -> None:
    with pytest.raises(ValueError):
        EngineServer(http_compression=option)


# -- 3. JSONP (protocol 3) ----------------------------------------------------------------------

_JSONP = re.compile(r'___eio\[(\d+)\]\((".*")\);', re.S)


def jsonp_payload(r: httpx.Response, index: str = "0") -> str:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/javascript")
    match = _JSONP.fullmatch(r.text)
    assert match is not None, r.text
    assert match.group(1) == index
    payload = json.loads(match.group(2))
    assert isinstance(payload, str)
    return payload


async def test_jsonp_round_trip_protocol3() -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        r = await client.get(f"{url}/engine.io/?EIO=3&transport=polling&j=0")
        payload = jsonp_payload(r)
        length, _, packet = payload.partition(":")
        assert int(length) == len(packet) and packet.startswith("0")
        info = json.loads(packet[1:])
        sid = info["sid"]
        assert info["upgrades"] == ["websocket"]
        assert (info["pingInterval"], info["pingTimeout"]) == (25000, 20000)
        assert rec.sockets[sid].engine_protocol == 3
        session = f"{url}/engine.io/?EIO=3&transport=polling&j=0&sid={sid}"

        # client -> server: form POST, escaped like engine.io-client 3 does before posting
        message = 'line one\nline two has a literal \\n and "quotes" + & = % é'
        packet = "4" + message
        body = "d=" + quote(jsonp_escape(f"{len(packet)}:{packet}"), safe="")
        assert "%0A" not in body  # no raw newline travels in the form field
        post = await client.post(
            session, content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert post.status_code == 200
        assert post.text == "ok"
        assert post.headers["content-type"].startswith("text/html")
        assert rec.messages == [message]

        # server -> client: binary travels base64 inside the JSONP string
        assert rec.sockets[sid].send(b"\x00\x01\xff")
        r = await client.get(session)
        assert r.text == '___eio[0]("6:b4AAH/");'
        assert jsonp_payload(r) == "6:b4" + base64.b64encode(b"\x00\x01\xff").decode()

        # text with a newline and quotes survives as a JSON string literal
        assert rec.sockets[sid].send('say "hi"\nbye')
        assert jsonp_payload(await client.get(session)) == '13:4say "hi"\nbye'


@pytest.mark.parametrize("index", ["abc", "1a", "-1", ""])
async def test_jsonp_non_digit_index_is_bad_request(index: str) -> None:
    rec = Recorder()
    async with serve(rec.engine) as url, httpx.AsyncClient() as client:
        r = await client.get(f"{url}/engine.io/?EIO=3&transport=polling&j={index}")
        assert r.status_code == 400
        assert r.json() == {"code": 3, "message": "Bad request"}
        assert rec.sockets == {}


# -- 4. ASGI app ----------------------------------------------------------------------------------


async def other_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    assert scope["type"] == "http"
    body = f"other {scope['method']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def test_asgi_wrapped_app_gets_other_paths() -> None:
    rec = Recorder()
    async with serve(rec.engine.asgi_app(other_app)) as url, httpx.AsyncClient() as client:
        await handshake(client, url)
        for path in ("/", "/page", "/engine.io", "/engine.iox/", "/socket.io/"):
            r = await client.get(url + path + "?EIO=4&transport=polling")
            assert (r.status_code, r.text) == (200, f"other GET {path}")
        r = await client.post(url + "/form", content=b"x")
        assert r.text == "other POST /form"
    assert len(rec.sockets) == 1


async def test_asgi_without_wrapped_app_answers_404() -> None:
    rec = Recorder()
    async with serve(rec.engine.asgi_app()) as url, httpx.AsyncClient() as client:
        await handshake(client, url)
        for path in ("/", "/page", "/engine.io"):
            r = await client.get(url + path + "?EIO=4&transport=polling")
            assert r.status_code == 404, path
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(url.replace("http", "ws") + "/elsewhere"):
                pass
        assert refused.value.response.status_code == 403  # closed before accept
    assert len(rec.sockets) == 1


async def test_asgi_custom_path() -> None:
    rec = Recorder(path="/rt")
    assert rec.engine.path == "/rt/"
    async with serve(rec.engine.asgi_app(other_app)) as url, httpx.AsyncClient() as client:
        await handshake(client, url, path="/rt/")
        r = await client.get(f"{url}/engine.io/?EIO=4&transport=polling")
        assert r.text == "other GET /engine.io/"
        r = await client.get(f"{url}/rt?EIO=4&transport=polling")
        assert r.text == "other GET /rt"
        async with ws_connect(f"{url.replace('http', 'ws')}/rt/?EIO=4&transport=websocket") as ws:
            assert v4_open(str(await ws.recv()))["upgrades"] == []
    # asgi_app(path=...) overrides the engine's own path
    rec = Recorder()
    async with serve(rec.engine.asgi_app(other_app, path="custom")) as url, \
            httpx.AsyncClient() as client:
        await handshake(client, url, path="/custom/")
        r = await client.get(f"{url}/engine.io/?EIO=4&transport=polling")
        assert r.text == "other GET /engine.io/"


async def test_asgi_mounted_in_starlette() -> None:
    """The engine path is relative to the mount point: ASGIApp strips ``root_path``."""
    rec = Recorder()
    custom = Recorder()

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.url.path}")

    app = Starlette(routes=[
        Route("/hello", hello),
        Mount("/rt", app=rec.engine.asgi_app(path="/engine.io/")),
        Mount("/other", app=custom.engine.asgi_app(path="/sock/")),
    ])
    async with serve(app) as url, httpx.AsyncClient() as client:
        sid, _ = await handshake(client, url, path="/rt/engine.io/")
        assert list(rec.sockets) == [sid]
        session = f"{url}/rt/engine.io/?EIO=4&transport=polling&sid={sid}"
        assert (await client.post(session, content="4via mount")).text == "ok"
        assert rec.messages == ["via mount"]
        rec.sockets[sid].send("back")
        assert (await client.get(session)).text == "4back"

        csid, _ = await handshake(client, url, path="/other/sock/")
        assert list(custom.sockets) == [csid]

        r = await client.get(f"{url}/hello")
        assert (r.status_code, r.text) == (200, "hello /hello")
        # inside the mount, other paths are the engine's 404
        assert (await client.get(f"{url}/rt/nothing")).status_code == 404
        assert (await client.get(f"{url}/engine.io/?EIO=4&transport=polling")).status_code == 404

        ws_url = f"{url.replace('http', 'ws')}/rt/engine.io/?EIO=4&transport=websocket"
        async with ws_connect(ws_url) as ws:
            wsid = v4_open(str(await ws.recv()))["sid"]
            await ws.send("4over ws")
            rec.sockets[wsid].send("ws back")
            assert await ws.recv() == "4ws back"
    assert "over ws" in rec.messages


def lifespan_app(events: list[str]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)


async def test_asgi_lifespan_and_shutdown_answer_pending_poll() -> None:
    events: list[str] = []
    rec = Recorder()
    async with httpx.AsyncClient(timeout=10) as client:
        async with serve(rec.engine.asgi_app(lifespan_app(events))) as url:
            assert events == ["startup"]
            assert (await client.get(f"{url}/hello")).text == "hello"
            sid, _ = await handshake(client, url)
            poll = asyncio.ensure_future(
                client.get(f"{url}/engine.io/?EIO=4&transport=polling&sid={sid}"))
            await eventually(lambda: rec.engine.sessions[sid].poll_pending)
        r = await asyncio.wait_for(poll, 5)
    assert (r.status_code, r.text) == (200, "1")
    assert events == ["startup", "shutdown"]
    assert rec.closed == ["server shutting down"]
    assert rec.engine.sessions == {}


async def test_asgi_lifespan_shutdown_closes_sessions_on_plain_uvicorn() -> None:
    """Without sockjet's runner, the ASGI lifespan shutdown alone closes the sessions."""
    events: list[str] = []
    rec = Recorder()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(rec.engine.asgi_app(lifespan_app(events)),
                                           host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning"))
    task = asyncio.ensure_future(server._serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started
        assert events == ["startup"]
        async with httpx.AsyncClient() as client:
            await handshake(client, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert events == ["startup", "shutdown"]
    assert rec.closed == ["server shutting down"]
    assert rec.engine.sessions == {}


# -- 5. runner and CLI as subprocesses ------------------------------------------------------------

APP_MODULE = """\
from sockjet import EngineServer

app = EngineServer()


@app.on("connection")
def connection(socket):
    socket.on("message", socket.send)

not_servable = 42
"""




async def wait_ready(proc: asyncio.subprocess.Process, url: str, cwd: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if proc.returncode is not None:
                break
            try:
                r = await client.get(f"{url}/engine.io/?EIO=4&transport=polling")
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            assert r.status_code == 200, r.text
            return
    log = (cwd / "sockjet.log").read_text()
    raise AssertionError(f"sockjet did not start (exit {proc.returncode}):\n{log}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("runner_name", ["default", "uvicorn"])
async def test_cli_run_stops_cleanly_on_signal(tmp_path: Path, signum: int,
                                               runner_name: str) -> None:
    (tmp_path / "sj_echo_app.py").write_text(APP_MODULE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    choice = ["--runner", "uvicorn"] if runner_name == "uvicorn" else []
    log_file = tmp_path / "sockjet.log"
    async with sockjet_process(tmp_path, "run", "sj_echo_app:app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "debug", *choice) as proc:
        await wait_ready(proc, url, tmp_path)
        async with httpx.AsyncClient(timeout=10) as client:
            sid, _ = await handshake(client, url)
            session = f"{url}/engine.io/?EIO=4&transport=polling&sid={sid}"
            assert (await client.post(session, content="4echo")).text == "ok"
            assert (await client.get(session)).text == "4echo"
            waiting = f"session {sid}: poll waiting"
            seen = log_file.read_text().count(waiting)
            poll = asyncio.ensure_future(client.get(session))
            # the server's own word that this long-poll now waits (--log-level debug)
            await eventually(lambda: log_file.read_text().count(waiting) > seen)
            proc.send_signal(signum)
            code = await asyncio.wait_for(proc.wait(), 5)
            r = await asyncio.wait_for(poll, 5)
        log = (tmp_path / "sockjet.log").read_text()
        assert code == 0, log
        assert (r.status_code, r.text) == (200, "1")
        assert "Traceback" not in log
        # a sockjet server runs on the native binding unless uvicorn is asked for
        served_by = "Uvicorn running on" if runner_name == "uvicorn" else "(native runner)"
        assert served_by in log, log


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("sj_no_such_module:app", "cannot import 'sj_no_such_module'"),
        ("sj_echo_app:missing", "has no attribute 'missing'"),
        ("sj_echo_app", "expected MODULE:ATTRIBUTE"),
        ("sj_echo_app:not_servable", "cannot serve 42"),
    ],
)
async def test_cli_run_bad_target(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "sj_echo_app.py").write_text(APP_MODULE)
    async with sockjet_process(tmp_path, "run", target, "--port", str(free_port())) as proc:
        code = await asyncio.wait_for(proc.wait(), 15)
    log = (tmp_path / "sockjet.log").read_text()
    assert code != 0
    assert message in log
    assert "Traceback" not in log


# -- 6. runner configuration ----------------------------------------------------------------------


def test_runner_config_defaults() -> None:
    assert sockjet.run is runner.run
    assert sockjet.serve is runner.serve
    engine = EngineServer(max_http_buffer_size=12345)
    cfg, resolved = uvicorn_runner.config(engine, "127.0.0.1", 4321)
    assert resolved is engine
    assert cfg.app.engine is engine  # type: ignore[attr-defined]
    assert (cfg.host, cfg.port) == ("127.0.0.1", 4321)
    assert cfg.loop == "uvloop"  # installed with uvicorn[standard]
    # uvicorn's httptools and websockets-sansio protocols, with sockjet's limits
    assert cfg.http is uvicorn_protocols.HTTPProtocol
    assert cfg.ws is uvicorn_protocols.WebSocketProtocol
    assert cfg.timeout_keep_alive == 5
    assert cfg.ws_ping_interval is None
    assert cfg.ws_per_message_deflate is False
    assert cfg.ws_max_size == 12345

    cfg, _ = uvicorn_runner.config(EngineServer(per_message_deflate=True, keep_alive_timeout=2.5))
    assert cfg.ws_per_message_deflate is True
    assert cfg.timeout_keep_alive == 2.5
    assert cfg.ws_max_size == 1_000_000

    cfg, resolved = uvicorn_runner.config(other_app, log_level="debug", http="h11")
    assert resolved is None and cfg.app is other_app
    assert (cfg.http, cfg.log_level) == ("h11", "debug")
    assert cfg.ws_per_message_deflate is False


def test_runner_config_without_uvloop_and_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes ``import uvloop`` fail
    monkeypatch.setitem(sys.modules, "httptools", None)
    cfg, _ = uvicorn_runner.config(EngineServer(max_header_size=9000))
    assert (cfg.loop, cfg.http) == ("asyncio", "h11")
    assert cfg.h11_max_incomplete_event_size == 9000  # h11's head limit stands in for ours


@pytest.mark.parametrize("deflate", [False, True])
async def test_runner_websocket_deflate_and_max_size(deflate: bool) -> None:
    rec = Recorder(echo=True, per_message_deflate=deflate, max_http_buffer_size=1000)
    async with serve(rec.engine) as url:
        ws_url = f"{url.replace('http', 'ws')}/engine.io/?EIO=4&transport=websocket"
        async with ws_connect(ws_url, compression="deflate") as ws:
            extensions = ws.response.headers.get("sec-websocket-extensions") or ""
            assert ("permessage-deflate" in extensions) is deflate
            v4_open(str(await ws.recv()))
            await ws.send("4" + "z" * 900)
            assert await ws.recv() == "4" + "z" * 900
            await ws.send("4" + "z" * 5000)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert rec.messages == ["z" * 900]


async def test_cookie_on_direct_websocket_handshake() -> None:
    engine = EngineServer(cookie=True)
    async with serve(engine) as url:
        ws_url = "ws" + url[4:] + "/engine.io/?EIO=4&transport=websocket"
        async with ws_connect(ws_url) as ws:
            sid = json.loads((await ws.recv())[1:])["sid"]
            cookie = ws.response.headers["set-cookie"]
    assert cookie == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"


async def test_accept_encoding_q_values() -> None:
    engine = EngineServer(http_compression={"threshold": 10})
    engine.on("connection", lambda s: s.send("y" * 100))
    async with serve(engine) as url, httpx.AsyncClient(base_url=url) as client:
        for accept, expected in (("gzip;q=0, deflate", "deflate"), ("gzip;q=0", None),
                                 ("deflate;q=0.5, gzip", "gzip")):
            r = await client.get("/engine.io/?EIO=4&transport=polling",
                                 headers={"accept-encoding": accept})
            assert r.headers.get("content-encoding") == expected, accept


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_refused_websocket_does_not_log_uvicorn_noise() -> None:
    engine = EngineServer(origins=["https://a.example"])
    app = engine.asgi_app()
    returned = asyncio.Event()

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        finally:  # uvicorn logs its complaint right after, before this test runs again
            if scope["type"] == "websocket":
                returned.set()

    collect = _Collect()  # uvicorn's loggers do not propagate to the root (caplog)
    async with serve(watched) as url:  # an ASGI callable: uvicorn serves it
        logging.getLogger("uvicorn.error").addHandler(collect)
        try:
            with pytest.raises(InvalidStatus):
                async with ws_connect("ws" + url[4:] + "/engine.io/?EIO=4&transport=websocket",
                                      origin="https://evil.example"):
                    pass
            await asyncio.wait_for(returned.wait(), 5)
            await asyncio.sleep(0)
        finally:
            logging.getLogger("uvicorn.error").removeHandler(collect)
    assert not [m for m in collect.messages if "without completing handshake" in m]


async def test_native_binding_answers_404_elsewhere() -> None:
    engine = EngineServer()
    async with serve(engine, binding="native") as url:
        async with httpx.AsyncClient() as client:
            r = await client.get(url + "/page")
            assert (r.status_code, r.text) == (404, "Not Found")
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(url.replace("http", "ws") + "/elsewhere"):
                pass
        assert refused.value.response.status_code == 404


async def test_tests_run_on_uvloop_as_production_does() -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")


GC_APP = """\
import gc
import sockjet

{setup}
io = sockjet.Server()
io.on("connection", lambda socket: socket.on(
    "gc", lambda: [list(gc.get_threshold()), gc.get_freeze_count() > 0]))
"""


@pytest.mark.parametrize(("setup", "thresholds", "frozen"), [
    ("", [7000, 10, 100], True),  # tuned for a server
    ("gc.set_threshold(1234, 5, 6)", [1234, 5, 6], False),  # the user's own tuning is kept
])
async def test_runner_tunes_the_garbage_collector_unless_tuned(
        tmp_path: Path, setup: str, thresholds: list[int], frozen: bool) -> None:
    (tmp_path / "sj_gc_app.py").write_text(GC_APP.format(setup=setup))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with sockjet_process(tmp_path, "run", "sj_gc_app:io", "--port", str(port)):
        client = sockjet.AsyncClient(url, transports=["websocket"], reconnection=False)
        for _ in range(300):  # until the server listens
            try:
                await client.connect()
                break
            except ConnectionError:
                await asyncio.sleep(0.05)
        assert await client.emit_with_ack("gc", timeout=5) == [thresholds, frozen]
        await client.disconnect()


@pytest.mark.parametrize("runner_name", ["native", "uvicorn"])
async def test_cancelled_serve_shuts_down(runner_name: str) -> None:
    """Cancelling ``await sockjet.serve(...)`` shuts down as a signal would: the pending poll
    is answered with the close packet and the port stops listening."""
    rec = Recorder()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    task = asyncio.ensure_future(sockjet.serve(rec.engine, port=port, runner=runner_name))
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(500):
            try:
                sid, _ = await handshake(client, url)
                break
            except httpx.TransportError:
                await asyncio.sleep(0.01)
        poll = asyncio.ensure_future(
            client.get(f"{url}/engine.io/?EIO=4&transport=polling&sid={sid}"))
        await eventually(lambda: rec.engine.sessions[sid].poll_pending)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        r = await asyncio.wait_for(poll, 5)
        assert (r.status_code, r.text) == (200, "1")
        assert rec.closed == ["server shutting down"]
        with pytest.raises(httpx.ConnectError):
            await client.get(url + "/engine.io/")


# -- the engine starts on every binding path ---------------------------------------------------


def noted_hooks(engine: EngineServer, log: list[str],
                fail: list[BaseException] | None = None) -> None:
    """Serving hooks that note their runs; the start raises the first exception in ``fail``."""

    async def start() -> None:
        if fail:
            raise fail.pop(0)
        log.append("start")

    async def stop() -> None:
        log.append("stop")

    engine.add_serving_hooks(start, stop)


async def test_mounted_in_a_framework_the_engine_starts_with_its_first_request(
        caplog: pytest.LogCaptureFixture) -> None:
    """Starlette's Mount keeps lifespan to itself: the engine starts before the first request
    it sees instead; a start that fails answers 503 on the engine's paths (the log says why, the
    client is not told), leaves the framework's other routes alone, and the next request tries
    again."""
    rec = Recorder()
    log: list[str] = []
    noted_hooks(rec.engine, log, fail=[sockjet.AdapterError("cannot reach Redis at redis://x")])

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/hello", hello),
                            Mount("/rt", app=rec.engine.asgi_app(path="/engine.io/"))])
    engine_url = "/rt/engine.io/?EIO=4&transport=polling"
    async with serve(app) as url, httpx.AsyncClient() as client:
        assert log == [] and not rec.engine.started  # lifespan never reached it
        with caplog.at_level(logging.ERROR, "sockjet.asgi"):
            # three requests wait for the one start: one failure, logged once
            refused = await asyncio.gather(*(client.get(url + engine_url) for _ in range(3)))
        assert {(r.status_code, r.text) for r in refused} == {(503, "Service Unavailable")}
        assert [r.getMessage() for r in caplog.records if r.name == "sockjet.asgi"] == [
            "startup failed: cannot reach Redis at redis://x"]  # the client is not told why
        assert (await client.get(f"{url}/hello")).text == "hello"  # the other routes serve
        # not tried again for a second: 503 at once (the start would have succeeded now)
        assert (await client.get(url + engine_url)).status_code == 503
        assert log == [] and not rec.engine.started
        await asyncio.sleep(asgi.START_RETRY_INTERVAL)
        await handshake(client, url, path="/rt/engine.io/")  # tried again: it starts
        await handshake(client, url, path="/rt/engine.io/")
        assert log == ["start"] and rec.engine.started  # once
        await rec.engine.shutdown()
        assert log == ["start", "stop"]
        # a shut-down engine is not started again by a request: the server is stopping
        assert (await client.get(url + engine_url)).status_code == 503
        assert log == ["start", "stop"] and rec.engine.shut_down


async def test_a_websocket_to_an_engine_that_cannot_start_is_refused() -> None:
    rec = Recorder()
    noted_hooks(rec.engine, [], fail=[sockjet.AdapterError("down")])
    app = Starlette(routes=[Mount("/rt", app=rec.engine.asgi_app(path="/engine.io/"))])
    async with serve(app) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(url.replace("http", "ws")
                                  + "/rt/engine.io/?EIO=4&transport=websocket"):
                pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.body == b"Service Unavailable"
        assert rec.sockets == {}
        await rec.engine.shutdown()


async def test_uvicorn_starts_the_engine_when_the_wrapped_app_ignores_lifespan() -> None:
    """An app that returns at once on lifespan (as many small ASGI apps do) used to keep the
    engine's hooks from running: the runner starts them itself before listening."""
    rec = Recorder()
    log: list[str] = []
    noted_hooks(rec.engine, log)

    async def page_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan ignored
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})

    async with serve(rec.engine.asgi_app(page_app)):
        assert log == ["start"] and rec.engine.started  # before any request
    assert log == ["start", "stop"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_port_in_use_stops_what_started(binding: str) -> None:
    """Listening fails after the engine started: its hooks are stopped again."""
    log: list[str] = []
    engine = EngineServer()
    noted_hooks(engine, log)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if binding == "native":
            with pytest.raises(OSError, match="address already in use"):
                async with serve(engine, port=port):
                    pass
        else:  # uvicorn logs the error and exits (awaited here: asyncio lets no task catch it)
            cfg, _ = uvicorn_runner.config(engine, "127.0.0.1", port, log_level="critical")
            with pytest.raises(SystemExit):
                await uvicorn_runner.UvicornServer(cfg, engine).serve_without_signals()
    assert log == ["start", "stop"] and not engine.started


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_serve_cancelled_while_the_engine_starts_stops_what_started(
        binding: str) -> None:
    engine = EngineServer()
    log: list[str] = []
    noted_hooks(engine, log)
    never = asyncio.Event()

    async def slow_start() -> None:
        log.append("slow start")
        await never.wait()

    async def slow_stop() -> None:
        log.append("slow stop")

    engine.add_serving_hooks(slow_start, slow_stop)
    serving = asyncio.ensure_future(
        runner.serve(engine, "127.0.0.1", free_port(), log_level="critical",
                     runner="native" if binding == "native" else "uvicorn"))
    await eventually(lambda: "slow start" in log)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(serving, 5)
    # the start was interrupted and stopped what it started, then the shutdown ran every stop
    assert log == ["start", "slow start", "stop", "slow stop", "stop"]
    assert not engine.started


async def test_a_request_waiting_for_a_start_that_a_shutdown_interrupts_gets_503() -> None:
    rec = Recorder()
    never = asyncio.Event()
    started: list[str] = []

    async def slow_start() -> None:
        started.append("start")
        await never.wait()

    async def stop() -> None:
        pass

    rec.engine.add_serving_hooks(slow_start, stop)
    app = Starlette(routes=[Mount("/rt", app=rec.engine.asgi_app(path="/engine.io/"))])
    async with serve(app) as url, httpx.AsyncClient() as client:
        waiting = asyncio.ensure_future(
            client.get(f"{url}/rt/engine.io/?EIO=4&transport=polling"))
        await eventually(lambda: started)
        await rec.engine.shutdown()
        assert (await waiting).status_code == 503  # not a 500 from a stray cancellation


async def test_a_slow_failed_start_is_not_tried_again_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry interval counts from the failure: a start that takes longer than the
    interval to fail (a connect timeout) does not make the next request wait for another."""
    monkeypatch.setattr(asgi, "START_RETRY_INTERVAL", 0.2)
    rec = Recorder()
    tries: list[float] = []

    async def slow_failure() -> None:
        tries.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.3)
        raise sockjet.AdapterError("cannot reach Redis (timeout)")

    async def stop() -> None:
        pass

    rec.engine.add_serving_hooks(slow_failure, stop)
    app = Starlette(routes=[Mount("/rt", app=rec.engine.asgi_app(path="/engine.io/"))])
    engine_url = "/rt/engine.io/?EIO=4&transport=polling"
    async with serve(app) as url, httpx.AsyncClient() as client:
        assert (await client.get(url + engine_url)).status_code == 503
        assert (await client.get(url + engine_url)).status_code == 503
        assert len(tries) == 1  # the second was answered at once
        await asyncio.sleep(0.25)
        assert (await client.get(url + engine_url)).status_code == 503
        assert len(tries) == 2  # tried again once the interval passed
