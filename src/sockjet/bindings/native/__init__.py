"""The native binding: an asyncio protocol serving the engine directly, without ASGI.

HTTP/1.1 is parsed by httptools, WebSocket handshakes and framing are done by the ``websockets``
sans-I/O protocol, and frames are written straight to the transport: no ASGI events, no per-
connection writer task, no queue hop. This is the default runner for sockjet servers; the ASGI
app remains for embedding in other frameworks.
"""

from .server import NativeServer

__all__ = ["NativeServer"]
