"""One server's connection to Redis, shared by the adapters of all its namespaces.

Two connections: commands and publishing go through a client whose writer task sends what was
published since its last round trip in one pipeline (a broadcast costs no round trip of its
own and no task); subscriptions live on one subscriber connection whose reader task hands each
message, synchronously, to the handler of its channel or pattern.

While Redis is away the link is *down*: what would be published is dropped and counted (never
buffered), requests raise :class:`~sockjet.exceptions.AdapterError` at once, and the adapters
are told (:meth:`RedisLink.on_down`) so that pending requests fail instead of waiting. The
reader reconnects with a growing delay (up to two seconds) and subscribes again to everything;
the link is *up* again once Redis confirmed the subscriptions and answers commands. One warning
is logged when an outage starts and one when it ends, with what was lost meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..exceptions import AdapterError

log = logging.getLogger("sockjet.adapters")

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("sockjet's Redis adapters and emitter need the redis package: "
                      "pip install 'sockjet[redis]'") from exc

#: handler(channel, payload) for the messages of one channel or pattern
Handler = Callable[[bytes, bytes], None]

_RECONNECT_MIN = 0.05
_RECONNECT_MAX = 2.0
_CONFIRMATIONS = frozenset(("subscribe", "psubscribe", "ssubscribe"))
#: what the link calls a lost connection (redis-py wraps most of them in RedisError)
LINK_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def make_client(url_or_client: Any) -> Any:
    """A ``redis.asyncio`` client for a ``redis://`` (``rediss://``, ``unix://``) URL, or the
    client given (which must not decode responses: payloads are binary). Clients made here do
    not retry failed commands: the link has its own reconnection, and requests should fail
    fast while Redis is away."""
    if isinstance(url_or_client, str):
        return aioredis.from_url(url_or_client, retry=Retry(NoBackoff(), 0),
                                 socket_connect_timeout=2.0)
    if not hasattr(url_or_client, "pubsub"):
        raise TypeError("expected a redis:// URL or a redis.asyncio client, not "
                        f"{type(url_or_client).__name__}")
    kwargs: dict[str, Any] = getattr(url_or_client, "get_connection_kwargs", dict)()
    if kwargs.get("decode_responses"):
        raise ValueError("the Redis client must be made with decode_responses=False (the "
                         "messages between servers are binary)")
    return url_or_client


def describe(url_or_client: Any) -> str:
    """Where Redis is, for messages (the URL without its password)."""
    if isinstance(url_or_client, str):
        scheme, _, rest = url_or_client.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    kwargs: dict[str, Any] = getattr(url_or_client, "get_connection_kwargs", dict)()
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


class RedisLink:
    """The connection of one server to Redis (see the module). ``max_pending`` bounds the bytes
    published and not yet sent (a burst faster than Redis takes it): beyond it messages are
    dropped and counted as during an outage."""

    def __init__(self, url_or_client: Any, *, max_pending: int = 64 * 1024 * 1024) -> None:
        self.where = describe(url_or_client)
        self.client = make_client(url_or_client)
        self._owns_client = isinstance(url_or_client, str)
        self.max_pending = max_pending
        self._channels: dict[bytes, tuple[Handler, ...]] = {}
        self._patterns: dict[bytes, tuple[Handler, ...]] = {}
        self._shard_channels: dict[bytes, tuple[Handler, ...]] = {}
        self._down_listeners: list[Callable[[AdapterError], None]] = []
        self._pubsub: Any = None
        self._unconfirmed = 0
        self._subscribed = asyncio.Event()
        #: (channel, payload, sharded) published since the writer's last round trip
        self._outgoing: list[tuple[bytes, bytes, bool]] = []
        self._pending_bytes = 0
        self._overflowing = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing waits for the writer
        self._tasks: set[asyncio.Future[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self._reader_ok = False
        self._writer_ok = True
        self._closed = False
        self._down_since: float | None = None
        #: messages for the other servers not sent (Redis away, or over ``max_pending``)
        self.dropped = 0
        self._dropped_at_outage = 0
        #: how many times the link was lost
        self.outages = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """Whether Redis takes what is published and the subscriptions are in place."""
        return self._reader_ok and self._writer_ok

    @property
    def started(self) -> bool:
        return self._reader is not None or self._writer is not None

    def on_down(self, listener: Callable[[AdapterError], None]) -> None:
        """Call ``listener(error)`` whenever the link is lost."""
        self._down_listeners.append(listener)

    def _went_down(self, cause: BaseException) -> None:
        """The reader or the writer lost Redis (the first of them starts the outage)."""
        if self._down_since is not None or self._closed:
            return
        self._down_since = time.monotonic()
        self._dropped_at_outage = self.dropped
        self.outages += 1
        log.warning("Redis at %s lost (%s): messages for the other servers are dropped and "
                    "their requests fail until it is back; reconnecting", self.where,
                    cause or type(cause).__name__)
        error = AdapterError(f"Redis at {self.where} is unreachable")
        for listener in list(self._down_listeners):
            listener(error)

    def _maybe_up(self) -> None:
        if not self.up or self._down_since is None:
            return
        lost = self.dropped - self._dropped_at_outage
        log.warning("Redis at %s is back after %.1f s; %d messages for the other servers were "
                    "dropped meanwhile", self.where, time.monotonic() - self._down_since, lost)
        self._down_since = None

    def check(self) -> None:
        """Raise :class:`AdapterError` unless the link is up (before a request)."""
        if self._closed:
            raise AdapterError("the Redis link is closed")
        if not self.up:
            raise AdapterError(f"Redis at {self.where} is unreachable")

    # -- start and stop ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach Redis and subscribe (once: later calls wait for the first). Raises
        :class:`AdapterError` naming the server if it cannot be reached."""
        async with self._connecting:
            if self.started or self._closed:
                if self._reader is not None and not self._subscribed.is_set():
                    await self._subscribed.wait()
                return
            try:
                await self.client.ping()
            except LINK_ERRORS as exc:
                raise AdapterError(f"cannot reach Redis at {self.where}: {exc}") from exc
            self._writer = asyncio.ensure_future(self._write())
            if self._channels or self._patterns or self._shard_channels:
                self._reader = asyncio.ensure_future(self._read())
                await self._subscribed.wait()
            else:
                self._reader_ok = True  # nothing to read (an emitter)

    async def close(self) -> None:
        """Send what is pending, stop both tasks and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self._outgoing and self.up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 2)
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._close_pubsub()
        if self._owns_client:
            with contextlib.suppress(*LINK_ERRORS):
                await self.client.aclose()

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, handler: Handler, *, channels: Iterable[str] = (),
                  patterns: Iterable[str] = (), shard_channels: Iterable[str] = ()) -> None:
        """Route the messages of these channels (patterns, sharded channels) to ``handler``;
        subscribes at once if the link is running, else when it connects."""
        new: dict[str, list[bytes]] = {"subscribe": [], "psubscribe": [], "ssubscribe": []}
        for table, names, command in ((self._channels, channels, "subscribe"),
                                      (self._patterns, patterns, "psubscribe"),
                                      (self._shard_channels, shard_channels, "ssubscribe")):
            for name in names:
                key = name.encode()
                if key not in table:
                    new[command].append(key)
                table[key] = (*table.get(key, ()), handler)
        if self._pubsub is not None and self._reader_ok:
            for command, keys in new.items():
                if keys:
                    self._send_subscription(command, keys)

    def unsubscribe(self, handler: Handler, *, channels: Iterable[str] = (),
                    patterns: Iterable[str] = (), shard_channels: Iterable[str] = ()) -> None:
        for table, names, command in ((self._channels, channels, "unsubscribe"),
                                      (self._patterns, patterns, "punsubscribe"),
                                      (self._shard_channels, shard_channels, "sunsubscribe")):
            gone: list[bytes] = []
            for name in names:
                key = name.encode()
                handlers = tuple(h for h in table.get(key, ()) if h != handler)
                if handlers:
                    table[key] = handlers
                elif table.pop(key, None) is not None:
                    gone.append(key)
            if gone and self._pubsub is not None and self._reader_ok and not self._closed:
                self._send_subscription(command, gone)

    def _send_subscription(self, command: str, keys: list[bytes]) -> None:
        if command in _CONFIRMATIONS:
            self._unconfirmed += len(keys)
        task = asyncio.ensure_future(self._quietly(getattr(self._pubsub, command)(*keys)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quietly(awaitable: Any) -> None:
        # a failure here is the reader's to notice: it resubscribes everything when it is back
        with contextlib.suppress(*LINK_ERRORS):
            await awaitable

    async def _subscribe_all(self, pubsub: Any) -> None:
        self._unconfirmed = len(self._channels) + len(self._patterns) + len(
            self._shard_channels)
        if self._channels:
            await pubsub.subscribe(*self._channels)
        if self._patterns:
            await pubsub.psubscribe(*self._patterns)
        if self._shard_channels:
            await pubsub.ssubscribe(*self._shard_channels)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*LINK_ERRORS, RuntimeError):
                await pubsub.aclose()

    async def _read(self) -> None:
        delay = _RECONNECT_MIN
        while not self._closed:
            try:
                if self._pubsub is None:
                    self._pubsub = self.client.pubsub()
                    await self._subscribe_all(self._pubsub)
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (*LINK_ERRORS, RuntimeError) as exc:
                self._reader_ok = False
                self._went_down(exc)
                await self._close_pubsub()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            if message is None:
                continue
            kind = message["type"]
            if kind == "pmessage":
                handlers = self._patterns.get(message["pattern"], ())
            elif kind == "message":
                handlers = self._channels.get(message["channel"], ())
            elif kind == "smessage":
                handlers = self._shard_channels.get(message["channel"], ())
            else:
                if kind in _CONFIRMATIONS:
                    self._unconfirmed -= 1
                    if self._unconfirmed <= 0 and not self._reader_ok:
                        if self._down_since is not None:
                            # the pooled command connections died with Redis too: new ones,
                            # rather than a first publish failing on a stale one
                            with contextlib.suppress(*LINK_ERRORS):
                                await self.client.connection_pool.disconnect(
                                    inuse_connections=False)
                        self._reader_ok = True
                        delay = _RECONNECT_MIN
                        self._subscribed.set()
                        self._maybe_up()
                continue
            channel, payload = message["channel"], message["data"]
            for handler in handlers:
                try:
                    handler(channel, payload)
                except Exception:
                    log.exception("cannot handle a message of Redis channel %r", channel)

    # -- publishing -------------------------------------------------------------------------

    def publish(self, channel: str | bytes, payload: bytes, *, sharded: bool = False) -> bool:
        """Queue ``payload`` for ``channel`` (SPUBLISH if ``sharded``); sent with whatever else
        is published before the writer's next round trip. False if dropped (link down)."""
        if not self.up or self._pending_bytes + len(payload) > self.max_pending:
            self._drop()
            return False
        key = channel if isinstance(channel, bytes) else channel.encode()
        self._outgoing.append((key, payload, sharded))
        self._pending_bytes += len(payload)
        if not self._wake.is_set():
            self._wake.set()
            self._idle.clear()
        return True

    def _drop(self) -> None:
        if self.up and not self._overflowing:
            self._overflowing = True  # logged once until the writer catches up
            log.warning("more than %d bytes waiting for Redis at %s: messages for the other "
                        "servers dropped", self.max_pending, self.where)
        self.dropped += 1

    async def _write(self) -> None:
        delay = _RECONNECT_MIN
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outgoing:
                batch, self._outgoing = self._outgoing, []
                self._pending_bytes = 0
                try:
                    pipe = self.client.pipeline(transaction=False)
                    for channel, payload, sharded in batch:
                        if sharded:
                            pipe.spublish(channel, payload)
                        else:
                            pipe.publish(channel, payload)
                    await pipe.execute()
                    self._overflowing = False
                except LINK_ERRORS as exc:
                    self.dropped += len(batch)
                    self._writer_ok = False
                    self._went_down(exc)
                    await self._until_commands_work(delay)
                    delay = _RECONNECT_MIN
            self._idle.set()

    async def _until_commands_work(self, delay: float) -> None:
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                await self.client.ping()
            except LINK_ERRORS:
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            self.dropped += len(self._outgoing)
            self._outgoing.clear()
            self._pending_bytes = 0
            self._writer_ok = True
            self._maybe_up()
            return

    # -- commands ---------------------------------------------------------------------------

    async def command(self, *args: Any) -> Any:
        """Run a Redis command now (not through the writer); :class:`AdapterError` if Redis
        cannot be reached."""
        self.check()
        try:
            return await self.client.execute_command(*args)
        except LINK_ERRORS as exc:
            raise AdapterError(f"Redis at {self.where}: {exc}") from exc

    async def subscribers(self, channel: str, *, sharded: bool = False) -> int:
        """How many connections subscribe to ``channel`` (``PUBSUB NUMSUB`` or
        ``SHARDNUMSUB``): the servers that have a namespace."""
        reply = await self.command("PUBSUB", "SHARDNUMSUB" if sharded else "NUMSUB", channel)
        return int(reply[1]) if isinstance(reply, list | tuple) else int(dict(reply)[channel])
