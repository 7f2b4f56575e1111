"""Logging what peers get wrong without letting a peer fill the logs: each distinct key is logged
once, and the number of keys remembered is bounded."""

from __future__ import annotations

import logging
from typing import Any

#: logger for mistakes of clients (bad frames, oversize heads...): never server errors
peer_log = logging.getLogger("sockjet.peers")


class LogOnce:
    """Logs a message the first time its key is seen. After ``capacity`` distinct keys, one last
    line says that further notices are suppressed (a flood of new keys cannot grow memory or
    the log)."""

    __slots__ = ("_capacity", "_full", "_level", "_logger", "_seen")

    def __init__(self, logger: logging.Logger, level: int = logging.INFO,
                 capacity: int = 1024) -> None:
        self._logger = logger
        self._level = level
        self._capacity = capacity
        self._seen: set[str] = set()
        self._full = False

    def __call__(self, key: str, message: str, *args: Any) -> None:
        seen = self._seen
        if key in seen:
            return
        if len(seen) >= self._capacity:
            if not self._full:
                self._full = True
                self._logger.log(self._level, "more than %d distinct notices: further ones are "
                                 "not logged", self._capacity)
            return
        seen.add(key)
        self._logger.log(self._level, message, *args)

    def forget(self) -> None:
        """Start afresh: every key may be logged again."""
        self._seen.clear()
        self._full = False


#: client mistakes, once per peer address and cause (for the whole process)
peer_notices = LogOnce(peer_log)


def peer_mistake(peer: tuple[str, int] | None, cause: str, detail: str = "") -> None:
    """Log that a client at ``peer`` did something invalid (``cause``), once per address and
    cause, at INFO level: the server refused it and carries on."""
    address = peer[0] if peer else "unknown"
    peer_notices(f"{address}\n{cause}", "client %s: %s%s", address, cause,
                  f" ({detail})" if detail else "")
