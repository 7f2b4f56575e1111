"""Serving one sockjet server from several processes: a supervisor and N workers on one port.

The supervisor binds the listening socket, forks the workers (which inherit it: the kernel
gives each new connection to one of them), restarts a worker that dies, and on SIGTERM/SIGINT
stops them all (each answers its pending polls and closes its WebSockets) and exits with 0.

No sticky sessions are needed: each worker tags the ids of the sessions it opens
(:func:`~sockjet.bindings.native.handoff.tagged_sid_factory`), and a worker that reads a request
for another worker's session passes the connection to it (:mod:`sockjet.bindings.native.
handoff`). Broadcasts and the other adapter operations reach every worker's sockets through the
inter-worker adapter (:mod:`sockjet.adapters.workers`), unless the server was given an adapter
of its own (Redis, for several machines), which the workers then share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from ..adapters.workers import WorkerLink
from ..exceptions import AdapterError
from .native.handoff import MAX_WORKERS, Handoff, tagged_sid_factory
from .native.server import NativeServer
from .process import configure_logging, native_loop_factory, tune_gc

log = logging.getLogger("sockjet.workers")

#: a worker that dies sooner than this after its start is restarted only after a pause (a crash
#: at start-up would otherwise spin the machine)
_QUICK_DEATH = 1.0
_RESTART_PAUSE = 1.0


def worker_count(workers: int | str) -> int:
    """``workers`` as a number of processes: 0 or ``"auto"`` means one per core."""
    if workers == "auto" or workers == 0:
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError("workers must be a positive number of processes, 0 or 'auto' "
                         "(one per core)")
    if workers > MAX_WORKERS:
        raise ValueError(f"workers must be at most {MAX_WORKERS}")
    return workers


def check_target(target: Any) -> None:
    """Workers serve sockjet servers on the native binding; say what to do otherwise."""
    if not hasattr(target, "engine") or not hasattr(target, "asgi_app"):
        raise TypeError(
            "workers serve a sockjet.Server or sockjet.EngineServer on the native runner; an "
            "ASGI application's processes cannot pass sessions to each other, so run it with "
            "one process per port (or serve the sockjet server itself with workers)")


#: the kernel spreads new connections evenly over the workers' own listening sockets; without
#: it, the workers share one socket and the busiest tends to accept most connections
REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, listening: bool, backlog: int = 2048) -> socket.socket:
    """A socket bound to ``host:port`` (with ``SO_REUSEPORT`` where the system has it).

    The supervisor binds one without listening: it holds the port for the workers (and fails
    early if the port is taken) but takes no connections; each worker then listens on its own.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if REUSE_PORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listening:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class Supervisor:
    """Forks the workers, restarts the ones that die, stops them all on SIGTERM/SIGINT."""

    def __init__(self, target: Any, sockets: list[socket.socket], count: int,
                 log_level: str = "info", shared: bool = True) -> None:
        self.target = target
        #: the listening sockets the workers share, or (``shared=False``) the bound socket
        #: that holds the port while each worker listens on its own
        self.sockets = sockets
        self.shared = shared
        self.count = count
        self.log_level = log_level
        self.directory = ""
        self.stopping = False
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, start time)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status for the process (0 once all workers
        stopped cleanly)."""
        self.directory = tempfile.mkdtemp(prefix="sockjet-workers-")
        # the workers' lifeline: they hold only its reading end, so it reads as closed as soon
        # as this process is gone, however it ended (even SIGKILL), and they stop then
        self.lifeline, self._lifeline_end = os.pipe()
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for index in range(self.count):
                self._spawn(index)
            host, port = self.sockets[0].getsockname()[:2]
            log.info("sockjet serving %s on http://%s:%s with %d workers (supervisor pid %d)",
                     self.target.engine.path, host, port, self.count, os.getpid())
            while self.children:
                try:
                    pid, code = os.waitpid(-1, 0)
                except ChildProcessError:
                    break
                index, started = self.children.pop(pid)
                exit_code = os.waitstatus_to_exitcode(code)
                if self.stopping:
                    if exit_code != 0:
                        status = 1
                        log.error("worker %d (pid %d) stopped with status %s", index, pid,
                                  exit_code)
                    continue
                log.error("worker %d (pid %d) died (%s); starting a new one", index, pid,
                          _describe(exit_code))
                if time.monotonic() - started < _QUICK_DEATH:
                    time.sleep(_RESTART_PAUSE)
                if not self.stopping:
                    self._spawn(index)
        finally:
            os.close(self.lifeline)
            os.close(self._lifeline_end)
            shutil.rmtree(self.directory, ignore_errors=True)
            for sig, handler in previous.items():  # last: a second Ctrl+C changes nothing
                signal.signal(sig, handler)
        return status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping %d workers", len(self.children))
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(self._lifeline_end)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                sockets = self.sockets
                if not self.shared:
                    host, port = sockets[0].getsockname()[:2]
                    sockets = [bind(host, port, listening=True)]
                code = run_worker(self.target, sockets, index, self.count, self.directory,
                                  self.log_level, self.lifeline)
            except AdapterError as exc:  # Redis unreachable: said in a line, tried again
                log.error("worker %d cannot start: %s", index, exc)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = (index, time.monotonic())


def run_worker(target: Any, sockets: list[socket.socket], index: int, count: int,
               directory: str, log_level: str = "info", lifeline: int | None = None) -> int:
    """The body of worker ``index``: serve until SIGTERM/SIGINT (or until ``lifeline``, a pipe
    whose other end the supervisor holds, reads as closed), return its exit status."""
    tag_logs(index)
    configure_logging(log_level)
    tune_gc()
    target.engine.new_sid = tagged_sid_factory(index)
    target.engine.worker = index
    with asyncio.Runner(loop_factory=native_loop_factory()) as loop_runner:
        loop_runner.run(_serve_worker(target, sockets, index, count, directory, lifeline))
    for sig in (signal.SIGTERM, signal.SIGINT):  # stopped: more signals change nothing
        signal.signal(sig, signal.SIG_IGN)
    return 0


async def _serve_worker(target: Any, sockets: list[socket.socket], index: int, count: int,
                        directory: str, lifeline: int | None) -> None:
    link: WorkerLink | None = None
    if getattr(target, "uses_default_adapter", False):  # Socket.IO, no adapter of the user's
        link = WorkerLink(index, count, directory)
        await link.start()
        target.replace_adapter(link.adapter)
    server = NativeServer(target, sockets=sockets, handoff=Handoff(index, count, directory))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # kept until the loop closes: a signal during
        loop.add_signal_handler(sig, server.request_stop)  # the shutdown changes nothing
    if lifeline is not None:
        loop.add_reader(lifeline, _orphaned, lifeline, server)
    try:
        await server.serve(handle_signals=False)
    finally:
        if link is not None:
            await link.close()
        if lifeline is not None and _supervisor_gone(lifeline):
            # nobody else will remove the workers' socket directory (the first one does)
            shutil.rmtree(directory, ignore_errors=True)


def _supervisor_gone(lifeline: int) -> bool:
    """Whether the lifeline reads as closed (nothing is ever written to it)."""
    os.set_blocking(lifeline, False)
    try:
        return os.read(lifeline, 1) == b""
    except BlockingIOError:
        return False


def _orphaned(lifeline: int, server: NativeServer) -> None:
    """The lifeline is readable: the supervisor is gone (nothing is ever written to it)."""
    asyncio.get_running_loop().remove_reader(lifeline)
    if not server.should_exit:
        log.error("the supervisor is gone: stopping")
        server.request_stop()


class _WorkerTag(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"[worker {index}] "

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_sockjet_worker", False):
            record.msg = self.prefix + str(record.msg)
            record._sockjet_worker = True
        return True


def tag_logs(index: int) -> None:
    """Every log line of this process says which worker wrote it."""
    tag = _WorkerTag(index)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        handler.addFilter(tag)


def _describe(exit_code: int) -> str:
    if exit_code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-exit_code).name}"
    return f"exit status {exit_code}"


def run_workers(target: Any, host: str, port: int, workers: int | str,
                sockets: list[socket.socket] | None = None, log_level: str = "info") -> None:
    """Serve ``target`` with ``workers`` processes (see the module docs) until SIGTERM/SIGINT."""
    check_target(target)
    count = worker_count(workers)
    configure_logging(log_level)
    if sockets:
        for sock in sockets:
            sock.setblocking(False)
        supervisor = Supervisor(target, sockets, count, log_level)
    elif REUSE_PORT:
        supervisor = Supervisor(target, [bind(host, port, listening=False)], count, log_level,
                                shared=False)
    else:
        supervisor = Supervisor(target, [bind(host, port, listening=True)], count, log_level)
    status = supervisor.run()
    if status:
        sys.exit(status)
