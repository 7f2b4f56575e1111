"""The classic Redis adapter, wire-compatible with Node's ``@socket.io/redis-adapter`` 8.x
(``createAdapter``): sockjet and Node servers on one Redis reach each other's clients.

Per namespace ``nsp`` and key prefix ``key`` (default ``socket.io``), as Node's:

- broadcasts are published on ``key#nsp#`` (``key#nsp#room#`` when they target exactly one
  room) as the msgpack of ``[uid, packet, opts]``, received through ``PSUBSCRIBE key#nsp#*``;
- requests (type numbers of Node's ``RequestType``) go to ``key-request#nsp#`` and answers to
  ``key-response#nsp#`` (or ``key-response#nsp#<uid>#``, the requester's own channel, with
  ``publish_on_specific_response_channel``);
- how many servers have the namespace is ``PUBSUB NUMSUB key-request#nsp#``.

What the cross-server operations do is :class:`~sockjet.adapters.cluster.ClusterAdapter`'s;
this module only translates its messages to and from Node's shapes. sockjet's answers carry a
few fields Node ignores (the answering socket's id with each ack, the ids of the sockets a
broadcast reached), so that between sockjet servers an :class:`~sockjet.AckTimeout` names the
clients that did not answer; Node's answers say how many clients, not which."""

from __future__ import annotations

import logging
import secrets
import string
from typing import Any

from ..socketio.adapter import BroadcastOptions
from .cluster import ClusterMessage, MessageType
from .redis_base import RedisFactory, RedisNamespaceAdapter
from .wire import pack, unpack

log = logging.getLogger("sockjet.adapters")


class RequestType:
    """The request types of Node's classic Redis adapter (v7/v8)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


#: cluster message type -> classic request type, for what a server publishes as a request
_AS_REQUEST = {
    MessageType.SOCKETS_JOIN: RequestType.REMOTE_JOIN,
    MessageType.SOCKETS_LEAVE: RequestType.REMOTE_LEAVE,
    MessageType.DISCONNECT_SOCKETS: RequestType.REMOTE_DISCONNECT,
    MessageType.FETCH_SOCKETS: RequestType.REMOTE_FETCH,
    MessageType.SERVER_SIDE_EMIT: RequestType.SERVER_SIDE_EMIT,
    MessageType.ALL_ROOMS: RequestType.ALL_ROOMS,
    MessageType.BROADCAST: RequestType.BROADCAST,
}
_FROM_REQUEST = {
    RequestType.REMOTE_JOIN: MessageType.SOCKETS_JOIN,
    RequestType.REMOTE_LEAVE: MessageType.SOCKETS_LEAVE,
    RequestType.REMOTE_DISCONNECT: MessageType.DISCONNECT_SOCKETS,
    RequestType.REMOTE_FETCH: MessageType.FETCH_SOCKETS,
    RequestType.ALL_ROOMS: MessageType.ALL_ROOMS,
    RequestType.BROADCAST: MessageType.BROADCAST,
}
_UID_ALPHABET = string.ascii_letters + string.digits


def short_uid() -> str:
    """Six random letters and digits, as Node's ``uid2(6)``."""
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))


def classic_options(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` of a request as Node's classic adapter writes them (no flags)."""
    return {"rooms": opts.get("rooms", []), "except": opts.get("except", [])}


class RedisAdapter(RedisFactory):
    """Scale out over Redis pub/sub, wire-compatible with Node's ``@socket.io/redis-adapter``
    8.x: ``sockjet.Server(adapter=sockjet.RedisAdapter("redis://host:6379/0"))``.

    ``url_or_client`` is a ``redis://`` URL or a ``redis.asyncio.Redis`` client (made with
    ``decode_responses=False``); ``key`` the prefix of the channels (Node's ``key``);
    ``requests_timeout`` how long requests (``fetch_sockets``, ``server_side_emit`` with ack,
    ``all_rooms``) wait for the other servers, in seconds; with
    ``publish_on_specific_response_channel`` answers go to the requester's own channel instead
    of the one every server of the namespace reads.

    One instance per server: it holds that server's Redis connections, which the adapters of
    its namespaces share. They connect when the server starts serving (a clear
    :class:`~sockjet.AdapterError` if Redis cannot be reached) and close when it stops."""

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *,
                 key: str = "socket.io", requests_timeout: float = 5.0,
                 publish_on_specific_response_channel: bool = False) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        super().__init__(url_or_client, requests_timeout)
        self.key = key
        self.publish_on_specific_response_channel = bool(publish_on_specific_response_channel)

    def make(self, nsp: Any) -> ClassicRedisAdapter:
        return ClassicRedisAdapter(nsp, self)


class ClassicRedisAdapter(RedisNamespaceAdapter):
    """The adapter of one namespace on a :class:`RedisAdapter` (made by it)."""

    own_all_rooms = True  # Node's classic adapter answers ALL_ROOMS
    new_uid = staticmethod(short_uid)

    def __init__(self, nsp: Any, factory: RedisAdapter) -> None:
        super().__init__(nsp, factory)
        self.publish_on_specific_response_channel = factory.publish_on_specific_response_channel
        key, name = factory.key, nsp.name
        self.channel = f"{key}#{name}#"
        self.request_channel = f"{key}-request#{name}#"
        self.response_channel = f"{key}-response#{name}#"
        self._channel_bytes = self.channel.encode()
        self._response_bytes = self.response_channel.encode()

    @property
    def specific_response_channel(self) -> str:
        return f"{self.response_channel}{self.uid}#"

    # -- life -----------------------------------------------------------------------------------

    def subscribe(self) -> None:
        self.link.subscribe(self._on_broadcast, patterns=(self.channel + "*",))
        self.link.subscribe(self._on_request_or_response, channels=(
            self.request_channel, self.response_channel, self.specific_response_channel))

    def unsubscribe(self) -> None:
        self.link.unsubscribe(self._on_broadcast, patterns=(self.channel + "*",))
        self.link.unsubscribe(self._on_request_or_response, channels=(
            self.request_channel, self.response_channel, self.specific_response_channel))

    async def server_count(self) -> int:
        return await self.link.subscribers(self.request_channel)

    # -- out --------------------------------------------------------------------------------------

    def publish(self, message: ClusterMessage) -> None:
        mtype = message["type"]
        data = message.get("data") or {}
        if mtype == MessageType.BROADCAST and "requestId" not in data:
            rooms = data["opts"]["rooms"]
            channel = self.channel + f"{rooms[0]}#" if len(rooms) == 1 else self.channel
            self.link.publish(channel, pack([self.uid, data["packet"], data["opts"]]))
            return
        request_type = _AS_REQUEST.get(mtype)
        if request_type is None:
            return  # heartbeats and the like: the classic adapter has none
        request: dict[str, Any] = {"uid": self.uid, "type": request_type}
        if mtype == MessageType.BROADCAST:
            request.update(requestId=data["requestId"], packet=data["packet"],
                           opts=data["opts"])
        elif mtype in (MessageType.SOCKETS_JOIN, MessageType.SOCKETS_LEAVE):
            request.update(opts=classic_options(data["opts"]), rooms=data["rooms"])
        elif mtype == MessageType.DISCONNECT_SOCKETS:
            request.update(opts=classic_options(data["opts"]), close=data["close"])
        elif mtype == MessageType.FETCH_SOCKETS:
            request.update(requestId=data["requestId"], opts=classic_options(data["opts"]))
        elif mtype == MessageType.SERVER_SIDE_EMIT:
            request["data"] = data["packet"]
            if "requestId" in data:
                request["requestId"] = data["requestId"]
        else:  # ALL_ROOMS
            request["requestId"] = data["requestId"]
        self.link.publish(self.request_channel, pack(request))

    def publish_response(self, requester_uid: str, message: ClusterMessage) -> None:
        mtype = message["type"]
        data = message["data"]
        response: dict[str, Any] = {"requestId": data["requestId"], "uid": self.uid}
        if mtype == MessageType.FETCH_SOCKETS_RESPONSE:
            response["sockets"] = data["sockets"]
        elif mtype == MessageType.ALL_ROOMS_RESPONSE:
            response["rooms"] = data["rooms"]
        elif mtype == MessageType.SERVER_SIDE_EMIT_RESPONSE:
            response.update(type=RequestType.SERVER_SIDE_EMIT, data=data["packet"])
        elif mtype == MessageType.BROADCAST_CLIENT_COUNT:
            response.update(type=RequestType.BROADCAST_CLIENT_COUNT,
                            clientCount=data["clientCount"], sockets=data["sockets"])
        elif mtype == MessageType.BROADCAST_ACK:
            response.update(type=RequestType.BROADCAST_ACK, packet=data["packet"],
                            sid=data["sid"], args=data["args"])
        else:
            return
        self._respond(requester_uid, response)

    def _respond(self, requester_uid: str, response: dict[str, Any]) -> None:
        channel = (f"{self.response_channel}{requester_uid}#"
                   if self.publish_on_specific_response_channel
                   else self.response_channel)
        self.link.publish(channel, pack(response))

    # -- in ---------------------------------------------------------------------------------------

    def _on_broadcast(self, channel: bytes, payload: bytes) -> None:
        room = channel[len(self._channel_bytes):-1]
        if room and room.decode(errors="replace") not in self.rooms:
            return  # a one-room broadcast for a room nobody here is in
        try:
            uid, packet, opts = unpack(payload)
            nsp = packet.get("nsp", "/")
        except (ValueError, TypeError, AttributeError):
            log.debug("ignoring a malformed broadcast on %r", channel)
            return
        if uid == self.uid or self.closed or nsp != self.nsp.name:
            return
        self.on_request(uid, MessageType.BROADCAST, {"opts": opts, "packet": packet})

    def _on_request_or_response(self, channel: bytes, payload: bytes) -> None:
        if self.closed:
            return
        try:
            message = unpack(payload)
        except ValueError:
            log.debug("ignoring a malformed message on %r", channel)
            return
        if not isinstance(message, dict):
            return
        if channel.startswith(self._response_bytes):
            self._on_response(message)
        else:
            self._on_request(message)

    def _on_request(self, request: dict[str, Any]) -> None:
        uid = request.get("uid")
        uid = uid if isinstance(uid, str) else "emitter"  # the emitter's requests have none
        if uid == self.uid:
            return  # this server applied it when it sent it
        rtype = request.get("type")
        if rtype == RequestType.SERVER_SIDE_EMIT:
            data: dict[str, Any] = {"packet": request.get("data") or []}
            if "requestId" in request:
                data["requestId"] = request["requestId"]
            self.on_request(uid, MessageType.SERVER_SIDE_EMIT, data)
        elif rtype == RequestType.SOCKETS:  # only answered: Node 8.x never sends it
            rooms = request.get("rooms") or []
            sids = [s.id for s in self.select(BroadcastOptions(rooms=frozenset(rooms)))]
            self._respond(uid, {"requestId": request.get("requestId"), "sockets": sids})
        elif rtype in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE,
                       RequestType.REMOTE_DISCONNECT) and "opts" not in request:
            self._legacy_request(uid, rtype, request)
        elif rtype in _FROM_REQUEST:
            self.on_request(uid, _FROM_REQUEST[rtype], request)
        else:
            log.debug("ignoring a request of unknown type %r from %s", rtype, uid)

    def _legacy_request(self, uid: str, rtype: int, request: dict[str, Any]) -> None:
        """The per-socket form of join/leave/disconnect (``sid``, ``room``, ``requestId``) of
        earlier adapters: applied if the socket is here, then answered."""
        socket = self.nsp.sockets.get(str(request.get("sid")))
        if socket is None:
            return
        if rtype == RequestType.REMOTE_JOIN:
            socket.join(str(request.get("room")))
        elif rtype == RequestType.REMOTE_LEAVE:
            socket.leave(str(request.get("room")))
        else:
            socket.disconnect(bool(request.get("close")))
        self._respond(uid, {"requestId": request.get("requestId")})

    def _on_response(self, response: dict[str, Any]) -> None:
        uid = response.get("uid")
        uid = uid if isinstance(uid, str) else None
        rtype = response.get("type")
        if rtype == RequestType.BROADCAST_CLIENT_COUNT:
            self.on_response(uid, MessageType.BROADCAST_CLIENT_COUNT, response)
        elif rtype == RequestType.BROADCAST_ACK:
            self.on_response(uid, MessageType.BROADCAST_ACK, response)
        elif rtype == RequestType.SERVER_SIDE_EMIT:
            self.on_response(uid, MessageType.SERVER_SIDE_EMIT_RESPONSE,
                             {"requestId": response.get("requestId"),
                              "packet": response.get("data")})
        elif "sockets" in response:
            self.on_response(uid, MessageType.FETCH_SOCKETS_RESPONSE, response)
        elif "rooms" in response:
            self.on_response(uid, MessageType.ALL_ROOMS_RESPONSE, response)
