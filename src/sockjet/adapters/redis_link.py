"""One server's connection to Redis, shared by the adapters of all its namespaces.

Commands and publishing go through a client whose writer task sends what was published since
its last round trip in one pipeline (a broadcast costs no round trip of its own and no task);
subscriptions live on a subscriber connection whose reader task hands each message,
synchronously, to the handler of its channel or pattern. On a Redis Cluster (found out when
connecting to a ``redis://`` URL, or given as a ``RedisCluster`` client) sharded channels are
read from the node that owns each one's slot: one subscriber connection per such node.

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
from typing import Any, Protocol

from ..exceptions import AdapterError

log = logging.getLogger("sockjet.adapters")

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("sockjet's Redis adapters and emitter need the redis package: "
                      "pip install 'sockjet[redis]'") from exc

#: handler(channel, payload) for the messages of one channel or pattern
Handler = Callable[[bytes, bytes], None]


class LinkPart(Protocol):
    """Something else that talks to Redis for the link (a stream's reader or writer): it
    says whether it works; the link is up only while every part does."""

    ok: bool

#: the delay between two attempts to reach Redis again grows from this...
RECONNECT_MIN = 0.05
#: ...to this, in seconds
RECONNECT_MAX = 2.0
_CONFIRMATIONS = frozenset(("subscribe", "psubscribe", "ssubscribe"))
_SUBSCRIBE_OF = {"unsubscribe": "subscribe", "punsubscribe": "psubscribe",
                 "sunsubscribe": "ssubscribe"}
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


def _batches(command: str, keys: list[bytes]) -> list[list[bytes]]:
    """The channels of one command: all at once, except sharded ones (a cluster takes only
    channels of one slot per SSUBSCRIBE/SUNSUBSCRIBE)."""
    if command in ("ssubscribe", "sunsubscribe"):
        return [[key] for key in keys]
    return [keys] if keys else []


class _Subscriber:
    """One subscriber connection (a node of a cluster, or the only server) and its reader task:
    the channels, patterns and sharded channels it reads, subscribed again after every
    reconnection."""

    def __init__(self, link: RedisLink, client: Any) -> None:
        self.link = link
        self.client = client
        self.keys: dict[str, set[bytes]] = {"subscribe": set(), "psubscribe": set(),
                                            "ssubscribe": set()}
        self.pubsub: Any = None
        self.ok = False
        self.unconfirmed = 0
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._read())

    @property
    def empty(self) -> bool:
        return not any(self.keys.values())

    def add(self, command: str, keys: list[bytes]) -> None:
        self.keys[command].update(keys)
        if self.pubsub is not None:  # also while (re)subscribing: a duplicate is harmless
            self._send(command, keys)

    def remove(self, command: str, key: bytes) -> None:
        """Stop reading ``key`` if this subscriber reads it."""
        subscribed = self.keys[_SUBSCRIBE_OF[command]]
        if key in subscribed:
            subscribed.discard(key)
            if self.pubsub is not None and self.ok:
                self._send(command, [key])

    def _send(self, command: str, keys: list[bytes]) -> None:
        if command in _CONFIRMATIONS:
            self.unconfirmed += len(keys)
        for batch in _batches(command, keys):
            self.link.background(getattr(self.pubsub, command)(*batch))

    async def _subscribe_all(self) -> None:
        self.unconfirmed = sum(len(keys) for keys in self.keys.values())
        for command, keys in self.keys.items():
            for batch in _batches(command, list(keys)):
                await getattr(self.pubsub, command)(*batch)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self._close_pubsub()

    async def _close_pubsub(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*LINK_ERRORS, RuntimeError):
                await pubsub.aclose()

    async def _read(self) -> None:
        link = self.link
        delay = RECONNECT_MIN
        while True:
            try:
                if self.pubsub is None:
                    self.pubsub = self.client.pubsub()
                    await self._subscribe_all()
                message = await self.pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (*LINK_ERRORS, RuntimeError) as exc:
                self.ok = False
                link.went_down(exc)
                await self._close_pubsub()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            if message is None:
                continue
            kind = message["type"]
            if kind == "pmessage":
                handlers = link.patterns.get(message["pattern"], ())
            elif kind == "message":
                handlers = link.channels.get(message["channel"], ())
            elif kind == "smessage":
                handlers = link.shard_channels.get(message["channel"], ())
            else:
                if kind in _CONFIRMATIONS:
                    self.unconfirmed -= 1
                    if self.unconfirmed <= 0 and not self.ok:
                        await link.subscriber_ready(self)
                        delay = RECONNECT_MIN
                continue
            channel, payload = message["channel"], message["data"]
            for handler in handlers:
                try:
                    handler(channel, payload)
                except Exception:
                    log.exception("cannot handle a message of Redis channel %r", channel)


class RedisLink:
    """The connection of one server to Redis (see the module). ``max_pending`` bounds the bytes
    published and not yet sent (a burst faster than Redis takes it): beyond it messages are
    dropped and counted as during an outage."""

    def __init__(self, url_or_client: Any, *, max_pending: int = 64 * 1024 * 1024) -> None:
        self.where = describe(url_or_client)
        self.client = make_client(url_or_client)
        self._url = url_or_client if isinstance(url_or_client, str) else None
        self._owns_client = self._url is not None
        self.max_pending = max_pending
        #: how long :meth:`connect` waits for Redis to confirm the subscriptions
        self.subscribe_timeout = 10.0
        #: handlers by channel, pattern and sharded channel (every subscriber dispatches here)
        self.channels: dict[bytes, tuple[Handler, ...]] = {}
        self.patterns: dict[bytes, tuple[Handler, ...]] = {}
        self.shard_channels: dict[bytes, tuple[Handler, ...]] = {}
        self._down_listeners: list[Callable[[AdapterError], None]] = []
        #: subscriber connections by node name ("" for the only one of a single server)
        self._subscribers: dict[str, _Subscriber] = {}
        #: other parts whose state counts in :attr:`up` (see :meth:`add_part`)
        self._parts: list[LinkPart] = []
        #: (channel, payload, sharded) published since the writer's last round trip
        self._outgoing: list[tuple[bytes, bytes, bool]] = []
        self._pending_bytes = 0
        self._overflowing = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing waits for the writer
        self._tasks: set[asyncio.Future[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self._running = False
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
    def closed(self) -> bool:
        """Whether :meth:`close` was called: the link is done (a server that serves again
        makes a new one)."""
        return self._closed

    @property
    def up(self) -> bool:
        """Whether Redis takes what is published and the subscriptions are in place."""
        return (self._running and not self._closed and self._writer_ok
                and all(sub.ok for sub in self._subscribers.values())
                and all(part.ok for part in self._parts))

    @property
    def cluster(self) -> bool:
        """Whether Redis is a cluster."""
        return isinstance(self.client, RedisCluster)

    def on_down(self, listener: Callable[[AdapterError], None]) -> None:
        """Call ``listener(error)`` whenever the link is lost."""
        self._down_listeners.append(listener)

    def off_down(self, listener: Callable[[AdapterError], None]) -> None:
        """Stop calling ``listener`` (its adapter closed)."""
        if listener in self._down_listeners:
            self._down_listeners.remove(listener)

    def went_down(self, cause: BaseException) -> None:
        """A reader or the writer lost Redis (the first of them starts the outage)."""
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

    async def subscriber_ready(self, subscriber: _Subscriber) -> None:
        """Redis confirmed every subscription of ``subscriber``."""
        if self._down_since is not None:
            # the pooled command connections died with Redis too: new ones, rather than a
            # first publish failing on a stale one
            with contextlib.suppress(*LINK_ERRORS):
                await self._drop_idle_connections()
        subscriber.ok = True
        subscriber.subscribed.set()
        self._maybe_up()

    def add_part(self, part: LinkPart) -> None:
        """Count ``part`` in :attr:`up`: a part that loses Redis calls :meth:`went_down`,
        sets its ``ok`` false, and calls :meth:`part_ready` once Redis answers it again."""
        if part not in self._parts:
            self._parts.append(part)

    def remove_part(self, part: LinkPart) -> None:
        if part in self._parts:
            self._parts.remove(part)

    async def part_ready(self) -> None:
        """A part works again after an outage."""
        if self._down_since is not None:
            with contextlib.suppress(*LINK_ERRORS):
                await self._drop_idle_connections()
        self._maybe_up()

    async def _drop_idle_connections(self) -> None:
        if self.cluster:
            for node in self.client.get_nodes():
                await node.disconnect()
        else:
            await self.client.connection_pool.disconnect(inuse_connections=False)

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

    def background(self, awaitable: Any) -> None:
        """Run ``awaitable`` (a subscription change) as a task kept until it ends; a failure
        is the readers' to notice: they subscribe again to everything when Redis is back."""
        task = asyncio.ensure_future(self._quietly(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quietly(awaitable: Any) -> None:
        with contextlib.suppress(*LINK_ERRORS):
            await awaitable

    # -- start and stop ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach Redis and subscribe (once: later calls wait for the first). Raises
        :class:`AdapterError` naming the server if it cannot be reached."""
        async with self._connecting:
            if not self._running and not self._closed:
                try:
                    await self._find_cluster()
                    await self.client.ping()
                except LINK_ERRORS as exc:
                    raise AdapterError(f"cannot reach Redis at {self.where}: {exc}") from exc
                self._running = True
                self._writer = asyncio.ensure_future(self._write())
                self._place_all()
                for subscriber in list(self._subscribers.values()):
                    subscriber.start()
            try:
                for subscriber in list(self._subscribers.values()):
                    await asyncio.wait_for(subscriber.subscribed.wait(), self.subscribe_timeout)
            except TimeoutError:
                raise AdapterError(f"Redis at {self.where} did not confirm the subscriptions "
                                   f"within {self.subscribe_timeout} s") from None

    async def _find_cluster(self) -> None:
        """A URL of a cluster node: the client becomes a cluster client."""
        if self._url is None or self.cluster:
            return
        info = await self.client.info("cluster")
        if int(info.get("cluster_enabled", 0)):
            await self.client.aclose()
            self.client = RedisCluster.from_url(self._url, retry=Retry(NoBackoff(), 0),
                                                socket_connect_timeout=2.0)
            await self.client.initialize()

    async def close(self) -> None:
        """Send what is pending, stop the tasks and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self._outgoing and self.up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 2)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        for subscriber in self._subscribers.values():
            with contextlib.suppress(*LINK_ERRORS):
                await self._retire(subscriber)
        if self._owns_client:
            with contextlib.suppress(*LINK_ERRORS):
                await self.client.aclose()

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, handler: Handler, *, channels: Iterable[str] = (),
                  patterns: Iterable[str] = (), shard_channels: Iterable[str] = ()) -> None:
        """Route the messages of these channels (patterns, sharded channels) to ``handler``;
        subscribes at once if the link is running, else when it connects."""
        for table, names, command in ((self.channels, channels, "subscribe"),
                                      (self.patterns, patterns, "psubscribe"),
                                      (self.shard_channels, shard_channels, "ssubscribe")):
            for name in names:
                key = name.encode()
                if key not in table and self._running:
                    self._place(command, key)
                table[key] = (*table.get(key, ()), handler)

    def unsubscribe(self, handler: Handler, *, channels: Iterable[str] = (),
                    patterns: Iterable[str] = (), shard_channels: Iterable[str] = ()) -> None:
        for table, names, command in ((self.channels, channels, "unsubscribe"),
                                      (self.patterns, patterns, "punsubscribe"),
                                      (self.shard_channels, shard_channels, "sunsubscribe")):
            for name in names:
                key = name.encode()
                handlers = tuple(h for h in table.get(key, ()) if h != handler)
                if handlers:
                    table[key] = handlers
                elif table.pop(key, None) is not None and self._running and not self._closed:
                    for node, subscriber in list(self._subscribers.items()):
                        subscriber.remove(command, key)
                        if subscriber.empty:  # a cluster node none of our channels is on
                            del self._subscribers[node]
                            self.background(self._retire(subscriber))

    async def _retire(self, subscriber: _Subscriber) -> None:
        await subscriber.close()
        if subscriber.client is not self.client:
            await subscriber.client.aclose()

    def _place_all(self) -> None:
        for table, command in ((self.channels, "subscribe"), (self.patterns, "psubscribe"),
                               (self.shard_channels, "ssubscribe")):
            for key in table:
                self._place(command, key)

    def _place(self, command: str, key: bytes) -> None:
        """Give ``key`` to the subscriber that reads it: on a cluster, a sharded channel is
        read from the node that owns its slot (plain pub/sub reaches every node)."""
        if not self.cluster:
            name, client = "", self.client
        elif command == "ssubscribe":
            node = self.client.get_node_from_key(key)
            name, client = node.name, None
        else:
            node = self.client.get_default_node()
            name, client = node.name, None
        subscriber = self._subscribers.get(name)
        if subscriber is None:
            if client is None:  # a connection of its own to that node
                client = aioredis.Redis(connection_pool=aioredis.ConnectionPool(
                    connection_class=node.connection_class, **node.connection_kwargs))
            subscriber = self._subscribers[name] = _Subscriber(self, client)
            if self._running:
                subscriber.keys[command].add(key)
                subscriber.start()
                return
        subscriber.add(command, [key])

    # -- publishing -------------------------------------------------------------------------

    def publish(self, channel: str | bytes, payload: bytes, *, sharded: bool = False) -> bool:
        """Queue ``payload`` for ``channel`` (SPUBLISH if ``sharded``); sent with whatever else
        is published before the writer's next round trip. False if dropped (link down)."""
        if not self.up or self._pending_bytes + len(payload) > self.max_pending:
            self.drop()
            return False
        key = channel if isinstance(channel, bytes) else channel.encode()
        self._outgoing.append((key, payload, sharded))
        self._pending_bytes += len(payload)
        if not self._wake.is_set():
            self._wake.set()
            self._idle.clear()
        return True

    def drop(self) -> None:
        """Count a message for the other servers that is not sent (Redis away, or over
        ``max_pending``, which is logged once until the writer catches up)."""
        if self.up and not self._overflowing:
            self._overflowing = True  # logged once until the writer catches up
            log.warning("more than %d bytes waiting for Redis at %s: messages for the other "
                        "servers dropped", self.max_pending, self.where)
        self.dropped += 1

    async def _write(self) -> None:
        delay = RECONNECT_MIN
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outgoing:
                batch, self._outgoing = self._outgoing, []
                self._pending_bytes = 0
                try:
                    await self._send(batch)
                    self._overflowing = False
                except LINK_ERRORS as exc:
                    self.dropped += len(batch)
                    self._writer_ok = False
                    self.went_down(exc)
                    await self._until_commands_work(delay)
                    delay = RECONNECT_MIN
                except Exception:  # not the link's fault: those messages only are lost
                    self.dropped += len(batch)
                    log.exception("cannot publish %d messages to Redis at %s", len(batch),
                                  self.where)
            self._idle.set()

    async def _send(self, batch: list[tuple[bytes, bytes, bool]]) -> None:
        if self.cluster:
            # a cluster pipeline refuses PUBLISH: one command after the other, in order
            for channel, payload, sharded in batch:
                if sharded:
                    await self.client.spublish(channel, payload)
                else:
                    await self.client.publish(channel, payload)
            return
        pipe = self.client.pipeline(transaction=False)
        for channel, payload, sharded in batch:
            if sharded:
                pipe.spublish(channel, payload)
            else:
                pipe.publish(channel, payload)
        await pipe.execute()

    async def until_redis_answers(self, delay: float = RECONNECT_MIN) -> bool:
        """Wait until Redis answers a PING again, trying after ``delay`` then a growing delay
        (up to two seconds); False if the link closes first."""
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                await self.client.ping()
            except LINK_ERRORS:
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            return True
        return False

    async def _until_commands_work(self, delay: float) -> None:
        if await self.until_redis_answers(delay):
            self.dropped += len(self._outgoing)
            self._outgoing.clear()
            self._pending_bytes = 0
            self._writer_ok = True
            self._maybe_up()

    # -- commands ---------------------------------------------------------------------------

    async def subscribers(self, channel: str, *, sharded: bool = False) -> int:
        """How many connections subscribe to ``channel`` (``PUBSUB NUMSUB`` or
        ``SHARDNUMSUB``; on a cluster, summed over its nodes): the servers that have a
        namespace."""
        self.check()
        try:
            # every node of a cluster counts only its own subscribers: ask them all
            where = {"target_nodes": RedisCluster.ALL_NODES} if self.cluster else {}
            if sharded:
                reply = await self.client.pubsub_shardnumsub(channel, **where)
            else:
                reply = await self.client.pubsub_numsub(channel, **where)
        except LINK_ERRORS as exc:
            raise AdapterError(f"Redis at {self.where}: {exc}") from exc
        return sum(int(count) for _, count in reply)
