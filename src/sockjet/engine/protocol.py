"""The rules of one Engine.IO session, without I/O: shared by the server's sessions and the client.

:class:`EngineProtocol` knows the protocol version (3 or 4) and the side it plays, and from them
who pings and who answers, when the next heartbeat is due and when silence means the peer is
gone, what a received packet means, how packets queued for polling are batched, and the steps of
the polling→WebSocket upgrade. It owns no timer, socket or task: a driver (the server session in
:mod:`sockjet.engine.session`, the client in :mod:`sockjet.client.engine`) feeds it the packets
it receives (:meth:`EngineProtocol.receive`), calls :meth:`EngineProtocol.heartbeat` once
:attr:`EngineProtocol.heartbeat_at` has come, and writes the packets it hands over through
:meth:`EngineProtocol.write_packet`, which the driver implements.

Heartbeats (the same rule seen from both ends):

- protocol 4 (Engine.IO 4+): the server pings every ``ping_interval``, the client answers
  with ``3``;
- protocol 3 (socket.io-client 1.x/2.x): the client pings every ``ping_interval``, the server
  answers with ``3`` (the data echoed);
- the pinger gives up when no pong came ``ping_timeout`` after its ping; the other side when no
  ping came for ``ping_interval + ping_timeout`` (a v3 server counts any packet as a sign of
  life, as engine.io 3 does).

A ping from the side that should be answering is a protocol error (Node closes the session).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from ..codecs.engineio import EnginePacket, EnginePacketType
from ..exceptions import ProtocolError

PING, PONG, MESSAGE, CLOSE = (EnginePacketType.PING, EnginePacketType.PONG,
                              EnginePacketType.MESSAGE, EnginePacketType.CLOSE)

#: the probe of the polling→WebSocket upgrade: the client sends ``2probe``, the server ``3probe``
PROBE = "probe"
PROBE_PING = "2" + PROBE
PROBE_PONG = "3" + PROBE
#: the packet that completes the upgrade
UPGRADE_PACKET = "5"


class Role(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


class SessionState(enum.StrEnum):
    OPEN = "open"  # packets flow both ways
    CLOSING = "closing"  # closed by this side: what is queued (then the close packet) goes out
    CLOSED = "closed"  # nothing more is read or written


class Heartbeat(enum.Enum):
    """What :meth:`EngineProtocol.heartbeat` found."""

    NOT_YET = "not yet"  # called early: wait until heartbeat_at again
    PINGED = "pinged"  # a ping went out: the pong is due by heartbeat_at
    TIMED_OUT = "timed out"  # the peer is gone: close with "ping timeout"


@dataclass(frozen=True, slots=True)
class Handshake:
    """The open packet's JSON: the session id and the peer's terms."""

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float  # seconds
    ping_timeout: float
    max_payload: int

    def encode(self) -> str:
        """The JSON a server sends (times in milliseconds; fractions of a second survive)."""
        return orjson.dumps({
            "sid": self.sid, "upgrades": list(self.upgrades),
            "pingInterval": round(self.ping_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000), "maxPayload": self.max_payload,
        }).decode()

    @classmethod
    def decode(cls, data: str | bytes) -> Handshake:
        """What a client reads; :class:`ProtocolError` when it is not an Engine.IO open packet."""
        try:
            info = orjson.loads(data)
            return cls(sid=str(info["sid"]), upgrades=tuple(info.get("upgrades", ())),
                       ping_interval=info.get("pingInterval", 25000) / 1000,
                       ping_timeout=info.get("pingTimeout", 20000) / 1000,
                       max_payload=int(info.get("maxPayload", 1_000_000)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"not an Engine.IO handshake: {exc}") from None


class EngineProtocol:
    """One Engine.IO session's state and rules; see the module docstring.

    ``clock`` returns the time in seconds (the driver's loop clock): the protocol reads it when
    a packet or a heartbeat moves a deadline, and never sleeps.
    """

    __slots__ = ("_awaiting_pong", "_clock", "_last_seen", "_listens_to_all", "_pings",
                 "buffer", "close_reason", "engine_protocol", "heartbeat_at", "ping_interval",
                 "ping_timeout", "state", "upgrading")

    def __init__(self, role: Role, engine_protocol: int, ping_interval: float,
                 ping_timeout: float, clock: Callable[[], float]) -> None:
        #: the Engine.IO protocol: 3 (engine.io-client 1.x-3.x) or 4
        self.engine_protocol = engine_protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.state = SessionState.OPEN
        #: why the session ended (set by the driver when it ends it)
        self.close_reason: str | None = None
        #: packets queued while the session is on polling (the driver takes them per request)
        self.buffer: list[EnginePacket] = []
        #: between the probe and the upgrade packet (polls are answered with a noop meanwhile)
        self.upgrading = False
        self._clock = clock
        self._pings = (role is Role.SERVER) == (engine_protocol >= 4)
        # a v3 server: any packet is a sign of life (see the table in the module docstring)
        self._listens_to_all = role is Role.SERVER and not self._pings
        self._awaiting_pong = False
        now = clock()
        self._last_seen = now
        #: when :meth:`heartbeat` must be called next
        self.heartbeat_at = now + (ping_interval if self._pings else ping_interval + ping_timeout)

    # -- output (the driver's) ------------------------------------------------------------------

    def write_packet(self, ptype: EnginePacketType, data: str | bytes = "") -> bool:
        """Send a packet to the peer now or queue it; ``False`` once the session cannot."""
        raise NotImplementedError

    # -- heartbeat ------------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        """The heartbeat's due time has come (or the driver's timer fired early)."""
        now = self._clock()
        if not self._pings:
            due = (self._last_seen + self.ping_interval + self.ping_timeout
                   if self._listens_to_all else self.heartbeat_at)
            if now < due:
                self.heartbeat_at = due
                return Heartbeat.NOT_YET
            return Heartbeat.TIMED_OUT
        if now < self.heartbeat_at:
            return Heartbeat.NOT_YET
        if self._awaiting_pong:
            return Heartbeat.TIMED_OUT
        self._awaiting_pong = True
        self.heartbeat_at = now + self.ping_timeout
        self.write_packet(PING)
        return Heartbeat.PINGED

    # -- input ----------------------------------------------------------------------------------

    def receive(self, ptype: int, data: str | bytes) -> str | bytes | None:
        """A packet from the peer: a message's data is returned for the application; control
        packets are handled here (a pong answered, a deadline moved, the state closed) and give
        ``None``. Raises :class:`ProtocolError` for a heartbeat in the wrong direction."""
        if self._listens_to_all:
            self._last_seen = self._clock()
        if ptype == MESSAGE:
            return data
        if ptype == PING:
            if self._pings:
                raise ProtocolError("ping from the side that should be answering pings")
            if not self._listens_to_all:
                self.heartbeat_at = self._clock() + self.ping_interval + self.ping_timeout
            self.write_packet(PONG, data)
        elif ptype == PONG:
            if not self._pings:
                raise ProtocolError("pong from the side that should be sending pings")
            if self._awaiting_pong:
                self._awaiting_pong = False
                self.heartbeat_at = self._clock() + self.ping_interval
        elif ptype == CLOSE:  # the driver ends the session ("transport close")
            self.state = SessionState.CLOSED
        # open, upgrade and noop mean nothing outside the upgrade handshake
        return None

    # -- polling buffer -------------------------------------------------------------------------

    def take(self, max_payload: int | None = None) -> list[EnginePacket]:
        """The packets for the next polling request: all of them (a server's poll), or as many
        as fit ``max_payload`` (a client's POST; at least one)."""
        buffer = self.buffer
        if max_payload is None or len(buffer) <= 1:
            self.buffer = []
            return buffer
        size = 0
        for count, packet in enumerate(buffer):
            data = packet.data
            # worst case of the encoded size: UTF-16 length counting, base64 for bytes
            size += len(data) * (4 if isinstance(data, str) else 2) + 16
            if count and size > max_payload:
                taken, self.buffer = buffer[:count], buffer[count:]
                return taken
        self.buffer = []
        return buffer

    # -- the upgrade ----------------------------------------------------------------------------

    @staticmethod
    def answer_probe(message: str | bytes | None) -> str | None:
        """A server's answer to the first WebSocket message of an upgrade (``None``: not a
        probe: the upgrade fails)."""
        return PROBE_PONG if message == PROBE_PING else None

    @staticmethod
    def probe_answered(message: str | bytes | None) -> bool:
        """Whether a client's probe got the server's answer."""
        return message == PROBE_PONG

    @staticmethod
    def completes_upgrade(message: str | bytes | None) -> bool:
        return message == UPGRADE_PACKET

