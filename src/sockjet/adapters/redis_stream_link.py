"""A Redis stream for one server: :class:`StreamWriter` adds entries (and runs other commands)
in the order they were asked for, pipelined, and tells each caller the id Redis gave its entry;
:class:`StreamReader` reads the stream from its end with ``XREAD BLOCK`` and hands every entry,
in order, to a callback. Both are parts of the server's
:class:`~sockjet.adapters.redis_link.RedisLink`: they count in its state and share its failure
behaviour. While Redis is away, what would be written is dropped and counted (the callers are
told at once, with no id, so that local delivery goes on), and the reader waits for Redis to
answer again and resumes after the last entry it saw.

Entry ids are ``<milliseconds>-<sequence>``; :func:`parse_id` makes them comparable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import ResponseError

from .redis_link import LINK_ERRORS, RECONNECT_MAX, RedisLink

log = logging.getLogger("sockjet.adapters")

#: done(entry_id) once an entry was added (``None``: it was not, Redis being away)
Done = Callable[[str | None], None]
#: deliver(entry_id, fields) for each entry read
Deliver = Callable[[str, Mapping[bytes, bytes]], None]

#: the default time one XREAD waits for new entries (Node's ``blockTimeInMs``)
BLOCK_MS = 5000


def parse_id(entry_id: str) -> tuple[int, int]:
    """``"1712345678901-3"`` as ``(1712345678901, 3)``; :class:`ValueError` if malformed."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Item:
    """One thing for the writer to do in its turn: a command (or ``None``: only ``done``), and
    who to tell."""

    __slots__ = ("args", "done", "size")

    def __init__(self, args: tuple[Any, ...] | None, done: Done | None, size: int) -> None:
        self.args = args
        self.done = done
        self.size = size


class StreamWriter:
    """Writes for one server, in order: ``XADD`` (each caller learns its entry's id), other
    commands (fire and forget) and plain callbacks that must run after what was asked before
    them. What accumulates during one round trip goes in one pipeline."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.ok = True
        #: the id of the last entry added by this writer whose caller was told (``(0, 0)``
        #: before the first): every entry of this server up to it has been handled locally
        self.last_id: tuple[int, int] = (0, 0)
        self._queue: list[_Item] = []
        self._pending_bytes = 0
        self._busy = False  # a batch is being sent, or its callers told
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> bool:
        """Whether something waits for its turn."""
        return self._busy or bool(self._queue)

    def start(self) -> None:
        if self._task is None and not self._closed:
            self.link.add_part(self)
            self._task = asyncio.ensure_future(self._write())

    def xadd(self, stream: str, fields: Mapping[str, str], max_len: int,
             done: Done | None = None) -> None:
        """Add an entry (``XADD stream MAXLEN ~ max_len * field value ...``, as Node does);
        ``done(id)`` once it is in, or ``done(None)`` when it cannot be (Redis away, too much
        waiting): after whatever was asked before either way."""
        args: list[Any] = ["XADD", stream, "MAXLEN", "~", max_len, "*"]
        size = len(stream)
        for key, value in fields.items():
            args += (key, value)
            size += len(key) + len(value)
        if not self._take(size):
            if done is not None:
                self.after_pending(lambda: done(None))
            return
        self._push(_Item(tuple(args), done, size))

    def command(self, *args: Any) -> bool:
        """Run a command in turn, not waiting for its answer (an error is logged); False if it
        was dropped (Redis away)."""
        size = sum(len(a) if isinstance(a, str | bytes) else 8 for a in args)
        if not self._take(size):
            return False
        self._push(_Item(args, None, size))
        return True

    def after_pending(self, callback: Callable[[], None]) -> None:
        """``callback()`` now if nothing waits, else once everything asked before is done."""
        if self.pending:
            self._push(_Item(None, lambda _: callback(), 0))
        else:
            callback()

    def _take(self, size: int) -> bool:
        link = self.link
        if (self._task is None or self._closed or not link.up
                or self._pending_bytes + size > link.max_pending):
            link.drop()
            return False
        self._pending_bytes += size
        return True

    def _push(self, item: _Item) -> None:
        self._queue.append(item)
        if not self._wake.is_set():
            self._wake.set()
            self._idle.clear()

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                self._pending_bytes -= sum(item.size for item in batch)
                self._busy = True
                try:
                    results = await self._send(batch)
                except LINK_ERRORS as exc:
                    self.ok = False
                    self.link.went_down(exc)
                    self._fail(batch)
                    await self._until_commands_work()
                    continue
                except Exception:  # not the link's fault: these items only fail
                    log.exception("cannot send %d commands to Redis at %s", len(batch),
                                  self.link.where)
                    self._fail(batch)
                    continue
                self._tell(batch, results)
            self._busy = False
            self._idle.set()

    async def _send(self, batch: list[_Item]) -> list[Any]:
        commands = [item.args for item in batch if item.args is not None]
        if not commands:
            return []
        pipe = self.link.client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _tell(self, batch: list[_Item], results: list[Any]) -> None:
        answers = iter(results)
        try:
            for item in batch:
                result = None if item.args is None else next(answers)
                entry_id: str | None = None
                if isinstance(result, Exception):
                    self.link.dropped += 1
                    log.warning("Redis at %s refused %s: %s", self.link.where,
                                _text(item.args[0]) if item.args else "?", result)
                elif item.args is not None and item.args[0] == "XADD":
                    entry_id = _text(result)
                self._call(item, entry_id)
                if entry_id is not None:
                    self.last_id = parse_id(entry_id)
        finally:
            self._busy = bool(self._queue)

    def _fail(self, batch: list[_Item]) -> None:
        """The items of ``batch`` and every waiting one: dropped, their callers told at once
        (local delivery goes on)."""
        items = batch + self._queue
        self._queue = []
        self._pending_bytes = 0
        self._busy = False
        for item in items:
            if item.args is not None:
                self.link.dropped += 1
            self._call(item, None)

    @staticmethod
    def _call(item: _Item, entry_id: str | None) -> None:
        if item.done is not None:
            try:
                item.done(entry_id)
            except Exception:
                log.exception("a callback of the Redis stream writer failed")

    async def _until_commands_work(self) -> None:
        if not self._closed and await self.link.until_redis_answers():
            self._fail([])  # what came meanwhile (nothing, unless a part came back first)
            self.ok = True
            await self.link.part_ready()

    async def close(self) -> None:
        """Send what waits (for two seconds at most, while Redis answers), then stop."""
        if self._closed:
            return
        if self._task is not None and self.pending and self.link.up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 2)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail([])
        self.link.remove_part(self)


class StreamReader:
    """Reads ``stream`` from the entry that was its last when :meth:`start` was called (as
    ``XREAD ... STREAMS stream $`` would, without missing what is added meanwhile),
    ``count`` entries at most per ``XREAD BLOCK block_ms`` call, and hands each one, in order,
    to ``deliver``."""

    def __init__(self, link: RedisLink, stream: str, deliver: Deliver, *, count: int = 100,
                 block_ms: int = BLOCK_MS) -> None:
        self.link = link
        self.stream = stream
        self.deliver = deliver
        self.count = count
        kwargs: dict[str, Any] = getattr(link.client, "get_connection_kwargs", dict)()
        timeout = kwargs.get("socket_timeout")
        if isinstance(timeout, int | float) and timeout > 0:
            # a client's own socket timeout must not end a wait for entries
            block_ms = max(1, min(block_ms, int(timeout * 1000 / 2)))
        self.block_ms = block_ms
        self.ok = True
        #: the id of the last entry handed to ``deliver`` (or the stream's last one at start)
        self.last_id = "0-0"
        #: :attr:`last_id`, parsed
        self.position: tuple[int, int] = (0, 0)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Find the stream's end (raises what the link raises if Redis cannot be reached),
        then read from there in a task."""
        if self._task is not None:
            return
        last = await self.link.client.xrevrange(self.stream, "+", "-", count=1)
        if last:
            self._seen(_text(last[0][0]))
        self.link.add_part(self)
        self._task = asyncio.ensure_future(self._read())

    def _seen(self, entry_id: str) -> None:
        self.last_id = entry_id
        self.position = parse_id(entry_id)

    async def _read(self) -> None:
        refused = False
        while True:
            try:
                reply = await self.link.client.xread({self.stream: self.last_id},
                                                     count=self.count, block=self.block_ms)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:  # Redis answers, but no: the key is not a stream...
                if not refused:
                    log.error("cannot read the Redis stream %r at %s: %s; trying again every "
                              "%s s", self.stream, self.link.where, exc, RECONNECT_MAX)
                refused = True
                await asyncio.sleep(RECONNECT_MAX)
                continue
            except LINK_ERRORS as exc:
                self.ok = False
                self.link.went_down(exc)
                await self._until_redis_answers()
                continue
            if refused:
                log.warning("reading the Redis stream %r at %s again", self.stream,
                            self.link.where)
                refused = False
            for entry_id, fields in _entries(reply):
                try:
                    self.deliver(entry_id, fields)
                except Exception:
                    log.exception("cannot handle entry %s of the Redis stream %r", entry_id,
                                  self.stream)
                self._seen(entry_id)

    async def _until_redis_answers(self) -> None:
        if await self.link.until_redis_answers():
            self.ok = True
            await self.link.part_ready()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.link.remove_part(self)


def _entries(reply: Any) -> list[tuple[str, Mapping[bytes, bytes]]]:
    """The entries of an XREAD reply, RESP2 (``[[stream, [(id, fields), ...]]]``) or RESP3
    (``{stream: [[(id, fields), ...]]}``)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = [entries[0] if entries and isinstance(entries[0], list) else entries
                   for entries in reply.values()]
    else:
        streams = [entries for _, entries in reply]
    return [(_text(entry_id), fields or {}) for entries in streams
            for entry_id, fields in entries]
