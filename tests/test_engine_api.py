"""The Engine.IO server and its CORS policy at their edges, in process (tests/inproc.py):
option checks, ``same_origin`` without a Host header, preflight handlers that return nonsense,
the bounded refusal log, client mistakes logged once per address and cause, ``allow_request``
answers that are neither ``True`` nor ``False``, cookie attributes left out, ``Accept-Encoding``
negotiation, JSONP posts, sessions that receive packets they have no use for or overflow while
pinging, POSTs that end their session, and WebSocket sessions opened directly or by an upgrade.
Each test fails if the behaviour it names were missing or wrong."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import weakref
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from conftest import eventually
from inproc import InProcRequest, InProcWebSocket, get, post

import sockjet
from sockjet import CORS, EngineServer, EngineSocket
from sockjet.codecs import engineio as eio
from sockjet.engine.notices import LogOnce, peer_mistake, peer_notices
from sockjet.exceptions import ClientGone


def pq(sid: str | None = None, eio: int = 4) -> dict[str, str]:
    """Query of a polling request (a handshake without ``sid``)."""
    query = {"EIO": str(eio), "transport": "polling"}
    if sid is not None:
        query["sid"] = sid
    return query

async def polling_session(engine: EngineServer) -> tuple[EngineSocket, list[str]]:
    """A new polling session of ``engine`` whose open packet was taken, and the reasons its
    ``close`` event gives."""
    sockets: list[EngineSocket] = []
    closed: list[str] = []
    engine.on("connection", lambda socket: (sockets.append(socket),
                                            socket.on("close", closed.append)))
    await get(engine, pq())  # carries the open packet
    return sockets[0], closed



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
    ("gzip;q=0=1", None),  # not a number either (Node reads the 0 before the second "=")
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


@pytest.mark.parametrize(("accept", "encoding"), [
    ("*", "gzip"),  # any coding will do: gzip
    ("br, *;q=0.5", "gzip"),
    ("gzip;q=1, deflate", "gzip"),  # an explicit q=1 ties with the implied one: the first wins
    ("gzip;level=9;q=0, deflate", "deflate"),  # the q-value found among other parameters
    # "*" covers only the codings not named (RFC 9110 12.5.3), as in Node's negotiator
    ("gzip;q=0, *", "deflate"),  # gzip refused by name: not taken back from the wildcard
    ("*, deflate", "deflate"),  # a named coding before one the wildcard covers
    ("deflate, gzip", "deflate"),  # a tie between named codings: the first named
    ("deflate;q=0.5, gzip;q=0.8", "gzip"),  # the higher q-value
    ("*;q=0.2, gzip;q=0.1", "deflate"),  # gzip's own q-value, deflate the wildcard's
])
async def test_accept_encoding_wildcard_explicit_q_and_other_parameters(
        accept: str, encoding: str) -> None:
    engine = EngineServer(http_compression={"threshold": 0})
    response = await engine.handle_request(
        InProcRequest("GET", pq(), headers={"accept-encoding": accept}))
    assert response is not None and header(response, "content-encoding") == encoding
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    assert json.loads(zlib.decompress(response.body, wbits)[1:])["sid"] in engine.sessions


async def _poll_carrying(message: str, accept: str, **options: Any) -> Any:
    """The poll that carries ``message`` on a new session of ``EngineServer(**options)``."""
    engine = EngineServer(**options)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    await get(engine, pq())  # carries the open packet
    assert sockets[0].send(message)
    return await engine.handle_request(
        InProcRequest("GET", pq(sockets[0].sid), headers={"accept-encoding": accept}))


@pytest.mark.parametrize(("options", "size", "compressed"), [
    ({"http_compression": {"threshold": 10}}, 10, True),  # from the threshold up
    ({"http_compression": {"threshold": 10}}, 9, False),
    ({"http_compression": False}, 5000, False),
])
async def test_polls_are_compressed_from_the_threshold_up_unless_compression_is_off(
        options: dict[str, Any], size: int, compressed: bool) -> None:
    response = await _poll_carrying("x" * (size - 1), "gzip", **options)
    headers = {name.lower(): value for name, value in response.headers}
    body = zlib.decompress(response.body, 16 + zlib.MAX_WBITS) if compressed else response.body
    assert body == b"4" + b"x" * (size - 1)
    assert headers.get("content-encoding") == ("gzip" if compressed else None)
    # caches must key compressed answers on Accept-Encoding (field names: any case)
    vary = headers.get("vary")
    assert (vary.lower() if vary else None) == ("accept-encoding" if compressed else None)


async def test_gzip_polls_carry_no_timestamp() -> None:
    # as Node's zlib: MTIME 0, so that the same payload compresses to the same bytes
    response = await _poll_carrying("y" * 2000, "gzip", http_compression={"threshold": 10})
    assert response.body[:2] == b"\x1f\x8b" and response.body[4:8] == b"\x00" * 4


# -- JSONP ----------------------------------------------------------------------------------------


async def test_jsonp_polls_and_form_posts_carry_v3_payloads() -> None:
    # engine.io-client 3 without XHR: j=<n> on every request, polls answered with a script
    # (binary in base64, whatever b64 says), POSTs a form field "d=<escaped v3 payload>"
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    received: list[str | bytes] = []
    engine.on("connection", lambda socket: (sockets.append(socket),
                                            socket.on("message", received.append)))
    query = {**pq(eio=3), "j": "0"}
    _, opened = eio.jsonp_unwrap((await get(engine, query)).body.decode())
    sid = re.search(r'"sid":"([^"]+)"', opened).group(1)  # type: ignore[union-attr]
    query["sid"] = sid
    packet = "4é & d=1\nnext"
    form = "d=" + quote(eio.jsonp_escape(f"{len(packet)}:{packet}"), safe="")
    response = await engine.handle_request(InProcRequest(
        "POST", query, form.encode(), {"content-type": "application/x-www-form-urlencoded"}))
    assert response is not None and (response.status, response.body) == (200, b"ok")
    assert received == ["é & d=1\nnext"]
    assert sockets[0].send(b"\x00\x01") and sockets[0].send("text")
    poll = await get(engine, query)
    assert header(poll, "content-type") == "text/javascript; charset=UTF-8"
    assert poll.body == b'___eio[0]("6:b4AAE=5:4text");'


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
    assert socket.state == "closed"
    assert not socket.writable  # volatile packets are dropped, nothing is queued
    assert socket.send("late") is False and socket.buffered == 0
    await asyncio.wait_for(task, 2)
    assert ws.closed


async def test_a_graceful_close_is_not_cut_short_by_a_later_cause() -> None:
    # the first reason wins: a shutdown while the close waits for its poll changes nothing
    engine = EngineServer()
    socket, closed = await polling_session(engine)
    assert socket.send("last words")
    socket.close()
    await engine.shutdown()
    assert socket.close_reason == "forced close" and closed == ["forced close"]
    assert (await get(engine, pq(socket.sid))).body == b"4last words"
    assert (await get(engine, pq(socket.sid))).body == b"1"
    assert engine.sessions == {}


async def test_a_connection_handler_may_queue_exactly_queue_limit_bytes() -> None:
    # a polling session counts its queue from zero (the open packet is not a message)
    engine = EngineServer(queue_high_water=1, queue_limit=6)
    accepted: list[bool] = []
    engine.on("connection", lambda socket: accepted.append(socket.send("hello")))  # 6 bytes
    opened = await get(engine, pq())
    assert accepted == [True]
    assert opened.body.startswith(b"0{") and opened.body.endswith(b"\x1e4hello")


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


# -- POSTs that end their session -----------------------------------------------------------------


class HeldPost(InProcRequest):
    """A POST whose body is still arriving until ``arrived`` is set (``gone``: whose client
    goes away before the body ends)."""

    def __init__(self, query: dict[str, str], gone: bool = False) -> None:
        super().__init__("POST", query, b"4late")
        self.arrived = asyncio.Event()
        self.client_gone = gone

    async def read_body(self, limit: int) -> bytes:
        if self.client_gone:
            raise ClientGone
        await self.arrived.wait()
        return await super().read_body(limit)


@pytest.mark.parametrize(("case", "status", "reason", "cause"), [
    ("overlapping POST", 400, "transport error", "overlapping"),
    ("body over max_http_buffer_size", 413, "transport error", "max_http_buffer_size"),
    ("client gone before the body ended", 400, "transport error", "aborted"),
    ("undecodable body", 400, "parse error", "unknown packet type '9'"),
    ("ping from the client", 200, "transport error", "ping from the side"),
])
async def test_a_post_that_ends_its_session_gives_the_reason_and_logs_the_cause(
        case: str, status: int, reason: str, cause: str,
        caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer(max_http_buffer_size=10)
    closed: list[str] = []
    engine.on("connection", lambda socket: socket.on("close", closed.append))
    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    caplog.set_level(logging.DEBUG, logger="sockjet.engine")
    if case == "overlapping POST":
        first = HeldPost(pq(sid))
        pending = asyncio.ensure_future(engine.handle_request(first))
        session = engine.sessions[sid]
        await eventually(lambda: session.post_pending)
        response = await post(engine, pq(sid), b"4second")
        first.arrived.set()
        await asyncio.wait_for(pending, 2)  # its packets are not taken: the session is closed
    elif case == "client gone before the body ended":
        # nobody reads this answer; what matters is that the session ends, and no exception
        response = await engine.handle_request(HeldPost(pq(sid), gone=True))
    else:
        body = {"body over max_http_buffer_size": b"4" + b"x" * 10,
                "undecodable body": b"9nope", "ping from the client": b"2"}[case]
        response = await post(engine, pq(sid), body)
    assert response is not None and response.status == status
    assert closed == [reason] and engine.sessions == {}
    # the debug line "session <sid> closed: <reason> (<cause>)" says why (docs/server.md)
    lines = [r.getMessage() for r in caplog.records if r.name == "sockjet.engine"
             and r.getMessage().startswith(f"session {sid} closed: {reason} (")]
    assert len(lines) == 1 and cause.lower() in lines[0].lower(), lines


@pytest.mark.parametrize(("case", "cause"), [
    ("overlapping poll", "overlapping"),
    ("client gone while the poll waits", "aborted"),
])
async def test_a_poll_that_ends_its_session_gives_the_reason_and_logs_the_cause(
        case: str, cause: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer()
    closed: list[str] = []
    engine.on("connection", lambda socket: socket.on("close", closed.append))
    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    caplog.set_level(logging.DEBUG, logger="sockjet.engine")
    first = InProcRequest("GET", pq(sid))
    waiting = asyncio.ensure_future(engine.handle_request(first))
    session = engine.sessions[sid]
    await eventually(lambda: session.poll_pending)
    if case == "overlapping poll":
        response = await get(engine, pq(sid))
        assert response.status == 400 and json.loads(response.body)["code"] == 3
        assert (await asyncio.wait_for(waiting, 2)).body == b"1"  # the close packet
    else:
        first.gone.set()
        await asyncio.wait_for(waiting, 2)  # answered, though nobody reads it
    assert closed == ["transport error"] and engine.sessions == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "sockjet.engine"
             and r.getMessage().startswith(f"session {sid} closed: transport error (")]
    assert len(lines) == 1 and cause in lines[0].lower(), lines


async def test_an_oversize_post_is_answered_413_in_plain_text() -> None:
    engine = EngineServer(max_http_buffer_size=10)
    sid = json.loads((await get(engine, pq())).body[1:])["sid"]
    response = await post(engine, pq(sid), b"4" + b"x" * 10)
    # header names, media types and charsets are case-insensitive in HTTP
    headers = {name.lower(): value for name, value in response.headers}
    assert headers["content-type"].lower() == "text/plain; charset=utf-8"
    assert (response.status, response.body) == (413, b"Payload Too Large")  # docs/engine.md


async def test_a_session_cut_off_over_queue_limit_logs_the_cause(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer(queue_high_water=1, queue_limit=8)
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    await get(engine, pq())  # carries the open packet
    caplog.set_level(logging.DEBUG, logger="sockjet.engine")
    socket = sockets[0]
    assert socket.send("1234567")  # 8 bytes: at the limit
    assert not socket.send("x")
    assert socket.buffered == 0  # what was queued is dropped with the session
    lines = [r.getMessage() for r in caplog.records if r.name == "sockjet.engine"
             and r.getMessage().startswith(f"session {socket.sid} closed: transport error (")]
    assert len(lines) == 1 and "queue_limit" in lines[0].lower(), lines


async def test_a_poll_waiting_when_a_send_passes_queue_limit_is_answered() -> None:
    engine = EngineServer(queue_high_water=1, queue_limit=8)
    socket, closed = await polling_session(engine)
    waiting = asyncio.ensure_future(get(engine, pq(socket.sid)))
    await eventually(lambda: socket.poll_pending)
    assert not socket.send("x" * 20)  # over queue_limit: cut off
    response = await asyncio.wait_for(waiting, 2)
    assert response.status == 200
    assert closed == ["transport error"] and engine.sessions == {}


# -- WebSocket: direct and upgraded sessions ------------------------------------------------------


async def probed(engine: EngineServer, eio: int = 4, b64: str | None = None
                 ) -> tuple[EngineSocket, InProcWebSocket, asyncio.Future[None]]:
    """A polling session (``b64``: as asked for in its queries) whose upgrade is half done:
    the probe answered, the ``5`` not sent yet."""
    extra = {} if b64 is None else {"b64": b64}
    opened = (await get(engine, {**pq(eio=eio), **extra})).body.decode()
    sid = re.search(r'"sid":"([^"]+)"', opened).group(1)  # type: ignore[union-attr]
    ws = InProcWebSocket({**pq(sid, eio), "transport": "websocket", **extra})
    task = asyncio.ensure_future(engine.handle_websocket(ws))
    ws.client_send("2probe")
    assert await ws.next() == "3probe"
    return engine.sessions[sid], ws, task


async def test_only_a_session_upgraded_from_polling_emits_upgrade() -> None:
    engine = EngineServer()
    upgrades: list[tuple[str, str]] = []
    engine.on("connection", lambda socket: socket.on(
        "upgrade", lambda: upgrades.append((socket.sid, socket.transport))))
    direct, direct_task = await ws_session(engine)  # its open packet is out: serving
    [direct_session] = engine.sessions.values()
    session, ws, task = await probed(engine)
    assert upgrades == []
    ws.client_send("5")
    await eventually(lambda: upgrades)
    assert upgrades == [(session.sid, "websocket")]  # once, and not for the direct one
    assert direct_session.sid != session.sid
    direct.client_close()
    ws.client_close()
    await asyncio.wait_for(asyncio.gather(direct_task, task), 2)


@pytest.mark.parametrize(("eio", "b64", "binary"), [
    (4, None, b"\x01\x02"),
    (4, "1", b"\x01\x02"),  # v4: raw binary frames over WebSocket whatever b64 says
    (3, None, b"\x04\x01\x02"),
    (3, "1", "b4AQI="),  # v3 clients that asked for base64
    (3, "true", "b4AQI="),
])
async def test_packets_queued_during_an_upgrade_follow_in_the_websocket_encoding(
        eio: int, b64: str | None, binary: str | bytes) -> None:
    engine = EngineServer()
    session, ws, task = await probed(engine, eio, b64)
    assert session.send(b"\x01\x02") and session.send("text")  # still polling: queued
    ws.client_send("5")
    assert await ws.next() == binary
    assert await ws.next() == "4text"
    assert session.send(b"\x01\x02")  # and what is sent after the switch, likewise
    assert await ws.next() == binary
    ws.client_close()
    await asyncio.wait_for(task, 2)


async def test_a_second_upgrade_while_one_is_in_progress_is_closed_at_once() -> None:
    engine = EngineServer()
    session, first, task = await probed(engine)
    second = InProcWebSocket(first.query)
    await asyncio.wait_for(engine.handle_websocket(second), 2)
    assert second.closed and second.drain() == [None]  # not even a probe answer
    first.client_send("5")  # the first upgrade goes on
    await eventually(lambda: session.transport == "websocket")
    assert session.send("on the first") and await first.next() == "4on the first"
    first.client_close()
    await asyncio.wait_for(task, 2)


async def test_a_poll_released_by_a_send_still_carries_it_when_the_session_ends_at_once() -> None:
    """The poll was released by a send and has not resumed when the session ends without
    grace (a shutdown): its answer carries the message and the close packet, not nothing."""
    engine = EngineServer()
    sockets: list[EngineSocket] = []
    engine.on("connection", sockets.append)
    await get(engine, pq())
    poll = asyncio.ensure_future(engine.handle_request(InProcRequest("GET", pq(sockets[0].sid))))
    await eventually(lambda: sockets[0].writable)  # the poll waits
    sockets[0].send("news")
    await engine.shutdown()
    response = await poll
    assert response is not None and response.body == b"4news\x1e1"


# -- serving hooks: started once, stopped in reverse, a failed start unwinds -------------------


def recording_hooks(engine: EngineServer, log: list[str], name: str,
                    fail: list[BaseException] | None = None) -> None:
    """Hooks that note when they run; the start raises the first exception left in ``fail``."""

    async def start() -> None:
        await asyncio.sleep(0.01)  # concurrent callers arrive while it runs
        if fail:
            log.append(f"{name} start failed")
            raise fail.pop(0)
        log.append(f"{name} start")

    async def stop() -> None:
        log.append(f"{name} stop")

    engine.add_serving_hooks(start, stop)


async def test_startup_runs_each_start_once_until_shutdown_and_stops_in_reverse() -> None:
    engine = EngineServer()
    log: list[str] = []
    recording_hooks(engine, log, "a")
    recording_hooks(engine, log, "b")
    assert not engine.started
    # the runners, lifespan and the first requests may all ask: one run, every caller waits
    await asyncio.gather(engine.startup(), engine.startup(), engine.startup())
    assert engine.started and engine.loop is asyncio.get_running_loop()
    await engine.startup()
    assert log == ["a start", "b start"]
    await engine.shutdown()
    await engine.shutdown()  # the runner and lifespan may both ask: stopped once
    assert not engine.started
    assert log == ["a start", "b start", "b stop", "a stop"]
    await engine.startup()  # served again: started again
    assert log[-2:] == ["a start", "b start"] and engine.started
    await engine.shutdown()


async def test_a_failed_start_stops_what_started_and_the_next_startup_tries_again() -> None:
    engine = EngineServer()
    log: list[str] = []
    recording_hooks(engine, log, "a")
    recording_hooks(engine, log, "b", fail=[sockjet.AdapterError("cannot reach Redis")])
    recording_hooks(engine, log, "c")
    results = await asyncio.gather(engine.startup(), engine.startup(), return_exceptions=True)
    assert [str(result) for result in results] == ["cannot reach Redis"] * 2
    # a started, b failed (it cleans up after itself), c never started
    assert log == ["a start", "b start failed", "a stop"]
    assert not engine.started
    log.clear()
    await engine.startup()
    assert log == ["a start", "b start", "c start"] and engine.started
    await engine.shutdown()


async def test_a_failing_stop_is_logged_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer()
    log: list[str] = []
    recording_hooks(engine, log, "a")

    async def broken() -> None:
        raise RuntimeError("stop broke")

    engine.add_serving_hooks(lambda: asyncio.sleep(0), broken)
    await engine.startup()
    with caplog.at_level(logging.ERROR, "sockjet.engine"):
        await engine.shutdown()
    assert log == ["a start", "a stop"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "a shutdown hook failed"]


async def test_a_shutdown_during_startup_interrupts_it_then_stops_everything() -> None:
    engine = EngineServer()
    log: list[str] = []
    recording_hooks(engine, log, "a")  # its start takes 10 ms
    starting = asyncio.ensure_future(engine.startup())
    await asyncio.sleep(0)
    await engine.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert log == ["a stop"] and not engine.started


def gated_hooks(engine: EngineServer, log: list[str], name: str,
                start_gate: asyncio.Event | None = None,
                stop_gate: asyncio.Event | None = None,
                fail: list[BaseException] | None = None) -> None:
    """Hooks whose start and stop wait for their gate (when given) and note when they begin
    and end; the start raises the first exception left in ``fail``."""

    async def start() -> None:
        log.append(f"{name} start")
        if start_gate is not None:
            await start_gate.wait()
        if fail:
            raise fail.pop(0)

    async def stop() -> None:
        log.append(f"{name} stop begins")
        if stop_gate is not None:
            await stop_gate.wait()
        log.append(f"{name} stop ends")

    engine.add_serving_hooks(start, stop)


async def test_a_shutdown_after_a_failed_start_runs_every_stop() -> None:
    """The failed start's own stop too: it was left open to be tried again, and a shutdown
    is the end of that."""
    engine = EngineServer()
    log: list[str] = []
    gated_hooks(engine, log, "a")
    gated_hooks(engine, log, "b", fail=[sockjet.AdapterError("down")])
    gated_hooks(engine, log, "c")
    with pytest.raises(sockjet.AdapterError):
        await engine.startup()
    assert log == ["a start", "b start", "a stop begins", "a stop ends"]
    log.clear()
    await engine.shutdown()
    await engine.shutdown()
    assert log == ["c stop begins", "c stop ends", "b stop begins", "b stop ends",
                   "a stop begins", "a stop ends"]


async def test_a_start_asked_while_a_failed_start_unwinds_gets_that_failure() -> None:
    engine = EngineServer()
    log: list[str] = []
    stopping = asyncio.Event()
    gated_hooks(engine, log, "a", stop_gate=stopping)
    gated_hooks(engine, log, "b", fail=[sockjet.AdapterError("down")])
    first = asyncio.ensure_future(engine.startup())
    await eventually(lambda: "a stop begins" in log)
    second = asyncio.ensure_future(engine.startup())  # during the unwind
    await asyncio.sleep(0.01)
    stopping.set()
    for caller in (first, second):
        with pytest.raises(sockjet.AdapterError):
            await caller
    # no start overlapped the unwind
    assert log == ["a start", "b start", "a stop begins", "a stop ends"]
    await engine.startup()  # the next one starts afresh
    assert log[4:] == ["a start", "b start"] and engine.started
    await engine.shutdown()


async def test_a_start_asked_during_a_shutdown_runs_after_its_stops() -> None:
    engine = EngineServer()
    log: list[str] = []
    stopping = asyncio.Event()
    gated_hooks(engine, log, "a", stop_gate=stopping)
    await engine.startup()
    shutting = asyncio.ensure_future(engine.shutdown())
    await eventually(lambda: "a stop begins" in log)
    starting = asyncio.ensure_future(engine.startup())
    await asyncio.sleep(0.01)
    assert log == ["a start", "a stop begins"]  # not started while it stops
    stopping.set()
    await shutting
    await starting
    assert log == ["a start", "a stop begins", "a stop ends", "a start"] and engine.started
    await engine.shutdown()


async def test_a_start_asked_just_after_a_shutdown_began_runs_after_its_stops() -> None:
    """The shutdown interrupts the start in progress and takes its turn before a start asked
    right after it; the interrupted run does not forget the newer one."""
    engine = EngineServer()
    log: list[str] = []
    gate = asyncio.Event()
    gated_hooks(engine, log, "a", start_gate=gate)
    first = asyncio.ensure_future(engine.startup())
    await eventually(lambda: "a start" in log)
    shutting = asyncio.ensure_future(engine.shutdown())
    await asyncio.sleep(0)  # it interrupted the start and waits for the unwind
    second = asyncio.ensure_future(engine.startup())
    gate.set()
    await shutting
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert log == ["a start", "a stop begins", "a stop ends", "a start"] and engine.started
    await engine.startup()  # the second run is the current one: nothing runs again
    assert log.count("a start") == 2
    await engine.shutdown()


def test_an_engine_starts_and_stops_again_on_another_event_loop() -> None:
    """asyncio.run twice on one server (a script, a test): what served one loop is not used
    on the next (asyncio locks and tasks belong to one loop)."""
    engine = EngineServer()
    log: list[str] = []
    recording_hooks(engine, log, "a")  # a start that takes 10 ms

    async def start_and_stop_at_once() -> None:
        starting = asyncio.ensure_future(engine.startup())
        await asyncio.sleep(0.005)
        await engine.shutdown()  # waits for the interrupted start's turn: the lock is used
        with pytest.raises(asyncio.CancelledError):
            await starting

    async def start() -> None:
        await engine.startup()

    for _ in range(2):
        asyncio.run(start_and_stop_at_once())
    asyncio.run(start())  # started, never shut down: that loop is gone
    asyncio.run(start())  # so this loop starts it again
    assert log == ["a stop", "a stop", "a start", "a start"] and engine.started
