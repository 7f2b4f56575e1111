"""The Engine.IO server and its CORS policy at their edges, in process (tests/inproc.py):
option checks, ``same_origin`` without a Host header, preflight handlers that return nonsense,
the bounded refusal log, client mistakes logged once per address and cause, ``allow_request``
answers that are neither ``True`` nor ``False``, cookie attributes left out, ``Accept-Encoding``
q-values, and sessions that receive packets they have no use for or overflow while pinging. Each
test fails if the behaviour it names were missing or wrong."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import weakref
import zlib
from typing import Any

import pytest
from conftest import eventually
from inproc import InProcRequest, InProcWebSocket, get

import sockjet
from sockjet import CORS, EngineServer, EngineSocket
from sockjet.engine.notices import LogOnce, peer_mistake, peer_notices


def pq(sid: str | None = None, eio: int = 4) -> dict[str, str]:
    """Query of a polling request (a handshake without ``sid``)."""
    query = {"EIO": str(eio), "transport": "polling"}
    if sid is not None:
        query["sid"] = sid
    return query


def header(response: Any, name: str) -> str | None:
    values = [v for k, v in response.headers if k == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def ws_session(engine: EngineServer) -> tuple[InProcWebSocket, asyncio.Future[None]]:
    ws = InProcWebSocket({"EIO": "4", "transport": "websocket"})
    task = asyncio.ensure_future(engine.handle_websocket(ws))
    assert str(await ws.next()).startswith("0{")
    return ws, task


# -- option checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"ping_interval": 0}, ValueError, "ping_interval must be a positive number of seconds, got 0"),
    ({"ping_timeout": -1}, ValueError, "ping_timeout must be a positive number of seconds"),
    ({"upgrade_timeout": "10"}, ValueError, "upgrade_timeout must be a positive number"),
    ({"close_timeout": True}, ValueError, "close_timeout must be a positive number"),
    ({"headers_timeout": 0}, ValueError, "headers_timeout must be a positive number"),
    ({"request_timeout": -5}, ValueError, "request_timeout must be a positive number"),
    ({"keep_alive_timeout": None}, ValueError, "keep_alive_timeout must be a positive number"),
    ({"queue_high_water": 0}, ValueError, "queue_high_water must be a positive"),
    ({"queue_high_water": 1.5}, ValueError, "queue_high_water must be a positive"),
    ({"queue_high_water": 10, "queue_limit": 9}, ValueError, "queue_limit must be an integer >="),
    ({"queue_limit": 1e6}, ValueError, "queue_limit must be an integer"),
    ({"max_header_size": 0}, ValueError, "max_header_size must be a positive integer"),
    ({"max_headers": True}, ValueError, "max_headers must be a positive integer"),
    ({"max_headers": 10.0}, ValueError, "max_headers must be a positive integer"),
    ({"handle_preflight_request": "yes"}, TypeError, "handle_preflight_request must be"),
    ({"path": ""}, ValueError, "path must be a non-empty string"),
    ({"path": None}, ValueError, "path must be a non-empty string"),
    ({"http_compression": {"level": 9}}, ValueError, r"unknown http_compression keys: \['level'\]"),
    ({"cookie": {"nmae": "io"}}, ValueError, r"unknown cookie keys: \['nmae'\]"),
    ({"cookie": {"name": "a;b"}}, ValueError, "invalid cookie name 'a;b'"),
    ({"cookie": {"name": ""}}, ValueError, "invalid cookie name ''"),
    ({"cookie": {"same_site": "sometimes"}}, ValueError, "cookie same_site must be 'Strict'"),
    ({"cookie": 42}, ValueError, "cookie must be True, a cookie name, or a dict"),
    ({"cors": {"origin": "*"}}, TypeError, r"cors must be a sockjet.CORS\(...\) instance"),
    ({"cors": CORS(max_age=-1)}, ValueError, "max_age must be a non-negative"),
    ({"cors": CORS(max_age="600")}, ValueError, "max_age must be a non-negative"),
    ({"cors": CORS(methods=["GET POST"])}, ValueError, "invalid methods entry 'GET POST'"),
    ({"cors": CORS(allowed_headers=["X-Token", 1])}, ValueError, "invalid allowed_headers"),
    ({"cors": CORS(exposed_headers=["X:Y"])}, ValueError, "invalid exposed_headers"),
    ({"origins": "foo://example.com:*"}, ValueError, "invalid origin 'foo://example.com:\\*'"),
    ({"origins": ["https://:*"]}, ValueError, "invalid origin 'https://:\\*'"),
])
def test_invalid_engine_and_cors_options_raise(options: dict[str, Any], error: type[Exception],
                                               message: str) -> None:
    with pytest.raises(error, match=message):
        EngineServer(**options)
    with pytest.raises(error, match=message):
        sockjet.Server(**options)


def test_the_defaults_are_the_documented_ones() -> None:
    engine = EngineServer()
    assert (engine.ping_interval, engine.ping_timeout) == (25, 20)
    assert (engine.upgrade_timeout, engine.close_timeout) == (10, 30)
    assert engine.max_http_buffer_size == 1_000_000
    assert (engine.queue_high_water, engine.queue_limit) == (1 << 20, 100 << 20)
    assert engine.compression_threshold == 1024  # http_compression=True
    assert engine.per_message_deflate is False and engine.cookie is None


async def test_valid_boundaries_of_the_same_options_are_accepted() -> None:
    engine = EngineServer(queue_high_water=1, queue_limit=1, max_header_size=1, max_headers=1,
                          max_http_buffer_size=1,
                          handle_preflight_request=True, path="x",
                          origins="https://example.com:*",
                          cors=CORS(max_age=0, methods="GET, POST",
                                    allowed_headers=["X-Token", "Content-Type"]))
    assert engine.path == "/x/" and engine.max_http_buffer_size == 1
    assert (engine.queue_high_water, engine.queue_limit) == (1, 1)
    options = InProcRequest("OPTIONS", pq(), headers={"origin": "https://example.com:8443"})
    response = await engine.handle_request(options)
    assert response is not None and response.status == 204
    assert header(response, "access-control-allow-methods") == "GET,POST"
    assert header(response, "access-control-allow-headers") == "X-Token,Content-Type"
    assert header(response, "access-control-max-age") == "0"


@pytest.mark.parametrize(("path", "normalised"), [
    ("x", "/x/"),
    ("/engine.io", "/engine.io/"),
    ("//rt/engine.io//", "/rt/engine.io/"),
    ("X", "/X/"),
    ("/", "/"),  # the root: every request is the engine's
    ("///", "/"),
])
def test_the_path_gets_one_slash_at_each_end(path: str, normalised: str) -> None:
    assert EngineServer(path=path).path == normalised


def test_origins_takes_one_value() -> None:
    io = sockjet.Server(origins=["https://a.example"])
    with pytest.raises(TypeError, match="origins\\(\\) takes one value"):
        io.origins("https://a.example", "https://b.example")
    assert io.origins() == ["https://a.example"]  # unchanged
    assert io.origins("https://b.example") is io and io.origins() == "https://b.example"


# -- same_origin, preflight handlers --------------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    ({"origin": "http://127.0.0.1:3000", "host": "127.0.0.1:3000"}, 200),
    ({"origin": "http://127.0.0.1:3000", "host": "other.example:3000"}, 403),
    ({"origin": "http://127.0.0.1:3000"}, 403),  # an Origin, but no Host to compare it with
    ({}, 200),  # no Origin: not a browser page
])
async def test_same_origin_needs_a_host_header_to_compare_with(headers: dict[str, str],
                                                             status: int) -> None:
    assert sockjet.same_origin(InProcRequest("GET", pq(), headers=headers)) is (status == 200)
    engine = EngineServer(allow_request=sockjet.same_origin)
    response = await engine.handle_request(InProcRequest("GET", pq(), headers=dict(headers)))
    assert response is not None and response.status == status
    assert (engine.sessions != {}) is (status == 200)


@pytest.mark.parametrize("result", [204, (204,), (204, [], b"", "extra"), [204, []], None])
async def test_a_preflight_handler_must_return_status_and_headers(result: Any) -> None:
    engine = EngineServer(handle_preflight_request=lambda request: result)
    preflight = InProcRequest("OPTIONS", pq(), headers={"origin": "https://a.example"})
    with pytest.raises(TypeError, match=r"must return \(status, headers\[, body\]\)"):
        await engine.handle_request(preflight)


# -- the refusal log is bounded -------------------------------------------------------------------


async def test_origin_refusals_are_logged_for_at_most_1024_origins(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer(origins=["https://good.example"])
    caplog.set_level(logging.WARNING, logger="sockjet.cors")

    async def refused(origin: str) -> None:
        request = InProcRequest("GET", pq(), headers={"origin": origin})
        response = await engine.handle_request(request)
        assert response is not None and response.status == 403

    for i in range(1030):
        await refused(f"https://site{i}.example")
    await refused("https://site0.example")  # one that was logged: not again either
    messages = [r.getMessage() for r in caplog.records if r.name == "sockjet.cors"]
    assert len(messages) == 1025
    assert all(f"'https://site{i}.example'" in m for i, m in enumerate(messages[:1024]))
    assert messages[-1] == "more than 1024 distinct notices: further ones are not logged"
    ok = await engine.handle_request(
        InProcRequest("GET", pq(), headers={"origin": "https://good.example"}))
    assert ok is not None and ok.status == 200  # refusing is all it stopped logging


def test_forget_starts_afresh_up_to_the_overflow_notice(
        caplog: pytest.LogCaptureFixture) -> None:
    notices = LogOnce(logging.getLogger("sockjet.cors"), logging.WARNING, capacity=2)
    caplog.set_level(logging.WARNING, logger="sockjet.cors")
    for _ in range(2):  # the second round, after forget(), as if nothing had been logged
        for key in ("a", "b", "a", "c", "d"):
            notices(key, "notice %s", key)
        notices.forget()
    once = ["notice a", "notice b", "more than 2 distinct notices: further ones are not logged"]
    assert [r.getMessage() for r in caplog.records if r.name == "sockjet.cors"] == once * 2


def test_peer_mistakes_are_logged_once_per_client_address_and_cause(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sockjet.peers")
    peer_notices.forget()  # remembered for the whole process: this test starts afresh
    try:
        head = "request head over max_header_size"
        peer_mistake(("203.0.113.7", 50123), head)
        peer_mistake(("203.0.113.7", 50124), head)  # another port: the same client
        peer_mistake(("203.0.113.7", 50123), "invalid WebSocket handshake", "no Upgrade header")
        peer_mistake(("198.51.100.1", 41000), head)  # another client
        peer_mistake(None, "deadline missed")  # a binding that does not know the address
        peer_mistake(None, "deadline missed")
    finally:
        peer_notices.forget()
    records = [r for r in caplog.records if r.name == "sockjet.peers"]
    assert [r.getMessage() for r in records] == [
        f"client 203.0.113.7: {head}",
        "client 203.0.113.7: invalid WebSocket handshake (no Upgrade header)",
        f"client 198.51.100.1: {head}",
        "client unknown: deadline missed",
    ]
    assert {r.levelno for r in records} == {logging.INFO}


# -- handshakes: WebSocket transport mix-up, cookies, compression ---------------------------------


async def test_websocket_request_asking_for_polling_is_a_bad_request() -> None:
    engine = EngineServer()
    opened: list[EngineSocket] = []
    engine.on("connection", opened.append)
    ws = InProcWebSocket({"EIO": "4", "transport": "polling"})
    await asyncio.wait_for(engine.handle_websocket(ws), 2)
    assert ws.rejected == (400, b"Bad request")
    assert engine.sessions == {} and opened == []


async def test_allow_request_answers_count_for_their_truth() -> None:
    # a re.Match or None is an answer as good as True or False (and is not awaited)
    engine = EngineServer(
        allow_request=lambda req: re.fullmatch(r"[a-z]{8}", req.query.get("token", "")))
    admitted = await engine.handle_request(InProcRequest("GET", {**pq(), "token": "abcdefgh"}))
    assert admitted is not None and admitted.status == 200
    refused = await engine.handle_request(InProcRequest("GET", {**pq(), "token": "abc"}))
    assert refused is not None and refused.status == 403
    assert json.loads(refused.body) == {"code": 4, "message": "Forbidden"}
    assert len(engine.sessions) == 1


@pytest.mark.parametrize(("cookie", "expected"), [
    (True, "io={sid}; Path=/; HttpOnly; SameSite=Lax"),
    ("X-App-Session", "X-App-Session={sid}; Path=/; HttpOnly; SameSite=Lax"),  # a name
    ({"name": "sticky", "path": "/x", "http_only": False, "same_site": "Strict", "secure": True,
      "max_age": 60, "domain": "example.com"},
     "sticky={sid}; Domain=example.com; Path=/x; Max-Age=60; Secure; SameSite=Strict"),
    ({"same_site": "none", "secure": True}, "io={sid}; Path=/; HttpOnly; Secure; SameSite=None"),
    ({"same_site": "STRICT", "max_age": 0},
     "io={sid}; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    (False, None),
    (None, None),  # the default
])
async def test_the_cookie_option_names_the_session_cookie_or_leaves_it_out(
        cookie: Any, expected: str | None) -> None:
    engine = EngineServer(cookie=cookie)
    response = await get(engine, pq())
    sid = json.loads(response.body[1:])["sid"]
    assert header(response, "set-cookie") == (expected and expected.format(sid=sid))


@pytest.mark.parametrize(("cookie", "attributes"), [
    ({"path": None}, "; HttpOnly; SameSite=Lax"),
    ({"path": ""}, "; HttpOnly; SameSite=Lax"),
    ({"same_site": None}, "; Path=/; HttpOnly"),
    ({"same_site": "", "path": "/app"}, "; Path=/app; HttpOnly"),
    ({"same_site": False, "path": None, "http_only": False}, ""),
])
async def test_cookie_attributes_can_be_left_out(cookie: dict[str, Any], attributes: str) -> None:
    engine = EngineServer(cookie=cookie)
    response = await get(engine, pq())
    sid = json.loads(response.body[1:])["sid"]
    assert header(response, "set-cookie") == f"io={sid}{attributes}"


@pytest.mark.parametrize(("option", "threshold"), [
    (True, 1024),  # the default
    ({}, 1024),
    ({"threshold": 10}, 10),
    (False, None),
])
async def test_polls_are_compressed_from_the_threshold_on(option: Any,
                                                          threshold: int | None) -> None:
    engine = EngineServer(http_compression=option)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    for size in (threshold - 1, threshold) if threshold is not None else (5000,):
        assert sockets[0].send("x" * (size - 1))  # the poll's body: "4" and the message
        response = await engine.handle_request(
            InProcRequest("GET", pq(sid), headers={"accept-encoding": "gzip"}))
        assert response is not None and response.status == 200
        compressed = threshold is not None and size >= threshold
        assert header(response, "content-encoding") == ("gzip" if compressed else None)
        body = zlib.decompress(response.body, 16 + zlib.MAX_WBITS) if compressed else response.body
        assert body == b"4" + b"x" * (size - 1)
    await engine.shutdown()


@pytest.mark.parametrize(("accept", "encoding"), [
    ("gzip;q=abc", None),  # an unreadable q-value refuses the coding
    ("gzip;q=abc, deflate", "deflate"),
    ("gzip;q=0.5, deflate;q=x", "gzip"),
])
async def test_unreadable_q_values_count_as_zero(accept: str, encoding: str | None) -> None:
    engine = EngineServer(http_compression={"threshold": 0})
    response = await engine.handle_request(
        InProcRequest("GET", pq(), headers={"accept-encoding": accept}))
    assert response is not None and response.status == 200
    assert header(response, "content-encoding") == encoding
    body = response.body
    if encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding == "gzip":
        body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
    assert json.loads(body[1:])["sid"] in engine.sessions


# -- sessions -------------------------------------------------------------------------------------


async def test_each_session_has_the_engine_protocol_it_asked_for() -> None:
    engine = EngineServer(allow_eio3=True)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    await get(engine, pq(eio=4))
    await get(engine, pq(eio=3))
    ws, task = await ws_session(engine)
    assert [(s.engine_protocol, s.transport) for s in sockets] == [
        (4, "polling"), (3, "polling"), (4, "websocket")]
    ws.client_close()
    await asyncio.wait_for(task, 2)
    await engine.shutdown()


async def test_shutdown_closes_every_session_as_server_shutting_down() -> None:
    engine = EngineServer()
    reasons: list[str] = []
    engine.on("connection", lambda socket: socket.on("close", reasons.append))
    await get(engine, pq())
    ws, task = await ws_session(engine)
    await engine.shutdown()
    await asyncio.wait_for(task, 2)
    assert reasons == ["server shutting down"] * 2
    assert engine.sessions == {} and ws.closed


@pytest.mark.parametrize("packet", [
    "3",  # a pong no ping asked for
    "3probe",
    "6",  # noop
    "5",  # upgrade, outside an upgrade
    "0",  # open
])
async def test_packets_with_no_meaning_here_are_ignored(packet: str) -> None:
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    received: list[str | bytes] = []
    closed: list[str] = []

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        sockets.append(socket)
        socket.on("message", received.append)
        socket.on("close", closed.append)

    ws, task = await ws_session(engine)
    ws.client_send(packet)
    ws.client_send("4after")
    await eventually(lambda: received)
    assert received == ["after"] and closed == [] and sockets[0].state == "open"
    sockets[0].send("still open")
    assert await ws.next() == "4still open"
    ws.client_close()
    await asyncio.wait_for(task, 2)
    assert closed == ["transport close"]


async def test_a_closed_session_is_not_writable() -> None:
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    ws, task = await ws_session(engine)
    socket = sockets[0]
    assert socket.writable
    socket.close()
    assert not socket.writable  # volatile packets are dropped, nothing is queued
    assert socket.send("late") is False and socket.buffered == 0
    await asyncio.wait_for(task, 2)
    assert ws.closed


async def test_a_ping_that_overflows_the_queue_closes_and_keeps_nothing_alive() -> None:
    # the ping is the packet over queue_limit: the session closes ("transport error") and no
    # ping-timeout timer is left holding the closed session for ping_timeout seconds
    engine = EngineServer(ping_interval=0.05, ping_timeout=60, queue_high_water=1, queue_limit=7)
    sockets: list[EngineSocket] = []
    reasons: list[str] = []

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        sockets.append(socket)
        socket.on("close", reasons.append)

    await get(engine, pq())  # carries the open packet: nothing is left queued
    ref = weakref.ref(sockets[0])
    # "4unread": 7 bytes queued, at the limit, not over it; the ping's "2" is one byte too many
    assert sockets.pop().send("unread")
    await eventually(lambda: reasons)
    assert reasons == ["transport error"] and engine.sessions == {}
    gc.collect()
    assert ref() is None


def failing_sync(socket: EngineSocket) -> None:
    raise LookupError("no such user")


async def failing_async(socket: EngineSocket) -> None:
    await asyncio.sleep(0)
    raise LookupError("no such user")


@pytest.mark.parametrize(("failing", "message"), [
    (failing_sync, f"error in handler {failing_sync!r}"),  # the handler that raised is named
    (failing_async, "error in handler"),
], ids=["sync", "async"])
async def test_failing_handlers_are_logged_and_the_others_still_run(
        failing: Any, message: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer()
    received: list[str | bytes] = []
    engine.on("connection", failing)
    engine.on("connection", lambda socket: socket.on("message", received.append))
    caplog.set_level(logging.ERROR, logger="sockjet.engine")
    ws, task = await ws_session(engine)  # the session opened all the same
    ws.client_send("4hello")
    await eventually(lambda: received and errors(caplog))
    assert received == ["hello"]  # the next handler ran
    [record] = errors(caplog)
    assert record.getMessage() == message
    assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)
    ws.client_close()
    await asyncio.wait_for(task, 2)


async def test_handler_tasks_that_end_well_or_are_cancelled_log_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer()
    finished: list[str] = []

    async def succeeds(socket: EngineSocket) -> None:
        await asyncio.sleep(0)
        finished.append(socket.sid)

    async def waits_forever(socket: EngineSocket) -> None:
        await asyncio.Event().wait()

    engine.on("connection", succeeds)
    engine.on("connection", waits_forever)
    caplog.set_level(logging.DEBUG)
    ws, task = await ws_session(engine)
    await eventually(lambda: finished and len(engine.invoker.tasks) == 1)
    [waiting] = engine.invoker.tasks
    waiting.cancel()
    await eventually(lambda: not engine.invoker.tasks)
    ws.client_close()
    await asyncio.wait_for(task, 2)
    assert waiting.cancelled() and len(finished) == 1
    assert errors(caplog) == []
