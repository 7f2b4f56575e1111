"""Real Redis servers for the cross-server tests: a standalone instance (that a test may stop
and start again on the same port) or a small cluster, on 127.0.0.1 free ports, each in its own
process group and always stopped on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, process, run_command

START_TIMEOUT = 10.0


class RedisError(Exception):
    """An error reply from Redis (``-ERR ...``)."""


class RedisStartError(RuntimeError):
    """redis-server exited or did not answer PING in time; the message has its log."""


def require_redis() -> None:
    """Skip the test when redis-server or redis-cli is missing, except on CI (``CI=true``),
    where a missing Redis is a broken setup and fails the test."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if not missing:
        return
    message = (f"{' and '.join(missing)} not installed (Debian/Ubuntu: apt-get install "
               "redis-server); the Redis tests need a real Redis")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def _read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [await _read_reply(reader) for _ in range(size)]
    raise ConnectionError(f"not a RESP2 reply: {line!r}")


async def command(port: int, *args: str | bytes | int, timeout: float = 5.0) -> Any:
    """Send one command to the Redis on 127.0.0.1:``port`` over a fresh connection and return
    its reply (simple strings as str, bulk strings as bytes, arrays as lists); an error reply
    raises :class:`RedisError`."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)

    async def exchange() -> Any:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            return await _read_reply(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.wait_for(exchange(), timeout)


class RedisServer:
    """One redis-server on a fixed port; :meth:`stop` and :meth:`start` again keep the port,
    so that clients can reconnect to it. Nothing is persisted between runs (``--save ""``)."""

    def __init__(self, port: int, workdir: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / f"redis-{port}.log"
        self._extra_args = tuple(extra_args)
        self._stack: AsyncExitStack | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log(self, tail: int = 4000) -> str:
        """The end of this server's log (all of its runs)."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    async def start(self) -> None:
        """Start redis-server in its own process group and wait until it answers PING."""
        if self._stack is not None:
            raise RuntimeError(f"redis on port {self.port} is already running")
        stack = AsyncExitStack()
        try:
            log = stack.enter_context(self.log_path.open("ab"))
            self._proc = await stack.enter_async_context(process(
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.workdir), *self._extra_args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT))
            self._stack = stack
            await self._until_ready()
        except BaseException:
            self._stack = self._proc = None
            await stack.aclose()
            raise

    async def stop(self) -> None:
        """Kill redis-server (SIGKILL to its group, as in a crash) and wait for its exit;
        nothing happens when it is not running."""
        stack, self._stack = self._stack, None
        self._proc = None
        if stack is not None:
            await stack.aclose()

    async def command(self, *args: str | bytes | int, timeout: float = 5.0) -> Any:
        """Send one command to this server; see :func:`command`."""
        return await command(self.port, *args, timeout=timeout)

    async def _until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise RedisStartError(f"redis-server on port {self.port} exited "
                                      f"({self._proc.returncode}):\n{self.log()}")
            with contextlib.suppress(OSError, RedisError, asyncio.TimeoutError):
                if await command(self.port, "PING", timeout=1) == "PONG":
                    return
            if time.monotonic() > deadline:
                raise RedisStartError(f"redis-server on port {self.port} did not answer PING "
                                      f"within {START_TIMEOUT} s:\n{self.log()}")
            await asyncio.sleep(0.01)


def _ports(count: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken:
            taken.add(port)
            ports.append(port)
    return ports


async def _start_on_free_port(workdir: Path, taken: set[int],
                              extra_args: Callable[[int], Sequence[str]]) -> RedisServer:
    # a free port can be taken by someone else before redis-server binds it: try another one
    for attempt in range(3):
        port = _ports(1, taken)[0]
        server = RedisServer(port, workdir, extra_args(port))
        try:
            await server.start()
            return server
        except RedisStartError as exc:
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


@asynccontextmanager
async def redis_server(*extra_args: str) -> AsyncIterator[RedisServer]:
    """A standalone redis-server on a free port (``extra_args`` go to its command line), with
    a temporary directory removed afterwards; stopped on the way out whatever happens."""
    require_redis()
    with tempfile.TemporaryDirectory(prefix="redis-") as tmp:
        server = await _start_on_free_port(Path(tmp), set(), lambda port: extra_args)
        try:
            yield server
        finally:
            await server.stop()


class RedisCluster:
    """A Redis cluster of primaries only."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes
        self.ports = [n.port for n in nodes]
        self.urls = [n.url for n in nodes]
        self.url = self.urls[0]

    async def info(self) -> list[dict[str, str]]:
        """``CLUSTER INFO`` of every node, as dicts."""
        return [_cluster_info(await n.command("CLUSTER", "INFO")) for n in self.nodes]


def _cluster_info(reply: bytes) -> dict[str, str]:
    fields = (line.partition(":") for line in reply.decode().splitlines() if ":" in line)
    return {key: value for key, _, value in fields}


def _cluster_args(tmp: str, bus: int) -> Callable[[int], Sequence[str]]:
    def args(port: int) -> Sequence[str]:
        return ("--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", f"{tmp}/nodes-{port}.conf",
                "--cluster-node-timeout", "5000")
    return args


@asynccontextmanager
async def redis_cluster(size: int = 3, timeout: float = 20.0) -> AsyncIterator[RedisCluster]:
    """``size`` cluster-enabled redis-servers joined into one cluster by ``redis-cli --cluster
    create`` (no replicas), yielded once every node reports ``cluster_state:ok``."""
    require_redis()
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as tmp:
        async with AsyncExitStack() as stack:
            taken: set[int] = set()
            nodes: list[RedisServer] = []
            for _ in range(size):
                # the bus port is chosen too: the default (port + 10000) may be taken or
                # even beyond 65535 for a port of the ephemeral range
                bus = _ports(1, taken)[0]
                node = await _start_on_free_port(Path(tmp), taken, _cluster_args(tmp, bus))
                stack.push_async_callback(node.stop)
                nodes.append(node)
            code, out, err = await run_command(
                "redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas", "0", "--cluster-yes", timeout=timeout)
            if code != 0:
                raise RuntimeError(f"redis-cli --cluster create failed ({code}):\n"
                                   f"{out.decode(errors='replace')}\n"
                                   f"{err.decode(errors='replace')}")
            cluster = RedisCluster(nodes)
            deadline = time.monotonic() + timeout
            while not all(i.get("cluster_state") == "ok" for i in await cluster.info()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not ok within {timeout} s: "
                                       f"{await cluster.info()}")
                await asyncio.sleep(0.05)
            yield cluster
