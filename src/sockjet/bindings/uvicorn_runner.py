"""Serving on uvicorn (ASGI apps, or ``runner="uvicorn"``): uvicorn's protocols held to sockjet's
limits, sessions closed before uvicorn waits for connections, a clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import uvicorn

from ..engine.server import Engine
from ..engine.transport import DEFAULT_HTTP_LIMITS
from .guards import watch_accept_failures
from .process import has, resolve
from .uvicorn_protocols import HTTPProtocol, WebSocketProtocol


class _RejectionNoise(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake." after a handshake refused with an HTTP response (the ASGI
    ``websocket.http.response`` extension), although the response was sent. sockjet refuses
    every bad or unauthorised WebSocket that way, so the message would flood the logs under a
    refused-origin storm; our app always completes the handshake one way or another."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


_NOISE = _RejectionNoise()


class UvicornServer(uvicorn.Server):
    """Closes Engine.IO sessions before uvicorn waits for connections to finish, so that pending
    long-polls are answered at once instead of holding the shutdown for a ping interval."""

    def __init__(self, config: uvicorn.Config, engine: Engine | None) -> None:
        super().__init__(config)
        self._engine = engine

    async def startup(self, sockets: Any = None) -> None:
        # asyncio reports every failed accept() (out of descriptors): logged once instead
        watch_accept_failures(asyncio.get_running_loop())
        if self._engine is None:
            return await super().startup(sockets)
        # the engine's hooks (adapters connecting...) run here, not only on lifespan startup,
        # which a wrapped app may keep to itself; an error stops the start as on native
        try:
            await self._engine.startup()
            await super().startup(sockets)
        finally:
            if not self.started:  # uvicorn gave up (lifespan failed, port in use): no shutdown
                await self._engine.shutdown()

    async def shutdown(self, sockets: Any = None) -> None:
        if self._engine is not None:
            await self._engine.shutdown()
        await super().shutdown(sockets)

    async def serve_without_signals(self, sockets: Any = None) -> None:
        """Serve until ``should_exit``, leaving signals alone (an embedding program's own)."""
        await self._serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGINT/SIGTERM once its graceful shutdown is over, which
        # kills the process with that signal (SIGINT: a KeyboardInterrupt traceback). The
        # shutdown is complete by then: return normally instead (exit status 0).
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def config(
    target: Any,
    host: str = "127.0.0.1",
    port: int = 3000,
    **uvicorn_options: Any,
) -> tuple[uvicorn.Config, Engine | None]:
    app, engine = resolve(target)
    limits = engine.http_limits if engine is not None else DEFAULT_HTTP_LIMITS
    httptools = has("httptools")
    options: dict[str, Any] = {
        "loop": "uvloop" if has("uvloop") else "asyncio",
        # uvicorn's protocols, held to sockjet's head limits and deadlines
        "http": HTTPProtocol if httptools else "h11",
        "ws": WebSocketProtocol,
        "timeout_keep_alive": limits.keep_alive_timeout,
        "lifespan": "auto",  # wrapped apps without lifespan support still start
        "ws_ping_interval": None,  # Engine.IO has its own heartbeat
        "ws_per_message_deflate": bool(engine and engine.per_message_deflate),
        "log_level": "info",
    }
    if not httptools:
        options["h11_max_incomplete_event_size"] = limits.max_header_size
    if engine is not None:
        options["ws_max_size"] = engine.max_http_buffer_size
    options.update(uvicorn_options)
    cfg = uvicorn.Config(app, host=host, port=port, **options)  # configures uvicorn's loggers
    logging.getLogger("uvicorn.error").addFilter(_NOISE)
    return cfg, engine
