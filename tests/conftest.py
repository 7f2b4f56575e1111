"""Shared fixtures: real servers on 127.0.0.1 free ports, real Node clients from tests/node."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import uvloop

from sockjet.bindings import runner
from sockjet.bindings.native import NativeServer

NODE_DIR = Path(__file__).parent / "node"
SOCKJET = Path(sys.executable).with_name("sockjet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: which binding serves sockjet servers in this run: "native" (the default runner) or "asgi"
#: (uvicorn); scripts/test.sh runs the suite once with each
BINDING = os.environ.get("SOCKJET_TEST_BINDING", "native")
BINDINGS = ("native", "asgi")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Tests run on uvloop, as the runners do in production."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(params=BINDINGS)
def binding(request: pytest.FixtureRequest) -> str:
    """For tests of what each binding must do itself: run once per binding."""
    return str(request.param)


@asynccontextmanager
async def serve(target: Any, binding: str | None = None,
                **uvicorn_options: Any) -> AsyncIterator[str]:
    """Run ``target`` on a free port and yield its URL: sockjet servers on the binding under
    test (or ``binding``), ASGI apps (and uvicorn-only options) on uvicorn."""
    port = free_port()
    if (binding or BINDING) == "native" and runner.use_native(target, **uvicorn_options):
        native = NativeServer(target, "127.0.0.1", port)
        task = await _started(native.serve(), lambda: native.started)
        stop = native.request_stop
    else:
        options = {"log_level": "warning", **uvicorn_options}
        cfg, engine = runner.config(target, "127.0.0.1", port, **options)
        server = runner._Server(cfg, engine)
        task = await _started(server._serve(), lambda: server.started)  # no signal capture

        def stop() -> None:
            server.should_exit = True

    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop()
        await asyncio.wait_for(task, 15)


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


async def run_node(script: str, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    """Run ``node tests/node/<script> args...``; return (exit code, stdout, stderr)."""
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("tests/node/node_modules missing: run the README's test command")
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


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
async def sockjet_process(cwd: Path, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``sockjet *args`` with output in ``cwd/sockjet.log``; always killed on the way out."""
    log = _open_log(cwd / "sockjet.log")
    proc = await asyncio.create_subprocess_exec(
        str(SOCKJET), *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
