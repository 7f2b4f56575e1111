"""The sans-I/O Engine.IO protocol core on its own: both roles, both protocol versions, driven
packet by packet with a clock the test sets (the server sessions and the client drive the same
class over real sockets in the other test modules)."""

from __future__ import annotations

import pytest

from sockjet.codecs.engineio import (
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    EnginePacket,
    EnginePacketType,
)
from sockjet.engine.protocol import (
    PROBE_PING,
    PROBE_PONG,
    UPGRADE_PACKET,
    EngineProtocol,
    Handshake,
    Heartbeat,
    Role,
    SessionState,
)
from sockjet.exceptions import ProtocolError

pytestmark = pytest.mark.single_binding

INTERVAL, TIMEOUT = 10.0, 4.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder(EngineProtocol):
    """The protocol with the driver's one duty: what it writes is recorded."""

    __slots__ = ("written",)

    def __init__(self, role: Role, engine_protocol: int, clock: Clock) -> None:
        super().__init__(role, engine_protocol, INTERVAL, TIMEOUT, clock)
        self.written: list[EnginePacket] = []

    def write_packet(self, ptype: EnginePacketType, data: str | bytes = "") -> bool:
        self.written.append(EnginePacket(ptype, data))
        return True


def protocol(role: Role, engine_protocol: int) -> tuple[Recorder, Clock]:
    clock = Clock()
    return Recorder(role, engine_protocol, clock), clock


# -- the handshake ---------------------------------------------------------------------------------


def test_a_handshake_encodes_as_node_writes_it_and_decodes_back() -> None:
    shake = Handshake("abc", ("websocket",), 25.0, 20.5, 1_000_000)
    assert shake.encode() == ('{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,'
                              '"pingTimeout":20500,"maxPayload":1000000}')
    assert Handshake.decode(shake.encode()) == shake
    assert Handshake.decode(shake.encode().encode()) == shake  # bytes too


def test_a_handshake_from_an_older_server_gets_the_defaults() -> None:
    # engine.io 3 sends no maxPayload; a minimal open packet has only the sid
    assert Handshake.decode('{"sid":123}') == Handshake("123", (), 25.0, 20.0, 1_000_000)
    assert Handshake.decode('{"sid":"s","upgrades":["websocket"],"pingInterval":1500,'
                            '"pingTimeout":250,"maxPayload":"64"}') == Handshake(
        "s", ("websocket",), 1.5, 0.25, 64)


@pytest.mark.parametrize("data", [
    "not json", "[]", '"sid"', "{}", '{"upgrades":[]}', '{"sid":"s","pingInterval":"x"}',
    '{"sid":"s","maxPayload":"lots"}', '{"sid":"s","maxPayload":null}', "",
])
def test_anything_else_is_not_a_handshake(data: str) -> None:
    with pytest.raises(ProtocolError, match=r"^not an Engine\.IO handshake: "):
        Handshake.decode(data)


# -- who pings: the v4 server and the v3 client ----------------------------------------------------


@pytest.mark.parametrize(("role", "engine_protocol"), [(Role.SERVER, 4), (Role.CLIENT, 3)])
def test_the_pinger_pings_every_interval_and_gives_up_after_the_timeout(
        role: Role, engine_protocol: int) -> None:
    proto, clock = protocol(role, engine_protocol)
    assert proto.heartbeat_at == 100.0 + INTERVAL
    clock.now = 109.99
    assert proto.heartbeat() is Heartbeat.NOT_YET and proto.written == []
    clock.now = 110.0  # due exactly now
    assert proto.heartbeat() is Heartbeat.PINGED
    assert proto.written == [EnginePacket(PING, "")]
    assert proto.heartbeat_at == 110.0 + TIMEOUT  # the pong is due by then
    clock.now = 113.0
    assert proto.heartbeat() is Heartbeat.NOT_YET  # an early timer: nothing happens
    assert proto.receive(PONG, "") is None
    assert proto.heartbeat_at == 113.0 + INTERVAL  # the next ping, from the pong
    clock.now = 123.0
    assert proto.heartbeat() is Heartbeat.PINGED
    clock.now = 127.0  # the pong never came
    assert proto.heartbeat() is Heartbeat.TIMED_OUT
    assert proto.written == [EnginePacket(PING, "")] * 2


@pytest.mark.parametrize(("role", "engine_protocol"), [(Role.SERVER, 4), (Role.CLIENT, 3)])
def test_the_pinger_ignores_a_pong_it_did_not_ask_for_and_refuses_pings(
        role: Role, engine_protocol: int) -> None:
    proto, clock = protocol(role, engine_protocol)
    clock.now = 105.0
    assert proto.receive(PONG, "") is None  # no ping out: the schedule stays
    assert proto.heartbeat_at == 100.0 + INTERVAL
    with pytest.raises(ProtocolError, match="ping from the side that should be answering"):
        proto.receive(PING, "")
    assert proto.written == []


# -- who answers: the v4 client and the v3 server --------------------------------------------------


def test_the_v4_client_answers_pings_and_gives_up_when_they_stop() -> None:
    proto, clock = protocol(Role.CLIENT, 4)
    assert proto.heartbeat_at == 100.0 + INTERVAL + TIMEOUT
    clock.now = 105.0
    assert proto.receive(PING, "") is None
    assert proto.written == [EnginePacket(PONG, "")]
    assert proto.heartbeat_at == 105.0 + INTERVAL + TIMEOUT  # the next ping is due by then
    clock.now = 118.99
    assert proto.heartbeat() is Heartbeat.NOT_YET
    assert proto.heartbeat_at == 105.0 + INTERVAL + TIMEOUT
    clock.now = 119.0
    assert proto.heartbeat() is Heartbeat.TIMED_OUT
    with pytest.raises(ProtocolError, match="pong from the side that should be sending"):
        proto.receive(PONG, "")


def test_the_v3_server_echoes_pings_and_counts_any_packet_as_a_sign_of_life() -> None:
    proto, clock = protocol(Role.SERVER, 3)
    assert proto.heartbeat_at == 100.0 + INTERVAL + TIMEOUT
    clock.now = 103.0
    assert proto.receive(PING, "probe?") is None
    assert proto.written == [EnginePacket(PONG, "probe?")]  # the data comes back
    clock.now = 110.0
    assert proto.receive(MESSAGE, "hi") == "hi"  # a message is a sign of life too
    clock.now = 117.0  # the timer set for 114 fires: the client spoke at 110
    assert proto.heartbeat() is Heartbeat.NOT_YET
    assert proto.heartbeat_at == 110.0 + INTERVAL + TIMEOUT  # the timer's new time
    clock.now = 124.0
    assert proto.heartbeat() is Heartbeat.TIMED_OUT
    with pytest.raises(ProtocolError, match="pong from the side that should be sending"):
        proto.receive(PONG, "")


def test_only_the_v3_server_listens_to_every_packet() -> None:
    proto, clock = protocol(Role.CLIENT, 4)  # a v4 client waits for pings only
    clock.now = 112.0
    assert proto.receive(MESSAGE, "x") == "x"
    clock.now = 114.0
    assert proto.heartbeat() is Heartbeat.TIMED_OUT


# -- what the other packets mean ------------------------------------------------------------------


@pytest.mark.parametrize(("role", "engine_protocol"), [
    (Role.SERVER, 4), (Role.SERVER, 3), (Role.CLIENT, 4), (Role.CLIENT, 3)])
def test_messages_are_handed_over_and_close_closes(role: Role, engine_protocol: int) -> None:
    proto, _ = protocol(role, engine_protocol)
    assert proto.receive(MESSAGE, b"\x00bin") == b"\x00bin"
    assert proto.receive(MESSAGE, "") == ""
    for ptype in (OPEN, UPGRADE, NOOP):  # meaningless outside the upgrade handshake
        assert proto.receive(ptype, "x") is None
    assert proto.state is SessionState.OPEN and proto.written == []
    assert proto.receive(CLOSE, "") is None
    assert proto.state is SessionState.CLOSED


def test_the_driver_must_write() -> None:
    with pytest.raises(NotImplementedError):
        EngineProtocol(Role.SERVER, 4, INTERVAL, TIMEOUT, Clock()).write_packet(NOOP)


# -- the polling buffer ---------------------------------------------------------------------------


def test_a_server_poll_takes_everything() -> None:
    proto, _ = protocol(Role.SERVER, 4)
    packets = [EnginePacket(MESSAGE, "x" * 1000) for _ in range(50)]
    proto.buffer = list(packets)
    assert proto.take() == packets and proto.buffer == []
    assert proto.take() == []


def test_a_client_post_takes_what_fits_the_servers_max_payload() -> None:
    # the worst-case size of a packet: 4 per character (UTF-16 counting), 2 per byte (base64),
    # plus 16 for its framing
    proto, _ = protocol(Role.CLIENT, 4)
    text, data = EnginePacket(MESSAGE, "abcd"), EnginePacket(MESSAGE, b"12345678")
    assert 4 * 4 + 16 == 32 and 8 * 2 + 16 == 32
    proto.buffer = [text, data, text]
    assert proto.take(64) == [text, data]  # exactly the limit: both fit
    assert proto.buffer == [text]
    proto.buffer = [text, data, text]
    assert proto.take(63) == [text]  # one under: the second waits
    assert proto.take(63) == [data]
    assert proto.take(10) == [text]  # at least one, even over the limit
    assert proto.take(10) == []
    proto.buffer = [text]
    assert proto.take(1) == [text]
    proto.buffer = [text, text]
    assert proto.take(10**6) == [text, text] and proto.buffer == []


# -- the upgrade ----------------------------------------------------------------------------------


def test_the_upgrade_probe_and_its_answers() -> None:
    assert (PROBE_PING, PROBE_PONG, UPGRADE_PACKET) == ("2probe", "3probe", "5")
    assert EngineProtocol.answer_probe("2probe") == "3probe"
    for other in ("2", "2probes", "3probe", b"2probe", None):
        assert EngineProtocol.answer_probe(other) is None
    assert EngineProtocol.probe_answered("3probe")
    assert not any(EngineProtocol.probe_answered(m) for m in ("3", "2probe", b"3probe", None))
    assert EngineProtocol.completes_upgrade("5")
    assert not any(EngineProtocol.completes_upgrade(m) for m in ("6", "55", b"5", None))
