"""A blocking facade over :class:`AsyncClient` for scripts without an event loop.

The asyncio client runs on its own thread; handlers are called on that thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, overload

from ..engine.handlers import H, Handler
from .client import AsyncClient, ClientNamespace


class Namespace:
    """Blocking view of a :class:`ClientNamespace`."""

    def __init__(self, client: Client, nsp: ClientNamespace) -> None:
        self._client = client
        self._nsp = nsp

    @property
    def id(self) -> str | None:
        return self._nsp.id

    @property
    def connected(self) -> bool:
        return self._nsp.connected

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        return self._nsp.on(event, handler)

    def emit(self, event: str, *args: Any, callback: Handler | None = None) -> None:
        self._client._soon(functools.partial(self._nsp.emit, event, *args, callback=callback))

    def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        return self._client._run(self._nsp.emit_with_ack(event, *args, timeout=timeout))


class Client:
    """``sockjet.Client(url, **options)``: the options of :class:`AsyncClient`, blocking calls.

    >>> with sockjet.Client("http://localhost:3000") as client:   # doctest: +SKIP
    ...     print(client.emit_with_ack("chat", "hi", timeout=5))
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sockjet-client",
                                        daemon=True)
        self._thread.start()
        self._async: AsyncClient = self._run(self._create(url, options))

    @staticmethod
    async def _create(url: str, options: dict[str, Any]) -> AsyncClient:
        return AsyncClient(url, **options)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking call from a handler: use the AsyncClient there")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _soon(self, fn: Any) -> None:
        self._loop.call_soon_threadsafe(fn)

    @property
    def asyncio_client(self) -> AsyncClient:
        return self._async

    @property
    def id(self) -> str | None:
        return self._async.id

    @property
    def connected(self) -> bool:
        return self._async.connected

    @property
    def transport(self) -> str | None:
        return self._async.transport

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        return self._async.on(event, handler)

    def of(self, name: str, auth: Any = None) -> Namespace:
        nsp = self._run(self._of(name, auth))
        return Namespace(self, nsp)

    async def _of(self, name: str, auth: Any) -> ClientNamespace:
        return self._async.of(name, auth)

    def connect(self) -> None:
        self._run(self._async.connect())

    def emit(self, event: str, *args: Any, callback: Handler | None = None) -> None:
        self._soon(functools.partial(self._async.emit, event, *args, callback=callback))

    def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        return self._run(self._async.emit_with_ack(event, *args, timeout=timeout))

    def wait(self, timeout: float | None = None) -> None:
        self._run(self._async.wait(), timeout)

    def disconnect(self) -> None:
        """Disconnect and stop the client's thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._async.disconnect())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
