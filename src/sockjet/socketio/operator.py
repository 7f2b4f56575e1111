"""The broadcast operator: an immutable selection of a namespace's sockets (``to``/``in_``/
``except_``) plus flags (``volatile``/``local``/``compress``/``timeout``), and what can be done
with it (emit, emit with acks, fetch, join, leave, disconnect), all through the adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from ..codecs.socketio import RESERVED_EVENTS
from ..exceptions import AckTimeout, AdapterError
from .adapter import Adapter, BroadcastOptions


class BroadcastTarget(Protocol):
    """What an operator acts on: a namespace (through its adapter)."""

    adapter: Adapter


def room_set(rooms: str | Iterable[str]) -> frozenset[str]:
    if isinstance(rooms, str):
        return frozenset((rooms,))
    result = frozenset(rooms)
    if not all(isinstance(r, str) for r in result):
        raise TypeError("room names must be strings")
    return result


def check_event_name(event: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


_NO_OPTIONS = BroadcastOptions()


class BroadcastOperator:
    """An immutable selection of sockets plus flags; every chained call returns a new one."""

    __slots__ = ("_opts", "_target")

    def __init__(self, target: BroadcastTarget, opts: BroadcastOptions | None = None) -> None:
        self._target = target
        self._opts = opts if opts is not None else _NO_OPTIONS

    def _with(self, **changes: Any) -> BroadcastOperator:
        return BroadcastOperator(self._target, replace(self._opts, **changes))

    def to(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        """Target the sockets in these rooms (socket ids are rooms too); chainable (union)."""
        return self._with(rooms=self._opts.rooms | room_set(rooms))

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        """Leave out the sockets in these rooms."""
        return self._with(except_rooms=self._opts.except_rooms | room_set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for sockets that cannot take it right now."""
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's sockets (no fan-out through the adapter)."""
        return self._with(local=True)

    def compress(self, flag: bool = True) -> BroadcastOperator:
        return self._with(compress=bool(flag))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Time limit for :meth:`emit_with_ack`."""
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        return self._with(timeout=float(seconds))

    @property
    def options(self) -> BroadcastOptions:
        return self._opts

    def emit(self, event: str, *args: Any) -> bool:
        """Send an event to every selected socket; the packet is encoded once."""
        check_event_name(event)
        self._target.adapter.broadcast([event, *args], self._opts)
        return True

    def send(self, *args: Any) -> bool:
        return self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit and wait for every client's ack: a list of replies (one value per client, a tuple
        when a client answered with several arguments). Needs :meth:`timeout` unless every
        client is known to answer; raises :class:`AckTimeout` with the partial result. With an
        adapter spanning servers, the clients of the other servers count as they are reported."""
        check_event_name(event)
        acks = AckCollector()
        acks.seal(self._target.adapter.broadcast_with_ack([event, *args], self._opts, acks))
        if not acks.complete:
            try:
                if self._opts.timeout is None:
                    await acks.done
                else:
                    await asyncio.wait_for(asyncio.shield(acks.done), self._opts.timeout)
            except TimeoutError:
                missing = acks.missing()
                servers = (f"; {acks.pending_servers} servers did not report their clients"
                           if acks.pending_servers > 0 else "")
                raise AckTimeout(
                    f"{len(missing)} of {len(acks.targets)} clients did not acknowledge "
                    f"{event!r} within {self._opts.timeout} s{servers}",
                    responses=acks.responses(),
                    missing=missing,
                ) from None
        if acks.error is not None:
            missing = acks.missing()
            raise AdapterError(
                f"{acks.error}: {len(missing)} of {len(acks.targets)} clients had not "
                f"acknowledged {event!r}", responses=acks.responses(), missing=missing)
        return acks.responses()

    async def fetch_sockets(self) -> list[Any]:
        """The selected sockets (local :class:`Socket` objects; remote ones with an adapter)."""
        return await self._target.adapter.fetch_sockets(self._opts)

    def sockets_join(self, rooms: str | Iterable[str]) -> None:
        self._target.adapter.add_sockets(self._opts, room_set(rooms))

    def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        self._target.adapter.del_sockets(self._opts, room_set(rooms))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets (``close=True`` also closes their connections)."""
        self._target.adapter.disconnect_sockets(self._opts, close)


class AckCollector:
    """The answers to one broadcast with acks (:class:`BroadcastAcks`): the targets (local ones
    first, then those other servers report), the replies by socket id, and the servers still
    expected to report. ``done`` resolves once every target answered and no server is
    pending; that is checked only after :meth:`seal`, when the adapter has returned."""

    __slots__ = ("_answered", "_sealed", "_targeted", "done", "error", "pending_servers",
                 "replies", "targets")

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.replies: dict[str, Any] = {}
        self.pending_servers = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._targeted: set[str] = set()
        self._answered = 0  # targets that replied (counted, not searched: O(1) per ack)
        self._sealed = False
        #: why the answers of other servers will not come (the link between them is lost)
        self.error: Exception | None = None

    def __call__(self, sid: str, args: list[Any], /) -> None:
        if sid not in self.replies and sid in self._targeted:
            self._answered += 1
        self.replies[sid] = args[0] if len(args) == 1 else tuple(args)
        self._check()

    def expect_servers(self, count: int, /) -> None:
        self.pending_servers += count
        self._check()

    def _add(self, sids: list[str]) -> list[str]:
        """Count ``sids`` as targets; the ones not already counted (a socket counts once)."""
        new: list[str] = []
        for sid in sids:
            if sid not in self._targeted:
                self._targeted.add(sid)
                new.append(sid)
                if sid in self.replies:
                    self._answered += 1
        return new

    def server_targets(self, sids: list[str], /) -> None:
        self.targets.extend(self._add(sids))
        self.pending_servers -= 1
        self._check()

    def fail(self, error: Exception, /) -> None:
        if self.error is None and not self.done.done():
            self.error = error
            self.done.set_result(None)

    def seal(self, local_targets: list[str]) -> None:
        """The adapter returned the local targets: they come first."""
        self.targets[:0] = self._add(local_targets)
        self._sealed = True
        self._check()

    @property
    def complete(self) -> bool:
        return self.error is not None or (self._sealed and self.pending_servers <= 0
                                          and self._answered >= len(self._targeted))

    def _check(self) -> None:
        if self._sealed and not self.done.done() and self.complete:
            self.done.set_result(None)

    def responses(self) -> list[Any]:
        """The replies that came, in the order of the targets."""
        replies = self.replies
        return [replies[sid] for sid in self.targets if sid in replies]

    def missing(self) -> list[str]:
        return [sid for sid in self.targets if sid not in self.replies]
