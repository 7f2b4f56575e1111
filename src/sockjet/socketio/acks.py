"""Acknowledgements, for the server's sockets and the client's namespaces alike: the callbacks
waiting for them by ack id, the awaitable form with its timeout, and how a handler's return value
becomes the arguments of an ack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ..engine.handlers import Invoker
from ..exceptions import AckTimeout, Disconnected

AckCallback = Callable[..., Any]


def ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: ``None`` → none, a tuple → several."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


class AckWaiter:
    """An ack callback that resolves a future: one value, a tuple for several, ``None`` for
    none."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def __call__(self, *values: Any) -> None:
        if not self.future.done():
            self.future.set_result(values[0] if len(values) == 1 else (values or None))


class Acks:
    """The callbacks of one socket (or client namespace) waiting for an ack, by ack id."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[int, AckCallback] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[int]:
        """The ack ids still waited for, oldest first."""
        return iter(tuple(self._pending))

    def add(self, ack_id: int, callback: AckCallback) -> None:
        self._pending[ack_id] = callback

    def discard(self, ack_id: int) -> None:
        self._pending.pop(ack_id, None)

    def resolve(self, ack_id: int, args: list[Any], invoker: Invoker) -> None:
        """The peer's ack arrived: its callback runs (an unknown or late ack is ignored)."""
        callback = self._pending.pop(ack_id, None)
        if callback is not None:
            invoker.call(callback, *args)

    async def wait(self, ack_id: int, waiter: AckWaiter, timeout: float | None,
                   what: str) -> Any:
        """The value ``waiter`` gets, within ``timeout`` seconds (else :class:`AckTimeout`)."""
        try:
            if timeout is None:
                return await waiter.future
            return await asyncio.wait_for(waiter.future, timeout)
        except TimeoutError:
            self.discard(ack_id)
            raise AckTimeout(f"{what} was not acknowledged within {timeout} s") from None

    def fail(self, reason: str) -> None:
        """The socket is gone: awaited acks fail with :class:`Disconnected`, callbacks are
        dropped."""
        pending, self._pending = self._pending, {}
        for callback in pending.values():
            if isinstance(callback, AckWaiter) and not callback.future.done():
                callback.future.set_exception(Disconnected(reason))
