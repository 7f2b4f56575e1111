"""The link between the worker processes of one machine: a full mesh of local Unix sockets, no
external service. Worker ``i`` of ``n`` listens on ``{directory}/bus-{i}.sock`` and connects to
every other worker's path; it writes its messages on its own outgoing connections and reads
those of the others on the connections it accepted. Each message is one frame: a 4-byte
big-endian length, then the msgpack of a :data:`ClusterMessage`.

A message from one worker reaches each other worker exactly once and in order: one connection
per (sender, receiver) pair carries them, and a message is never written twice. While a peer is
not connected (not started yet, restarting) its messages wait in a queue, bounded in bytes and
in age, and are written once it is; a peer that goes away is reconnected to with a growing
delay (up to one second), and the adapters forget the servers that came over its connection at
once.

One :class:`WorkerLink` per process (per server), shared by the adapters of all its namespaces:
``WorkerLink.adapter`` is the adapter factory (``Server(adapter=link.adapter)`` or
``io.replace_adapter(link.adapter)``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import struct
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from .cluster import ClusterMessage, HeartbeatClusterAdapter
from .wire import pack, unpack

log = logging.getLogger("sockjet.adapters")

_HEADER = struct.Struct(">I")
_RECONNECT_MIN = 0.02
_RECONNECT_MAX = 1.0


def encode_frame(message: Mapping[str, Any]) -> bytes:
    body = pack(message)
    return _HEADER.pack(len(body)) + body


class WorkerAdapter(HeartbeatClusterAdapter):
    """The adapter of one namespace over a :class:`WorkerLink`; made by ``link.adapter``."""

    def __init__(self, nsp: Any, link: WorkerLink) -> None:
        super().__init__(nsp, uid=f"{link.uid}-{secrets.token_hex(2)}",
                         requests_timeout=link.requests_timeout,
                         heartbeat_interval=link.heartbeat_interval,
                         heartbeat_timeout=link.heartbeat_timeout)
        self.link = link

    def publish(self, message: ClusterMessage) -> None:
        self.link.publish(message)

    def publish_response(self, requester_uid: str, message: ClusterMessage) -> None:
        self.link.publish_to(requester_uid, message)

    async def close(self) -> None:
        await super().close()
        self.link.unregister(self)


class _Outgoing(asyncio.Protocol):
    """This worker's connection to one peer: written to, never read (EOF means the peer left)."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class _Peer:
    """The outgoing side towards worker ``index``: connection, reconnection, queue."""

    def __init__(self, link: WorkerLink, index: int) -> None:
        self.link = link
        self.index = index
        self.path = link.path(index)
        self.transport: asyncio.Transport | None = None
        #: (when queued, frame) while not connected
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def send(self, frame: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size() + len(frame) > self.link.queue_limit:
                self._drop()
                return
            transport.write(frame)
            return
        if self.queued + len(frame) > self.link.queue_limit:
            self._drop()
            return
        self.queue.append((time.monotonic(), frame))
        self.queued += len(frame)

    def _drop(self) -> None:
        if not self.dropped:
            log.warning("worker %d: more than %d bytes waiting for worker %d: messages dropped",
                        self.link.index, self.link.queue_limit, self.index)
        self.dropped += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _RECONNECT_MIN
        hello = encode_frame({"hello": self.link.index, "uid": self.link.uid})
        while not self.link.closing:
            try:
                transport, protocol = await loop.create_unix_connection(_Outgoing, self.path)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            delay = _RECONNECT_MIN
            transport.write(hello)
            stale = time.monotonic() - self.link.queue_max_age
            while self.queue:  # in order, before anything sent from now on
                queued_at, frame = self.queue.popleft()
                if queued_at >= stale:
                    transport.write(frame)
                else:
                    self.dropped += 1
            if self.dropped:
                log.info("worker %d: %d messages for worker %d dropped (queue full or older "
                         "than %s s)", self.link.index, self.dropped, self.index,
                         self.link.queue_max_age)
            self.queued = 0
            self.dropped = 0
            self.transport = transport
            log.debug("worker %d connected to worker %d", self.link.index, self.index)
            try:
                await protocol.lost
            finally:
                self.transport = None
                transport.close()

    async def close(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.close()  # writes what is buffered, then closes
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class _Incoming(asyncio.Protocol):
    """A connection another worker opened to this one: frames in, delivered in order."""

    def __init__(self, link: WorkerLink) -> None:
        self.link = link
        self.buffer = bytearray()
        self.peer: int | None = None
        #: adapter uids heard of on this connection (forgotten when it closes)
        self.uids: set[str] = set()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.link.incoming.add(self)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (size,) = _HEADER.unpack_from(buffer, offset)
            if size > self.link.max_frame:
                log.warning("worker %d: frame of %d bytes from worker %s: connection closed",
                            self.link.index, size, self.peer)
                assert self.transport is not None
                self.transport.close()
                buffer.clear()
                return
            end = offset + 4 + size
            if len(buffer) < end:
                break
            body = bytes(buffer[offset + 4:end])
            offset = end
            try:
                message = unpack(body)
            except ValueError:
                log.warning("worker %d: undecodable frame from worker %s ignored",
                            self.link.index, self.peer)
                continue
            self._received(message)
        del buffer[:offset]

    def _received(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if self.peer is None:
            index = message.get("hello")
            if isinstance(index, int) and index != self.link.index:
                self.peer = index
            return
        uid = message.get("uid")
        if isinstance(uid, str):
            if uid not in self.uids:
                self.uids.add(uid)
                self.link.routes[uid] = self.peer
        self.link.deliver(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.incoming.discard(self)
        self.link.peer_gone(self.uids)


class WorkerLink:
    """The inter-worker link of one process: worker ``index`` of ``count``, its Unix sockets in
    ``directory`` (``bus-{i}.sock``). :meth:`start` listens and begins connecting to the other
    workers (without waiting for them); :meth:`adapter` is the adapter factory; :meth:`close`
    tells the others this worker leaves and closes the connections.

    ``requests_timeout``, ``heartbeat_interval`` and ``heartbeat_timeout`` go to every adapter
    (:class:`HeartbeatClusterAdapter`); ``queue_limit`` bounds the bytes waiting for one peer
    (queued while it is not connected, or not yet taken by the kernel) and ``queue_max_age``
    how old a queued message may be when the peer connects (older ones are dropped: a worker
    that comes back after a long absence does not get stale broadcasts); ``max_frame`` bounds
    one
    message."""

    def __init__(self, index: int, count: int, directory: str | os.PathLike[str], *,
                 requests_timeout: float = 5.0, heartbeat_interval: float = 5.0,
                 heartbeat_timeout: float = 10.0, queue_limit: int = 64 * 1024 * 1024,
                 queue_max_age: float = 30.0, max_frame: int = 64 * 1024 * 1024) -> None:
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if not isinstance(index, int) or not 0 <= index < count:
            raise ValueError(f"index must be in 0..{count - 1}")
        self.index = index
        self.count = count
        self.directory = os.fspath(directory)
        self.requests_timeout = requests_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.queue_limit = queue_limit
        self.queue_max_age = queue_max_age
        self.max_frame = max_frame
        #: this process's prefix of its adapters' uids
        self.uid = f"w{index}-{secrets.token_hex(4)}"
        #: the adapters of this process, by namespace name
        self.adapters: dict[str, WorkerAdapter] = {}
        #: adapter uid -> index of the worker it lives in (learnt from what arrives)
        self.routes: dict[str, int] = {}
        self.incoming: set[_Incoming] = set()
        self.closing = False
        self._peers: dict[int, _Peer] = {}
        self._server: asyncio.AbstractServer | None = None

    def path(self, index: int) -> str:
        return os.path.join(self.directory, f"bus-{index}.sock")

    @property
    def started(self) -> bool:
        return self._server is not None

    def connected_peers(self) -> list[int]:
        """The indexes of the workers this one is connected to (to send)."""
        return sorted(i for i, peer in self._peers.items() if peer.connected)

    def adapter(self, nsp: Any) -> WorkerAdapter:
        """The adapter factory: ``Server(adapter=link.adapter)``."""
        current = self.adapters.get(nsp.name)
        if current is not None and not current.closed:
            raise RuntimeError(f"namespace {nsp.name} already has an adapter on this link "
                               "(one WorkerLink per server)")
        adapter = WorkerAdapter(nsp, self)
        self.adapters[nsp.name] = adapter
        if self.started and not self.closing:
            adapter.start()
        return adapter

    def unregister(self, adapter: WorkerAdapter) -> None:
        if self.adapters.get(adapter.nsp.name) is adapter:
            del self.adapters[adapter.nsp.name]

    async def start(self) -> None:
        """Listen on this worker's path and start connecting to the others; returns at once."""
        if self._server is not None:
            raise RuntimeError("the link is already started")
        loop = asyncio.get_running_loop()
        path = self.path(self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by an earlier process of this worker
        self._server = await loop.create_unix_server(lambda: _Incoming(self), path)
        for index in range(self.count):
            if index != self.index:
                peer = self._peers[index] = _Peer(self, index)
                peer.start()
        for adapter in list(self.adapters.values()):
            adapter.start()

    def publish(self, message: ClusterMessage) -> None:
        """Send ``message`` to every other worker (encoded once)."""
        if not self._peers:
            return
        frame = self._encode(message)
        if frame is not None:
            for peer in self._peers.values():
                peer.send(frame)

    def publish_to(self, uid: str, message: ClusterMessage) -> None:
        """Send ``message`` to the worker of adapter ``uid`` (to all when it is not known)."""
        index = self.routes.get(uid)
        peer = self._peers.get(index) if index is not None else None
        if peer is None:
            self.publish(message)
            return
        frame = self._encode(message)
        if frame is not None:
            peer.send(frame)

    def _encode(self, message: ClusterMessage) -> bytes | None:
        frame = encode_frame(message)
        if len(frame) - 4 > self.max_frame:
            log.warning("worker %d: message of %d bytes over max_frame: not sent", self.index,
                        len(frame) - 4)
            return None
        return frame

    def deliver(self, message: Mapping[str, Any]) -> None:
        """A message from another worker, for the adapter of its namespace (if there is one
        here: a namespace this worker does not have is ignored)."""
        adapter = self.adapters.get(message.get("nsp", "/"))
        if adapter is not None:
            adapter.on_message(message)

    def peer_gone(self, uids: set[str]) -> None:
        """A connection from another worker closed: its servers are gone."""
        for uid in uids:
            self.routes.pop(uid, None)
            for adapter in list(self.adapters.values()):
                adapter.remove_server(uid)

    async def close(self) -> None:
        """Send ``ADAPTER_CLOSE`` for every adapter still open, write what is queued to the
        connected workers, close every connection and remove this worker's socket file."""
        if self.closing:
            return
        for adapter in list(self.adapters.values()):
            await adapter.close()
        self.closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for incoming in list(self.incoming):
            if incoming.transport is not None:
                incoming.transport.close()
        await asyncio.gather(*(peer.close() for peer in self._peers.values()))
        if server is not None:
            await server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(self.index))
        self._peers.clear()
