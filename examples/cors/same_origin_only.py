"""Without CORS: page and server on the same domain, cross-origin requests refused.

The page's recipe translated literally, `allow_request=lambda r: "origin" not in r.headers`,
also refuses same-origin WebSocket connections, because browsers always send Origin on
WebSocket handshakes. `sockjet.same_origin` accepts requests without Origin and requests whose
Origin is the server's own scheme://host, and refuses the rest.

Run:  python examples/cors/same_origin_only.py   then open http://127.0.0.1:3000/
"""

from typing import Any

import sockjet

io = sockjet.Server(allow_request=sockjet.same_origin)

PAGE = b"""<!doctype html><meta charset="utf-8"><title>same origin</title>
<script src="https://cdn.socket.io/4.8.1/socket.io.min.js"></script>
<p id="out">connecting...</p>
<script>
const socket = io();   // same origin: no URL needed
socket.on("hello", (text) => { document.querySelector("#out").textContent = text; });
</script>"""


async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": PAGE})


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.emit("hello", "connected from the same origin")


app = io.asgi_app(page)

if __name__ == "__main__":
    sockjet.run(app, port=3000)
