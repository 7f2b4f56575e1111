"""The runners: the native binding for sockjet servers (the default), uvicorn with uvloop and
httptools for ASGI apps (:mod:`sockjet.bindings.uvicorn_runner`, imported only then); both shut
sessions down cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from .native import NativeServer
from .process import configure_logging, native_loop_factory, tune_gc

log = logging.getLogger("sockjet.runner")


def use_native(target: Any, runner: str = "auto", **uvicorn_options: Any) -> bool:
    """Whether ``target`` runs on the native binding: sockjet servers do by default; wrapped
    ASGI apps and uvicorn-only options (TLS files, proxy headers...) need uvicorn."""
    if runner not in ("auto", "native", "uvicorn"):
        raise ValueError("runner must be 'auto', 'native' or 'uvicorn'")
    is_server = hasattr(target, "asgi_app")  # a sockjet Server or Engine
    if runner == "native":
        if not is_server:
            raise TypeError("the native runner serves sockjet servers; use runner='uvicorn' "
                            "for ASGI applications")
        if set(uvicorn_options) - {"log_level"}:
            raise TypeError(f"uvicorn options {sorted(set(uvicorn_options) - {'log_level'})} "
                            "need runner='uvicorn'")
        return True
    return runner == "auto" and is_server and not set(uvicorn_options) - {"log_level"}


def run(target: Any, host: str = "127.0.0.1", port: int = 3000, *,
        sockets: list[socket.socket] | None = None, runner: str = "auto",
        workers: int | str = 1, **uvicorn_options: Any) -> None:
    """Serve a sockjet server (or any ASGI app) until SIGINT/SIGTERM.

    sockjet servers run on the native binding (asyncio + httptools + websockets' sans-I/O
    protocol) unless ``runner="uvicorn"``; ASGI applications and uvicorn-only options run on
    uvicorn with uvloop and httptools. ``sockets``: already-bound listening sockets to serve
    instead of ``host:port``. ``workers``: serve from that many processes (0 or ``"auto"``: one
    per core) with no sticky sessions, see :mod:`sockjet.bindings.workers`. Extra keyword
    arguments go to :class:`uvicorn.Config`. The process is tuned for a server (see
    :func:`tune_gc`).
    """
    if workers != 1:
        if not use_native(target, runner, **uvicorn_options):
            raise TypeError(_WORKERS_NEED_NATIVE)
        from .workers import run_workers

        run_workers(target, host, port, workers, sockets,
                    uvicorn_options.get("log_level", "info"))
        return
    tune_gc()
    if use_native(target, runner, **uvicorn_options):
        configure_logging(uvicorn_options.get("log_level", "info"))
        server = NativeServer(target, host, port, sockets)
        with asyncio.Runner(loop_factory=native_loop_factory()) as loop_runner:
            loop_runner.run(server.serve())
        return
    from .uvicorn_runner import UvicornServer, config

    cfg, engine = config(target, host, port, **uvicorn_options)
    UvicornServer(cfg, engine).run(sockets=sockets)


_WORKERS_NEED_NATIVE = (
    "workers need the native runner: uvicorn's worker processes cannot pass sessions to each "
    "other, so polling clients would fail and broadcasts reach one worker's clients only. Serve "
    "the sockjet server itself (not an ASGI app wrapping it), without runner='uvicorn' and "
    "uvicorn-only options (put TLS in a reverse proxy in front), or serve with one process")


async def serve(target: Any, host: str = "127.0.0.1", port: int = 3000, *,
                sockets: list[socket.socket] | None = None, runner: str = "auto",
                **uvicorn_options: Any) -> None:
    """Async form of :func:`run` for callers that own the event loop."""
    if use_native(target, runner, **uvicorn_options):
        await NativeServer(target, host, port, sockets).serve()
        return
    from .uvicorn_runner import UvicornServer, config

    cfg, engine = config(target, host, port, **uvicorn_options)
    server = UvicornServer(cfg, engine)
    serving = asyncio.ensure_future(server.serve(sockets=sockets))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        if server.started:
            # uvicorn skips its shutdown when its task is cancelled: ask it to stop instead, so
            # that a cancelled serve() shuts down as a signal would (sessions closed, polls
            # answered)
            server.should_exit = True
        else:  # still starting (an adapter connecting): interrupted, it stops what started
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        raise
