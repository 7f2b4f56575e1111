"""The sharded Redis adapter, wire-compatible with Node's ``createShardedAdapter``
(``@socket.io/redis-adapter`` 8.x): Redis 7 sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``), so
that a Redis Cluster spreads the channels over its nodes.

The messages are :class:`~sockjet.adapters.cluster.ClusterAdapter`'s, as Node's
``ClusterAdapter`` writes them (``{uid, nsp, type, data}``), on these channels for namespace
``nsp`` and prefix ``channel_prefix`` (default ``socket.io``):

- ``prefix#nsp#``: every message of the namespace's servers;
- ``prefix#nsp#<uid>#``: the answers to the requests of the server whose adapter is ``uid``;
- ``prefix#nsp#<room>#``: with ``subscription_mode`` ``"dynamic"`` (the default), broadcasts
  without acks to exactly one room whose name does not look like a socket id (20 characters);
  each server subscribes to the channel of a room while it has sockets in it (rooms that are a
  socket's own id excepted). ``"dynamic-private"`` does the same for every room, ``"static"``
  uses no room channels.

How many servers have the namespace is ``PUBSUB SHARDNUMSUB prefix#nsp#``. sockjet sends
msgpack; it reads Node's JSON too."""

from __future__ import annotations

import secrets
from typing import Any

from .cluster import ClusterMessage, MessageType
from .redis_base import RedisFactory, RedisNamespaceAdapter
from .wire import pack

SUBSCRIPTION_MODES = ("static", "dynamic", "dynamic-private")


def looks_like_a_socket_id(room: str) -> bool:
    """What Node's sharded adapter takes for a socket's own room when it publishes."""
    return len(room) == 20


class RedisShardedAdapter(RedisFactory):
    """Scale out over Redis sharded pub/sub (Redis ≥ 7, a single server or a Redis Cluster),
    wire-compatible with Node's ``createShardedAdapter``:
    ``sockjet.Server(adapter=sockjet.RedisShardedAdapter("redis://host:6379/0"))``.

    ``url_or_client``: a ``redis://`` URL or a ``redis.asyncio`` client (``Redis`` or
    ``RedisCluster``, made with ``decode_responses=False``); ``channel_prefix`` (Node's
    ``channelPrefix``); ``subscription_mode`` ``"dynamic"`` (default), ``"dynamic-private"`` or
    ``"static"`` (see the module); ``requests_timeout`` in seconds.

    One instance per server, shared by the adapters of its namespaces."""

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *,
                 channel_prefix: str = "socket.io", subscription_mode: str = "dynamic",
                 requests_timeout: float = 5.0) -> None:
        if not isinstance(channel_prefix, str) or not channel_prefix:
            raise ValueError("channel_prefix must be a non-empty string")
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(f"subscription_mode must be one of {', '.join(SUBSCRIPTION_MODES)}"
                             f", not {subscription_mode!r}")
        super().__init__(url_or_client, requests_timeout)
        self.channel_prefix = channel_prefix
        self.subscription_mode = subscription_mode

    def make(self, nsp: Any) -> ShardedRedisAdapter:
        return ShardedRedisAdapter(nsp, self)


def _node_uid() -> str:
    """16 hex digits, as Node's ``ClusterAdapter``."""
    return secrets.token_hex(8)


class ShardedRedisAdapter(RedisNamespaceAdapter):
    """The adapter of one namespace on a :class:`RedisShardedAdapter` (made by it)."""

    new_uid = staticmethod(_node_uid)

    def __init__(self, nsp: Any, factory: RedisShardedAdapter) -> None:
        super().__init__(nsp, factory)
        self.mode = factory.subscription_mode
        self.channel = f"{factory.channel_prefix}#{nsp.name}#"
        #: the rooms whose channel this adapter subscribes to
        self.room_channels: set[str] = set()

    @property
    def response_channel(self) -> str:
        return f"{self.channel}{self.uid}#"

    # -- life -----------------------------------------------------------------------------------

    def subscribe(self) -> None:
        channels = [self.channel, self.response_channel]
        if self.mode != "static":
            for room in self.rooms:
                if self._has_channel(room):
                    self.room_channels.add(room)
                    channels.append(self._room_channel(room))
        self.link.subscribe(self.on_raw_message, shard_channels=channels)

    def unsubscribe(self) -> None:
        self.link.unsubscribe(self.on_raw_message, shard_channels=[
            self.channel, self.response_channel,
            *(self._room_channel(room) for room in self.room_channels)])
        self.room_channels.clear()

    async def server_count(self) -> int:
        return await self.link.subscribers(self.channel, sharded=True)

    def _room_channel(self, room: str) -> str:
        return f"{self.channel}{room}#"

    def _has_channel(self, room: str) -> bool:
        """Whether this server reads a channel for ``room`` (Node: not for a socket's own
        room, unless the mode is ``dynamic-private``)."""
        return self.mode == "dynamic-private" or (self.mode == "dynamic"
                                                  and room not in self.sids)

    def room_created(self, room: str) -> None:
        if self.mode != "static" and self.subscribed and self._has_channel(room):
            self.room_channels.add(room)
            self.link.subscribe(self.on_raw_message, shard_channels=(self._room_channel(room),))

    def room_deleted(self, room: str) -> None:
        if room in self.room_channels:
            self.room_channels.discard(room)
            self.link.unsubscribe(self.on_raw_message, shard_channels=(self._room_channel(room),))

    # -- out --------------------------------------------------------------------------------------

    def publish(self, message: ClusterMessage) -> None:
        self.link.publish(self._channel_of(message), pack(message), sharded=True)

    def _channel_of(self, message: ClusterMessage) -> str:
        # a broadcast with acks goes to every server: each must report how many clients it
        # reached, and only the count of all servers of the namespace is known
        if message["type"] == MessageType.BROADCAST:
            data = message["data"]
            rooms = data["opts"]["rooms"]
            if "requestId" not in data and len(rooms) == 1 and (
                    self.mode == "dynamic-private"
                    or (self.mode == "dynamic" and not looks_like_a_socket_id(rooms[0]))):
                return self._room_channel(rooms[0])
        return self.channel

    def publish_response(self, requester_uid: str, message: ClusterMessage) -> None:
        self.link.publish(f"{self.channel}{requester_uid}#", pack(message), sharded=True)

    # -- in ---------------------------------------------------------------------------------------

