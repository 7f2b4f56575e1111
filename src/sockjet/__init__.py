"""sockjet: Socket.IO server and client for Python."""

from .bindings.runner import run, serve
from .engine.server import EngineServer, Forbidden
from .engine.session import EngineSocket

__all__ = ["EngineServer", "EngineSocket", "Forbidden", "run", "serve"]
__version__ = "0.1.0"
