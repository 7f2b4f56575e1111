"""sockjet: Socket.IO server and client for Python."""

from .adapters.memory import InMemoryAdapter
from .bindings.runner import run, serve
from .bindings.servers import EngineServer, Server
from .client.client import AsyncClient, ClientNamespace
from .client.sync import Client
from .engine.cors import CORS, same_origin
from .engine.session import EngineSocket
from .exceptions import (
    AckTimeout,
    ConnectError,
    ConnectionRefused,
    Disconnected,
    Forbidden,
    SockjetError,
)
from .socketio.adapter import Adapter, BroadcastOptions
from .socketio.namespace import BroadcastOperator, Namespace
from .socketio.socket import Handshake, Socket

__all__ = [
    "CORS",
    "AckTimeout",
    "Adapter",
    "AsyncClient",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ClientNamespace",
    "ConnectError",
    "ConnectionRefused",
    "Disconnected",
    "EngineServer",
    "EngineSocket",
    "Forbidden",
    "Handshake",
    "InMemoryAdapter",
    "Namespace",
    "Server",
    "Socket",
    "SockjetError",
    "run",
    "same_origin",
    "serve",
]
__version__ = "0.1.0"
