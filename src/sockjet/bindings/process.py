"""What every server process sets up, whichever way it serves: the event loop, the garbage
collector's tuning and logging; and what to serve from a target (a sockjet server or an ASGI
app). Used by the runners, the uvicorn runner and the worker processes."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from typing import Any

from ..engine.server import Engine


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


def configure_logging(level: str) -> None:
    """What the native runner logs: sockjet's loggers at ``level`` (uvicorn has its own)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sockjet").setLevel(level.upper() if level != "trace" else logging.DEBUG)
