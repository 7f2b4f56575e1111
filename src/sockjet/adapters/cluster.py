"""The cross-server part of an adapter, independent of the link between servers: what goes to the
other servers for each operation, the request/response bookkeeping (request ids, timeouts, how
many answers to wait for), acks across servers, and the sockets of other servers as
:class:`RemoteSocket` objects. A link (local Unix sockets, Redis...) subclasses
:class:`ClusterAdapter` (or :class:`HeartbeatClusterAdapter`, which knows the other servers by
their heartbeats instead of asking the link how many there are), implements
:meth:`ClusterAdapter.publish` and :meth:`ClusterAdapter.publish_response`, and hands what it
receives to :meth:`ClusterAdapter.on_message` (or, for links whose messages are shaped
otherwise, such as the classic Redis adapter's, to :meth:`ClusterAdapter.on_request` and
:meth:`ClusterAdapter.on_response`).

Messages are ``{"uid", "nsp", "type", "data"}`` mappings with the message types and data shapes
of Node's ``socket.io-adapter`` cluster adapter (see :class:`MessageType`), plus two of sockjet's
own for ``all_rooms``. Their values are msgpack-able: strings, numbers, lists, maps and bytes."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ..exceptions import AckTimeout, AdapterError
from ..socketio.adapter import BroadcastAcks, BroadcastOptions
from ..socketio.operator import BroadcastOperator, check_event_name, room_set
from ..socketio.socket import DONE, Handshake, Socket
from .memory import InMemoryAdapter

log = logging.getLogger("sockjet.adapters")

#: a message between servers: ``{"uid": str, "nsp": str, "type": int, "data": {...}}``
ClusterMessage = dict[str, Any]


class MessageType(IntEnum):
    """The message types of Node's ``ClusterAdapter`` (same numbers, same data fields)."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3  # opts, packet, requestId (with acks)
    SOCKETS_JOIN = 4  # opts, rooms
    SOCKETS_LEAVE = 5  # opts, rooms
    DISCONNECT_SOCKETS = 6  # opts, close
    FETCH_SOCKETS = 7  # opts, requestId
    FETCH_SOCKETS_RESPONSE = 8  # requestId, sockets
    SERVER_SIDE_EMIT = 9  # packet, requestId (with ack)
    SERVER_SIDE_EMIT_RESPONSE = 10  # requestId, packet
    BROADCAST_CLIENT_COUNT = 11  # requestId, clientCount (sockjet adds sockets: their ids)
    BROADCAST_ACK = 12  # requestId, packet: the first argument (sockjet adds sid and args)
    ADAPTER_CLOSE = 13
    #: sockjet's own (Node's cluster adapter has no allRooms across servers)
    ALL_ROOMS = 14  # requestId
    ALL_ROOMS_RESPONSE = 15  # requestId, rooms


_EVENT = 2  # a Socket.IO EVENT packet, as Node's adapters write it in "packet"


def encode_options(opts: BroadcastOptions) -> dict[str, Any]:
    """``opts`` as Node's adapters send them: rooms, except and the flags that matter on the
    receiving side (``timeout`` in milliseconds, as in Node)."""
    flags: dict[str, Any] = {}
    if opts.volatile:
        flags["volatile"] = True
    if not opts.compress:
        flags["compress"] = False
    if opts.timeout is not None:
        flags["timeout"] = int(opts.timeout * 1000)
    return {"rooms": sorted(opts.rooms), "except": sorted(opts.except_rooms), "flags": flags}


def decode_options(data: Mapping[str, Any]) -> BroadcastOptions:
    """The options of a message from another server, for this server's sockets only."""
    flags = data.get("flags") or {}
    timeout = flags.get("timeout")
    return BroadcastOptions(
        rooms=room_set(data.get("rooms") or ()),
        except_rooms=room_set(data.get("except") or ()),
        volatile=bool(flags.get("volatile", False)),
        compress=bool(flags.get("compress", True)),
        local=True,
        timeout=None if timeout is None else float(timeout) / 1000,
    )


def handshake_to_dict(handshake: Handshake) -> dict[str, Any]:
    return {
        "headers": dict(handshake.headers),
        "query": dict(handshake.query),
        "auth": handshake.auth,
        "address": handshake.address,
        "time": handshake.time,
        "issued": handshake.issued,
        "secure": handshake.secure,
        "xdomain": handshake.xdomain,
        "url": handshake.url,
        "extra": handshake.extra,
    }


def handshake_from_dict(data: Mapping[str, Any]) -> Handshake:
    return Handshake(
        headers=dict(data.get("headers") or {}),
        query=dict(data.get("query") or {}),
        auth=dict(data.get("auth") or {}),
        address=str(data.get("address", "")),
        time=str(data.get("time", "")),
        issued=int(data.get("issued", 0)),
        secure=bool(data.get("secure", False)),
        xdomain=bool(data.get("xdomain", False)),
        url=str(data.get("url", "")),
        extra=dict(data.get("extra") or {}),
    )


class RemoteSocket:
    """A socket of another server, as :meth:`ClusterAdapter.fetch_sockets` returns it: a
    snapshot of its ``id``, ``handshake``, ``rooms`` and ``data``, and operations that act on it
    through the cluster (they reach the server that holds it)."""

    __slots__ = ("_adapter", "data", "handshake", "id", "rooms", "server_uid")

    def __init__(self, adapter: ClusterAdapter, server_uid: str | None,
                 details: Mapping[str, Any]) -> None:
        self._adapter = adapter
        #: the uid of the adapter of the server that holds the socket (``None`` when its
        #: answer did not say: Node's classic Redis adapter)
        self.server_uid = server_uid
        self.id = str(details["id"])
        self.handshake = handshake_from_dict(details.get("handshake") or {})
        self.rooms: set[str] = set(details.get("rooms") or ())
        self.data: dict[str, Any] = dict(details.get("data") or {})

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id!r} nsp={self._adapter.nsp.name!r}>"

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self._adapter.nsp).to(self.id)

    def emit(self, event: str, *args: Any) -> bool:
        """Send an event to this client (through the cluster; no ack)."""
        return self._operator().emit(event, *args)

    def join(self, rooms: str | Iterable[str]) -> Awaitable[None]:
        self._operator().sockets_join(rooms)
        return DONE

    def leave(self, room: str) -> Awaitable[None]:
        self._operator().sockets_leave(room)
        return DONE

    def disconnect(self, close: bool = False) -> RemoteSocket:
        self._operator().disconnect_sockets(close)
        return self


@dataclass(slots=True)
class _Request:
    """A request to the other servers: how many answers to wait for (the servers asked, when
    they are known by uid), who answered, and what came."""

    expected: int
    asked: frozenset[str] | None
    future: asyncio.Future[None]
    answered: set[str] = field(default_factory=set)
    responses: list[tuple[str | None, Any]] = field(default_factory=list)

    def add(self, uid: str | None, answer: Any) -> None:
        if uid is not None:
            if uid in self.answered or (self.asked is not None and uid not in self.asked):
                return  # duplicated, or from a server that was not asked
            self.answered.add(uid)
        self.responses.append((uid, answer))
        self.check()

    def check(self) -> None:
        if len(self.responses) >= self.expected and not self.future.done():
            self.future.set_result(None)

    def missing(self) -> list[str]:
        if self.asked is None:
            return []
        return sorted(self.asked - self.answered)


@dataclass(slots=True)
class _AckRequest:
    """A broadcast with acks sent to other servers: the operator's collector, the servers that
    have not reported their targets (by uid when known, else only how many), and how many
    reported targets have not answered. Servers that report a count without the socket ids
    (Node's) get named placeholders, matched in order by their acks."""

    acks: BroadcastAcks
    waiting: set[str] | None
    pending_reports: int = 0
    pending_acks: int = 0
    timer: asyncio.TimerHandle | None = None
    #: reports that arrived before the number of servers was known
    early: list[list[str]] | None = None
    unnamed: deque[str] = field(default_factory=deque)
    unnamed_count: int = 0

    def placeholder(self, request_id: str) -> str:
        self.unnamed_count += 1
        return f"?{request_id}.{self.unnamed_count}"


class _RemoteAcks:
    """On the receiving server, a broadcast with acks for another server: each answer goes back
    to the requester (the local targets are reported by the caller)."""

    __slots__ = ("_adapter", "_request_id", "_requester")

    def __init__(self, adapter: ClusterAdapter, requester: str, request_id: str) -> None:
        self._adapter = adapter
        self._requester = requester
        self._request_id = request_id

    def __call__(self, sid: str, args: list[Any], /) -> None:
        # Node's adapters carry the first argument only ("packet"); sockjet adds them all
        self._adapter.publish_response(self._requester, self._adapter.message(
            MessageType.BROADCAST_ACK,
            {"requestId": self._request_id, "packet": args[0] if args else None,
             "sid": sid, "args": args}))

    def expect_servers(self, count: int, /) -> None:
        """Not used: the receiving side never forwards."""

    def server_targets(self, sids: list[str], /) -> None:
        """Not used: the receiving side never forwards."""

    def fail(self, error: Exception, /) -> None:
        """Not used: the receiving side never forwards."""


class ClusterAdapter(InMemoryAdapter):
    """An adapter whose operations reach the sockets of every server of a cluster.

    Rooms stay local (this server's sockets, as in :class:`InMemoryAdapter`); every operation
    that is not ``local`` is applied here and published to the other servers, which apply it
    to their own sockets (each encoding a broadcast once). Operations with an answer
    (``fetch_sockets``, ``all_rooms``, ``server_side_emit`` with ack, broadcasts with acks) wait
    for as many answers as :meth:`server_count` says there are other servers, for at most
    ``requests_timeout`` seconds (the broadcast's own timeout for acks), as Node's
    ``ClusterAdapter`` does.

    A link subclasses it: :meth:`publish`, :meth:`publish_response`, :meth:`server_count`, and
    calls :meth:`on_message` with what it receives.
    """

    #: whether :meth:`all_rooms` asks the others with sockjet's own ``ALL_ROOMS`` message (a
    #: cluster of sockjet servers only); otherwise it takes the rooms of every socket from
    #: ``FETCH_SOCKETS``, which Node's servers answer too
    own_all_rooms = False

    def __init__(self, nsp: Any, *, uid: str | None = None,
                 requests_timeout: float = 5.0) -> None:
        super().__init__(nsp)
        if not isinstance(requests_timeout, int | float) or requests_timeout <= 0:
            raise ValueError("requests_timeout must be a positive number of seconds")
        #: this adapter's id in the cluster (16 hex digits, as Node's)
        self.uid = uid or secrets.token_hex(8)
        self.requests_timeout = float(requests_timeout)
        self._requests: dict[str, _Request] = {}
        self._ack_requests: dict[str, _AckRequest] = {}
        self._closed = False

    # -- what a link implements -----------------------------------------------------------------

    @abstractmethod
    def publish(self, message: ClusterMessage) -> None:
        """Send ``message`` to every other server (those without this namespace ignore it)."""

    @abstractmethod
    def publish_response(self, requester_uid: str, message: ClusterMessage) -> None:
        """Send ``message`` to the server whose adapter has uid ``requester_uid`` (sending it to
        every server is correct too, only slower: the others ignore it)."""

    @abstractmethod
    async def server_count(self) -> int:
        """How many servers have this namespace, this one included."""

    def known_servers(self) -> frozenset[str] | None:
        """The uids of the other servers, when the link knows them (then requests wait for
        those exactly); ``None`` when it only knows how many there are."""
        return None

    # -- life -----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop answering; pending requests fail at once."""
        if self._closed:
            return
        self._closed = True
        self.fail_requests(AdapterError(f"the adapter of {self.nsp.name} is closed"))
        await super().close()

    def fail_requests(self, error: Exception) -> None:
        """Fail every pending request with ``error`` (the link is lost): callers get it at once
        instead of waiting for their timeout. Broadcasts with acks stop waiting for servers."""
        for request in list(self._requests.values()):
            if not request.future.done():
                request.future.set_exception(error)
        for request_id, ack_request in list(self._ack_requests.items()):
            del self._ack_requests[request_id]
            if ack_request.timer is not None:
                ack_request.timer.cancel()
            for sids in ack_request.early or ():  # known targets count as missing
                ack_request.acks.server_targets(sids)
            ack_request.acks.fail(error)

    @property
    def closed(self) -> bool:
        return self._closed

    def message(self, mtype: MessageType, data: dict[str, Any] | None = None) -> ClusterMessage:
        """A message from this adapter."""
        message: ClusterMessage = {"uid": self.uid, "nsp": self.nsp.name, "type": int(mtype)}
        if data is not None:
            message["data"] = data
        return message

    # -- operations -----------------------------------------------------------------------------

    def broadcast(self, data: list[Any], opts: BroadcastOptions) -> None:
        if not opts.local:
            self.publish(self.message(MessageType.BROADCAST, {
                "opts": encode_options(opts),
                "packet": {"type": _EVENT, "data": data, "nsp": self.nsp.name}}))
        super().broadcast(data, opts)

    def broadcast_with_ack(self, data: list[Any], opts: BroadcastOptions,
                           on_ack: BroadcastAcks) -> list[str]:
        known = self.known_servers()
        if not opts.local and (known is None or known):
            request_id = secrets.token_hex(8)
            if known is not None:
                request = _AckRequest(on_ack, set(known), pending_reports=len(known))
                on_ack.expect_servers(len(known))
            else:
                # Not known yet how many servers will report: one stands for them until the
                # link says (so that the collector cannot complete before).
                request = _AckRequest(on_ack, None, early=[])
                on_ack.expect_servers(1)
                self.nsp.server.invoker.track(self._count_reporters(request_id, request))
            self._ack_requests[request_id] = request
            if opts.timeout is not None:
                request.timer = asyncio.get_running_loop().call_later(
                    opts.timeout, self._ack_requests.pop, request_id, None)
            self.publish(self.message(MessageType.BROADCAST, {
                "opts": encode_options(opts),
                "packet": {"type": _EVENT, "data": data, "nsp": self.nsp.name},
                "requestId": request_id}))
        return super().broadcast_with_ack(data, opts, on_ack)

    async def _count_reporters(self, request_id: str, request: _AckRequest) -> None:
        try:
            others = max(await self.server_count() - 1, 0)
        except Exception as exc:
            log.warning("broadcast with acks on %s: cannot count the servers (%s); only this "
                        "server's clients are waited for", self.nsp.name, exc)
            others = 0
        early, request.early = request.early or [], None
        request.pending_reports = others - len(early)
        request.acks.expect_servers(others - 1)  # the stand-in was one
        for sids in early:
            request.acks.server_targets(sids)
        self._forget_if_finished(request_id, request)

    def _reported(self, uid: str | None, request_id: str, data: Mapping[str, Any]) -> None:
        request = self._ack_requests.get(request_id)
        if request is None:
            return
        if request.waiting is not None:
            if uid not in request.waiting:
                return
            request.waiting.discard(uid)
        sockets = data.get("sockets")
        if isinstance(sockets, list):
            sids = [str(s) for s in sockets]
        else:  # Node's servers say how many clients, not which
            sids = [request.placeholder(request_id) for _ in range(int(data["clientCount"]))]
            request.unnamed.extend(sids)
        request.pending_acks += len(sids)
        if request.early is not None:
            request.early.append(sids)
            return
        request.pending_reports -= 1
        request.acks.server_targets(sids)
        self._forget_if_finished(request_id, request)

    def _acked(self, request_id: str, data: Mapping[str, Any]) -> None:
        request = self._ack_requests.get(request_id)
        if request is None:
            return
        sid = data.get("sid")
        if not isinstance(sid, str):
            sid = request.unnamed.popleft() if request.unnamed else request.placeholder(
                request_id)
        args = data.get("args")
        request.pending_acks -= 1
        request.acks(sid, list(args) if isinstance(args, list) else [data.get("packet")])
        self._forget_if_finished(request_id, request)

    def _forget_if_finished(self, request_id: str, request: _AckRequest) -> None:
        if (request.early is None and request.pending_reports <= 0
                and request.pending_acks <= 0):
            self._ack_requests.pop(request_id, None)
            if request.timer is not None:
                request.timer.cancel()

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        """This server's :class:`Socket` objects, then :class:`RemoteSocket` objects of the
        others; :class:`TimeoutError` if a server does not answer within ``requests_timeout``,
        :class:`AdapterError` if the link is down."""
        found: list[Any] = await super().fetch_sockets(opts)
        if opts.local:
            return found
        responses = await self._request(MessageType.FETCH_SOCKETS,
                                        {"opts": encode_options(opts)}, self.requests_timeout,
                                        "fetch_sockets")
        for uid, sockets in responses:
            found.extend(RemoteSocket(self, uid, details) for details in sockets or ())
        return found

    async def all_rooms(self) -> set[str]:
        rooms = await super().all_rooms()
        if self.own_all_rooms:
            responses = await self._request(MessageType.ALL_ROOMS, {}, self.requests_timeout,
                                            "all_rooms")
            for _, names in responses:
                rooms.update(names or ())
            return rooms
        responses = await self._request(MessageType.FETCH_SOCKETS,
                                        {"opts": encode_options(BroadcastOptions())},
                                        self.requests_timeout, "all_rooms")
        for _, sockets in responses:
            for details in sockets or ():
                rooms.update(details.get("rooms") or ())
        return rooms

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = sorted(rooms)
        if not opts.local:
            self.publish(self.message(MessageType.SOCKETS_JOIN,
                                      {"opts": encode_options(opts), "rooms": rooms}))
        super().add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = sorted(rooms)
        if not opts.local:
            self.publish(self.message(MessageType.SOCKETS_LEAVE,
                                      {"opts": encode_options(opts), "rooms": rooms}))
        super().del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        if not opts.local:
            self.publish(self.message(MessageType.DISCONNECT_SOCKETS,
                                      {"opts": encode_options(opts), "close": bool(close)}))
        super().disconnect_sockets(opts, close)

    async def server_side_emit(self, data: list[Any], ack: bool,
                               timeout: float | None) -> list[Any]:
        """Deliver ``data`` to this namespace's handlers on the other servers; with ``ack``, the
        value each one's first handler returned, or :class:`AckTimeout` (``missing`` = the
        uids of the servers that did not answer, when the link knows them) after ``timeout``
        (default ``requests_timeout``)."""
        if not ack:
            self.publish(self.message(MessageType.SERVER_SIDE_EMIT, {"packet": data}))
            return []
        limit = self.requests_timeout if timeout is None else timeout
        responses = await self._request(MessageType.SERVER_SIDE_EMIT, {"packet": data}, limit,
                                        f"server_side_emit {data[0]!r}", ack=True)
        return [reply for _, reply in responses]

    async def _request(self, mtype: MessageType, data: dict[str, Any], timeout: float,
                       what: str, ack: bool = False) -> list[tuple[str | None, Any]]:
        """Publish a request to the other servers and collect (uid, answer) pairs (uid
        ``None`` for servers whose answers do not say who they are)."""
        asked = self.known_servers()
        expected = len(asked) if asked is not None else await self.server_count() - 1
        if expected <= 0:
            return []
        loop = asyncio.get_running_loop()
        request_id = secrets.token_hex(8)
        request = _Request(expected, asked, loop.create_future())
        self._requests[request_id] = request
        try:
            self.publish_request(self.message(mtype, {**data, "requestId": request_id}))
            await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except TimeoutError:
            missing = request.missing()
            message = (f"{what}: {request.expected - len(request.responses)} of "
                       f"{request.expected} servers did not answer within {timeout} s")
            if ack:
                raise AckTimeout(message, responses=[r for _, r in request.responses],
                                 missing=missing) from None
            raise TimeoutError(message) from None
        finally:
            self._requests.pop(request_id, None)
        return request.responses

    def publish_request(self, message: ClusterMessage) -> None:
        """Publish a request whose caller waits for answers: a link that cannot send raises
        :class:`AdapterError` here (the default publishes as any message)."""
        self.publish(message)

    # -- what arrives from the other servers ----------------------------------------------------

    def on_message(self, message: Mapping[str, Any]) -> None:
        """A message from the link. Messages of this adapter itself or of another namespace are
        ignored, as are malformed ones (logged)."""
        uid = message.get("uid")
        if (not isinstance(uid, str) or uid == self.uid or self._closed
                or message.get("nsp", "/") != self.nsp.name):
            return
        raw_type = message.get("type")
        try:
            mtype = MessageType(raw_type if isinstance(raw_type, int) else -1)
        except ValueError:
            log.debug("ignoring a message of unknown type %r from %s", message.get("type"), uid)
            return
        data = message.get("data") or {}
        if mtype in _RESPONSES:
            self.on_response(uid, mtype, data)
        else:
            self.on_request(uid, mtype, data)

    def on_request(self, uid: str, mtype: MessageType, data: Mapping[str, Any]) -> None:
        """A message from server ``uid`` that asks this one to act (and maybe answer)."""
        try:
            self._handle(uid, mtype, data)
        except Exception:
            log.exception("cannot handle message %s from %s on %s", mtype.name, uid,
                          self.nsp.name)

    def on_response(self, uid: str | None, mtype: MessageType, data: Mapping[str, Any]) -> None:
        """An answer to one of this server's requests (``uid`` ``None``: from a server that
        does not say which it is)."""
        request_id = str(data.get("requestId"))
        try:
            if mtype is MessageType.BROADCAST_CLIENT_COUNT:
                self._reported(uid, request_id, data)
            elif mtype is MessageType.BROADCAST_ACK:
                self._acked(request_id, data)
            else:
                request = self._requests.get(request_id)
                if request is not None:  # else late, or for an adapter of an earlier process
                    request.add(uid, data.get(_ANSWER[mtype]))
        except Exception:
            log.exception("cannot handle answer %s from %s on %s", mtype.name, uid,
                          self.nsp.name)

    def _handle(self, uid: str, mtype: MessageType, data: Mapping[str, Any]) -> None:
        if mtype is MessageType.BROADCAST:
            opts = decode_options(data.get("opts") or {})
            args = list(data["packet"]["data"])
            request_id = data.get("requestId")
            if request_id is None:
                self.broadcast(args, opts)
            else:
                targets = self.broadcast_with_ack(args, opts, _RemoteAcks(self, uid, request_id))
                self.publish_response(uid, self.message(MessageType.BROADCAST_CLIENT_COUNT, {
                    "requestId": request_id, "clientCount": len(targets), "sockets": targets}))
        elif mtype is MessageType.SOCKETS_JOIN:
            self.add_sockets(decode_options(data.get("opts") or {}), data.get("rooms") or ())
        elif mtype is MessageType.SOCKETS_LEAVE:
            self.del_sockets(decode_options(data.get("opts") or {}), data.get("rooms") or ())
        elif mtype is MessageType.DISCONNECT_SOCKETS:
            self.disconnect_sockets(decode_options(data.get("opts") or {}),
                                    bool(data.get("close")))
        elif mtype is MessageType.FETCH_SOCKETS:
            sockets = [self._describe(s) for s in self.select(decode_options(data["opts"]))]
            self.publish_response(uid, self.message(MessageType.FETCH_SOCKETS_RESPONSE, {
                "requestId": data["requestId"], "sockets": sockets}))
        elif mtype is MessageType.ALL_ROOMS:
            self.publish_response(uid, self.message(MessageType.ALL_ROOMS_RESPONSE, {
                "requestId": data["requestId"], "rooms": sorted(self.rooms)}))
        elif mtype is MessageType.SERVER_SIDE_EMIT:
            self._server_side_emitted(uid, list(data["packet"]), data.get("requestId"))

    def _describe(self, socket: Socket) -> dict[str, Any]:
        return {"id": socket.id, "handshake": handshake_to_dict(socket.handshake),
                "rooms": sorted(self.sids.get(socket.id, ())), "data": socket.data}

    def _server_side_emitted(self, uid: str, packet: list[Any], request_id: Any) -> None:
        event, args = packet[0], packet[1:]
        check_event_name(event)
        if request_id is None:
            self.nsp.dispatch(event, *args)
            return
        handlers = self.nsp.handlers.get(event)
        if not handlers:
            return  # nobody to answer: the requester times out, as in Node

        def reply(result: Any) -> None:
            if not self._closed:
                self.publish_response(uid, self.message(
                    MessageType.SERVER_SIDE_EMIT_RESPONSE,
                    {"requestId": request_id, "packet": result}))

        self.nsp.server.invoker.run_event(handlers, event, args, reply,
                                          f"server {uid} of {self.nsp.name}")


#: the answers to requests, and the field of their data that holds the answer
_ANSWER = {
    MessageType.FETCH_SOCKETS_RESPONSE: "sockets",
    MessageType.ALL_ROOMS_RESPONSE: "rooms",
    MessageType.SERVER_SIDE_EMIT_RESPONSE: "packet",
}
_TYPES = frozenset(int(t) for t in MessageType)
_RESPONSES = frozenset((*_ANSWER, MessageType.BROADCAST_CLIENT_COUNT,
                        MessageType.BROADCAST_ACK))


class HeartbeatClusterAdapter(ClusterAdapter):
    """A :class:`ClusterAdapter` that knows the other servers by their heartbeats (Node's
    ``ClusterAdapterWithHeartbeat``): servers announce themselves when they start
    (``INITIAL_HEARTBEAT``), then every ``heartbeat_interval`` seconds; one unseen for
    ``heartbeat_timeout`` seconds, or that sent ``ADAPTER_CLOSE``, is dropped, and requests
    stop waiting for it. The link calls :meth:`start` once it can send."""

    own_all_rooms = True

    def __init__(self, nsp: Any, *, uid: str | None = None, requests_timeout: float = 5.0,
                 heartbeat_interval: float = 5.0, heartbeat_timeout: float = 10.0) -> None:
        super().__init__(nsp, uid=uid, requests_timeout=requests_timeout)
        for name, value in (("heartbeat_interval", heartbeat_interval),
                            ("heartbeat_timeout", heartbeat_timeout)):
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        self.heartbeat_interval = float(heartbeat_interval)
        self.heartbeat_timeout = float(heartbeat_timeout)
        #: other servers alive: uid -> when last heard of (time.monotonic())
        self._nodes: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._started = False

    def known_servers(self) -> frozenset[str]:
        return frozenset(self._nodes)

    @property
    def servers(self) -> frozenset[str]:
        """The uids of the other servers known alive for this namespace."""
        return frozenset(self._nodes)

    async def server_count(self) -> int:
        return 1 + len(self._nodes)

    def start(self) -> None:
        """Announce this server and start the heartbeats (the link calls it, in the event loop,
        once it can publish)."""
        if self._started or self._closed:
            return
        self._started = True
        self.publish(self.message(MessageType.INITIAL_HEARTBEAT))
        self._timer = asyncio.get_running_loop().call_later(self.heartbeat_interval, self._beat)

    def _beat(self) -> None:
        self._timer = None
        if self._closed:
            return
        self.publish(self.message(MessageType.HEARTBEAT))
        deadline = time.monotonic() - self.heartbeat_timeout
        for uid, seen in list(self._nodes.items()):
            if seen < deadline:
                log.info("server %s of %s unseen for %s s: dropped", uid, self.nsp.name,
                         self.heartbeat_timeout)
                self.remove_server(uid)
        self._timer = asyncio.get_running_loop().call_later(self.heartbeat_interval, self._beat)

    async def close(self) -> None:
        """Tell the other servers this one leaves (``ADAPTER_CLOSE``) and stop the heartbeats;
        pending requests fail at once."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._started:
            self.publish(self.message(MessageType.ADAPTER_CLOSE))
        for uid in list(self._nodes):
            self.remove_server(uid)
        await super().close()

    def remove_server(self, uid: str) -> None:
        """Forget server ``uid`` (it closed, or its link is gone): requests stop waiting for it."""
        if self._nodes.pop(uid, None) is None:
            return
        for request in list(self._requests.values()):
            if request.asked is not None and uid in request.asked - request.answered:
                request.expected -= 1
                request.check()
        for request_id, ack_request in list(self._ack_requests.items()):
            if ack_request.waiting is not None and uid in ack_request.waiting:
                ack_request.waiting.discard(uid)
                ack_request.pending_reports -= 1
                ack_request.acks.expect_servers(-1)
                self._forget_if_finished(request_id, ack_request)

    def on_message(self, message: Mapping[str, Any]) -> None:
        uid = message.get("uid")
        if (not isinstance(uid, str) or uid == self.uid or self._closed
                or message.get("nsp", "/") != self.nsp.name):
            return
        mtype = message.get("type")
        if mtype not in _TYPES:
            log.debug("ignoring a message of unknown type %r from %s", mtype, uid)
            return
        if mtype == MessageType.ADAPTER_CLOSE:
            self.remove_server(uid)
            return
        if uid not in self._nodes:
            log.debug("server %s of %s joined", uid, self.nsp.name)
        self._nodes[uid] = time.monotonic()
        if mtype == MessageType.INITIAL_HEARTBEAT:
            if self._started:
                self.publish(self.message(MessageType.HEARTBEAT))
        elif mtype != MessageType.HEARTBEAT:
            super().on_message(message)
