"""``sockjet demo``: a small chat with a cross-origin setup, all in memory.

The Socket.IO API listens on ``--port`` and the chat page is served from ``--page-port`` (another
origin), so the browser really exercises the CORS rules: the API lists the page's origins.

The page loads the socket.io-client browser bundle from the socket.io CDN, or, with
``--client-js PATH``, from the API at ``/socket.io/socket.io.js`` (as Node's ``serveClient``
does), the file at PATH; sockjet ships no copy of it. When the bundle does not load, the page
says so and what to do, instead of waiting for ever.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import socket as socketlib
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..bindings.asgi import ASGIApp, Receive, Scope, Send
from ..server import Server
from ..socketio.socket import Socket
from .admin import instrument

HISTORY = 50
#: the hosted Socket.IO Admin UI
ADMIN_UI = "https://admin.socket.io"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
#: where the page loads the client bundle from without ``--client-js``
CDN_CLIENT_JS = "https://cdn.socket.io/4.8.1/socket.io.min.js"
#: where the API serves the ``--client-js`` bundle, as Node's ``serveClient`` does
CLIENT_JS_PATH = "/socket.io/socket.io.js"
#: seconds the page waits for the bundle before saying that it is still loading
CLIENT_JS_PATIENCE = 10
NPM_BUNDLE = "node_modules/socket.io-client/dist/socket.io.min.js"
_CDN_HELP = (
    "Without internet access, stop the demo and start it again with "
    "`sockjet demo --client-js PATH`, PATH being a socket.io-client browser bundle on this "
    f"machine (`npm i socket.io-client` installs one at {NPM_BUNDLE}); or give this browser "
    "internet access.")
_LOCAL_HELP = (
    "Check that the demo is still running and that `sockjet demo --client-js PATH` names a "
    f"socket.io-client browser bundle (`npm i socket.io-client` installs one at {NPM_BUNDLE}).")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sockjet chat demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:15px system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}
 #log{border:1px solid #ccc;height:22rem;overflow-y:auto;padding:.5rem;margin:.5rem 0}
 #log p{margin:.2rem 0} .sys{color:#777;font-style:italic} form{display:flex;gap:.5rem}
 input[name=text]{flex:1} #status{font-size:.85rem;color:#555;white-space:pre-line}
 #status.error{font-size:1rem;color:#b00020;border:1px solid #b00020;padding:.5rem}
</style></head><body>
<h1>sockjet chat</h1>
<p id="status">loading the Socket.IO client …</p>
<form id="join"><input name="nick" placeholder="your name" required maxlength="32">
<button>Join</button></form>
<div id="log"></div>
<form id="say" hidden><input name="text" autocomplete="off" maxlength="500"
 placeholder="message"><button>Send</button></form>
<p id="typing" class="sys"></p>
<p id="observe" class="sys">__OBSERVE__</p>
<script>
// the chat needs the client bundle below: when it fails to load (no internet access for the CDN,
// a wrong --client-js file...), say so and what to do, rather than wait for ever
const CLIENT = __CLIENT__;
const clientFailed = (why) => { const status = document.querySelector("#status");
  status.className = "error";
  status.textContent =
    `The Socket.IO client ${why}; the chat cannot start without it.\n${CLIENT.help}`;
  document.querySelector("#join").hidden = true; };
const clientTimer = setTimeout(() => clientFailed(
  `is still loading from ${CLIENT.url} after ${CLIENT.patience} s`), CLIENT.patience * 1000);
</script>
<!-- the official client; any socket.io-client 2.x-4.x bundle works -->
<script src="__CLIENT_SRC__" onerror="window.clientError = true"></script>
<script>
const API = __API__;
const $ = (s) => document.querySelector(s);
const log = (text, cls) => { const p = document.createElement("p"); p.textContent = text;
  if (cls) p.className = cls; $("#log").append(p); $("#log").scrollTop = 1e9; };
clearTimeout(clientTimer);
if (typeof io !== "function") {
  clientFailed(window.clientError ? `could not be loaded from ${CLIENT.url}`
    : `loaded from ${CLIENT.url} but did not define io() (not a socket.io-client bundle?)`);
} else { chat(); }
function chat() {
$("#status").className = ""; $("#join").hidden = false;
$("#status").textContent = `connecting to ${API} …`;
const socket = io(API, { withCredentials: true });
socket.on("connect", () => { $("#status").textContent =
  `connected to ${API} (cross-origin) over ${socket.io.engine.transport.name}`;
  socket.io.engine.on("upgrade", (t) => { $("#status").textContent += ` → ${t.name}`; }); });
socket.on("connect_error", (e) => {
  $("#status").textContent = "connection refused: " + e.message; });
socket.on("chat", (m) => log(`${m.from}: ${m.text}`));
socket.on("joined", (m) => log(`${m.nick} joined (${m.users} online)`, "sys"));
socket.on("left", (m) => log(`${m.nick} left (${m.users} online)`, "sys"));
socket.on("typing", (nick) => { $("#typing").textContent = nick + " is typing…";
  clearTimeout(window.typingTimer);
  window.typingTimer = setTimeout(() => { $("#typing").textContent = ""; }, 1500); });
$("#join").onsubmit = async (e) => { e.preventDefault();
  const reply = await socket.emitWithAck("join", e.target.nick.value);
  if (reply.error) { log(reply.error, "sys"); return; }
  reply.history.forEach((m) => log(`${m.from}: ${m.text}`));
  $("#join").hidden = true; $("#say").hidden = false; $("#say").text.focus(); };
$("#say").onsubmit = (e) => { e.preventDefault(); const text = e.target.text.value.trim();
  if (text) socket.emit("chat", text); e.target.text.value = ""; };
$("#say").text.oninput = () => socket.volatile.emit("typing");
}
</script></body></html>
"""


def demo_origins(host: str, ports: tuple[int, ...]) -> list[str]:
    """The page origins the API accepts: this machine's names on the demo's ports."""
    if host in _WILDCARD_HOSTS:
        return [f"*:{port}" for port in ports]  # any host name, but only the demo's ports
    names = dict.fromkeys([host, "127.0.0.1", "localhost"])
    return [f"http://{name}:{port}" for name in names for port in ports]


def create_chat(origins: Any = None) -> Server:
    """The chat server: ``join(nick)`` → ack with history, ``chat(text)`` → broadcast to all with
    an ack carrying the message id, volatile ``typing`` to the others."""
    io = Server(origins=origins)
    history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
    ids = itertools.count(1)

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.on("join")
        def join(nick: Any) -> dict[str, Any]:
            if not isinstance(nick, str) or not nick.strip() or len(nick) > 32:
                return {"error": "a name of 1 to 32 characters, please"}
            socket.data["nick"] = nick.strip()
            socket.join("chat")
            users = len(io.sockets.adapter.local_rooms().get("chat", ()))
            io.to("chat").emit("joined", {"nick": socket.data["nick"], "users": users})
            return {"users": users, "history": list(history)}

        @socket.on("chat")
        def chat(text: Any) -> int | None:
            nick = socket.data.get("nick")
            if nick is None or not isinstance(text, str) or not text.strip():
                return None
            message = {"id": next(ids), "from": nick, "text": text[:500], "at": time.time()}
            history.append(message)
            io.to("chat").emit("chat", message)
            ack: int = message["id"]
            return ack

        @socket.on("typing")
        def typing() -> None:
            if "nick" in socket.data:
                socket.to("chat").volatile.emit("typing", socket.data["nick"])

        @socket.on("disconnect")
        def disconnect(reason: str) -> None:
            if "nick" in socket.data:
                users = len(io.sockets.adapter.local_rooms().get("chat", ()))
                io.to("chat").emit("left", {"nick": socket.data["nick"], "users": users})

    return io


def read_client_js(path: str | os.PathLike[str]) -> bytes:
    """The content of the client bundle file ``path`` (read once, when the demo starts).

    Raises ``ValueError`` with a message for the user when it is missing, not a file, unreadable
    or empty."""
    file = Path(path).expanduser()
    hint = (f"expected a socket.io-client browser bundle such as {NPM_BUNDLE} "
            "(from `npm i socket.io-client`)")
    if not file.exists():
        raise ValueError(f"{path}: no such file; {hint}")
    if not file.is_file():
        raise ValueError(f"{path}: not a file; {hint}")
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not content:
        raise ValueError(f"{path}: the file is empty; {hint}")
    return content


class ClientBundle:
    """Serves a socket.io-client bundle at ``/socket.io/socket.io.js`` in front of the Socket.IO
    app, as Node's ``serveClient`` does: ``application/javascript``, an ETag, and
    ``Cache-Control: no-cache`` (the browser may keep it, but asks whether it changed: 304)."""

    def __init__(self, app: ASGIApp, bundle: bytes) -> None:
        self.app = app
        self.engine = app.engine  # what the runners look for on a served app
        self.bundle = bundle
        self.etag = f'"{hashlib.sha256(bundle).hexdigest()[:32]}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != CLIENT_JS_PATH:
            return await self.app(scope, receive, send)
        headers = [(b"etag", self.etag.encode()), (b"cache-control", b"no-cache")]
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"Method Not Allowed"
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")]
        elif self._not_modified(scope):
            status, body = 304, b""
        else:
            status, body = 200, self.bundle
            headers += [(b"content-type", b"application/javascript; charset=utf-8"),
                        (b"x-content-type-options", b"nosniff")]
        if status != 304:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})

    def _not_modified(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name.lower() == b"if-none-match":
                tags = value.decode("latin-1").split(",")
                tags = [tag.strip().removeprefix("W/") for tag in tags]
                if "*" in tags or self.etag in tags:
                    return True
        return False


def render_page(api: str, client_src: str | None = None, metrics: bool = False) -> bytes:
    """The chat page for the API at ``api``, loading the client bundle from ``client_src`` (the
    API's ``/socket.io/socket.io.js``) or, without it, from the CDN; it links the Admin UI and,
    with ``metrics``, the API's ``/metrics``."""
    src = client_src or CDN_CLIENT_JS
    client = {"url": src, "help": _LOCAL_HELP if client_src else _CDN_HELP,
              "patience": CLIENT_JS_PATIENCE}
    where = html.escape(api)
    observe = (f'Watch it: the <a href="{ADMIN_UI}">Socket.IO Admin UI</a> (server URL '
               f'<code>{where}</code>, admin path <code>/admin</code>, no authentication; '
               "read-only) and ")
    observe += (f'the Prometheus metrics at <a href="{where}/metrics">{where}/metrics</a>.'
                if metrics else
                "Prometheus metrics at /metrics once <code>pip install 'sockjet[metrics]'"
                "</code> is done.")
    return (PAGE.replace("__API__", json.dumps(api))
            .replace("__OBSERVE__", observe)
            .replace("__CLIENT_SRC__", html.escape(src))
            .replace("__CLIENT__", json.dumps(client).replace("</", "<\\/"))).encode()


def create_demo(host: str = "127.0.0.1", port: int = 3000, page_port: int | None = None,
                client_js: bytes | None = None) -> tuple[Any, list[socketlib.socket]]:
    """The demo ASGI app and the listening sockets (API port, page port). ``client_js``: a
    socket.io-client bundle the API serves at ``/socket.io/socket.io.js`` for the page (else the
    page loads it from the CDN)."""
    page_port = port + 1 if page_port is None else page_port
    # the hosted Admin UI connects from its own origin, with credentials
    io = create_chat([*demo_origins(host, (port, page_port)), ADMIN_UI])
    instrument(io, auth=False, mode="development", read_only=True)
    metrics = _metrics(io)
    api = f"http://{'127.0.0.1' if host in _WILDCARD_HOSTS else host}:{port}"
    page = render_page(api, api + CLIENT_JS_PATH if client_js is not None else None, metrics)

    async def page_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        found = scope["path"] == "/"
        await send({"type": "http.response.start", "status": 200 if found else 404,
                    "headers": [(b"content-type", b"text/html; charset=utf-8" if found
                                 else b"text/plain")]})
        await send({"type": "http.response.body", "body": page if found else b"Not Found"})

    app: Any = io.asgi_app(page_app)
    if client_js is not None:
        app = ClientBundle(app, client_js)
    sockets = [_listen(host, port), _listen(host, page_port)]
    return app, sockets


def _metrics(io: Server) -> bool:
    """Prometheus metrics at the API's ``/metrics``, when ``sockjet[metrics]`` is installed."""
    try:
        from prometheus_client import CollectorRegistry

        from ..metrics import enable_metrics
    except ImportError:
        return False
    enable_metrics(io, CollectorRegistry(), path="/metrics")
    return True


def _listen(host: str, port: int) -> socketlib.socket:
    family = socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
    sock = socketlib.socket(family, socketlib.SOCK_STREAM)
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
