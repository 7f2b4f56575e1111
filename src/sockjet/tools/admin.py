"""The Socket.IO Admin UI on a sockjet server: :func:`instrument` speaks the protocol of the
``@socket.io/admin-ui`` 0.5 package, so the hosted UI (or its static build served anywhere)
can watch and drive the server.

What the UI gets, on the admin namespace (``/admin`` by default), once authenticated:

- ``session(id)`` after a login with username and password (the UI reconnects with it);
- ``config({supportedFeatures})`` then, in development mode, ``all_sockets([...])`` (the
  sockets of every namespace of this server, and of the other servers through the adapter);
- ``server_stats({...})`` every 2 s, from every server of a cluster (a broadcast on the admin
  namespace, which the adapter carries to the admin sockets of every server), with the
  packet, byte and connection counts of each second since the previous report;
- in development mode only: ``socket_connected``, ``socket_updated`` (a transport upgrade, as
  it happens; a change of ``socket.data``, seen within a second: Node's package proxies the
  object, while here user code keeps its own dict, compared each second with what the UI was
  last told), ``socket_disconnected``, ``room_joined``, ``room_left``, ``event_received``,
  ``event_sent``.

And the UI's commands (unless ``read_only``): ``emit``, ``join``, ``leave`` and
``_disconnect``, each on a namespace and optionally a room or socket id, through the adapter
(so they reach the sockets of every server).

The hooks cost nothing when the server is not instrumented: the packet counts come from a
session class the engine uses only then, and the development-mode reports from an observer
(:mod:`sockjet.socketio.observer`) that is ``None`` otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket as socketlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal
from weakref import WeakKeyDictionary

from ..codecs.engineio import byte_length
from ..engine.protocol import SessionState
from ..engine.session import EngineSocket, Prepared
from ..exceptions import ConnectionRefused
from ..socketio.namespace import Namespace
from ..socketio.observer import SocketIOObserver
from ..socketio.operator import BroadcastOperator
from ..socketio.server import SocketServer
from ..socketio.socket import Socket

log = logging.getLogger("sockjet.admin")

#: seconds between two ``server_stats`` reports (as the Node package)
STATS_INTERVAL = 2.0

#: how long a login's session id lets the UI back in without the password (seconds; the Node
#: package's Redis store keeps them as long)
SESSION_DURATION = 86400

#: the features the UI knows, in the order the Node package lists them
COMMAND_FEATURES = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")

_BCRYPT_HASH = re.compile(r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")
_OPEN = SessionState.OPEN


def now_iso() -> str:
    """The current time as a JavaScript ``Date`` reaches the UI (ISO 8601 in UTC, ms)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBuffer:
    """Counts per second and kind (``rawConnection``, ``rawDisconnection`` with the reason as
    sub-type, ``packetsIn``/``packetsOut``, ``bytesIn``/``bytesOut``), handed over and
    cleared by each ``server_stats`` report.

    Packets and bytes are counted on every packet, so they are plain integer additions
    (``packets_in`` ...), moved into the second they belong to by :meth:`settle`, which the
    instrumentation calls every second; the rare kinds go through :meth:`push`."""

    __slots__ = ("_counts", "bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, str | None], int] = {}
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        key = (int(time.time()) * 1000, kind, sub_type)
        counts = self._counts
        counts[key] = counts.get(key, 0) + count

    def settle(self) -> None:
        """Count the packets and bytes so far in the current second."""
        for kind, count in (("packetsIn", self.packets_in), ("packetsOut", self.packets_out),
                            ("bytesIn", self.bytes_in), ("bytesOut", self.bytes_out)):
            if count:
                self.push(kind, None, count)
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0

    def take(self) -> list[dict[str, Any]]:
        """The counts so far (``{timestamp, type, subType?, count}``), then none."""
        self.settle()
        counts, self._counts = self._counts, {}
        events: list[dict[str, Any]] = []
        for (timestamp, kind, sub_type), count in counts.items():
            event: dict[str, Any] = {"timestamp": timestamp, "type": kind, "count": count}
            if sub_type is not None:
                event["subType"] = sub_type
            events.append(event)
        return events


class BroadcastCounter(SocketIOObserver):
    """Counts the packets and bytes of broadcasts into ``events``: once per broadcast (what
    :func:`metered_session_class` sessions count for the other messages)."""

    __slots__ = ("events",)

    def __init__(self, events: EventBuffer) -> None:
        self.events = events

    def broadcast(self, recipients: int, prepared: Prepared | None) -> None:
        if prepared is not None and recipients:
            self.events.packets_out += recipients * len(prepared.packets)
            self.events.bytes_out += recipients * sum(byte_length(packet.data)
                                                      for packet in prepared.packets)


def metered_session_class(events: EventBuffer) -> type[EngineSocket]:
    """An :class:`EngineSocket` that counts the messages it sends and receives one by one
    (packets and bytes; broadcasts are counted once each by :class:`BroadcastCounter`) and its
    end (with the reason) into ``events``."""
    push = events.push

    class MeteredSession(EngineSocket):
        __slots__ = ()

        def send(self, data: str | bytes) -> bool:
            if self.state is _OPEN:
                events.packets_out += 1
                events.bytes_out += byte_length(data)
            return super().send(data)

        def set_message_hook(self, hook: Any) -> None:
            def counted(data: str | bytes) -> None:
                events.packets_in += 1
                events.bytes_in += byte_length(data)
                hook(data)

            super().set_message_hook(counted)

        def end(self, reason: str, graceful: bool = False, detail: str | None = None,
                by_client: bool = False) -> None:
            if self.close_reason is None:
                push("rawDisconnection", reason)
            super().end(reason, graceful, detail, by_client)

    return MeteredSession


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as the Socket.IO encoder takes it (what it cannot, as its ``str``)."""
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    if depth > 32:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _user_data(data: Any) -> dict[str, Any]:
    """``socket.data`` as the UI shows it: plain, without the instrumentation's ``_admin``."""
    if not isinstance(data, Mapping):
        return {}
    return {str(k): _plain(v, 1) for k, v in data.items() if k != "_admin"}


def _process_started() -> float:
    """When this process started, on the :func:`time.monotonic` clock (Linux: from /proc;
    elsewhere: now)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            system_up = float(uptime.read().split()[0])
        process_up = system_up - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(0.0, process_up)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


class AdminUI(SocketIOObserver):
    """The instrumentation of one server (what :func:`instrument` returns); the server's
    observer (development mode's reports)."""

    def __init__(self, io: SocketServer, *, auth: Literal[False] | Mapping[str, Any],
                 mode: str, namespace: str, read_only: bool, server_id: str | None) -> None:
        if not isinstance(io, SocketServer):
            raise TypeError("instrument() takes a sockjet.Server")
        if mode not in ("development", "production"):
            raise ValueError('mode must be "development" or "production"')
        if server_id is not None and not isinstance(server_id, str):
            raise TypeError("server_id must be a string")
        if io.engine.session_class is not EngineSocket:
            raise RuntimeError("this server is already instrumented")
        self.io = io
        self.development = mode == "development"
        self.read_only = bool(read_only)
        self._server_id = server_id
        self._credentials = _credentials(auth)
        #: the admin namespace
        self.nsp: Namespace = io.of(namespace)
        self.events = EventBuffer()
        self._issued: WeakKeyDictionary[Socket, str] = WeakKeyDictionary()
        self.features = [] if self.read_only else list(COMMAND_FEATURES)
        self.features.append("AGGREGATED_EVENTS")
        if self.development:
            self.features.append("ALL_EVENTS")
        self._timer: asyncio.TimerHandle | None = None
        self._ticks = 0
        #: development mode: each local socket's data as the UI last saw it
        self._data_seen: dict[Socket, dict[str, Any]] = {}
        self._started_at = 0.0
        self._pid = 0

        if self._credentials is None:
            log.warning("Admin UI on %s without authentication: anyone who reaches the "
                        "server can %s", self.nsp.name,
                        "see it" if self.read_only else "see and drive it")
        else:
            self.nsp.use(self._authenticate)
        self.nsp.on("connection", self._on_admin_connection)
        io.engine.session_class = metered_session_class(self.events)
        io.engine.on("connection", self._on_raw_connection)
        io.observe(BroadcastCounter(self.events))
        if self.development:
            io.observe(self)
            for nsp in io.namespaces.values():  # sockets already there (a server serving)
                for socket in list(nsp.sockets.values()):
                    self._watch(socket)
        io.engine.add_serving_hooks(self._start, self._stop)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # started with the server
        else:
            self._start_timer()

    # -- identity and stats ---------------------------------------------------------------------

    @property
    def server_id(self) -> str:
        """This server's id in the UI: ``server_id``, else ``hostname#pid`` (read in the
        process that serves, so that each worker process has its own)."""
        if self._server_id is not None:
            return self._server_id
        return f"{socketlib.gethostname()}#{os.getpid()}"

    def stats(self) -> dict[str, Any]:
        """What ``server_stats`` carries (and clears the counts it reports)."""
        if self._pid != os.getpid():  # first report of this process (a forked worker's too)
            self._pid = os.getpid()
            self._started_at = _process_started()
        sessions = self.io.engine.sessions
        return {
            "serverId": self.server_id,
            "hostname": socketlib.gethostname(),
            "pid": self._pid,
            "uptime": round(time.monotonic() - self._started_at, 3),
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions.values() if s.transport == "polling"),
            "aggregatedEvents": self.events.take(),
            "namespaces": [{"name": name, "socketsCount": len(nsp.sockets)}
                           for name, nsp in self.io.namespaces.items()],
        }

    def emit_stats(self) -> None:
        try:
            self.nsp.emit("server_stats", self.stats())
        except Exception:
            log.exception("cannot send the server stats to the Admin UI")

    async def _start(self) -> None:
        self._start_timer()

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0, self._tick)

    def _tick(self) -> None:
        self.events.settle()  # each second's packets and bytes counted in it
        self._ticks += 1
        if self._ticks % round(STATS_INTERVAL) == 1:
            self.emit_stats()
        if self._data_seen:
            self._report_data_changes()
        self._timer = asyncio.get_running_loop().call_later(1.0, self._tick)

    async def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_raw_connection(self, session: EngineSocket) -> None:
        self.events.push("rawConnection")

    # -- authentication -------------------------------------------------------------------------

    async def _authenticate(self, socket: Socket) -> None:
        assert self._credentials is not None
        auth = socket.handshake.auth
        username, hashed = self._credentials
        if self.session_valid(auth.get("sessionId")):
            return
        password = auth.get("password")
        if auth.get("username") == username and isinstance(password, str):
            if await asyncio.to_thread(_password_matches, password, hashed):
                self._issued[socket] = self.new_session()
                return
        log.info("Admin UI login refused (from %s)", socket.handshake.address)
        raise ConnectionRefused("invalid credentials")

    def _session_key(self) -> bytes:
        if self._credentials is None:
            raise RuntimeError("no sessions without auth")
        username, hashed = self._credentials
        return hashlib.sha256(b"sockjet admin session\0" + username.encode() + b"\0"
                              + hashed).digest()

    def new_session(self) -> str:
        """A session id for a UI that logged in: signed with the credentials, so that every
        server (or worker process) configured with them accepts it, for
        :data:`SESSION_DURATION` seconds, with nothing stored."""
        body = f"{int(time.time()):x}.{secrets.token_hex(8)}"
        mac = hmac.new(self._session_key(), body.encode(), "sha256").hexdigest()[:32]
        return f"{body}.{mac}"

    def session_valid(self, session_id: Any) -> bool:
        if (self._credentials is None or not isinstance(session_id, str)
                or session_id.count(".") != 2):
            return False
        body, _, mac = session_id.rpartition(".")
        expected = hmac.new(self._session_key(), body.encode(), "sha256").hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            return False
        issued = int(body.split(".", 1)[0], 16)
        return 0 <= time.time() - issued < SESSION_DURATION

    # -- the UI's connection ---------------------------------------------------------------------

    async def _on_admin_connection(self, socket: Socket) -> None:
        issued = self._issued.pop(socket, None)
        if issued is not None:
            socket.emit("session", issued)
        if not self.read_only:
            socket.on("emit", self._command_emit)
            socket.on("join", self._command_join)
            socket.on("leave", self._command_leave)
            socket.on("_disconnect", self._command_disconnect)
        socket.emit("config", {"supportedFeatures": list(self.features)})
        if self.development:
            socket.emit("all_sockets", await self.all_sockets())

    async def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of every namespace of this server, with the other servers' ones when
        the adapter spans servers (their answers, or this server's alone if they fail)."""
        found: list[dict[str, Any]] = []
        for name, nsp in self.io.namespaces.items():
            try:
                sockets: Iterable[Any] = await nsp.fetch_sockets()
            except Exception as exc:
                log.warning("Admin UI: the sockets of %s on the other servers are missing: %s",
                            name, exc)
                sockets = list(nsp.sockets.values())
            found.extend(self.serialize(socket, name) for socket in sockets)
        return found

    def serialize(self, socket: Any, nsp: str) -> dict[str, Any]:
        """A socket (local, or a remote one from ``fetch_sockets``) as the UI shows it."""
        data = socket.data if isinstance(socket.data, Mapping) else {}
        admin = data.get("_admin")
        admin = admin if isinstance(admin, Mapping) else {}
        client_id: Any
        transport: Any
        if isinstance(socket, Socket):
            engine = socket.conn.engine
            client_id, transport = engine.sid[:12], engine.transport
        else:
            client_id, transport = admin.get("clientId"), admin.get("transport")
        handshake = socket.handshake
        headers = dict(handshake.headers)
        return {
            "id": socket.id,
            "clientId": client_id,
            "transport": transport,
            "nsp": nsp,
            "data": _user_data(data),
            "handshake": {
                "address": headers.get("cf-connecting-ip") or headers.get("x-forwarded-for")
                or handshake.address,
                "headers": headers,
                "query": dict(handshake.query),
                "issued": handshake.issued,
                "secure": handshake.secure,
                "time": handshake.time,
                "url": handshake.url,
                "xdomain": handshake.xdomain,
            },
            "rooms": sorted(socket.rooms),
        }

    # -- commands ---------------------------------------------------------------------------------

    def _target(self, nsp: Any, selection: Any) -> BroadcastOperator | None:
        """The sockets of namespace ``nsp``, or of its room (or socket id) ``selection``."""
        if not isinstance(nsp, str) or not (selection is None or isinstance(selection, str)):
            log.debug("Admin UI: command with a bad namespace or filter (%r, %r)", nsp,
                      selection)
            return None
        namespace = self.io.namespaces.get(nsp)  # a command never creates one
        if namespace is None:
            return None
        operator = BroadcastOperator(namespace)
        return operator.to(selection) if selection else operator

    def _command_emit(self, nsp: Any = None, selection: Any = None, event: Any = None,
                      *args: Any) -> None:
        target = self._target(nsp, selection)
        if target is not None:
            try:
                target.emit(event, *args)
            except (TypeError, ValueError) as exc:
                log.debug("Admin UI: cannot emit %r: %s", event, exc)

    def _command_join(self, nsp: Any = None, room: Any = None, selection: Any = None,
                      *_: Any) -> None:
        target = self._target(nsp, selection)
        if target is not None and isinstance(room, str):
            target.sockets_join(room)

    def _command_leave(self, nsp: Any = None, room: Any = None, selection: Any = None,
                       *_: Any) -> None:
        target = self._target(nsp, selection)
        if target is not None and isinstance(room, str):
            target.sockets_leave(room)

    def _command_disconnect(self, nsp: Any = None, close: Any = False, selection: Any = None,
                            *_: Any) -> None:
        target = self._target(nsp, selection)
        if target is not None:
            target.disconnect_sockets(bool(close))

    # -- development mode: what the observer reports ---------------------------------------------

    def _report(self, event: str, *args: Any) -> None:
        try:
            self.nsp.emit(event, *args)
        except Exception:
            log.exception("cannot send %s to the Admin UI", event)

    def socket_connected(self, socket: Socket) -> None:
        self._watch(socket)
        self._report("socket_connected", self.serialize(socket, socket.nsp.name), now_iso())

    def _watch(self, socket: Socket) -> None:
        """Report what ``socket`` receives and its transport's upgrade."""
        engine = socket.conn.engine
        if isinstance(socket.data, dict):  # for other servers' fetch_sockets, as in Node
            socket.data["_admin"] = {"clientId": engine.sid[:12],
                                     "transport": engine.transport}
        self._data_seen[socket] = _user_data(socket.data)
        if socket.nsp is not self.nsp:
            socket.on_any(partial(self._received, socket))
        engine.on("upgrade", partial(self._upgraded, socket))

    def _upgraded(self, socket: Socket) -> None:
        transport = socket.conn.engine.transport
        admin = socket.data.get("_admin") if isinstance(socket.data, dict) else None
        if isinstance(admin, dict):
            admin["transport"] = transport
        self._report("socket_updated", {"id": socket.id, "nsp": socket.nsp.name,
                                        "transport": transport})

    def _report_data_changes(self) -> None:
        for socket, seen in list(self._data_seen.items()):
            data = _user_data(socket.data)
            if data != seen:
                self._data_seen[socket] = data
                self._report("socket_updated", {"id": socket.id, "nsp": socket.nsp.name,
                                                "data": data})

    def _received(self, socket: Socket, event: str, *args: Any) -> None:
        self._report("event_received", socket.nsp.name, socket.id, [event, *args], now_iso())

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        self._data_seen.pop(socket, None)
        self._report("socket_disconnected", socket.nsp.name, socket.id, reason, now_iso())

    def room_joined(self, nsp: Namespace, room: str, sid: str) -> None:
        self._report("room_joined", nsp.name, room, sid, now_iso())

    def room_left(self, nsp: Namespace, room: str, sid: str) -> None:
        # after the socket's own report, as Node does (its socket_disconnected comes first)
        asyncio.get_running_loop().call_soon(self._report, "room_left", nsp.name, room, sid,
                                             now_iso())

    def event_sent(self, nsp: Namespace, sockets: Sequence[Socket], data: list[Any]) -> None:
        if nsp is self.nsp:
            return  # what the UI itself is sent
        date = now_iso()
        for socket in sockets:
            self._report("event_sent", nsp.name, socket.id, data, date)


def _credentials(auth: Any) -> tuple[str, bytes] | None:
    if auth is False:
        return None
    if not isinstance(auth, Mapping) or auth.get("type") != "basic":
        raise ValueError('auth must be False or {"type": "basic", "username": ..., '
                         '"password": <bcrypt hash>}')
    username, password = auth.get("username"), auth.get("password")
    if not isinstance(username, str):
        raise ValueError("auth: the username must be a string")
    if not isinstance(password, str) or _BCRYPT_HASH.fullmatch(password) is None:
        raise ValueError("auth: the password must be a bcrypt hash ($2b$10$...), not the "
                         "password itself")
    _bcrypt()  # fail now, not at the first login
    return username, password.encode("ascii")


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError:
        raise ImportError("the Admin UI's basic authentication checks passwords with bcrypt: "
                          "pip install 'sockjet[admin]'") from None
    return bcrypt


def _password_matches(password: str, hashed: bytes) -> bool:
    # bcrypt reads at most 72 bytes of the password (the Node package's bcryptjs ignores the
    # rest; the Python binding refuses longer ones)
    return bool(_bcrypt().checkpw(password.encode("utf-8")[:72], hashed))


def instrument(io: SocketServer, *, auth: Literal[False] | Mapping[str, Any],
               mode: Literal["development", "production"] = "development",
               namespace: str = "/admin", read_only: bool = False,
               server_id: str | None = None) -> AdminUI:
    """Serve the Socket.IO Admin UI's protocol on ``io`` (``@socket.io/admin-ui`` 0.5).

    ``auth``: ``False`` (no login: anyone who reaches the server may use it), or
    ``{"type": "basic", "username": "admin", "password": "$2b$10$..."}``, the password as a
    bcrypt hash (needs the ``admin`` extra: ``pip install 'sockjet[admin]'``).
    ``mode``: ``"development"`` sends every socket, room change and event to the UI;
    ``"production"`` only the counts of each server's ``server_stats``.
    ``namespace``: where the UI connects. ``read_only``: the UI sees but cannot emit, join,
    leave or disconnect. ``server_id``: this server's name in the UI (default
    ``hostname#pid``). Call it in every server of a cluster, before serving.
    """
    return AdminUI(io, auth=auth, mode=mode, namespace=namespace, read_only=read_only,
                   server_id=server_id)
