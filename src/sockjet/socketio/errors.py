"""Exceptions of the Socket.IO layer that applications raise or catch."""

from __future__ import annotations

from typing import Any


class ConnectionRefused(Exception):
    """Raise from a connection middleware to refuse a socket.

    The client receives ``message`` and ``data`` (protocol 5: ``connect_error`` with
    ``err.message`` and ``err.data``; protocol 4: an ``error`` event with ``data`` if given,
    else ``message``).
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeout(TimeoutError):
    """An acknowledgement did not arrive in time.

    For broadcasts, ``responses`` holds the replies that did arrive and ``missing`` the ids of
    the sockets that did not answer.
    """

    def __init__(self, message: str, responses: list[Any] | None = None,
                 missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.responses = responses or []
        self.missing = missing or []


class Disconnected(ConnectionError):
    """The socket disconnected before its acknowledgement arrived."""
