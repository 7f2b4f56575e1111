"""sockjet: Socket.IO server and client for Python.

The public names are imported on first use, so that ``import sockjet`` costs almost nothing and
a server never loads the client's HTTP stack, uvicorn or the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters.cluster import ClusterAdapter, RemoteSocket
    from .adapters.memory import InMemoryAdapter
    from .adapters.redis_classic import RedisAdapter
    from .adapters.redis_emitter import BlockingRedisEmitter, RedisEmitter
    from .adapters.redis_sharded import RedisShardedAdapter
    from .adapters.redis_streams import RedisStreamsAdapter
    from .adapters.workers import WorkerAdapter, WorkerLink
    from .bindings.runner import run, serve
    from .client.client import AsyncClient, ClientNamespace
    from .client.sync import Client
    from .engine.cors import CORS, same_origin
    from .engine.session import EngineSocket
    from .exceptions import (
        AckTimeout,
        AdapterError,
        ConnectError,
        ConnectionFailed,
        ConnectionRefused,
        DecodeError,
        Disconnected,
        Forbidden,
        ProtocolError,
        SockjetError,
    )
    from .metrics import enable_metrics, metrics_app
    from .server import EngineServer, Server
    from .socketio.adapter import Adapter, BroadcastOptions
    from .socketio.namespace import Namespace
    from .socketio.operator import BroadcastOperator
    from .socketio.socket import Handshake, Socket
    from .tools.admin import AdminUI, instrument

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "Server": ".server",
    "EngineServer": ".server",
    "run": ".bindings.runner",
    "serve": ".bindings.runner",
    "AsyncClient": ".client.client",
    "ClientNamespace": ".client.client",
    "Client": ".client.sync",
    "CORS": ".engine.cors",
    "same_origin": ".engine.cors",
    "EngineSocket": ".engine.session",
    "InMemoryAdapter": ".adapters.memory",
    "ClusterAdapter": ".adapters.cluster",
    "RemoteSocket": ".adapters.cluster",
    "RedisAdapter": ".adapters.redis_classic",
    "RedisShardedAdapter": ".adapters.redis_sharded",
    "RedisStreamsAdapter": ".adapters.redis_streams",
    "RedisEmitter": ".adapters.redis_emitter",
    "BlockingRedisEmitter": ".adapters.redis_emitter",
    "WorkerAdapter": ".adapters.workers",
    "WorkerLink": ".adapters.workers",
    "Adapter": ".socketio.adapter",
    "BroadcastOptions": ".socketio.adapter",
    "BroadcastOperator": ".socketio.operator",
    "Namespace": ".socketio.namespace",
    "Handshake": ".socketio.socket",
    "Socket": ".socketio.socket",
    "SockjetError": ".exceptions",
    "ProtocolError": ".exceptions",
    "DecodeError": ".exceptions",
    "Forbidden": ".exceptions",
    "ConnectionRefused": ".exceptions",
    "AckTimeout": ".exceptions",
    "AdapterError": ".exceptions",
    "Disconnected": ".exceptions",
    "ConnectError": ".exceptions",
    "ConnectionFailed": ".exceptions",
    "instrument": ".tools.admin",
    "AdminUI": ".tools.admin",
    "enable_metrics": ".metrics",
    "metrics_app": ".metrics",
}

__all__ = [
    "CORS",
    "AckTimeout",
    "Adapter",
    "AdapterError",
    "AdminUI",
    "AsyncClient",
    "BlockingRedisEmitter",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ClientNamespace",
    "ClusterAdapter",
    "ConnectError",
    "ConnectionFailed",
    "ConnectionRefused",
    "DecodeError",
    "Disconnected",
    "EngineServer",
    "EngineSocket",
    "Forbidden",
    "Handshake",
    "InMemoryAdapter",
    "Namespace",
    "ProtocolError",
    "RedisAdapter",
    "RedisEmitter",
    "RedisShardedAdapter",
    "RedisStreamsAdapter",
    "RemoteSocket",
    "Server",
    "Socket",
    "SockjetError",
    "WorkerAdapter",
    "WorkerLink",
    "enable_metrics",
    "instrument",
    "metrics_app",
    "run",
    "same_origin",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sockjet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
