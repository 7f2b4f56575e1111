"""SPEC §5 (CORS) in a real browser: headless Chromium loads a page from one origin, and the real
socket.io-client 2.4 and 4.8 browser bundles on it connect to a sockjet server on ANOTHER origin.

Layout: the page comes from a tiny ASGI app on ``http://127.0.0.1:A`` and the client connects to
``http://localhost:B`` (both bind 127.0.0.1). Different host and port: a different origin AND a
different site, so Chromium applies CORS and treats the server's cookies as third-party. The
cookie cases also use a page on ``http://localhost:A``: cross-origin (CORS still applies, the port
differs) but same-site, the only layout where this Chromium stores the session cookie.

``CASES`` below is the record of what the browser does with each server configuration; every
entry is checked against Chromium by ``test_browser_case`` (``CASE`` maps names to entries).
``tests/test_doctor.py`` may reuse it: ``case.make_server(origin)`` builds a fresh,
self-contained server for a page origin, and ``case.origin(page_port, server_url)``,
``case.headers``, ``case.sends_credentials(version)``, ``case.eio(version)`` and ``case.expect``
(connected or not, final transport, the client's error, the HTTP status the page could see,
Chromium's console explanation) are what ``sockjet doctor --origin O --header K:V --credentials
--eio N`` should be compared with.

What Chromium 156 (Debian) did, as asserted below:
- Refused origins fail before any ``connect``: over polling the 403 has no CORS headers, so the
  browser hides it (client error ``xhr poll error``, status 0); over ``transports: ["websocket"]``
  the handshake gets HTTP 403 (``websocket error``); browsers do not apply CORS to WebSockets, so
  only the server's own check stops them. The server logs each refusal.
- An ``allow_request`` refusal of an allowed origin (the same-origin recipe) is a 403 that
  carries CORS headers: the page can read it (client error ``xhr poll error``, status 403).
- Cookies: with ``withCredentials: true`` and a same-site page, Chromium stores ``io=<sid>`` from
  the handshake response and sends it on every later poll, POST and on the WebSocket upgrade;
  the page's next connection shows it in ``socket.handshake.headers["cookie"]``.
  With ``withCredentials: false`` it ignores the Set-Cookie of the cross-origin response and
  sends nothing. From the cross-site page (127.0.0.1 → localhost) it stores nothing even with
  ``withCredentials: true``, whatever the SameSite attribute (``Lax`` by default, or
  ``None; Secure``): its CDP reason is ``UserPreferences`` — third-party cookies are blocked in
  the fresh (incognito-like) browser contexts. The connection itself works either way.
- socket.io-client 2.4 defaults to ``withCredentials: true`` (4.x: ``false``); the cases set it
  explicitly unless ``credentials`` is ``None``.
- Both clients add a ``t=`` cache-buster to every polling URL and Chromium caches preflights per
  URL, so with a custom header EVERY poll and POST is preceded by an OPTIONS request, whatever
  ``max_age`` says.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import pytest
from conftest import BINDINGS, NODE_DIR, kill_group, serve

import sockjet

# -- the scenarios --------------------------------------------------------------------------------

OTHER = "http://allowed.example"  # an origin that is not the page's
TOKEN = "abc"


def whoami(io: sockjet.Server) -> sockjet.Server:
    """Every test server answers ``whoami`` with what reached ``socket.handshake.headers``."""

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        headers = socket.handshake.headers
        socket.on("whoami", lambda: {"x-token": headers.get("x-token"),
                                     "cookie": headers.get("cookie"),
                                     "origin": headers.get("origin")})

    return io


def host_port(origin: str) -> str:
    """``http://127.0.0.1:5173`` → ``127.0.0.1:5173`` (the Socket.IO 2.x ``origins`` form)."""
    parts = urlsplit(origin)
    return f"{parts.hostname}:{parts.port}"


def docs_preflight(page_origin: str) -> Callable[[Any], tuple[int, dict[str, Any], bytes]]:
    """The "Handling CORS" page's custom preflight handler, for the page's origin."""

    def handle_preflight_request(request: Any) -> tuple[int, dict[str, Any], bytes]:
        return 200, {
            "Access-Control-Allow-Origin": page_origin,
            "Access-Control-Allow-Methods": "GET,POST",
            "Access-Control-Allow-Headers": "x-token",
            "Access-Control-Allow-Credentials": True,
        }, b""

    return handle_preflight_request


def _default(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server())


def _listed(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[page_origin]))


def _listed_host_port(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[host_port(page_origin)]))


def _unlisted(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[OTHER]))


def _cookie(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[page_origin], cookie=True))


def _cookie_none_secure(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[page_origin],
                                 cookie={"same_site": "None", "secure": True}))


def _header_listed(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(cors=sockjet.CORS(origin=[page_origin],
                                                   allowed_headers=["x-token"])))


def _header_reflected(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(cors=sockjet.CORS(origin=[page_origin])))


def _header_other(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(cors=sockjet.CORS(origin=[page_origin],
                                                   allowed_headers=["x-other"])))


def _custom_preflight(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(origins=[page_origin], cookie=True,
                                 handle_preflight_request=docs_preflight(page_origin)))


def _same_origin_only(page_origin: str) -> sockjet.Server:
    return whoami(sockjet.Server(allow_request=sockjet.same_origin))


def _runtime_after(page_origin: str) -> sockjet.Server:
    """The state after ``io.origins([page])`` on a server started with another origin."""
    io = _unlisted(page_origin)
    io.origins([page_origin])
    return io


@dataclass(frozen=True)
class Expect:
    """What the browser concludes (and what the server logs) for one case."""

    connected: bool
    transport: str | None = None  # the final transport when connected
    error: str | None = None  # the client's connect_error message when not
    status: int | None = None  # the HTTP status the page could see (0: hidden by CORS)
    browser_says: str | None = None  # part of Chromium's console message about the failure
    header_received: bool = False  # x-token reached socket.handshake.headers
    cookie: bool = False  # the io=<sid> cookie comes back on every later request
    cookie_blocked: str | None = None  # Chromium's (CDP) reason for not storing the cookie
    refused_log: str | None = None  # how the server's warning about this origin starts


@dataclass(frozen=True)
class Case:
    name: str
    make_server: Callable[[str], sockjet.Server]  # page origin → a fresh server
    expect: Expect
    #: "cross-site": page on http://127.0.0.1:A; "same-site": page on http://localhost:A;
    #: "same-origin": page served by the sockjet server's own wrapped ASGI app
    page: Literal["cross-site", "same-site", "same-origin"] = "cross-site"
    headers: Mapping[str, str] = field(default_factory=dict)  # extraHeaders over polling
    credentials: bool | None = False  # withCredentials; None: the client's default
    transports: tuple[str, ...] | None = None  # the client's transports option
    connections: int = 1  # connections made one after the other by the same page
    clients: tuple[int, ...] = (2, 4)

    def origin(self, page_port: int, server_url: str) -> str:
        """The Origin the browser sends: from the page's port, or the server's own URL."""
        if self.page == "same-origin":
            return server_url
        host = "127.0.0.1" if self.page == "cross-site" else "localhost"
        return f"http://{host}:{page_port}"

    def sends_credentials(self, version: int) -> bool:
        """Whether socket.io-client ``version`` sends credentials (2.4 does by default)."""
        return self.credentials if self.credentials is not None else version == 2

    @staticmethod
    def eio(version: int) -> int:
        """The Engine.IO protocol of socket.io-client ``version``."""
        return 3 if version == 2 else 4


UPGRADED = Expect(connected=True, transport="websocket")
NO_ACAO = "No 'Access-Control-Allow-Origin' header is present on the requested resource"
WS_403 = "Error during WebSocket handshake: Unexpected response code: 403"

CASES: list[Case] = [
    # 1. the default configuration (all domains), each client with its default withCredentials
    Case("default", _default, UPGRADED, credentials=None),
    # 2. listed origin: polling handshake, then the WebSocket upgrade
    Case("listed-origin", _listed, UPGRADED),
    Case("listed-host-port", _listed_host_port, UPGRADED),
    # 3. unlisted origin: the browser hides the 403; WebSocket-only gets the 403 itself
    Case("unlisted-polling", _unlisted, Expect(
        connected=False, error="xhr poll error", status=0, browser_says=NO_ACAO,
        refused_log="refused GET request")),
    Case("unlisted-websocket", _unlisted, Expect(
        connected=False, error="websocket error", browser_says=WS_403,
        refused_log="refused WebSocket"), transports=("websocket",)),
    Case("unlisted-with-header", _unlisted, Expect(
        connected=False, error="xhr poll error", status=0,
        browser_says="Response to preflight request doesn't pass access control check",
        refused_log="refused preflight"), headers={"x-token": TOKEN}),
    # 4. cookies and withCredentials (the page connects twice: the second handshake shows
    #    what socket.handshake.headers gets)
    Case("credentials-cookie-same-site", _cookie, Expect(
        connected=True, transport="websocket", cookie=True),
        page="same-site", credentials=True, connections=2),
    Case("no-credentials-same-site", _cookie, UPGRADED,
         page="same-site", credentials=False, connections=2),
    Case("credentials-cookie-cross-site", _cookie, Expect(
        connected=True, transport="websocket", cookie_blocked="UserPreferences"),
        credentials=True, connections=2),
    Case("credentials-samesite-none-cross-site", _cookie_none_secure, Expect(
        connected=True, transport="websocket", cookie_blocked="UserPreferences"),
        credentials=True),
    # 5. a custom header and the default preflight
    Case("header-allowed-listed", _header_listed, Expect(
        connected=True, transport="websocket", header_received=True),
        headers={"x-token": TOKEN}),
    Case("header-allowed-reflected", _header_reflected, Expect(
        connected=True, transport="websocket", header_received=True),
        headers={"x-token": TOKEN}),
    Case("header-not-allowed", _header_other, Expect(
        connected=False, error="xhr poll error", status=0, browser_says=(
            "Request header field x-token is not allowed by Access-Control-Allow-Headers "
            "in preflight response")),
        headers={"x-token": TOKEN}),
    # 6. the docs' custom preflight handler, with credentials and the custom header
    Case("custom-preflight", _custom_preflight, Expect(
        connected=True, transport="websocket", header_received=True,
        cookie_blocked="UserPreferences"),
        headers={"x-token": TOKEN}, credentials=True),
    # 7. allow_request=sockjet.same_origin: the 403 carries CORS headers, the page reads it
    Case("same-origin-recipe-cross-origin", _same_origin_only, Expect(
        connected=False, error="xhr poll error", status=403,
        browser_says="the server responded with a status of 403",
        refused_log="allow_request refused a session")),
    Case("same-origin-recipe-cross-origin-websocket", _same_origin_only, Expect(
        connected=False, error="websocket error", browser_says=WS_403,
        refused_log="allow_request refused a session"), transports=("websocket",)),
    Case("same-origin-recipe-same-origin", _same_origin_only, UPGRADED, page="same-origin"),
    # 8. io.origins([...]) at runtime: the two states (test_runtime_origins_change goes from
    #    one to the other and back on one running server)
    Case("runtime-origins-before", _unlisted, Expect(
        connected=False, error="xhr poll error", status=0, browser_says=NO_ACAO,
        refused_log="refused GET request")),
    Case("runtime-origins-after", _runtime_after, UPGRADED),
]

CASE = {case.name: case for case in CASES}

# -- the page, the server-side recorder, the browser ----------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>sockjet cors</title><script>
// cfg (in the URL fragment): {version: 2|4, url: server URL or null (same origin), opts: {...},
// waitUpgrade: bool, connections: n}. Result: the first connection's outcome, plus `later`.
const cfg = JSON.parse(decodeURIComponent(location.hash.slice(1)));
function describe(e) {
  if (e === null || e === undefined) return {error: String(e)};
  const d = e.description;
  return {error: String(e.message || e), status: typeof d === "number" ? d : null};
}
function connect() {
  return new Promise((resolve) => {
    const out = {connected: false};
    let socket = null, done = false;
    const finish = (extra) => {
      if (done) return;
      done = true;
      Object.assign(out, extra);
      try { if (socket) socket.close(); } catch (e) {}
      resolve(out);
    };
    const opts = Object.assign({reconnection: false, forceNew: true, timeout: 5000}, cfg.opts);
    socket = cfg.url ? io(cfg.url, opts) : io(opts);
    const engine = () => socket.io.engine;
    socket.on("connect", () => {
      out.connected = true;
      out.firstTransport = engine().transport.name;
      let reported = false;
      const report = () => {
        if (reported) return;
        reported = true;
        socket.emit("whoami", (info) => finish({server: info, sid: engine().id,
                                                transport: engine().transport.name}));
      };
      if (cfg.waitUpgrade && engine().transport.name !== "websocket") {
        engine().on("upgrade", report);  // report once upgraded from polling to WebSocket
        setTimeout(report, 3000);
      } else {
        report();
      }
    });
    socket.on("connect_error", (e) => finish(Object.assign({event: "connect_error"},
                                                           describe(e))));
    socket.on("error", (e) => finish(Object.assign({event: "error"}, describe(e))));
    setTimeout(() => finish({error: "no outcome in time"}), 8000);
  });
}
async function main() {
  const results = [];
  for (let i = 0; i < (cfg.connections || 1); i++) results.push(await connect());
  window.__result = Object.assign({version: cfg.version, later: results.slice(1)}, results[0]);
}
const script = document.createElement("script");
script.src = "/sio" + cfg.version + ".js";
script.onload = main;
script.onerror = () => { window.__result = {connected: false, error: "client bundle not loaded"}; };
document.head.appendChild(script);
</script>"""

BUNDLES = {"/sio2.js": NODE_DIR / "node_modules" / "sio2" / "dist" / "socket.io.js",
           "/sio4.js": NODE_DIR / "node_modules" / "sio4" / "dist" / "socket.io.min.js"}


async def page_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The page and the two client bundles (any other path: the page)."""
    if scope["type"] != "http":
        return
    bundle = BUNDLES.get(scope["path"])
    if bundle is not None:
        body, ctype = bundle.read_bytes(), b"text/javascript"
    else:
        body, ctype = PAGE.encode(), b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Seen:
    """One request under /socket.io/ as the server received it, and its answer."""

    kind: str  # "http" or "websocket"
    method: str  # GET, POST, OPTIONS, or WS for a WebSocket handshake
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None = None  # 101 for an accepted WebSocket

    @property
    def sid(self) -> str | None:
        return self.query.get("sid")


class Recorder:
    """Records each Socket.IO request the engine receives and its answer, on either binding
    (it wraps the engine's two entry points)."""

    def __init__(self, io: Any) -> None:
        self.seen: list[Seen] = []
        engine = io.engine
        handle_request, handle_websocket = engine.handle_request, engine.handle_websocket

        async def request(req: Any) -> Any:
            seen = Seen("http", req.method, dict(req.query), dict(req.headers))
            self.seen.append(seen)
            response = await handle_request(req)
            seen.status = response.status if response is not None else 404
            return response

        async def websocket(ws: Any) -> None:
            seen = Seen("websocket", "WS", dict(ws.query), dict(ws.headers))
            self.seen.append(seen)
            await handle_websocket(_SeenWebSocket(ws, seen))

        engine.handle_request = request
        engine.handle_websocket = websocket


class _SeenWebSocket:
    """The engine's WebSocket, noting whether the handshake was accepted (101) or refused."""

    def __init__(self, ws: Any, seen: Seen) -> None:
        self._ws = ws
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def accept(self, headers: Any = None) -> None:
        self._seen.status = 101
        await self._ws.accept(headers)

    async def reject(self, status: int, body: bytes) -> None:
        self._seen.status = status
        await self._ws.reject(status, body)


class Chromium:
    """``node cors_page.js``: one browser for the whole module, one page load per command."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "cors_page.js")], cwd=NODE_DIR, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,  # its own process group: Chromium goes down with it
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            ready = self._next(30)
            assert ready.get("ready"), ready
        except BaseException:  # nothing is left running if the browser never becomes ready
            self.close()
            raise
        self.version = ready["version"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(line)
        self.lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"cors_page.js silent for {timeout} s") from None
        if line is None:
            raise AssertionError(f"cors_page.js ended: {self._log.name}")
        return json.loads(line)

    async def load(self, url: str, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"url": url, "timeout": timeout * 1000 - 2000}) + "\n")
        self.proc.stdin.flush()
        return await asyncio.to_thread(self._next, timeout)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, OSError):
            pass
        finally:
            kill_group(self.proc.pid)  # Chromium too, whether or not node ended by itself
            self.proc.wait()
            self._log.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("tests/node/node_modules missing: run the README's test command")
    browser = Chromium(tmp_path_factory.mktemp("chromium") / "cors_page.log")
    try:
        yield browser
    finally:
        browser.close()


def localhost(url: str) -> str:
    return url.replace("://127.0.0.1:", "://localhost:")


def page_url(page: str, version: int, server: str | None, case: Case) -> str:
    """The page URL; its fragment tells the page which client and options to use."""
    opts: dict[str, Any] = {}
    if case.credentials is not None:
        opts["withCredentials"] = case.credentials
    if case.transports is not None:
        opts["transports"] = list(case.transports)
    if case.headers:
        opts["transportOptions"] = {"polling": {"extraHeaders": dict(case.headers)}}
    # polling first: the page waits for the upgrade to WebSocket before it reports
    cfg = {"version": version, "url": server, "opts": opts,
           "waitUpgrade": case.transports is None, "connections": case.connections}
    return f"{page}/#{quote(json.dumps(cfg))}"


@dataclass
class Observed:
    """What one page load showed: the browser's view, and the server's."""

    out: dict[str, Any]  # cors_page.js answer (result, cookies, console, failed, blockedCookies)
    seen: list[Seen]
    origin: str

    @property
    def result(self) -> dict[str, Any]:
        return self.out["result"]

    def summary(self) -> dict[str, Any]:
        r = self.out.get("result") or {}
        return {"origin": self.origin, "connected": r.get("connected"),
                "transport": r.get("transport"), "error": r.get("error") or self.out.get("error"),
                "status": r.get("status"), "server": r.get("server"),
                "cookies": [c["name"] for c in self.out.get("cookies", [])],
                "blocked": self.out.get("blockedCookies"), "console": self.out.get("console"),
                "failed": self.out.get("failed"),
                "seen": [(s.method, s.query.get("transport"), s.sid is not None, s.status)
                         for s in self.seen]}


async def load(chromium: Chromium, case: Case, version: int, page: str, server: str | None,
               recorder: Recorder) -> Observed:
    """One page load against a running server; ``page`` is also the page's origin."""
    start = len(recorder.seen)
    out = await chromium.load(page_url(page, version, server, case))
    observed = Observed(out, recorder.seen[start:], page)
    assert "result" in out, observed.summary()
    return observed


class Deferred:
    """An ASGI app whose target is set after start-up, once its own URL is known."""

    app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})


async def visit(chromium: Chromium, case: Case, version: int) -> Observed:
    """Build ``case``'s server, serve it on localhost:B (on the binding under test), load the
    page, return both views. The page is an ASGI app on uvicorn."""
    if case.page == "same-origin":  # the server's own ASGI app serves the page
        deferred = Deferred()
        async with serve(deferred) as url:
            server = localhost(url)
            io = case.make_server(server)
            recorder = Recorder(io)
            deferred.app = io.asgi_app(page_app)
            try:
                return await load(chromium, case, version, server, None, recorder)
            finally:
                await io.engine.shutdown()  # serve() could not see this engine at start-up
    async with serve(page_app) as page_server:
        page_port = urlsplit(page_server).port
        assert page_port is not None
        origin = case.origin(page_port, "")
        io = case.make_server(origin)
        recorder = Recorder(io)
        async with serve(io) as url:
            return await load(chromium, case, version, origin, localhost(url), recorder)


def refusals(caplog: pytest.LogCaptureFixture, origin: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sockjet.cors" and repr(origin) in r.getMessage()]


def check(case: Case, seen: Observed, caplog: pytest.LogCaptureFixture) -> None:
    """The browser and the server saw what ``case.expect`` says."""
    expect, result, info = case.expect, seen.result, seen.summary()
    assert result["connected"] is expect.connected, info
    if expect.connected:
        assert result.get("error") is None, info
        assert result["transport"] == expect.transport, info
        server = result["server"]
        assert (server["x-token"] == TOKEN) is expect.header_received, info
        if case.page != "same-origin":  # a same-origin GET carries no Origin header
            assert server["origin"] == seen.origin, info
        if case.transports is None:  # a polling handshake, then the upgrade of that session
            first = next(s for s in seen.seen if s.method != "OPTIONS")
            assert (first.method, first.query.get("transport"), first.sid, first.status) == (
                "GET", "polling", None, 200), info
            upgrades = [s for s in seen.seen if s.kind == "websocket"]
            assert upgrades and upgrades[0].sid == result["sid"], info
            assert upgrades[0].status == 101, info
        for later in result["later"]:
            assert later["connected"] and later["transport"] == expect.transport, info
    else:
        assert result["error"] == expect.error, info
        assert result.get("status") == expect.status, info
        opened = [s for s in seen.seen if s.status == 101 or (
            s.method == "GET" and s.sid is None and s.status == 200)]
        assert opened == [], info  # no session was opened
    if expect.browser_says is not None:
        assert any(expect.browser_says in line for line in seen.out["console"]), info
    # the preflight, when the custom header needs one
    preflights = [s for s in seen.seen if s.method == "OPTIONS"]
    if case.headers:
        status = 200 if case.make_server is _custom_preflight else (
            403 if expect.refused_log == "refused preflight" else 204)
        assert preflights and all(s.status == status for s in preflights), info
        # the t= cache-buster makes every URL new: no preflight is ever served from cache
        polls = [s for s in seen.seen if s.kind == "http" and s.method != "OPTIONS"]
        assert len(preflights) >= len(polls), info
        assert preflights[0].headers["access-control-request-headers"] == "x-token", info
    else:
        assert preflights == [], info
    # cookies: in the browser's jar, on the wire, in socket.handshake.headers
    jar = [c for c in seen.out["cookies"] if c["name"] == "io"]
    with_sid = [s for s in seen.seen if s.sid is not None]
    if expect.cookie:
        assert jar and with_sid, info
        for s in with_sid:  # every poll, POST and upgrade of a session sends its cookie back
            assert s.headers.get("cookie") == f"io={s.sid}", info
        assert result["server"]["cookie"] is None, info  # a fresh browser context
        previous = result
        for later in result["later"]:  # the next handshake: the previous session's cookie
            assert later["server"]["cookie"] == f"io={previous['sid']}", info
            previous = later
    else:
        assert jar == [], info
        assert [s.headers["cookie"] for s in seen.seen if "cookie" in s.headers] == [], info
        for later in result["later"]:
            assert later["server"]["cookie"] is None, info
    blocked = [r for b in seen.out["blockedCookies"] if b["on"] == "set" for r in b["reasons"]]
    if expect.cookie_blocked is not None:
        assert expect.cookie_blocked in blocked, info
    # the server's warning
    logged = refusals(caplog, seen.origin)
    if expect.refused_log is not None:
        assert [m.startswith(f"{expect.refused_log} from origin ") for m in logged] == [True], (
            logged, info)
    else:
        assert logged == [], (logged, info)


def _bindings(case: Case) -> tuple[str, ...]:
    # a page served by the server itself needs the ASGI app (the native runner serves only
    # the Socket.IO path)
    return ("asgi",) if case.page == "same-origin" else BINDINGS


BROWSER_CASES = [pytest.param(case, version, binding, id=f"{case.name}-v{version}-{binding}")
                 for case in CASES for version in case.clients for binding in _bindings(case)]


@pytest.fixture
def warnings_(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="sockjet.cors")
    return caplog


@pytest.mark.parametrize(("case", "version", "binding"), BROWSER_CASES, indirect=["binding"])
async def test_browser_case(case: Case, version: int, binding: str, chromium: Chromium,
                            warnings_: pytest.LogCaptureFixture) -> None:
    seen = await visit(chromium, case, version)
    print(json.dumps({case.name: {f"v{version}": seen.summary()}}))
    check(case, seen, warnings_)


@pytest.mark.parametrize("version", [2, 4])
async def test_runtime_origins_change(version: int, binding: str, chromium: Chromium,
                                      warnings_: pytest.LogCaptureFixture) -> None:
    """One running server, three page loads: refused, ``io.origins([page])``, connected,
    ``io.origins([other])``, refused again. Each change applies to the next connection."""
    before, after = CASE["runtime-origins-before"], CASE["runtime-origins-after"]
    async with serve(page_app) as page_server:
        page_port = urlsplit(page_server).port
        assert page_port is not None
        origin = before.origin(page_port, "")
        io = before.make_server(origin)
        recorder = Recorder(io)
        async with serve(io) as url:
            server = localhost(url)
            check(before, await load(chromium, before, version, origin, server, recorder),
                  warnings_)
            assert io.origins(origin) is io  # the runtime setter, chainable
            assert io.origins() == origin
            warnings_.clear()
            check(after, await load(chromium, after, version, origin, server, recorder),
                  warnings_)
            io.origins([OTHER])
            # refused again; the warning is not repeated (logged once per origin)
            again = replace(before, expect=replace(before.expect, refused_log=None))
            check(again, await load(chromium, again, version, origin, server, recorder),
                  warnings_)
