"""Long-lived real Node peers for the cross-server tests, driven from Python over JSON lines:
socket.io-client sockets (2.x and 4.x), socket.io 4.8 servers on the official Redis adapters,
and one-shot runs of the official Redis emitter. Binary values are Python ``bytes`` here and
``{"$bin": "<hex>"}`` on the wire to Node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import pytest
from conftest import NODE_DIR, free_port, process, run_node_json

#: how much of a peer's stderr is kept (its end) for error messages
STDERR_KEEP = 8000


class NodePeerError(AssertionError):
    """A command failed in the Node peer, or the peer is gone; the message has its stderr."""


def to_json(value: Any) -> Any:
    """``value`` with every ``bytes`` (also in lists, tuples and dicts) as ``{"$bin": hex}``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bin": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    """The reverse of :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"} and isinstance(value["$bin"], str):
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    return value


def _require_node_modules(*packages: str) -> None:
    missing = [p for p in packages if not (NODE_DIR / "node_modules" / p).is_dir()]
    if missing:
        pytest.fail(f"tests/node/node_modules lacks {', '.join(missing)}: run `npm ci` in "
                    "tests/node")


class _LinePeer:
    """A Node script under tests/node driven by JSON command lines on its stdin; one reader
    task takes its stdout lines and settles the pending command of each reply by id."""

    script = ""
    packages: tuple[str, ...] = ()

    def __init__(self, *args: str) -> None:
        self._args = args
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr = bytearray()
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._gone: str | None = None
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        _require_node_modules(*self.packages)
        try:
            self._proc = await self._stack.enter_async_context(process(
                "node", NODE_DIR / self.script, *self._args, cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=1 << 24))
            stderr_task = asyncio.ensure_future(self._read_stderr())
            self._tasks = [stderr_task, asyncio.ensure_future(self._read_stdout(stderr_task))]
            await self._started()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._close()

    async def _started(self) -> None:
        """Wait for whatever says the peer is ready (nothing by default)."""

    def _notice(self, message: dict[str, Any]) -> None:
        """A line without a command id."""

    @property
    def pid(self) -> int:
        """The Node process's id."""
        assert self._proc is not None
        return self._proc.pid

    def stderr(self) -> str:
        """The end of what the peer wrote on stderr so far."""
        return self._stderr[-STDERR_KEEP:].decode(errors="replace")

    def _error(self, what: str) -> NodePeerError:
        err = self.stderr().strip()
        return NodePeerError(f"{self.script}: {what}" + (f"\n--- stderr ---\n{err}" if err else ""))

    async def call(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        """Run command ``op`` with ``params`` (a trailing ``_`` is dropped from a name, for
        ``except_``) and return its result; a failed command raises :class:`NodePeerError`."""
        if self._gone is not None:
            raise self._error(self._gone)
        assert self._proc is not None and self._proc.stdin is not None
        command_id = next(self._ids)
        command = {k.removesuffix("_"): to_json(v) for k, v in params.items()}
        if "id" in command or "op" in command:
            raise ValueError("id and op name the command itself, not a parameter")
        command.update(id=command_id, op=op)
        if timeout is None:
            timeout = float(params.get("timeout_ms") or 5000) / 1000 + 10
        future = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            self._proc.stdin.write(json.dumps(command).encode() + b"\n")
            await self._proc.stdin.drain()
            reply = await asyncio.wait_for(future, timeout)
        except (BrokenPipeError, ConnectionResetError):
            await self._settle()
            raise self._error(f"{op}: the peer is gone ({self._gone})") from None
        except TimeoutError:
            raise self._error(f"{op} {params}: no reply within {timeout} s") from None
        finally:
            self._pending.pop(command_id, None)
        if not reply.get("ok"):
            raise self._error(f"{op} {params}: {reply.get('error')}")
        return from_json(reply.get("result"))

    async def _read_stdout(self, stderr_task: asyncio.Future[None]) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    self._stderr += b"[stdout] " + line
                    continue
                if not isinstance(message, dict):
                    continue
                future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                else:
                    self._notice(message)
        finally:
            # the stderr of a crash comes with it: give it a moment before reporting
            with contextlib.suppress(BaseException):
                await asyncio.wait({stderr_task}, timeout=1)
            code = self._proc.returncode
            self._gone = "the Node process exited" + (f" ({code})" if code is not None else "")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._error(self._gone))
            self._notice({"$gone": self._gone})

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-4 * STDERR_KEEP]

    async def _settle(self) -> None:
        with contextlib.suppress(BaseException):
            await asyncio.wait(self._tasks, timeout=2)

    async def _close(self) -> None:
        try:
            await self._stack.aclose()  # kills the process group, waits for it
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


class NodeClients(_LinePeer):
    """Real socket.io-client sockets (2.x and 4.x) in one long-lived Node process
    (tests/node/sio_repl.js), each known by a name; every event a socket receives is queued
    for :meth:`wait` and :meth:`drain`."""

    script = "sio_repl.js"
    packages = ("sio2", "sio4")

    async def connect(self, name: str, url: str, version: int = 4,
                      transport: str | None = None, nsp: str = "/",
                      opts: dict[str, Any] | None = None, timeout: float = 5) -> str:
        """Connect socket ``name`` (``transport`` "polling" or "websocket" only, or None for
        polling then upgrade; no reconnection) and return its id; a refusal raises."""
        result = await self.call("connect", name=name, version=version, url=url, nsp=nsp,
                                 transport=transport, opts=opts or {},
                                 timeout_ms=int(timeout * 1000))
        return str(result["sid"])

    async def wait(self, name: str, event: str, timeout: float = 5) -> list[Any]:
        """The args of the next ``event`` received by ``name`` (waiting up to ``timeout``)."""
        result: list[Any] = await self.call("wait", name=name, event=event,
                                            timeout_ms=int(timeout * 1000))
        return result

    async def drain(self, name: str, event: str) -> list[list[Any]]:
        """The args of every queued ``event`` of ``name``, emptying its queue."""
        result: list[list[Any]] = await self.call("drain", name=name, event=event)
        return result

    async def emit(self, name: str, event: str, *args: Any, ack: bool = False,
                   timeout: float = 5) -> list[Any] | None:
        """Emit ``event``; with ``ack``, wait for the ack and return its args."""
        result: list[Any] | None = await self.call("emit", name=name, event=event,
                                                   args=list(args), ack=ack,
                                                   timeout_ms=int(timeout * 1000))
        return result

    async def reply(self, name: str, event: str, *args: Any) -> None:
        """From now on, answer ``event``s asking ``name`` for an ack with ``args``."""
        await self.call("reply", name=name, event=event, args=list(args))

    async def state(self, name: str) -> dict[str, Any]:
        """``{id, connected, transport}`` of socket ``name``."""
        result: dict[str, Any] = await self.call("state", name=name)
        return result

    async def disconnect(self, name: str) -> None:
        await self.call("disconnect", name=name)

    async def close_transport(self, name: str) -> None:
        """Close ``name``'s Engine.IO connection as a lost network would (no DISCONNECT)."""
        await self.call("close_transport", name=name)

    async def close_all(self) -> None:
        await self.call("close_all")


class NodeRedisServer(_LinePeer):
    """A real socket.io 4.8 server (tests/node/redis_node_server.js) using an official Redis
    adapter, ``adapter`` "classic" (``createAdapter``), "sharded" (``createShardedAdapter``)
    or "streams" (``@socket.io/redis-streams-adapter``), on ``redis_url``; ``opts`` go to its
    config (key, requestsTimeout, publishOnSpecificResponseChannel, channelPrefix,
    subscriptionMode, streamName, maxLen, readCount, sessionKeyPrefix, recovery, namespaces,
    serverSideEvents, admin: ``{"serverId", "mode", "namespace"?}`` for the official
    ``@socket.io/admin-ui`` without auth). Ready (listening, subscribed, reading its stream)
    once entered."""

    script = "redis_node_server.js"
    packages: tuple[str, ...] = ("srv4", "redis-adapter", "redis4")
    start_timeout = 15.0

    def __init__(self, port: int | None, redis_url: str, adapter: str = "classic",
                 **opts: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {"port": self.port, "redis": redis_url, "adapter": adapter, **opts}
        if adapter == "streams":
            self.packages = (*self.packages, "redis-streams-adapter")
        if opts.get("admin"):
            self.packages = (*self.packages, "admin-ui")
        super().__init__(json.dumps(self.config))
        self._ready: asyncio.Future[None] | None = None

    async def _started(self) -> None:
        # created before the first await here, so before the reader can see the ready line
        self._ready = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._ready, self.start_timeout)
        except TimeoutError:
            raise self._error(f"not ready within {self.start_timeout} s") from None

    def _notice(self, message: dict[str, Any]) -> None:
        if self._ready is None or self._ready.done():
            return
        if message.get("ready"):
            self._ready.set_result(None)
        elif "$gone" in message:
            self._ready.set_exception(self._error(f"{message['$gone']} before it was ready"))

    async def events(self) -> list[dict[str, Any]]:
        """What the server observed since the last call (connections, client events,
        server-side events, disconnections), in order."""
        result: list[dict[str, Any]] = await self.call("events")
        return result


async def node_emitter(redis_url: str, ops: list[dict[str, Any]], key: str = "socket.io",
                       timeout: float = 30) -> None:
    """Run ``ops`` with the official Redis emitter (tests/node/redis_emitter.js); returns once
    every operation has been published."""
    _require_node_modules("redis-emitter", "redis4")
    config = {"redis": redis_url, "key": key, "ops": to_json(ops)}
    result = await run_node_json("redis_emitter.js", config, timeout=timeout)
    if result["exit_code"] != 0 or not result.get("done"):
        raise NodePeerError(f"redis_emitter.js failed (exit {result['exit_code']}): {result}")


__all__ = ["NodeClients", "NodePeerError", "NodeRedisServer", "from_json", "node_emitter",
           "to_json"]
