"""The adapter interface: how a namespace stores rooms and reaches sockets, locally or across
servers. Implementations live in :mod:`sockjet.adapters` (in memory by default, between worker
processes, on Redis)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .namespace import Namespace
    from .recovery import RecoveryOptions, Restored, Session


@dataclass(frozen=True, slots=True)
class BroadcastOptions:
    """Who a broadcast reaches and how (the operator flags of the Node API)."""

    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    compress: bool = True
    local: bool = False
    timeout: float | None = None


class AckCallback(Protocol):
    """``on_ack(socket_id, args)`` for each client that answers a broadcast with ack."""

    def __call__(self, sid: str, args: list[Any], /) -> None: ...


class BroadcastAcks(AckCallback, Protocol):
    """What :meth:`Adapter.broadcast_with_ack` reports to: each client's answer (a call, as an
    :data:`AckCallback`) and, for an adapter that spans servers, how many other servers were
    asked and which of their sockets each one reached, so that the number of expected answers
    can grow as those counts arrive (Node's ``clientCountCallback``)."""

    def expect_servers(self, count: int, /) -> None:
        """``count`` more servers will report their targets (a negative count: servers that
        were asked are gone and will not)."""

    def server_targets(self, sids: list[str], /) -> None:
        """One of the expected servers sent the packet to these sockets of its own."""

    def fail(self, error: Exception, /) -> None:
        """The link to the other servers is lost: their answers will not come (the caller gets
        ``error`` with the answers that came)."""


class Adapter(ABC):
    """One adapter per namespace (Node's ``socket.io-adapter`` contract, in Python)."""

    def __init__(self, nsp: Namespace) -> None:
        self.nsp = nsp

    # -- rooms of local sockets -------------------------------------------------------------------

    @abstractmethod
    def add_all(self, sid: str, rooms: Iterable[str]) -> None: ...

    @abstractmethod
    def delete(self, sid: str, room: str) -> None: ...

    @abstractmethod
    def delete_all(self, sid: str) -> None: ...

    @abstractmethod
    def socket_rooms(self, sid: str) -> set[str]:
        """The rooms of a local socket (a copy; empty if unknown)."""

    @abstractmethod
    def local_rooms(self) -> dict[str, set[str]]:
        """Room name -> local socket ids (read-only view)."""

    # -- operations that may span servers -------------------------------------------------------

    @abstractmethod
    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> None:
        """Send an EVENT ``data`` (``[event, *args]``) to every targeted socket."""

    @abstractmethod
    def broadcast_with_ack(self, data: list[Any], opts: BroadcastOptions,
                           on_ack: BroadcastAcks) -> list[str]:
        """Like :meth:`broadcast`, asking each client for an ack: ``on_ack(sid, args)`` per
        answer; returns the local targets. A cross-server adapter first calls
        ``on_ack.expect_servers(n)`` for the ``n`` other servers it asks, then
        ``on_ack.server_targets(ids)`` as each one reports."""

    @abstractmethod
    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]: ...

    @abstractmethod
    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None: ...

    @abstractmethod
    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None: ...

    @abstractmethod
    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None: ...

    @abstractmethod
    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        """Emit ``data`` to the namespace on the *other* servers (their replies if ``ack``)."""

    async def server_count(self) -> int:
        return 1

    # -- connection state recovery --------------------------------------------------------------

    def enable_recovery(self, options: RecoveryOptions) -> None:  # noqa: B027 - optional hook
        """The server offers connection state recovery: keep the sessions of sockets that went
        away and the events broadcast since, and append an offset to every event broadcast
        without ack and not volatile. An adapter that cannot leaves this as is (its sessions
        are never restored)."""

    def persist_session(self, session: Session) -> None:  # noqa: B027 - optional hook
        """A socket that may come back went away."""

    async def restore_session(self, pid: str, offset: str) -> Restored | None:
        """The session of private id ``pid`` and the events it missed after ``offset``, or
        ``None`` (unknown or expired session, offset no longer known)."""
        return None

    async def all_rooms(self) -> set[str]:
        """The names of the rooms of every server (Node's ``adapter.allRooms()``); here the
        local ones."""
        return set(self.local_rooms())

    async def init(self) -> None:  # noqa: B027 - optional hook
        """Connect (subscriptions...): called when a binding starts serving the server, or at
        once for an adapter made while it serves. An exception stops the server's start."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (subscriptions...) when the server closes (may be called more than
        once)."""
