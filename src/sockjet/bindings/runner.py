"""The runners: the native binding for sockjet servers (the default), uvicorn with uvloop and
httptools for ASGI apps (:mod:`sockjet.bindings.uvicorn_runner`, imported only then); both shut
sessions down cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import socket
from typing import Any

from ..engine.server import Engine
from .native import NativeServer

log = logging.getLogger("sockjet.runner")


def has(module: str) -> bool:
    """Whether ``module`` can be imported (optional accelerators: uvloop, httptools)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def resolve(target: Any) -> tuple[Any, Engine | None]:
    """``(asgi_app, engine)`` for a server object (anything with ``asgi_app()``) or an ASGI app."""
    if hasattr(target, "asgi_app"):
        app = target.asgi_app()
        return app, app.engine
    if callable(target):
        return target, getattr(target, "engine", None)
    raise TypeError(f"cannot serve {target!r}: expected a sockjet server or an ASGI application")


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


def native_loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


#: the interpreter's collection thresholds, and sockjet's for a server process
_DEFAULT_GC_THRESHOLDS = (700, 10, 10)
GC_THRESHOLDS = (7000, 10, 100)


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a server process, unless already tuned.

    With thousands of live connections the default thresholds cost a connection storm 40% of
    its CPU, and every full collection walks every live object (half a second for 10,000
    connections). sockjet's own objects do not need the collector (a closed connection frees
    itself), so: objects alive at start-up are frozen out of collections, young collections run
    ten times less often and full ones ten times less often (and still only once the long-lived
    objects grew by a quarter, Python's own rule); reference cycles of the application are
    still collected. A process whose thresholds are not the interpreter's defaults is left as it
    is. Measured with bench/run.py (see bench/README.md).
    """
    if gc.get_threshold() != _DEFAULT_GC_THRESHOLDS:
        return
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
        # uvicorn skips its shutdown when its task is cancelled: ask it to stop instead, so that
        # a cancelled serve() shuts down as a signal would (sessions closed, polls answered)
        server.should_exit = True
        await serving
        raise


def configure_logging(level: str) -> None:
    """What the native runner logs: sockjet's loggers at ``level`` (uvicorn has its own)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sockjet").setLevel(level.upper() if level != "trace" else logging.DEBUG)
