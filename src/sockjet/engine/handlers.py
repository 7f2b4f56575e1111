"""Application handlers, for every layer and for the client: the registry behind
``on(event, handler)`` and how handlers are called (sync or async; a failure is logged and
contained; a coroutine is kept alive until it ends)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeGuard, TypeVar, overload

#: an application callback: sync, or async (its coroutine is run as a task)
Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

#: return values that are certainly not awaitable (skips the slower ABC check)
_PLAIN = frozenset({type(None), tuple, list, dict, str, int, float, bool, bytes})


class Handlers:
    """Handlers by event name, in registration order."""

    __slots__ = ("_by_event",)

    def __init__(self) -> None:
        self._by_event: dict[str, list[Handler]] = {}

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Add ``handler`` for ``event``; without one, a decorator that does."""

        def register(fn: H) -> H:
            self._by_event.setdefault(event, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler of ``event``, or all of them."""
        if handler is None:
            self._by_event.pop(event, None)
            return
        handlers = self._by_event.get(event)
        if handlers is not None and handler in handlers:
            handlers.remove(handler)

    def get(self, event: str) -> list[Handler] | None:
        """The handlers of ``event`` (the live list: copy it to call while they may change)."""
        return self._by_event.get(event)

    def clear(self) -> None:
        """Drop every handler (breaks reference cycles with application closures)."""
        self._by_event.clear()

    def __bool__(self) -> bool:
        return bool(self._by_event)


class HasHandlers:
    """Mixin for what the application registers handlers on: ``on(event, handler)``, also
    usable as a decorator, adds to ``self.handlers``."""

    __slots__ = ()
    handlers: Handlers

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register ``handler`` for ``event``; without one, a decorator that does."""
        return self.handlers.on(event, handler)


class Invoker:
    """Calls application handlers for one server or client, and keeps their tasks."""

    __slots__ = ("_log", "tasks")

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        #: running handler coroutines (kept referenced until they end)
        self.tasks: set[asyncio.Future[Any]] = set()

    def call(self, fn: Handler, *args: Any) -> Any:
        """Call a sync or async handler: a sync one's result, ``None`` for an async one (its
        coroutine runs as a task) or when it raised (logged)."""
        try:
            result = fn(*args)
        except Exception:
            self._log.exception("error in handler %r", fn)
            return None
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            self.track(result)
            return None
        return result

    def run_event(self, handlers: list[Handler], event: str, args: tuple[Any, ...] | list[Any],
                  on_result: Callable[[Any], None] | None, where: str) -> None:
        """Call the handlers of one incoming ``event`` in registration order (as Node); the
        first one's return value, awaited if it is a coroutine, goes to ``on_result`` (the ack)
        unless that handler failed. A failure is logged with the event and ``where`` it came
        from (a socket id); the other handlers still run."""
        first = handlers[0]
        try:
            result = first(*args)
        except Exception:
            self._log.exception("error in handler for %r on %s", event, where)
            result = on_result = None
        if len(handlers) > 1:
            for fn in handlers[1:]:
                try:
                    later = fn(*args)
                except Exception:
                    self._log.exception("error in handler for %r on %s", event, where)
                    continue
                if type(later) not in _PLAIN and inspect.isawaitable(later):
                    self.track(later, (event, where))
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            task = self.track(result, (event, where))
            if on_result is not None:
                task.add_done_callback(partial(_deliver, on_result))
        elif on_result is not None:
            on_result(result)

    def emit(self, handlers: Handlers, event: str, *args: Any) -> None:
        """Call every handler of ``event`` (a copy of the list: a handler may change it)."""
        listeners = handlers.get(event)
        if listeners:
            for fn in tuple(listeners):
                self.call(fn, *args)

    def track(self, awaitable: Awaitable[Any],
              about: tuple[str, str] | None = None) -> asyncio.Future[Any]:
        """Run ``awaitable`` as a task kept alive until it ends; its failure is logged (with
        ``about``: the event and where it came from)."""
        task = asyncio.ensure_future(awaitable)
        self.tasks.add(task)
        task.add_done_callback(self._done if about is None else partial(self._done, about=about))
        return task

    def _done(self, task: asyncio.Future[Any], about: tuple[str, str] | None = None) -> None:
        self.tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if about is None:
            self._log.error("error in handler", exc_info=task.exception())
        else:
            self._log.error("error in handler for %r on %s", *about, exc_info=task.exception())


def _deliver(on_result: Callable[[Any], None], task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is None:
        on_result(task.result())


def is_awaitable(value: object) -> TypeGuard[Awaitable[Any]]:
    """``inspect.isawaitable``, answered at once for the plain values handlers usually return."""
    return type(value) not in _PLAIN and inspect.isawaitable(value)
