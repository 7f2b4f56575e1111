"""Shared fixtures: real servers on 127.0.0.1 free ports, real Node clients from tests/node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import uvloop

from sockjet.bindings import runner, uvicorn_runner
from sockjet.bindings.native import NativeServer

NODE_DIR = Path(__file__).parent / "node"
SOCKJET = Path(sys.executable).with_name("sockjet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BINDINGS = ("native", "asgi")
#: the binding ``serve()`` uses when a test does not name one: the ``binding`` fixture's while
#: a test runs per binding, else the native one (the default runner)
_binding = "native"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Tests run on uvloop, as the runners do in production."""
    return {"uvloop": uvloop.new_event_loop}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use the ``binding`` fixture (or sit in a module that says
    ``pytestmark = pytest.mark.usefixtures("binding")``) run once per binding, unless marked
    ``single_binding`` (the binding does not matter to them) or choosing their bindings with
    their own ``parametrize("binding", ..., indirect=True)``."""
    if "binding" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("single_binding"):
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "binding" in ([n.strip() for n in names.split(",")] if isinstance(names, str)
                         else list(names)):
            return
    metafunc.parametrize("binding", BINDINGS, indirect=True)


@pytest.fixture
def binding(request: pytest.FixtureRequest) -> Iterator[str]:
    """The binding this test runs on; ``serve()`` uses it unless told otherwise."""
    global _binding
    _binding = str(getattr(request, "param", "native"))
    try:
        yield _binding
    finally:
        _binding = "native"


@asynccontextmanager
async def serve(target: Any, binding: str | None = None, port: int | None = None,
                **uvicorn_options: Any) -> AsyncIterator[str]:
    """Run ``target`` on a free port (or ``port``) and yield its URL: sockjet servers on the
    binding under test (or ``binding``), ASGI apps (and uvicorn-only options) on uvicorn."""
    port = port or free_port()
    if (binding or _binding) == "native" and runner.use_native(target, **uvicorn_options):
        native = NativeServer(target, "127.0.0.1", port)
        task = await _started(native.serve(), lambda: native.started)
        stop = native.request_stop
    else:
        options = {"log_level": "warning", **uvicorn_options}
        cfg, engine = uvicorn_runner.config(target, "127.0.0.1", port, **options)
        server = uvicorn_runner.UvicornServer(cfg, engine)
        task = await _started(server.serve_without_signals(), lambda: server.started)

        def stop() -> None:
            server.should_exit = True

    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop()
        await asyncio.wait_for(task, 15)


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (the server's own view of things), polling, and fail
    after ``timeout``: the way tests synchronise, never a bare sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def _started(coro: Any, started: Any) -> asyncio.Future[None]:
    task = asyncio.ensure_future(coro)
    for _ in range(500):
        if started() or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
        raise RuntimeError("server did not start")
    return task


def kill_group(pid: int) -> None:
    """Kill a process group started with ``start_new_session=True`` (the process and whatever
    it started, such as the Chromium of a Node helper), if anything of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@asynccontextmanager
async def process(*command: str | Path,
                  **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A subprocess in its own process group, killed with its children on the way out, whatever
    happens (a test that fails or times out leaves nothing running)."""
    proc = await asyncio.create_subprocess_exec(*command, start_new_session=True, **options)
    try:
        yield proc
    finally:
        kill_group(proc.pid)
        await proc.wait()


async def run_node(script: str, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    """Run ``node tests/node/<script> args...``; return (exit code, stdout, stderr)."""
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("tests/node/node_modules missing: run the README's test command")
    async with process("node", NODE_DIR / script, *args, stdout=asyncio.subprocess.PIPE,
                       stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out.decode(), err.decode()


async def run_command(*command: str | Path, timeout: float = 30,
                      **options: Any) -> tuple[int, bytes, bytes]:
    """Run a command to its end (killed with its group on timeout): exit code, stdout, stderr."""
    async with process(*command, stdout=asyncio.subprocess.PIPE,
                       stderr=options.pop("stderr", asyncio.subprocess.PIPE), **options) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out, err or b""


async def run_node_json(script: str, config: dict[str, Any], timeout: float = 30) -> Any:
    code, out, err = await run_node(script, json.dumps(config), timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"node {script} printed no result (exit {code}): {out}\n{err}")
    result = json.loads(lines[-1])
    result["exit_code"] = code
    result["stderr"] = err
    return result


def pytest_configure(config: pytest.Config) -> None:
    sys.path.insert(0, str(Path(__file__).parent))


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@asynccontextmanager
async def sockjet_process(cwd: Path, *args: str,
                          **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """``sockjet *args`` with output in ``cwd/sockjet.log``; always killed on the way out."""
    with _open_log(cwd / "sockjet.log") as log:
        async with process(SOCKJET, *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                           stdout=log, stderr=asyncio.subprocess.STDOUT, **options) as proc:
            yield proc
