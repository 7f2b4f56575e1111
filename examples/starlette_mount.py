"""The engine inside a Starlette app: Engine.IO under /engine.io/, the rest is Starlette.

Run:  python examples/starlette_mount.py   (needs `pip install starlette`)
"""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import sockjet

engine = sockjet.EngineServer()
engine.on("connection", lambda socket: socket.on("message", socket.send))


async def home(request):
    return PlainTextResponse("Starlette here; Engine.IO lives at /engine.io/")


app = engine.asgi_app(Starlette(routes=[Route("/", home)]))

if __name__ == "__main__":
    sockjet.run(app, port=3000)
