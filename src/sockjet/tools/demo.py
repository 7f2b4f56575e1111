"""``sockjet demo``: a small chat with a cross-origin setup, all in memory.

The Socket.IO API listens on ``--port`` and the chat page is served from ``--page-port`` (another
origin), so the browser really exercises the CORS rules: the API lists the page's origins.
"""

from __future__ import annotations

import itertools
import socket as socketlib
import time
from collections import deque
from typing import Any

from ..bindings.asgi import Receive, Scope, Send
from ..server import Server
from ..socketio.socket import Socket

HISTORY = 50
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sockjet chat demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:15px system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}
 #log{border:1px solid #ccc;height:22rem;overflow-y:auto;padding:.5rem;margin:.5rem 0}
 #log p{margin:.2rem 0} .sys{color:#777;font-style:italic} form{display:flex;gap:.5rem}
 input[name=text]{flex:1} #status{font-size:.85rem;color:#555}
</style></head><body>
<h1>sockjet chat</h1>
<p id="status">connecting to __API__ …</p>
<form id="join"><input name="nick" placeholder="your name" required maxlength="32">
<button>Join</button></form>
<div id="log"></div>
<form id="say" hidden><input name="text" autocomplete="off" maxlength="500"
 placeholder="message"><button>Send</button></form>
<p id="typing" class="sys"></p>
<!-- the official client; any socket.io-client 2.x-4.x bundle works -->
<script src="https://cdn.socket.io/4.8.1/socket.io.min.js"></script>
<script>
const API = "__API__";
const $ = (s) => document.querySelector(s);
const log = (text, cls) => { const p = document.createElement("p"); p.textContent = text;
  if (cls) p.className = cls; $("#log").append(p); $("#log").scrollTop = 1e9; };
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


def create_demo(host: str = "127.0.0.1", port: int = 3000,
                page_port: int | None = None) -> tuple[Any, list[socketlib.socket]]:
    """The demo ASGI app and the listening sockets (API port, page port)."""
    page_port = port + 1 if page_port is None else page_port
    io = create_chat(demo_origins(host, (port, page_port)))
    api = f"http://{'127.0.0.1' if host in _WILDCARD_HOSTS else host}:{port}"
    page = PAGE.replace("__API__", api).encode()

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

    sockets = [_listen(host, port), _listen(host, page_port)]
    return io.asgi_app(page_app), sockets


def _listen(host: str, port: int) -> socketlib.socket:
    family = socketlib.AF_INET6 if ":" in host else socketlib.AF_INET
    sock = socketlib.socket(family, socketlib.SOCK_STREAM)
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
