"""CORS / origin policy (SPEC §5, points 1-10) at the HTTP and WebSocket level: real uvicorn on
127.0.0.1, httpx and the ``websockets`` client with explicit ``Origin`` headers; the HTTPS-scheme
cases call the real ASGI app with hand-built scopes (no TLS certificate needed)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from conftest import serve
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

import sockjet
from sockjet import CORS, EngineServer, Forbidden, Server, same_origin

#: everything here goes through a binding: each test runs on both
pytestmark = pytest.mark.usefixtures("binding")

P = "/socket.io/"
REFUSED = {"code": 4, "message": "Origin not allowed"}


# -- helpers ------------------------------------------------------------------------------------


def poll_url(url: str, eio: int = 4, sid: str | None = None, extra: str = "") -> str:
    return f"{url}{P}?EIO={eio}&transport=polling" + (f"&sid={sid}" if sid else "") + extra


def ws_url(url: str, sid: str | None = None, extra: str = "") -> str:
    sid_part = f"&sid={sid}" if sid else ""
    return "ws" + url[4:] + f"{P}?EIO=4&transport=websocket" + sid_part + extra


def hdrs(origin: str | None, **more: str) -> dict[str, str]:
    headers = {k.replace("_", "-"): v for k, v in more.items()}
    if origin is not None:
        headers["Origin"] = origin
    return headers


def sid_of(r: httpx.Response) -> str:
    assert r.status_code == 200, (r.status_code, r.text)
    m = re.match(r"(?:\d+:)?0(\{.*?\})", r.text)
    assert m, r.text
    return json.loads(m.group(1))["sid"]


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    assert r.json() == REFUSED
    assert cors_headers(r) == {}, r.headers


def assert_accepted_cors(r: httpx.Response, origin: str, *, credentials: bool = True,
                         exposed: str | None = None) -> None:
    assert r.headers.get_list("access-control-allow-origin") == [origin], r.headers
    assert "Origin" in [v.strip() for v in ",".join(r.headers.get_list("vary")).split(",")]
    if credentials:
        assert r.headers.get_list("access-control-allow-credentials") == ["true"]
    else:
        assert "access-control-allow-credentials" not in r.headers
    if exposed is None:
        assert "access-control-expose-headers" not in r.headers
    else:
        assert r.headers["access-control-expose-headers"] == exposed


async def ws_refusal(uri: str, origin: str | None) -> InvalidStatus:
    """Open a WebSocket that must be refused; return the refusal (HTTP status before 101)."""
    kwargs: dict[str, Any] = {"open_timeout": 5}
    if origin is not None:
        kwargs["origin"] = origin
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(uri, **kwargs):
            pass
    return info.value


async def ws_opens(uri: str, origin: str | None) -> str:
    """Open a direct WebSocket session that must be accepted; return its open packet."""
    kwargs: dict[str, Any] = {"open_timeout": 5}
    if origin is not None:
        kwargs["origin"] = origin
    async with ws_connect(uri, **kwargs) as ws:
        first = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(first, str) and first.startswith("0{"), first
    return first


def assert_ws_refused(refusal: InvalidStatus, body: bytes = b"Origin not allowed") -> None:
    response = refusal.response
    assert response.status_code == 403
    assert response.body == body
    assert not any(k.lower().startswith("access-control-") for k in response.headers)


async def allowed(client: httpx.AsyncClient, url: str, origin: str | None) -> bool:
    """Whether a polling handshake from ``origin`` is accepted (checks the refusal's shape)."""
    r = await client.get(poll_url(url), headers=hdrs(origin))
    if r.status_code == 403:
        assert_refused(r)
        return False
    sid_of(r)
    if origin is not None:
        assert_accepted_cors(r, origin)
    return True


async def check_matrix(client: httpx.AsyncClient, url: str,
                       cases: Iterable[tuple[str | None, bool]], *, websocket: bool = True) -> None:
    for origin, expected in cases:
        assert await allowed(client, url, origin) is expected, origin
        if websocket:
            if expected:
                await ws_opens(ws_url(url), origin)
            else:
                assert_ws_refused(await ws_refusal(ws_url(url), origin))


class Connections:
    """Collects the Socket.IO sockets that reach the ``connection`` handler."""

    def __init__(self, io: Server) -> None:
        self.sockets: list[Any] = []
        io.on("connection", self.sockets.append)


# -- point 1: accepted forms, matching rules, bad entries ----------------------------------------


async def test_full_origins_default_ports_case_and_no_substring() -> None:
    io = Server(origins=["https://example.com", "http://x.test:80", "HTTP://Upper.Example:8080"])
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://example.com", True),
            ("https://example.com:443", True),     # default port, both directions (see below)
            ("HTTPS://EXAMPLE.COM", True),         # scheme and host case-insensitive
            ("https://Example.Com:443", True),
            ("http://x.test", True),               # entry http://x.test:80
            ("http://x.test:80", True),
            ("http://upper.example:8080", True),
            ("http://example.com", False),         # scheme differs
            ("https://example.com:8443", False),   # port differs
            ("https://example.com.evil.org", False),
            ("https://notexample.com", False),
            ("https://sub.example.com", False),
            ("https://ample.com", False),
            ("https://x.test", False),
            ("http://upper.example", False),
            ("https://example.com/path", False),   # not an origin
            ("garbage", False),
            ("null", False),
            (None, True),                          # no Origin header: the check passes
        ])
        # the other direction of the default-port equivalence
        io.origins(["https://example.com:443", "http://x.test"])
        await check_matrix(client, url, [
            ("https://example.com", True), ("https://example.com:443", True),
            ("http://x.test", True), ("http://x.test:80", True),
            ("http://x.test:8080", False), ("https://x.test", False),
        ], websocket=False)


async def test_v2_entry_forms() -> None:
    io = Server(origins=["example.com:443", "*:8080", "foo.com:*", "[::1]:9000"])
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://example.com", True),
            ("https://example.com:443", True),
            ("http://example.com:443", True),      # host:port says nothing about the scheme
            ("http://example.com", False),         # port 80
            ("https://ample.com", False),          # no substring matching (Node 2.x: 200)
            ("https://e.com", False),
            ("https://example.com.evil.org", False),
            ("https://www.example.com", False),
            ("http://any.org:8080", True),
            ("https://any.org:8080", True),
            ("http://any.org", False),
            ("http://any.org:18080", False),
            ("http://foo.com:1234", True),
            ("http://foo.com", True),
            ("https://FOO.com", True),
            ("http://foo.com.evil.org", False),
            ("http://barfoo.com", False),
            ("http://[::1]:9000", True),
            ("http://[::1]:9001", False),
            ("null", False),
        ])
        io.origins("*:*")
        await check_matrix(client, url, [("https://anything.example", True), ("null", True)],
                           websocket=False)
        io.origins(["https://foo.example:*"])  # any port, one scheme (Node never matched it)
        await check_matrix(client, url, [
            ("https://foo.example:1234", True), ("https://foo.example", True),
            ("http://foo.example:1234", False), ("https://foo.example.evil.org:1234", False),
        ], websocket=False)


async def test_compiled_regex_full_match_only() -> None:
    io = Server(origins=[re.compile(r"https://[a-z]+\.example\.com")])
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://app.example.com", True),
            ("https://app.example.com.evil.org", False),
            ("https://evil.org/https://app.example.com", False),
            ("xhttps://app.example.com", False),
            ("https://example.com", False),
        ])
        io.origins(re.compile("example"))  # a single pattern is one entry; search() would match
        await check_matrix(client, url, [("https://example.com", False), ("example", True)],
                           websocket=False)


async def test_sync_and_async_callables() -> None:
    seen: list[str] = []

    def sync_ok(origin: str) -> bool:
        seen.append(origin)
        return origin == "https://sync.example"

    async def async_ok(origin: str) -> bool:
        await asyncio.sleep(0)
        seen.append(origin)
        return origin.endswith(".async.example")

    io = Server(origins=[sync_ok, async_ok])
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://sync.example", True),
            ("https://a.async.example", True),
            ("https://evil.example", False),
        ])
        assert "https://evil.example" in seen
        # a lone callable (not in a list) is one entry too; async alone
        io.origins(async_ok)
        await check_matrix(client, url, [("https://b.async.example", True),
                                         ("https://sync.example", False)], websocket=False)
        io.origins(sync_ok)
        await check_matrix(client, url, [("https://sync.example", True),
                                         ("https://b.async.example", False)], websocket=False)
        # no Origin: the callables are not consulted, the request passes
        seen.clear()
        assert await allowed(client, url, None)
        assert seen == []


async def test_single_string_is_one_entry() -> None:
    io = Server(origins="https://example.com")
    assert io.origins() == "https://example.com"
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://example.com", True),
            ("https://ample.com", False),
            ("https://e.com", False),
            ("https://example.co", False),
            ("http://example.com", False),
        ])
        io.origins("example.com:443")  # Node 2.x would search it as a substring
        await check_matrix(client, url, [
            ("https://example.com", True), ("https://ample.com", False), ("https://e.com", False),
            ("https://example.com.evil.org", False),
        ], websocket=False)
    with pytest.raises(ValueError):  # several entries in one string are not one origin
        Server(origins="https://a.example https://b.example")


BAD_ENTRIES: list[Any] = [
    "example.com",                 # neither an origin nor host:port
    "https://",
    "https://example.com/path",
    "https://example.com?x=1",
    "https://user@example.com",
    "ftp://example.com",           # no default port to normalise to
    "https://example.com:99999",
    "example.com:99999",           # v2 forms: the port must be a port too
    "*:70000",
    "[::1]:65536",
    "https://*.example.com",       # no wildcard hosts: they would silently never match
    "https://*.example.com:*",
    "example.com:",
    "example.com:abc",
    "*:abc",
    ":443",
    "",
    " ",
    "https://a.example https://b.example",
    123,
    None,
    b"https://example.com",
    ["https://example.com"],       # nested list
]


@pytest.mark.parametrize("bad", BAD_ENTRIES, ids=repr)
def test_malformed_entries_raise_at_configuration(bad: Any) -> None:
    with pytest.raises(ValueError):
        Server(origins=[bad])
    with pytest.raises(ValueError):
        EngineServer(cors=CORS(origin=[bad]))
    io = Server(origins=["https://ok.example"])
    with pytest.raises(ValueError):
        io.origins([bad])
    assert io.origins() == ["https://ok.example"]  # a failed set keeps the previous value


@pytest.mark.parametrize("bad", [123, b"https://example.com", object()], ids=repr)
def test_non_entry_values_raise(bad: Any) -> None:
    with pytest.raises(ValueError):
        Server(origins=bad)
    with pytest.raises(ValueError):
        Server().origins(bad)


# -- point 2: default = all domains, one start-up warning ----------------------------------------


def _startup_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sockjet.engine"
            and r.levelno == logging.WARNING and "all domains" in r.getMessage()]


async def test_default_allows_all_domains_with_one_startup_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sockjet.engine")
    io = Server()
    assert len(_startup_warnings(caplog)) == 1
    assert io.origins() == "*"
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [
            ("https://anything.example", True),
            ("http://127.0.0.1:1", True),
            ("null", True),
            (None, True),
        ])
    assert len(_startup_warnings(caplog)) == 1  # serving and requests add none
    caplog.clear()
    EngineServer()
    Server(cors=CORS(credentials=False))  # cors without an origin: still the default
    assert len(_startup_warnings(caplog)) == 2


@pytest.mark.parametrize("options", [
    {"origins": ["https://example.com"]},
    {"origins": "*"},                     # explicitly all: the user chose it
    {"cors": CORS(origin=["https://example.com"])},
    {"cors": CORS(origin="*:*")},
], ids=["list", "star", "cors-list", "cors-star"])
def test_no_startup_warning_when_origins_are_given(caplog: pytest.LogCaptureFixture,
                                                   options: dict[str, Any]) -> None:
    caplog.set_level(logging.WARNING)
    Server(**options)
    EngineServer(**options)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- points 3 and 4: what is checked, and the refusal shape --------------------------------------


async def test_session_requests_upgrades_and_preflights_all_checked() -> None:
    io = Server(origins=["https://good.example"])
    conns = Connections(io)
    good, evil = "https://good.example", "https://evil.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        # handshake: EIO 4 and EIO 3, GET; and the direct WebSocket handshake
        for eio in (4, 3):
            assert_refused(await client.get(poll_url(url, eio), headers=hdrs(evil)))
        assert_ws_refused(await ws_refusal(ws_url(url), evil))
        assert io.engine.sessions == {}

        r = await client.get(poll_url(url), headers=hdrs(good))
        sid = sid_of(r)
        assert_accepted_cors(r, good)

        # the attacker reuses the sid: POST, GET poll, OPTIONS, WebSocket upgrade
        r = await client.post(poll_url(url, sid=sid), content=b"40",
                              headers=hdrs(evil, content_type="text/plain;charset=UTF-8"))
        assert_refused(r)
        assert_refused(await client.get(poll_url(url, sid=sid), headers=hdrs(evil)))
        r = await client.options(poll_url(url, sid=sid), headers=hdrs(
            evil, access_control_request_method="POST"))
        assert_refused(r)
        assert_ws_refused(await ws_refusal(ws_url(url, sid), evil))
        assert sid in io.engine.sessions

        # the legitimate client carries on: POST, poll, upgrade
        r = await client.post(poll_url(url, sid=sid), content=b"40",
                              headers=hdrs(good, content_type="text/plain;charset=UTF-8"))
        assert (r.status_code, r.text) == (200, "ok")
        assert_accepted_cors(r, good)
        r = await client.get(poll_url(url, sid=sid), headers=hdrs(good))
        assert r.status_code == 200 and r.text.startswith("40{"), r.text
        assert_accepted_cors(r, good)
        # the attacker's "40" never reached the session: had it, this CONNECT would have been a
        # second one for "/", and the session would have been closed instead of answering
        assert len(conns.sockets) == 1
        async with ws_connect(ws_url(url, sid), origin=good, open_timeout=5) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
            await ws.send("5")
        # an allowed origin's later request on a now-unknown sid: engine error, CORS headers on
        r = await client.get(poll_url(url, sid="nope"), headers=hdrs(good))
        assert r.status_code == 400 and r.json()["code"] == 1
        assert_accepted_cors(r, good)


async def test_requests_without_origin_pass_and_get_no_cors_headers() -> None:
    io = Server(origins=["https://good.example"])
    conns = Connections(io)
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url))
        sid = sid_of(r)
        assert cors_headers(r) == {}
        r = await client.post(poll_url(url, sid=sid), content=b"40")
        assert (r.status_code, r.text) == (200, "ok")
        r = await client.get(poll_url(url, sid=sid))
        assert r.text.startswith("40{")
        async with ws_connect(ws_url(url, sid), open_timeout=5) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
        await ws_opens(ws_url(url), None)
        assert len(conns.sockets) == 1


async def test_origin_null_only_with_star_or_explicit_null() -> None:
    io = Server(origins=["https://example.com", "*:8080", "foo.com:*", "example.com:80"])
    async with serve(io) as url, httpx.AsyncClient() as client:
        await check_matrix(client, url, [("null", False)])
        io.origins(["https://example.com", "null"])
        await check_matrix(client, url, [("null", True), ("https://example.com", True),
                                         ("https://other.example", False)])
        io.origins("null")
        await check_matrix(client, url, [("null", True), ("https://example.com", False)],
                           websocket=False)
        for everything in ("*", "*:*", ["*"], ["https://example.com", "*:*"]):
            io.origins(everything)
            await check_matrix(client, url, [("null", True)], websocket=False)
        io.origins([re.compile(".*example.*")])  # null is not an origin to patterns either
        await check_matrix(client, url, [("null", False)], websocket=False)


async def test_runtime_setter_applies_to_the_next_request() -> None:
    io = Server(origins=["https://a.example"])
    a, b = "https://a.example", "https://b.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        sid = sid_of(await client.get(poll_url(url), headers=hdrs(a)))
        assert not await allowed(client, url, b)
        assert io.origins(["https://b.example"]) is io  # chainable, as in Node
        assert io.origins() == ["https://b.example"]
        assert await allowed(client, url, b)
        # the existing session of a.example is checked on its next request too
        assert_refused(await client.post(poll_url(url, sid=sid), content=b"40",
                                         headers=hdrs(a, content_type="text/plain")))
        assert_ws_refused(await ws_refusal(ws_url(url, sid), a))
        assert_ws_refused(await ws_refusal(ws_url(url), a))
        with pytest.raises(ValueError):
            io.origins(["b.example"])
        assert io.origins() == ["https://b.example"]
        assert await allowed(client, url, b)
        io.origins("*")
        assert io.origins() == "*"
        r = await client.post(poll_url(url, sid=sid), content=b"40",
                              headers=hdrs(a, content_type="text/plain"))
        assert (r.status_code, r.text) == (200, "ok")
    engine = EngineServer(origins=["https://a.example"])
    assert engine.origins() == ["https://a.example"]
    assert engine.origins("*:*") is engine and engine.origins() == "*:*"


# -- point 5: headers of accepted cross-origin responses -----------------------------------------


async def test_accepted_response_headers_and_exposed_headers() -> None:
    io = Server(cors=CORS(origin=["https://good.example"], exposed_headers=["X-Trace", "X-Id"]))
    good = "https://good.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url), headers=hdrs(good))
        sid = sid_of(r)
        assert_accepted_cors(r, good, exposed="X-Trace,X-Id")
        r = await client.post(poll_url(url, sid=sid), content=b"40",
                              headers=hdrs(good, content_type="text/plain"))
        assert_accepted_cors(r, good, exposed="X-Trace,X-Id")
        r = await client.get(poll_url(url, sid=sid), headers=hdrs(good))
        assert_accepted_cors(r, good, exposed="X-Trace,X-Id")


async def test_credentials_false() -> None:
    io = Server(cors=CORS(origin=["https://good.example"], credentials=False))
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url), headers=hdrs("https://good.example"))
        sid_of(r)
        assert_accepted_cors(r, "https://good.example", credentials=False)
        assert_refused(await client.get(poll_url(url), headers=hdrs("https://evil.example")))
        r = await client.options(poll_url(url), headers=hdrs(
            "https://good.example", access_control_request_method="POST"))
        assert r.status_code == 204
        assert_accepted_cors(r, "https://good.example", credentials=False)
    # all domains + no credentials: the literal "*"
    io = Server(cors=CORS(credentials=False))
    async with serve(io) as url, httpx.AsyncClient() as client:
        for origin in ("https://any.example", "null"):
            r = await client.get(poll_url(url), headers=hdrs(origin))
            sid_of(r)
            assert r.headers.get_list("access-control-allow-origin") == ["*"]
            assert "access-control-allow-credentials" not in r.headers
            r = await client.options(poll_url(url), headers=hdrs(
                origin, access_control_request_method="POST"))
            assert r.status_code == 204
            assert r.headers.get_list("access-control-allow-origin") == ["*"]
            assert "access-control-allow-credentials" not in r.headers
    # all domains with credentials (the default): reflected, never "*" with credentials
    io = Server(origins="*")
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url), headers=hdrs("https://any.example"))
        assert_accepted_cors(r, "https://any.example")


# -- point 6: preflight --------------------------------------------------------------------------


async def test_default_preflight() -> None:
    io = Server(origins=["https://good.example"])
    good = "https://good.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.options(poll_url(url), headers=hdrs(
            good, access_control_request_method="POST",
            access_control_request_headers="content-type, x-token"))
        assert r.status_code == 204 and r.content == b""
        assert_accepted_cors(r, good)
        assert r.headers["access-control-allow-methods"] == "GET,POST"
        assert r.headers["access-control-allow-headers"] == "content-type, x-token"
        assert r.headers["access-control-max-age"] == "600"
        vary = ",".join(r.headers.get_list("vary")).lower()
        assert "access-control-request-headers" in vary  # the answer depends on the request
        # nothing requested, nothing configured: no Allow-Headers
        r = await client.options(poll_url(url), headers=hdrs(
            good, access_control_request_method="GET"))
        assert r.status_code == 204
        assert "access-control-allow-headers" not in r.headers
        assert r.headers["access-control-allow-methods"] == "GET,POST"
        # refused origin: 403 without any CORS header
        r = await client.options(poll_url(url), headers=hdrs(
            "https://evil.example", access_control_request_method="POST",
            access_control_request_headers="content-type"))
        assert_refused(r)
        r = await client.options(poll_url(url), headers=hdrs(
            "null", access_control_request_method="POST"))
        assert_refused(r)


async def test_configured_preflight() -> None:
    io = Server(cors=CORS(origin=["https://good.example"], methods=["GET", "POST", "PUT"],
                          allowed_headers=["X-Token", "Content-Type"], max_age=3600,
                          exposed_headers=["X-Id"]))
    good = "https://good.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.options(poll_url(url), headers=hdrs(
            good, access_control_request_method="POST",
            access_control_request_headers="x-other"))
        assert r.status_code == 204
        assert_accepted_cors(r, good, exposed="X-Id")
        assert r.headers["access-control-allow-methods"] == "GET,POST,PUT"
        assert r.headers["access-control-allow-headers"] == "X-Token,Content-Type"
        assert r.headers["access-control-max-age"] == "3600"
    io = Server(cors=CORS(origin=["https://good.example"], max_age=None))
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.options(poll_url(url), headers=hdrs(
            good, access_control_request_method="POST"))
        assert r.status_code == 204 and "access-control-max-age" not in r.headers


async def test_custom_preflight_handler_sync_and_async() -> None:
    calls: list[tuple[str, str, str | None]] = []

    def sync_handler(req: Any) -> tuple[int, dict[str, str], str]:
        calls.append((req.method, req.path, req.headers.get("origin")))
        return 200, {"Access-Control-Allow-Origin": "https://custom.example",
                     "X-Preflight": "sync"}, "custom body"

    async def async_handler(req: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        await asyncio.sleep(0)
        calls.append((req.method, req.path, req.headers.get("origin")))
        return 204, [("x-preflight", "async")], b""

    for handler, expected in ((sync_handler, (200, "sync", "custom body")),
                              (async_handler, (204, "async", ""))):
        io = Server(origins=["https://good.example"], handle_preflight_request=handler)
        calls.clear()
        async with serve(io) as url, httpx.AsyncClient() as client:
            for origin in ("https://good.example", "https://evil.example"):
                r = await client.options(poll_url(url), headers=hdrs(
                    origin, access_control_request_method="POST",
                    access_control_request_headers="x-token"))
                assert (r.status_code, r.headers["x-preflight"], r.text) == expected
                # the default is replaced entirely: none of its headers
                for name in ("access-control-allow-methods", "access-control-allow-headers",
                             "access-control-max-age", "access-control-allow-credentials",
                             "vary"):
                    assert name not in r.headers, (name, r.headers)
                if handler is sync_handler:
                    assert cors_headers(r) == {
                        "access-control-allow-origin": "https://custom.example"}
                else:
                    assert cors_headers(r) == {}
            # other requests keep the origin policy
            assert_refused(await client.get(poll_url(url), headers=hdrs("https://evil.example")))
        assert calls == [("OPTIONS", P, "https://good.example"),
                         ("OPTIONS", P, "https://evil.example")]


async def test_custom_preflight_handler_pair_and_true_values() -> None:
    # (status, headers) without a body, and True written as "true", as in the docs' example:
    # browsers take credentials only from the exact value "true"
    def handler(req: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"Access-Control-Allow-Origin": "https://good.example",
                     "Access-Control-Allow-Credentials": True, "Access-Control-Max-Age": 600}

    io = Server(origins=["https://good.example"], handle_preflight_request=handler)
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.options(poll_url(url), headers=hdrs(
            "https://good.example", access_control_request_method="POST"))
        assert (r.status_code, r.content) == (200, b"")
        assert r.headers["content-length"] == "0"
        assert cors_headers(r) == {"access-control-allow-origin": "https://good.example",
                                   "access-control-allow-credentials": "true",
                                   "access-control-max-age": "600"}


async def other_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    body = f"app {scope['method']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 299,
                "headers": [(b"content-type", b"text/plain"), (b"x-from", b"app")]})
    await send({"type": "http.response.body", "body": body})


async def test_preflight_false_hands_options_to_the_wrapped_app() -> None:
    io = Server(origins=["https://good.example"], handle_preflight_request=False)
    async with serve(io.asgi_app(other_app)) as url, httpx.AsyncClient() as client:
        for origin in ("https://good.example", "https://evil.example"):
            r = await client.options(poll_url(url), headers=hdrs(
                origin, access_control_request_method="POST"))
            assert (r.status_code, r.text) == (299, f"app OPTIONS {P}")
            assert r.headers["x-from"] == "app" and cors_headers(r) == {}
        # everything else under the path stays ours, origin-checked
        assert_refused(await client.get(poll_url(url), headers=hdrs("https://evil.example")))
        assert await allowed(client, url, "https://good.example")
    io = Server(origins=["https://good.example"], handle_preflight_request=False)
    async with serve(io) as url, httpx.AsyncClient() as client:  # no wrapped app: 404
        r = await client.options(poll_url(url), headers=hdrs(
            "https://good.example", access_control_request_method="POST"))
        assert r.status_code == 404 and cors_headers(r) == {}


# -- point 7: allow_request in addition to the origin check --------------------------------------


async def test_allow_request_in_addition_to_origins() -> None:
    seen: list[tuple[str, str | None]] = []

    def sync_check(req: Any) -> bool:
        seen.append((req.path, req.headers.get("origin")))
        return req.query.get("token") == "ok"

    async def async_check(req: Any) -> bool:
        await asyncio.sleep(0)
        seen.append((req.path, req.headers.get("origin")))
        if req.query.get("token") != "ok":
            raise Forbidden("bad token")
        return True

    good, evil = "https://good.example", "https://evil.example"
    for check, reason in ((sync_check, "Forbidden"), (async_check, "bad token")):
        seen.clear()
        io = Server(origins=[good], allow_request=check)
        async with serve(io) as url, httpx.AsyncClient() as client:
            # a refused origin never reaches allow_request (polling and WebSocket)
            assert_refused(await client.get(poll_url(url, extra="&token=ok"), headers=hdrs(evil)))
            assert_ws_refused(await ws_refusal(ws_url(url, extra="&token=ok"), evil))
            assert seen == []
            # an allowed origin refused by allow_request: 403 with the reason
            r = await client.get(poll_url(url, extra="&token=no"), headers=hdrs(good))
            assert r.status_code == 403 and r.json() == {"code": 4, "message": reason}
            assert_ws_refused(await ws_refusal(ws_url(url, extra="&token=no"), good),
                              reason.encode())
            r = await client.get(poll_url(url, extra="&token=no"))  # no Origin: still checked
            assert r.status_code == 403 and r.json() == {"code": 4, "message": reason}
            assert len(seen) == 3 and io.engine.sessions == {}
            # both checks pass
            r = await client.get(poll_url(url, extra="&token=ok"), headers=hdrs(good))
            sid = sid_of(r)
            assert_accepted_cors(r, good)
            await ws_opens(ws_url(url, extra="&token=ok"), good)
            assert len(seen) == 5
            # it runs for new sessions only: not for later requests or the upgrade
            r = await client.post(poll_url(url, sid=sid), content=b"40",
                                  headers=hdrs(good, content_type="text/plain"))
            assert r.text == "ok"
            assert (await client.get(poll_url(url, sid=sid), headers=hdrs(good))).status_code == 200
            async with ws_connect(ws_url(url, sid), origin=good, open_timeout=5) as ws:
                await ws.send("2probe")
                assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
            assert len(seen) == 5


async def test_forbidden_without_a_reason_refuses_with_forbidden() -> None:
    assert str(Forbidden("bad token")) == "bad token"
    assert Forbidden("bad token").reason == "bad token"
    assert Forbidden().args == ("Forbidden",) and Forbidden().reason == "Forbidden"

    def refuse(req: Any) -> bool:
        raise Forbidden()

    io = Server(allow_request=refuse)
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url), headers=hdrs("https://any.example"))
        assert r.status_code == 403 and r.json() == {"code": 4, "message": "Forbidden"}
        assert_ws_refused(await ws_refusal(ws_url(url), None), b"Forbidden")
        assert io.engine.sessions == {}


async def test_same_origin_recipe_over_plain_http() -> None:
    io = Server(allow_request=same_origin)
    assert sockjet.same_origin is same_origin
    conns = Connections(io)
    async with serve(io) as url, httpx.AsyncClient() as client:
        own = url  # http://127.0.0.1:PORT, the Host the clients send
        port = url.rsplit(":", 1)[1]
        for origin in (own, f"HTTP://127.0.0.1:{port}", None):
            r = await client.get(poll_url(url), headers=hdrs(origin))
            sid = sid_of(r)
            await ws_opens(ws_url(url), origin)
        for origin in ("https://evil.example", f"https://127.0.0.1:{port}",
                       "http://127.0.0.1", f"http://localhost:{port}", "null"):
            r = await client.get(poll_url(url), headers=hdrs(origin))
            assert r.status_code == 403 and r.json() == {"code": 4, "message": "Forbidden"}
            assert_ws_refused(await ws_refusal(ws_url(url), origin), b"Forbidden")
        await client.post(poll_url(url, sid=sid), content=b"40")
        await client.get(poll_url(url, sid=sid))
        assert len(conns.sockets) == 1
        assert conns.sockets[0].handshake.secure is False


# -- point 8: cors=CORS(...) and origins= are one policy, given once -----------------------------


def test_origins_and_cors_origin_together_raise() -> None:
    for cls in (Server, EngineServer):
        with pytest.raises(ValueError):
            cls(origins=["https://a.example"], cors=CORS(origin=["https://b.example"]))
        with pytest.raises(ValueError):
            cls(origins="*", cors=CORS(origin="*"))
        # cors without an origin plus origins=: one policy
        server = cls(origins=["https://a.example"], cors=CORS(credentials=False))
        assert server.origins() == ["https://a.example"]
        server = cls(cors=CORS(origin=["https://b.example"]))
        assert server.origins() == ["https://b.example"]


async def test_origins_plus_cors_options_combine_over_http() -> None:
    io = Server(origins=["https://a.example"], cors=CORS(credentials=False,
                                                         exposed_headers="X-One"))
    async with serve(io) as url, httpx.AsyncClient() as client:
        r = await client.get(poll_url(url), headers=hdrs("https://a.example"))
        sid_of(r)
        assert_accepted_cors(r, "https://a.example", credentials=False, exposed="X-One")
        assert_refused(await client.get(poll_url(url), headers=hdrs("https://b.example")))


async def test_engine_server_same_policy() -> None:
    engine = EngineServer(cors=CORS(origin=["https://good.example"]))
    async with serve(engine) as url, httpx.AsyncClient() as client:
        base = f"{url}/engine.io/?EIO=4&transport=polling"
        r = await client.get(base, headers=hdrs("https://good.example"))
        assert r.status_code == 200
        assert_accepted_cors(r, "https://good.example")
        assert_refused(await client.get(base, headers=hdrs("https://evil.example")))
        refusal = await ws_refusal("ws" + url[4:] + "/engine.io/?EIO=4&transport=websocket",
                                   "https://evil.example")
        assert_ws_refused(refusal)


# -- point 9: the scheme comes from the ASGI scope -----------------------------------------------


class ASGIClient:
    """Calls the real ASGI app with hand-built scopes (as an HTTPS-terminating server would)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._gone = asyncio.Event()
        #: the headers of the last HTTP response, as the app sent them (names, order, repeats)
        self.raw_headers: list[tuple[bytes, bytes]] = []

    def _scope(self, kind: str, scheme: str, path: str, query: str,
               headers: dict[str, str]) -> dict[str, Any]:
        return {
            "type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": scheme,
            "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("203.0.113.9", 50123), "server": ("example.com", 443),
        }

    async def http(self, method: str, query: str, headers: dict[str, str], *,
                   scheme: str = "https", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        scope = self._scope("http", scheme, P, query, headers)
        scope["method"] = method
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self._gone.wait()
            return {"type": "http.disconnect"}

        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await asyncio.wait_for(self.app(scope, receive, send), 5)
        assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
        self.raw_headers = list(messages[0]["headers"])
        out = {k.decode(): v.decode() for k, v in messages[0]["headers"]}
        return messages[0]["status"], out, messages[1]["body"]

    def websocket(self, query: str, headers: dict[str, str], *, scheme: str = "wss",
                  extension: bool = True
                  ) -> tuple[asyncio.Task[None], asyncio.Queue[Any], asyncio.Queue[Any]]:
        scope = self._scope("websocket", scheme, P, query, headers)
        scope["subprotocols"] = []
        scope["extensions"] = {"websocket.http.response": {}} if extension else {}
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        inbox.put_nowait({"type": "websocket.connect"})
        task = asyncio.ensure_future(self.app(scope, inbox.get, outbox.put))
        return task, inbox, outbox

    def close(self) -> None:
        self._gone.set()


@pytest.mark.single_binding  # drives the ASGI app directly, no server
async def test_https_scope_scheme_drives_same_origin_and_secure() -> None:
    io = Server(allow_request=same_origin)
    conns = Connections(io)
    asgi = ASGIClient(io.asgi_app())
    host = {"host": "example.com"}
    q = "EIO=4&transport=polling"
    try:
        for origin in ("https://example.com", "https://EXAMPLE.com:443"):
            status, headers, body = await asgi.http("GET", q, {**host, "origin": origin})
            assert status == 200, body
            assert headers["access-control-allow-origin"] == origin
        for origin in ("http://example.com", "https://example.com:8443", "https://evil.example"):
            status, headers, body = await asgi.http("GET", q, {**host, "origin": origin})
            assert (status, json.loads(body)) == (403, {"code": 4, "message": "Forbidden"})
        # the same https origin is foreign to a plain-http scope
        status, _, _ = await asgi.http("GET", q, {**host, "origin": "https://example.com"},
                                       scheme="http")
        assert status == 403
        status, _, _ = await asgi.http("GET", q, {**host, "origin": "http://example.com"},
                                       scheme="http")
        assert status == 200

        # a polling session over https: socket.handshake.secure
        status, _, body = await asgi.http("GET", q, {**host, "origin": "https://example.com"})
        sid = json.loads(body.decode()[1:])["sid"]
        status, _, body = await asgi.http("POST", f"{q}&sid={sid}",
                                          {**host, "origin": "https://example.com"}, body=b"40")
        assert (status, body) == (200, b"ok")
        status, _, body = await asgi.http("GET", f"{q}&sid={sid}",
                                          {**host, "origin": "https://example.com"})
        assert status == 200 and body.startswith(b"40{")
        assert len(conns.sockets) == 1 and conns.sockets[0].handshake.secure is True

        # a direct WebSocket over wss: accepted for the https origin, secure
        wq = "EIO=4&transport=websocket"
        task, inbox, outbox = asgi.websocket(wq, {**host, "origin": "https://example.com"})
        assert (await asyncio.wait_for(outbox.get(), 5))["type"] == "websocket.accept"
        first = await asyncio.wait_for(outbox.get(), 5)
        assert first["type"] == "websocket.send" and first["text"].startswith("0{")
        inbox.put_nowait({"type": "websocket.receive", "text": "40"})
        reply = await asyncio.wait_for(outbox.get(), 5)
        assert reply["text"].startswith("40{")
        assert len(conns.sockets) == 2 and conns.sockets[1].handshake.secure is True
        inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, 5)

        # refused over wss: an HTTP 403 response before any accept
        task, inbox, outbox = asgi.websocket(wq, {**host, "origin": "http://example.com"})
        await asyncio.wait_for(task, 5)
        start = outbox.get_nowait()
        assert start["type"] == "websocket.http.response.start" and start["status"] == 403
        assert outbox.get_nowait()["body"] == b"Forbidden"
        # without the http.response extension the server can only close before accepting
        task, inbox, outbox = asgi.websocket(wq, {**host, "origin": "http://example.com"},
                                             extension=False)
        await asyncio.wait_for(task, 5)
        assert outbox.get_nowait() == {"type": "websocket.close", "code": 1008}
    finally:
        asgi.close()
        await io.close()


@pytest.mark.single_binding  # drives the ASGI app directly, no server
async def test_origin_refusal_over_hand_built_scopes() -> None:
    io = Server(origins=["https://good.example"])
    asgi = ASGIClient(io.asgi_app())
    try:
        status, headers, body = await asgi.http(
            "GET", "EIO=4&transport=polling", {"host": "h", "origin": "https://evil.example"})
        assert (status, json.loads(body)) == (403, REFUSED)
        assert not any(k.startswith("access-control-") for k in headers)
        task, _, outbox = asgi.websocket("EIO=4&transport=websocket",
                                         {"host": "h", "origin": "https://evil.example"})
        await asyncio.wait_for(task, 5)
        start = outbox.get_nowait()
        assert (start["type"], start["status"]) == ("websocket.http.response.start", 403)
        assert not any(k.startswith(b"access-control-") for k, _ in start["headers"])
        assert outbox.get_nowait()["body"] == b"Origin not allowed"
    finally:
        asgi.close()
        await io.close()


@pytest.mark.single_binding  # drives the ASGI app directly, no server
async def test_cors_headers_exactly_as_the_asgi_app_sends_them() -> None:
    # the ASGI spec asks for lower-case header names; the values are exact, the Vary names
    # spelt as Node's cors package writes them
    good = "https://good.example"
    q = "EIO=4&transport=polling"
    preflight = {"host": "h", "origin": good, "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type, x-token"}
    polling = [(b"content-type", b"text/plain; charset=UTF-8"), (b"cache-control", b"no-store")]
    io = Server(cors=CORS(credentials=False))  # all domains, no credentials: "*"
    asgi = ASGIClient(io.asgi_app())
    try:
        status, _, _ = await asgi.http("GET", q, {"host": "h", "origin": "https://any.example"})
        assert status == 200
        assert asgi.raw_headers[:-1] == [*polling, (b"access-control-allow-origin", b"*")]
        assert asgi.raw_headers[-1][0] == b"content-length"
    finally:
        asgi.close()
        await io.close()
    io = Server(cors=CORS(origin=[good], exposed_headers=["X-Id"]))
    asgi = ASGIClient(io.asgi_app())
    accepted = [(b"access-control-allow-origin", good.encode()), (b"vary", b"Origin"),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-expose-headers", b"X-Id")]
    try:
        status, _, _ = await asgi.http("GET", q, {"host": "h", "origin": good})
        assert status == 200
        assert asgi.raw_headers[:-1] == [*polling, *accepted]
        assert asgi.raw_headers[-1][0] == b"content-length"
        # preflight: the requested headers reflected, and the answer varies with them
        status, _, body = await asgi.http("OPTIONS", q, preflight)
        assert (status, body) == (204, b"")
        assert asgi.raw_headers == [
            *accepted, (b"access-control-allow-methods", b"GET,POST"),
            (b"access-control-allow-headers", b"content-type, x-token"),
            (b"vary", b"Access-Control-Request-Headers"),
            (b"access-control-max-age", b"600"), (b"content-length", b"0")]
    finally:
        asgi.close()
        await io.close()
    io = Server(cors=CORS(origin=[good], allowed_headers=["X-Token"], max_age=60))
    asgi = ASGIClient(io.asgi_app())
    try:
        status, _, body = await asgi.http("OPTIONS", q, preflight)
        assert (status, body) == (204, b"")
        assert asgi.raw_headers == [
            *accepted[:3], (b"access-control-allow-methods", b"GET,POST"),
            (b"access-control-allow-headers", b"X-Token"),  # configured: no Vary on the request
            (b"access-control-max-age", b"60"), (b"content-length", b"0")]
    finally:
        asgi.close()
        await io.close()


async def test_proxy_headers_only_through_the_asgi_server_settings() -> None:
    io = Server(allow_request=same_origin)
    conns = Connections(io)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
                 "Forwarded": "proto=https"}
    # uvicorn told not to trust proxy headers: they change nothing
    async with serve(io, proxy_headers=False) as url, httpx.AsyncClient() as client:
        https_self = "https://" + url.split("://", 1)[1]
        r = await client.get(poll_url(url), headers={**forwarded, "Origin": https_self})
        assert r.status_code == 403
        r = await client.get(poll_url(url), headers={**forwarded, "Origin": url})
        sid = sid_of(r)
        await client.post(poll_url(url, sid=sid), content=b"40")
        await client.get(poll_url(url, sid=sid))
        assert conns.sockets[-1].handshake.secure is False
    # uvicorn trusting 127.0.0.1 as a proxy: its rewritten scope is what counts
    io = Server(allow_request=same_origin)
    conns = Connections(io)
    async with serve(io, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as url, \
            httpx.AsyncClient() as client:
        https_self = "https://" + url.split("://", 1)[1]
        r = await client.get(poll_url(url), headers={"X-Forwarded-Proto": "https",
                                                     "Origin": https_self})
        sid = sid_of(r)
        await client.post(poll_url(url, sid=sid), content=b"40")
        await client.get(poll_url(url, sid=sid))
        assert conns.sockets[-1].handshake.secure is True
        r = await client.get(poll_url(url), headers={"X-Forwarded-Proto": "https",
                                                     "Origin": url})
        assert r.status_code == 403


# -- point 10: refusals logged once per origin, at warning level ---------------------------------


async def test_refusals_logged_once_per_origin(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sockjet.cors")
    io = Server(origins=["https://good.example"])
    evil, evil2, good = "https://evil.example", "https://evil2.example", "https://good.example"
    async with serve(io) as url, httpx.AsyncClient() as client:
        sid = sid_of(await client.get(poll_url(url), headers=hdrs(good)))
        for _ in range(3):
            assert_refused(await client.get(poll_url(url), headers=hdrs(evil)))
        assert_refused(await client.post(poll_url(url, sid=sid), content=b"40",
                                         headers=hdrs(evil, content_type="text/plain")))
        assert_refused(await client.options(poll_url(url), headers=hdrs(
            evil, access_control_request_method="POST")))
        assert_ws_refused(await ws_refusal(ws_url(url), evil))
        assert_ws_refused(await ws_refusal(ws_url(url, sid), evil))
        assert_ws_refused(await ws_refusal(ws_url(url), evil2))
        assert_refused(await client.get(poll_url(url), headers=hdrs(evil2)))
        assert_refused(await client.get(poll_url(url), headers=hdrs("null")))
        assert await allowed(client, url, good)
        assert await allowed(client, url, None)
    records = [r for r in caplog.records if r.name == "sockjet.cors"]
    assert [r.levelno for r in records] == [logging.WARNING] * 3, [r.getMessage()
                                                                  for r in records]
    messages = [r.getMessage() for r in records]
    for origin, message in zip((evil, evil2, "null"), messages, strict=True):
        assert repr(origin) in message
        assert "not in the allowed origins" in message  # the reason


async def test_refusal_log_names_the_request_the_origin_and_the_allowed_origins(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sockjet.cors")
    io = Server(origins=["https://good.example"])
    async with serve(io) as url, httpx.AsyncClient() as client:
        sid = sid_of(await client.get(poll_url(url), headers=hdrs("https://good.example")))
        assert_refused(await client.options(poll_url(url), headers=hdrs(
            "https://a.example", access_control_request_method="POST")))
        assert_refused(await client.get(poll_url(url), headers=hdrs("https://b.example")))
        assert_refused(await client.post(poll_url(url, sid=sid), content=b"40",
                                         headers=hdrs("https://c.example",
                                                      content_type="text/plain")))
        assert_ws_refused(await ws_refusal(ws_url(url), "https://d.example"))
    reason = "not in the allowed origins ['https://good.example']"
    assert [r.getMessage() for r in caplog.records if r.name == "sockjet.cors"] == [
        f"refused preflight from origin 'https://a.example': {reason}",
        f"refused GET request from origin 'https://b.example': {reason}",
        f"refused POST request from origin 'https://c.example': {reason}",
        f"refused WebSocket from origin 'https://d.example': {reason}",
    ]


async def test_allow_request_refusals_logged_once_per_origin_and_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    def allow(request: Any) -> bool:
        if request.query.get("token") == "bad":
            raise sockjet.Forbidden("bad token")
        return False

    io = sockjet.Server(origins="*", allow_request=allow)
    async with serve(io) as url, httpx.AsyncClient(base_url=url) as client:
        with caplog.at_level(logging.WARNING, logger="sockjet.cors"):
            for _ in range(3):
                for token in ("bad", "none"):
                    r = await client.get(f"/socket.io/?EIO=4&transport=polling&token={token}",
                                         headers={"origin": "https://a.example"})
                    assert r.status_code == 403
    messages = [r.getMessage() for r in caplog.records if r.name == "sockjet.cors"]
    assert messages == [
        "allow_request refused a session from origin 'https://a.example': bad token",
        "allow_request refused a session from origin 'https://a.example': Forbidden",
    ]


def test_port_zero_is_invalid() -> None:
    for bad in ("example.com:0", "https://example.com:0", "*:0"):
        with pytest.raises(ValueError):
            sockjet.Server(origins=[bad])


@pytest.mark.parametrize(("entry", "origin", "allowed"), [
    ("https://example.com/", "https://example.com", True),  # one trailing slash is dropped
    ("https://LINUX/", "https://linux", True),  # only the slash, whatever the host ends with
    ("host.example:1", "http://host.example:1", True),  # the lowest port
    ("host.example:65535", "https://host.example:65535", True),  # the highest
])
async def test_entries_at_their_edges(entry: str, origin: str, allowed: bool) -> None:
    policy = sockjet.engine.cors.OriginPolicy([entry])
    assert await policy.allows(origin) is allowed


@pytest.mark.parametrize("entry", ["https://example.com//", "host.example:0",
                                   "host.example:65536"])
def test_entries_just_past_their_edges_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        Server(origins=[entry])
