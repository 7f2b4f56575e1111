"""The Redis Streams adapter, wire-compatible with Node's ``@socket.io/redis-streams-adapter``
0.3.x: sockjet and Node servers on one Redis reach each other's clients, and with connection
state recovery a client that lost one server gets its session back on another (sockjet or
Node).

As Node's, with its default of one stream for every namespace (``streamCount`` 1; Node's option
to spread namespaces over several streams is not offered):

- what changes the state of other servers' sockets (broadcasts without acks, ``sockets_join``,
  ``sockets_leave``, ``disconnect_sockets``) is added to the stream ``stream_name`` with
  ``XADD stream MAXLEN ~ max_len * uid <uid> nsp <nsp> type <type> data <data>``: ``type`` is
  the :class:`~sockjet.adapters.cluster.MessageType` as a decimal string, ``data`` the JSON of
  the message's data, or the base64 of its msgpack when it holds binary;
- every server reads the stream with one ``XREAD BLOCK`` loop (not one per namespace), from
  its end when the server starts, and hands each entry to the adapter of its namespace; a
  server ignores its own entries, having delivered them itself once Redis gave their id;
- short-lived messages (broadcasts with acks, ``fetch_sockets``, ``server_side_emit``) are one
  msgpack'd message published on ``prefix#nsp#``, and answers on ``prefix#nsp#<uid>#`` (the
  requester's channel); how many servers have the namespace is ``PUBSUB NUMSUB prefix#nsp#``;
- connection state recovery: the offset of an event is the id of its stream entry; a socket
  that may come back leaves ``SET <session_key_prefix><pid> base64(msgpack({sid, pid, rooms,
  data})) PX <max disconnection duration in ms>``; a client that comes back, to any server,
  gets it with ``GET`` and ``DEL`` in one transaction, provided its offset is still in the
  stream (``XRANGE stream offset offset``), and the broadcasts of its namespace added after
  it that target its rooms (``XRANGE`` from the next id, as long as entries come, 100 times at
  most).

With recovery on, a broadcast reaches this server's clients once Redis has given its entry an
id (a round trip later), in the order broadcasts were made; ``sockets_join``, ``sockets_leave``
and ``disconnect_sockets`` take effect here in that same order. With recovery off nothing
waits."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from ..codecs.socketio import has_binary
from ..exceptions import AdapterError
from ..socketio.adapter import BroadcastOptions
from ..socketio.recovery import RecoveryOptions, Restored, Session
from .cluster import ClusterMessage, MessageType, decode_options, encode_options
from .memory import InMemoryAdapter
from .redis_base import RedisFactory, RedisNamespaceAdapter
from .redis_link import LINK_ERRORS
from .redis_stream_link import StreamReader, StreamWriter, parse_id
from .wire import pack, unpack

log = logging.getLogger("sockjet.adapters")

#: the messages that go over pub/sub rather than the stream when they have no request id
_EPHEMERAL = frozenset((MessageType.SERVER_SIDE_EMIT, MessageType.FETCH_SOCKETS))
#: the message types whose data Node encodes with msgpack when it holds binary
_MAY_HOLD_BINARY = frozenset((MessageType.BROADCAST, MessageType.FETCH_SOCKETS_RESPONSE,
                              MessageType.SERVER_SIDE_EMIT, MessageType.SERVER_SIDE_EMIT_RESPONSE,
                              MessageType.BROADCAST_ACK))
#: an offset a client may send back (Node checks the same)
_OFFSET = re.compile(r"[0-9]+-[0-9]+")
#: how many XRANGE calls a restore makes at most (Node's limit)
_RESTORE_CALLS = 100
_EVENT = 2


def is_ephemeral(message: ClusterMessage) -> bool:
    """Whether Node's adapter sends ``message`` over pub/sub (not kept in the stream)."""
    mtype = message["type"]
    if mtype == MessageType.BROADCAST:
        return "requestId" in (message.get("data") or {})
    return mtype in _EPHEMERAL


def encode_entry(message: ClusterMessage) -> dict[str, str]:
    """The fields of the stream entry of ``message``, as Node writes them."""
    fields = {"uid": message["uid"], "nsp": message["nsp"], "type": str(int(message["type"]))}
    data = message.get("data")
    if data:
        if message["type"] in _MAY_HOLD_BINARY and has_binary(data):
            fields["data"] = base64.b64encode(pack(data)).decode()
        else:
            try:
                fields["data"] = orjson.dumps(data).decode()
            except TypeError:  # not JSON: msgpack, which Node reads too
                fields["data"] = base64.b64encode(pack(data)).decode()
    return fields


def decode_entry(fields: Mapping[bytes, bytes]) -> ClusterMessage:
    """A stream entry as a message (:class:`ValueError` if it is not one)."""
    try:
        message: ClusterMessage = {"uid": fields[b"uid"].decode(),
                                   "nsp": fields[b"nsp"].decode(),
                                   "type": int(fields[b"type"])}
        raw = fields.get(b"data")
        if raw:
            if raw[:1] == b"{":
                message["data"] = orjson.loads(raw)
            else:
                message["data"] = unpack(base64.b64decode(raw))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an adapter entry: {exc!r}") from None
    if not isinstance(message.get("data", {}), dict):
        raise ValueError("not an adapter entry: its data is not a map")
    return message


def encode_session(session: Session) -> str:
    """A session as Node's adapter keeps it: base64 of the msgpack of ``{sid, pid, rooms,
    data}``."""
    return base64.b64encode(pack({"sid": session.sid, "pid": session.pid,
                                  "rooms": list(session.rooms),
                                  "data": session.data})).decode()


def decode_session(raw: bytes | str) -> Session:
    """The reverse of :func:`encode_session` (:class:`ValueError` if malformed)."""
    try:
        value = unpack(base64.b64decode(raw))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a session: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a session: not a map")
    sid, pid, rooms, data = (value.get(k) for k in ("sid", "pid", "rooms", "data"))
    if not isinstance(sid, str) or not isinstance(pid, str) or not isinstance(rooms, list):
        raise ValueError("not a session: sid, pid or rooms missing")
    return Session(sid, pid, [str(room) for room in rooms],
                   dict(data) if isinstance(data, dict) else {}, time.monotonic())


def next_offset(offset: str) -> str:
    """The smallest entry id after ``offset`` (Redis < 6.2 has no exclusive ranges)."""
    millis, sequence = parse_id(offset)
    return f"{millis}-{sequence + 1}"


class RedisStreamsAdapter(RedisFactory):
    """Scale out over a Redis stream, wire-compatible with Node's
    ``@socket.io/redis-streams-adapter`` 0.3.x, with connection state recovery across servers:
    ``sockjet.Server(adapter=sockjet.RedisStreamsAdapter("redis://host:6379/0"),
    connection_state_recovery=True)``.

    ``url_or_client``: a ``redis://`` URL or a ``redis.asyncio`` client made with
    ``decode_responses=False``; ``stream_name`` (Node's ``streamName``); ``max_len``, the
    stream's length kept (``MAXLEN ~``, Node's ``maxLen``); ``read_count``, the entries read
    per ``XREAD`` (Node's ``readCount``); ``session_key_prefix`` (Node's
    ``sessionKeyPrefix``); ``channel_prefix`` of the pub/sub channels (Node's
    ``channelPrefix``); ``requests_timeout`` in seconds.

    One instance per server, shared by the adapters of its namespaces."""

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *,
                 stream_name: str = "socket.io", max_len: int = 10_000, read_count: int = 100,
                 session_key_prefix: str = "sio:session:", channel_prefix: str = "socket.io",
                 requests_timeout: float = 5.0) -> None:
        for name, text in (("stream_name", stream_name), ("channel_prefix", channel_prefix)):
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name} must be a non-empty string")
        if not isinstance(session_key_prefix, str):
            raise ValueError("session_key_prefix must be a string")
        for name, number in (("max_len", max_len), ("read_count", read_count)):
            if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
                raise ValueError(f"{name} must be a positive integer")
        super().__init__(url_or_client, requests_timeout)
        self.stream_name = stream_name
        self.max_len = max_len
        self.read_count = read_count
        self.session_key_prefix = session_key_prefix
        self.channel_prefix = channel_prefix
        #: the adapters reading the stream, by namespace name
        self.namespaces: dict[str, StreamsNamespaceAdapter] = {}
        self._open_stream()

    def _open_stream(self) -> None:
        #: this server's writes, in order (XADD, SET)
        self.writer = StreamWriter(self.link)
        #: this server's one reader of the stream
        self.reader = StreamReader(self.link, self.stream_name, self._deliver,
                                   count=self.read_count)
        self._reading = False
        self._starting: asyncio.Lock | None = None

    def reopen(self) -> None:
        super().reopen()
        self._open_stream()

    def make(self, nsp: Any) -> StreamsNamespaceAdapter:
        return StreamsNamespaceAdapter(nsp, self)

    async def start(self) -> None:
        """Connect, then start writing and reading the stream (once; later calls wait for
        the first). Raises :class:`~sockjet.AdapterError` if Redis cannot be reached."""
        await self.link.connect()
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._reading:
                return
            try:
                await self.reader.start()
            except LINK_ERRORS as exc:
                raise AdapterError(f"cannot read the Redis stream {self.stream_name!r} at "
                                   f"{self.link.where}: {exc}") from exc
            self._reading = True
            self.writer.start()

    def _deliver(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        nsp = fields.get(b"nsp")
        if not nsp:
            return
        adapter = self.namespaces.get(nsp.decode(errors="replace"))
        if adapter is not None:
            adapter.on_entry(entry_id, fields)

    async def released(self, adapter: RedisNamespaceAdapter) -> None:
        self.adapters.discard(adapter)
        if not self.adapters:
            await self.reader.close()
            await self.writer.close()  # what waits (sessions being saved) goes first
            await self.link.close()


def _node_uid() -> str:
    """16 hex digits, as Node's ``ClusterAdapter``."""
    return secrets.token_hex(8)


class StreamsNamespaceAdapter(RedisNamespaceAdapter):
    """The adapter of one namespace on a :class:`RedisStreamsAdapter` (made by it)."""

    new_uid = staticmethod(_node_uid)
    factory: RedisStreamsAdapter

    def __init__(self, nsp: Any, factory: RedisStreamsAdapter) -> None:
        super().__init__(nsp, factory)
        self.stream = factory.stream_name
        self.channel = f"{factory.channel_prefix}#{nsp.name}#"
        self.writer = factory.writer
        self.reader = factory.reader
        self.recovery: RecoveryOptions | None = None

    @property
    def response_channel(self) -> str:
        return f"{self.channel}{self.uid}#"

    # -- life -----------------------------------------------------------------------------------

    async def init(self) -> None:
        if self.closed:
            return
        await super().init()
        await self.factory.start()

    def subscribe(self) -> None:
        self.factory.namespaces[self.nsp.name] = self
        self.link.subscribe(self.on_raw_message, channels=[self.channel, self.response_channel])

    def unsubscribe(self) -> None:
        if self.factory.namespaces.get(self.nsp.name) is self:
            del self.factory.namespaces[self.nsp.name]
        self.link.unsubscribe(self.on_raw_message, channels=[self.channel, self.response_channel])

    async def server_count(self) -> int:
        return await self.link.subscribers(self.channel)

    # -- out --------------------------------------------------------------------------------------

    def publish(self, message: ClusterMessage) -> None:
        if is_ephemeral(message):
            self.link.publish(self.channel, pack(message))
        else:
            self.writer.xadd(self.stream, encode_entry(message), self.factory.max_len)

    def publish_response(self, requester_uid: str, message: ClusterMessage) -> None:
        self.link.publish(f"{self.channel}{requester_uid}#", pack(message))

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> None:
        if self.recovery is None:  # nothing to wait for: delivered at once, as elsewhere
            if not opts.local:
                self.publish(self._broadcast_message(data, opts))
            self.broadcast_local(data, opts)
            return
        if opts.local:
            self.writer.after_pending(lambda: self.broadcast_local(data, opts))
            return
        with_offset = not opts.volatile

        def added(entry_id: str | None) -> None:
            self.broadcast_local(data, opts, entry_id if with_offset else None)

        self.writer.xadd(self.stream, encode_entry(self._broadcast_message(data, opts)),
                         self.factory.max_len, added)

    def _broadcast_message(self, data: list[Any], opts: BroadcastOptions) -> ClusterMessage:
        return self.message(MessageType.BROADCAST, {
            "opts": encode_options(opts),
            "packet": {"type": _EVENT, "data": data, "nsp": self.nsp.name}})

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        if self.recovery is None:
            super().add_sockets(opts, rooms)
            return
        rooms = sorted(rooms)
        self._in_turn(opts, MessageType.SOCKETS_JOIN, {"rooms": rooms},
                      lambda: InMemoryAdapter.add_sockets(self, opts, rooms))

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        if self.recovery is None:
            super().del_sockets(opts, rooms)
            return
        rooms = sorted(rooms)
        self._in_turn(opts, MessageType.SOCKETS_LEAVE, {"rooms": rooms},
                      lambda: InMemoryAdapter.del_sockets(self, opts, rooms))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        if self.recovery is None:
            super().disconnect_sockets(opts, close)
            return
        self._in_turn(opts, MessageType.DISCONNECT_SOCKETS, {"close": bool(close)},
                      lambda: InMemoryAdapter.disconnect_sockets(self, opts, close))

    def _in_turn(self, opts: BroadcastOptions, mtype: MessageType, data: dict[str, Any],
                 apply: Callable[[], None]) -> None:
        """With recovery on: published, then applied here after the broadcasts made before
        (as Node does, which waits for its XADD)."""
        if opts.local:
            self.writer.after_pending(apply)
            return
        message = self.message(mtype, {"opts": encode_options(opts), **data})
        self.writer.xadd(self.stream, encode_entry(message), self.factory.max_len,
                         lambda _: apply())

    # -- in ---------------------------------------------------------------------------------------


    def on_entry(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        """An entry of the stream for this namespace, in order."""
        try:
            message = decode_entry(fields)
        except ValueError as exc:
            log.debug("ignoring entry %s of %r: %s", entry_id, self.stream, exc)
            return
        if message["uid"] == self.uid or self.closed:
            return  # this server's own: delivered when Redis gave its id
        mtype, data = message["type"], message.get("data") or {}
        try:
            if mtype == MessageType.BROADCAST and "requestId" not in data:
                opts = decode_options(data.get("opts") or {})
                packet = data["packet"]
                offset = None
                if (self.recovery is not None and not opts.volatile and packet.get("id") is None
                        and packet.get("type", _EVENT) == _EVENT):
                    offset = entry_id
                self.broadcast_local(list(packet["data"]), opts, offset)
            elif mtype == MessageType.SOCKETS_JOIN:
                InMemoryAdapter.add_sockets(self, decode_options(data.get("opts") or {}),
                                            data.get("rooms") or ())
            elif mtype == MessageType.SOCKETS_LEAVE:
                InMemoryAdapter.del_sockets(self, decode_options(data.get("opts") or {}),
                                            data.get("rooms") or ())
            elif mtype == MessageType.DISCONNECT_SOCKETS:
                InMemoryAdapter.disconnect_sockets(self, decode_options(data.get("opts") or {}),
                                                   bool(data.get("close")))
            else:
                self.on_message(message)
        except Exception:
            log.exception("cannot handle entry %s (type %s) from %s on %s", entry_id, mtype,
                          message["uid"], self.nsp.name)

    # -- connection state recovery --------------------------------------------------------------

    def enable_recovery(self, options: RecoveryOptions) -> None:
        self.recovery = options

    def persist_session(self, session: Session) -> None:
        if self.recovery is None:
            return
        ttl = max(1, int(self.recovery.max_disconnection_duration * 1000))
        if not self.writer.command("SET", self.factory.session_key_prefix + session.pid,
                                   encode_session(session), "PX", ttl):
            # counted with the outage's other losses (logged when Redis is back)
            log.debug("the session of socket %s on %s is lost: Redis at %s is unreachable",
                      session.sid, self.nsp.name, self.link.where)

    async def restore_session(self, pid: str, offset: str) -> Restored | None:
        """The session of ``pid`` (taken out of Redis) and the broadcasts it missed after
        ``offset``; ``None`` when either is gone. Raises :class:`~sockjet.AdapterError` while
        Redis is unreachable."""
        if self.recovery is None or not _OFFSET.fullmatch(offset):
            return None
        self.link.check()
        client = self.link.client
        key = self.factory.session_key_prefix + pid
        transaction = client.pipeline(transaction=True)
        transaction.get(key)
        transaction.delete(key)
        (raw, _), found = await asyncio.gather(transaction.execute(),
                                               client.xrange(self.stream, offset, offset))
        if not raw or not found:
            return None
        try:
            session = decode_session(raw)
        except ValueError as exc:
            log.warning("cannot restore session %s…: %s", pid[:4], exc)
            return None
        entries: list[tuple[str, Mapping[bytes, bytes]]] = []
        cursor = offset
        for _ in range(_RESTORE_CALLS):
            batch = await client.xrange(self.stream, next_offset(cursor), "+",
                                        count=self.factory.read_count)
            if batch:
                for entry_id, fields in batch:
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    entries.append((cursor, fields))
            elif parse_id(cursor) >= max(self.reader.position, self.writer.last_id):
                break  # nothing after what this server delivered
        # From here on nothing waits until the socket is back in its rooms: entries of other
        # servers that the reader has not handed over yet, and this server's own that Redis has
        # not answered for yet, will reach it live; everything before is missed.
        return Restored(session, self._missed(session, entries))

    def _missed(self, session: Session,
                entries: list[tuple[str, Mapping[bytes, bytes]]]) -> list[list[Any]]:
        read, written = self.reader.position, self.writer.last_id
        rooms = set(session.rooms)
        missed: list[list[Any]] = []
        for entry_id, fields in entries:
            if fields.get(b"nsp") != self.nsp.name.encode() or fields.get(b"type") != b"3":
                continue
            position = parse_id(entry_id)
            own = fields.get(b"uid") == self.uid.encode()
            if position > (written if own else read):
                continue  # still on its way here
            try:
                data = decode_entry(fields)["data"]
                opts, packet = data["opts"], data["packet"]
                targets = set(opts.get("rooms") or ())
                if (not targets or not targets.isdisjoint(rooms)) and \
                        rooms.isdisjoint(opts.get("except") or ()) and \
                        not (opts.get("flags") or {}).get("volatile") and \
                        packet.get("id") is None and "requestId" not in data:
                    missed.append([*packet["data"], entry_id])
            except (KeyError, TypeError, ValueError) as exc:
                log.debug("ignoring entry %s of %r: %s", entry_id, self.stream, exc)
        return missed
