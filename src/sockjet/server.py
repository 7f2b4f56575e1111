"""The public server classes: the layers' servers plus what only this top may add, the ASGI app
(a binding) and the default in-memory adapter."""

from __future__ import annotations

from typing import Any

from .adapters.memory import InMemoryAdapter
from .bindings.asgi import ASGIApp, ASGIApplication
from .engine.server import Engine
from .socketio.namespace import AdapterFactory
from .socketio.server import SocketServer


class EngineServer(Engine):
    """A bare Engine.IO server (every option as a keyword: see the configuration reference)."""

    def asgi_app(self, other_asgi_app: ASGIApplication | None = None,
                 path: str | None = None) -> ASGIApp:
        """An ASGI application serving this engine; other paths go to ``other_asgi_app``."""
        return ASGIApp(self, other_asgi_app, path=path)


class Server(SocketServer):
    """The Socket.IO server. Every option is a keyword: Socket.IO ones (``adapter``,
    ``connect_timeout``, ``cleanup_empty_child_namespaces``, ``path``) and all Engine.IO ones
    (``ping_interval``, ...)."""

    def __init__(self, *, adapter: AdapterFactory = InMemoryAdapter, **options: Any) -> None:
        super().__init__(adapter=adapter, **options)

    @property
    def uses_default_adapter(self) -> bool:
        """Whether the namespaces get the default in-memory adapter (no ``adapter`` option and
        no :meth:`replace_adapter` since): a supervisor of worker processes then replaces it
        with the inter-worker one, and keeps any other."""
        return self.adapter_factory is InMemoryAdapter

    def asgi_app(self, other_asgi_app: ASGIApplication | None = None,
                 path: str | None = None) -> ASGIApp:
        """An ASGI application serving Socket.IO (default path ``/socket.io/``)."""
        return ASGIApp(self, other_asgi_app, path=path)
