"""The demo behind ``sockjet demo``: an Engine.IO echo server with a page explaining it."""

from __future__ import annotations

from typing import Any

from ..engine.session import EngineSocket
from .servers import EngineServer

_PAGE = b"""<!doctype html><meta charset="utf-8"><title>sockjet demo</title>
<h1>sockjet demo: Engine.IO echo</h1>
<p>Every message sent to <code>/engine.io/</code> (Engine.IO protocol 3 or 4, polling or
WebSocket) comes back unchanged. Try it from a terminal:</p>
<pre>curl "http://HOST/engine.io/?EIO=4&amp;transport=polling"</pre>
"""


def create_demo() -> Any:
    engine = EngineServer(path="/engine.io/")

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        socket.on("message", socket.send)

    async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1000})
            return
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1:3000")
        body = _PAGE.replace(b"HOST", host)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})

    return engine.asgi_app(page)
