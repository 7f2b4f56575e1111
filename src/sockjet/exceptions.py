"""Every exception sockjet raises or lets applications raise, under one base class.

::

    SockjetError
    ├── ProtocolError (ValueError)         a peer sent what the protocols do not allow
    │   ├── DecodeError                    not a valid Engine.IO or Socket.IO packet or payload
    │   └── RequestRefused                 an HTTP request refused before the application (431...)
    ├── Forbidden                          raised by ``allow_request``: the session is refused
    ├── ConnectionRefused                  raised by a middleware: the socket is refused
    ├── AckTimeout (TimeoutError)          an acknowledgement did not arrive in time
    ├── Disconnected (ConnectionError)     the socket went away before its acknowledgement
    ├── AdapterError (ConnectionError)     a cross-server operation could not be done (Redis down)
    ├── ConnectError (ConnectionError)     client: a namespace refused the connection
    ├── ConnectionFailed (ConnectionError) client: the connection could not be opened
    └── BodyError                          binding → engine: a request body could not be read
        ├── PayloadTooLarge                over the engine's limit
        └── ClientGone                     the client went away before it ended

This module imports nothing of sockjet: every layer may raise from it.
"""

from __future__ import annotations

from typing import Any


class SockjetError(Exception):
    """Base class of every sockjet exception."""


class ProtocolError(SockjetError, ValueError):
    """A peer sent something Engine.IO, Socket.IO or HTTP does not allow (its session or
    connection is closed; nothing else is affected)."""


class DecodeError(ProtocolError):
    """Input that is not a valid Engine.IO or Socket.IO packet or payload."""


class RequestRefused(ProtocolError):
    """An HTTP request refused by a binding before it reaches the engine: ``status`` is the
    answer (400, 408, 431...), ``cause`` what was wrong."""

    def __init__(self, status: int, cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause


class Forbidden(SockjetError):
    """Raise from ``allow_request`` to refuse a session with a reason (HTTP 403)."""

    def __init__(self, reason: str = "Forbidden") -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionRefused(SockjetError):
    """Raise from a connection middleware to refuse a socket.

    The client receives ``message`` and ``data`` (protocol 5: ``connect_error`` with
    ``err.message`` and ``err.data``; protocol 4: an ``error`` event with ``data`` if given,
    else ``message``).
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(SockjetError, TimeoutError):
    """An acknowledgement did not arrive in time.

    For broadcasts, ``responses`` holds the replies that did arrive and ``missing`` the ids of
    the sockets that did not answer.
    """

    def __init__(self, message: str, responses: list[Any] | None = None,
                 missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.responses = responses or []
        self.missing = missing or []


class Disconnected(SockjetError, ConnectionError):
    """The socket disconnected before its acknowledgement arrived."""


class AdapterError(SockjetError, ConnectionError):
    """A cross-server operation could not be done: the link between the servers (Redis) is
    unreachable, or was lost while waiting for the answers. Local operations are not
    affected. For a broadcast with acks, ``responses`` holds the answers that came and
    ``missing`` the ids of the sockets that had not answered."""

    def __init__(self, message: str, responses: list[Any] | None = None,
                 missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.responses = responses or []
        self.missing = missing or []


class ConnectError(SockjetError, ConnectionError):
    """Client: a namespace refused the connection (``connect_error``): ``message`` and
    ``data`` as the server sent them."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ConnectionFailed(SockjetError, ConnectionError):
    """Client: the Engine.IO connection could not be opened (refused, unreachable, bad
    answer)."""


class BodyError(SockjetError):
    """A request body could not be read (raised by a binding, handled by the engine)."""


class PayloadTooLarge(BodyError):
    """The request body exceeds the limit given to ``read_body``."""


class ClientGone(BodyError):
    """The client went away while the request body was being read."""
