"""Connection state recovery (Node ≥ 4.6, protocol 5 clients): what the option says, what a
disconnected socket leaves behind (:class:`Session`), and what a client that comes back in time
gets again (:class:`Restored`). Adapters keep the sessions and the packets sent meanwhile; see
:meth:`~sockjet.socketio.adapter.Adapter.persist_session`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the disconnect reasons after which a session is kept (Node's, the client may come back)
RECOVERABLE_REASONS = frozenset(("transport error", "transport close", "forced close",
                                 "ping timeout", "server shutting down", "forced server close"))


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    """``connection_state_recovery``: how long a session is kept after its client went away,
    and whether a restored socket skips the connection middlewares."""

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True


def recovery_options(value: Any) -> RecoveryOptions | None:
    """The option as given: ``None``/``False`` (off), ``True`` (Node's defaults) or a dict with
    ``max_disconnection_duration`` (seconds) and ``skip_middlewares``."""
    if value is None or value is False:
        return None
    if value is True:
        return RecoveryOptions()
    if not isinstance(value, dict):
        raise TypeError("connection_state_recovery must be True, False or a dict")
    unknown = set(value) - {"max_disconnection_duration", "skip_middlewares"}
    if unknown:
        raise ValueError(f"unknown connection_state_recovery keys: {sorted(unknown)}")
    duration = value.get("max_disconnection_duration", 120.0)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
        raise ValueError("max_disconnection_duration must be a positive number of seconds")
    return RecoveryOptions(float(duration), bool(value.get("skip_middlewares", True)))


@dataclass(slots=True)
class Session:
    """What a socket that went away leaves behind: its ids, rooms (its own id's included) and
    ``data``, and when it went (``time.monotonic()``)."""

    sid: str
    pid: str
    rooms: list[str]
    data: dict[str, Any]
    disconnected_at: float


@dataclass(slots=True)
class Restored:
    """A session given back: the socket's state and the events it missed, each as
    ``[event, *args, offset]``, in order."""

    session: Session
    missed: list[list[Any]] = field(default_factory=list)
