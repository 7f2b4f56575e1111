"""Emit to the clients of every server from a process that is not a Socket.IO server (a worker
task, a web view, a cron job), through Redis: wire-compatible with Node's
``@socket.io/redis-emitter`` 5.x, so that it reaches sockjet servers on
:class:`~sockjet.RedisAdapter` and Node servers on ``@socket.io/redis-adapter`` alike.

Broadcasts are published exactly as a classic Redis adapter publishes its own (uid
``"emitter"``); ``sockets_join``, ``sockets_leave``, ``disconnect_sockets`` and
``server_side_emit`` are requests on the namespace's request channel (no answer, no ack: Node's
emitter has none either). Like Node's, it speaks the classic adapter's channels only: servers
on the sharded adapter do not hear it.

:class:`RedisEmitter` is for asyncio code (``await emitter.to("room").emit("ev", 1)``),
:class:`BlockingRedisEmitter` for blocking code (``emitter.to("room").emit("ev", 1)``); both
build the same messages (:class:`Emission`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Self

from ..exceptions import AdapterError
from ..socketio.adapter import BroadcastOptions
from ..socketio.operator import check_event_name, room_set
from .cluster import encode_options
from .redis_classic import RequestType, classic_options
from .redis_link import LINK_ERRORS, describe, make_client
from .wire import pack

EMITTER_UID = "emitter"
_EVERYONE = BroadcastOptions()


@dataclass(frozen=True, slots=True)
class Emission:
    """What an emitter targets (key prefix, namespace, rooms, flags) and the messages that
    say so: (channel, payload) pairs to publish."""

    key: str = "socket.io"
    nsp: str = "/"
    opts: BroadcastOptions = _EVERYONE

    def event(self, event: str, args: tuple[Any, ...]) -> tuple[str, bytes]:
        check_event_name(event)
        packet = {"type": 2, "data": [event, *args], "nsp": self.nsp}
        opts = encode_options(self.opts)
        channel = f"{self.key}#{self.nsp}#"
        if len(opts["rooms"]) == 1:
            channel += f"{opts['rooms'][0]}#"
        return channel, pack([EMITTER_UID, packet, opts])

    def request(self, rtype: int, **fields: Any) -> tuple[str, bytes]:
        request = {"type": rtype, **fields}
        return f"{self.key}-request#{self.nsp}#", pack(request)

    def join(self, rooms: str | Iterable[str]) -> tuple[str, bytes]:
        return self.request(RequestType.REMOTE_JOIN, opts=self._targets(),
                            rooms=sorted(room_set(rooms)))

    def leave(self, rooms: str | Iterable[str]) -> tuple[str, bytes]:
        return self.request(RequestType.REMOTE_LEAVE, opts=self._targets(),
                            rooms=sorted(room_set(rooms)))

    def disconnect(self, close: bool) -> tuple[str, bytes]:
        return self.request(RequestType.REMOTE_DISCONNECT, opts=self._targets(),
                            close=bool(close))

    def server_side(self, event: str, args: tuple[Any, ...]) -> tuple[str, bytes]:
        check_event_name(event)
        return self.request(RequestType.SERVER_SIDE_EMIT, uid=EMITTER_UID,
                            data=[event, *args])

    def _targets(self) -> dict[str, Any]:
        return classic_options(encode_options(self.opts))


class _Targeting:
    """The chainable part of an emitter: every call returns a new emitter on the same
    connection."""

    def __init__(self, client: Any, emission: Emission, where: str, owns_client: bool) -> None:
        self.client = client
        self.emission = emission
        self._where = where
        #: made from a URL: :meth:`close` closes it (a client given by the caller is theirs)
        self._owns_client = owns_client

    def _with(self, emission: Emission) -> Self:
        other = object.__new__(type(self))
        _Targeting.__init__(other, self.client, emission, self._where, self._owns_client)
        return other

    def _opts(self, **changes: Any) -> Self:
        return self._with(replace(self.emission, opts=replace(self.emission.opts, **changes)))

    def of(self, nsp: str) -> Self:
        """The same emitter for namespace ``nsp`` (a missing leading ``/`` is added)."""
        if not isinstance(nsp, str):
            raise TypeError("namespace must be a string")
        return self._with(replace(self.emission, nsp=nsp if nsp.startswith("/") else "/" + nsp,
                                  opts=_EVERYONE))

    def to(self, rooms: str | Iterable[str]) -> Self:
        return self._opts(rooms=self.emission.opts.rooms | room_set(rooms))

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> Self:
        return self._opts(except_rooms=self.emission.opts.except_rooms | room_set(rooms))

    @property
    def volatile(self) -> Self:
        return self._opts(volatile=True)

    def compress(self, flag: bool = True) -> Self:
        return self._opts(compress=bool(flag))

    def _failed(self, exc: BaseException) -> AdapterError:
        return AdapterError(f"cannot publish to Redis at {self._where}: {exc}")


class RedisEmitter(_Targeting):
    """Emit through Redis from asyncio code: ``RedisEmitter(url_or_client, key="socket.io")``
    (a ``redis://`` URL or a ``redis.asyncio`` client; ``key`` as the servers' ``key``).
    Each operation publishes one message; :class:`~sockjet.AdapterError` if Redis cannot be
    reached."""

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *,
                 key: str = "socket.io") -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        super().__init__(make_client(url_or_client), Emission(key=key),
                         describe(url_or_client), isinstance(url_or_client, str))

    async def _publish(self, message: tuple[str, bytes]) -> None:
        try:
            await self.client.publish(*message)
        except LINK_ERRORS as exc:
            raise self._failed(exc) from exc

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to the targeted clients of every server."""
        await self._publish(self.emission.event(event, args))

    async def send(self, *args: Any) -> None:
        await self.emit("message", *args)

    async def sockets_join(self, rooms: str | Iterable[str]) -> None:
        await self._publish(self.emission.join(rooms))

    async def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        await self._publish(self.emission.leave(rooms))

    async def disconnect_sockets(self, close: bool = False) -> None:
        await self._publish(self.emission.disconnect(close))

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Deliver ``event`` to the namespace's handlers on every server (no ack)."""
        await self._publish(self.emission.server_side(event, args))

    async def close(self) -> None:
        """Close the connection made from a URL (shared by the emitters derived from this one);
        a client given to the emitter is left open."""
        if self._owns_client:
            await self.client.aclose()


class BlockingRedisEmitter(_Targeting):
    """:class:`RedisEmitter` for blocking code (a ``redis://`` URL or a ``redis.Redis``
    client): the same operations, each returning once Redis took the message."""

    def __init__(self, url_or_client: Any = "redis://127.0.0.1:6379/0", *,
                 key: str = "socket.io") -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        import redis

        if isinstance(url_or_client, str):
            client = redis.Redis.from_url(url_or_client, socket_connect_timeout=2.0)
        else:
            client = url_or_client
        super().__init__(client, Emission(key=key), describe(url_or_client),
                         isinstance(url_or_client, str))

    def _publish(self, message: tuple[str, bytes]) -> None:
        try:
            self.client.publish(*message)
        except LINK_ERRORS as exc:
            raise self._failed(exc) from exc

    def emit(self, event: str, *args: Any) -> None:
        self._publish(self.emission.event(event, args))

    def send(self, *args: Any) -> None:
        self.emit("message", *args)

    def sockets_join(self, rooms: str | Iterable[str]) -> None:
        self._publish(self.emission.join(rooms))

    def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        self._publish(self.emission.leave(rooms))

    def disconnect_sockets(self, close: bool = False) -> None:
        self._publish(self.emission.disconnect(close))

    def server_side_emit(self, event: str, *args: Any) -> None:
        self._publish(self.emission.server_side(event, args))

    def close(self) -> None:
        """As :meth:`RedisEmitter.close`."""
        if self._owns_client:
            self.client.close()
