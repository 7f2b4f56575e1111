"""The public server classes: the layered cores plus what only the top layer may add (the ASGI
app, the default in-memory adapter)."""

from __future__ import annotations

from typing import Any

from ..adapters.memory import InMemoryAdapter
from ..engine import server as engine_server
from ..socketio import server as socketio_server
from ..socketio.namespace import AdapterFactory
from .asgi import ASGIApp, ASGIApplication


class EngineServer(engine_server.EngineServer):
    """A bare Engine.IO server (see :class:`sockjet.engine.server.EngineServer` for options)."""

    def asgi_app(self, other_asgi_app: ASGIApplication | None = None,
                 path: str | None = None) -> ASGIApp:
        """An ASGI application serving this engine; other paths go to ``other_asgi_app``."""
        return ASGIApp(self, other_asgi_app, path=path)


class Server(socketio_server.SocketServer):
    """The Socket.IO server. Every option is a keyword: Socket.IO ones (``adapter``,
    ``connect_timeout``, ``path``) and all Engine.IO options (``ping_interval``, ...)."""

    def __init__(self, *, adapter: AdapterFactory = InMemoryAdapter, **options: Any) -> None:
        super().__init__(adapter=adapter, **options)

    def asgi_app(self, other_asgi_app: ASGIApplication | None = None,
                 path: str | None = None) -> ASGIApp:
        """An ASGI application serving Socket.IO (default path ``/socket.io/``)."""
        return ASGIApp(self, other_asgi_app, path=path)
