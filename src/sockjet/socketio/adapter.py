"""The adapter interface: how a namespace stores rooms and reaches sockets, locally or across
servers. Implementations live in :mod:`sockjet.adapters` (in-memory by default, Redis later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .namespace import Namespace


@dataclass(frozen=True, slots=True)
class BroadcastOptions:
    """Who a broadcast reaches and how (the operator flags of the Node API)."""

    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    compress: bool = True
    local: bool = False
    timeout: float | None = None


#: ``on_ack(socket_id, args)`` for each client that answers a broadcast with ack
AckCallback = Callable[[str, list[Any]], None]


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
                           on_ack: AckCallback) -> list[str]:
        """Like :meth:`broadcast`, asking each client for an ack; returns the local targets."""

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

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (subscriptions...) when the server closes."""
