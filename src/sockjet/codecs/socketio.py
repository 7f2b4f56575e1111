"""Socket.IO packet codec for protocols 4 (socket.io 2.x) and 5 (socket.io 3.x/4.x).

Pure and sans-I/O. A packet travels as one text message ``<type>[<n>-][<nsp>,][<id>][<json>]``
followed by ``n`` binary messages (attachments) whose places in the data are marked with
``{"_placeholder": true, "num": k}``.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import orjson

from ..exceptions import DecodeError


class SocketIOPacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = SocketIOPacketType
_TYPES = tuple(SocketIOPacketType)

#: Event names a v5 peer may not send (socket.io-parser 4); the v2 server only refused to emit them.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
MAX_ATTACHMENTS = 10
_BINARY = (bytes, bytearray, memoryview)
_dumps = orjson.dumps


class SocketIOPacket(NamedTuple):
    """One decoded Socket.IO packet (immutable)."""

    type: SocketIOPacketType
    nsp: str = "/"
    data: Any = None
    id: int | None = None
    #: ``?query`` a protocol-4 client appends to the namespace of a CONNECT packet
    query: str | None = None
    #: number of binary attachments that follow (BINARY_EVENT / BINARY_ACK)
    attachments: int = 0


# -- encoding -----------------------------------------------------------------------------------


def has_binary(data: Any) -> bool:
    if isinstance(data, _BINARY):
        return True
    if isinstance(data, list | tuple):
        return any(has_binary(item) for item in data)
    if isinstance(data, dict):
        return any(has_binary(item) for item in data.values())
    return False


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    if isinstance(data, _BINARY):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, list | tuple):
        return [_deconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers) for key, value in data.items()}
    return data


def encode(
    ptype: int, nsp: str = "/", data: Any = None, ack_id: int | None = None
) -> tuple[str, list[bytes]]:
    """Encode a packet: ``(text, attachments)``. EVENT/ACK with binary become BINARY_*."""
    if ptype == BINARY_EVENT:
        ptype = EVENT
    elif ptype == BINARY_ACK:
        ptype = ACK
    tail = (nsp + "," if nsp != "/" else "") + ("" if ack_id is None else str(ack_id))
    if data is None:
        return str(ptype) + tail, []
    try:  # the common case first: orjson refuses bytes, which sends us to the binary path
        return str(ptype) + tail + _dumps(data).decode(), []
    except TypeError as exc:
        if ptype not in (EVENT, ACK) or not has_binary(data):
            raise TypeError(f"cannot send {type(data).__name__} data as JSON: {exc}") from None
    attachments: list[bytes] = []
    data = _deconstruct(data, attachments)
    head = f"{BINARY_EVENT if ptype == EVENT else BINARY_ACK}{len(attachments)}-"
    try:
        return head + tail + _dumps(data).decode(), attachments
    except TypeError as exc:
        raise TypeError(f"cannot send {type(data).__name__} data as JSON: {exc}") from None


def encode_event(nsp: str, event: str, args: tuple[Any, ...] | list[Any],
                 ack_id: int | None = None) -> tuple[str, list[bytes]]:
    return encode(EVENT, nsp, [event, *args], ack_id)


# -- decoding -----------------------------------------------------------------------------------


class Decoder:
    """Turns incoming messages into packets, reassembling binary attachments.

    ``feed`` returns a complete :class:`SocketIOPacket` or ``None`` while attachments are still
    due, and raises :class:`DecodeError` for anything malformed.
    """

    __slots__ = ("_buffers", "_pending", "socketio_protocol")

    def __init__(self, socketio_protocol: int = 5) -> None:
        self.socketio_protocol = socketio_protocol
        self._pending: SocketIOPacket | None = None
        self._buffers: list[bytes] = []

    def feed(self, message: str | bytes) -> SocketIOPacket | None:
        if isinstance(message, str):
            if self._pending is not None:
                raise DecodeError("text packet while binary attachments were expected")
            packet, count = decode_text(message, self.socketio_protocol)
            if count:
                self._pending = packet
                self._buffers = []
                return None
            return packet
        if self._pending is None:
            raise DecodeError("unexpected binary message")
        self._buffers.append(bytes(message))
        if len(self._buffers) < self._pending.attachments:
            return None
        packet, buffers = self._pending, self._buffers
        self._pending, self._buffers = None, []
        try:
            return packet._replace(data=_reconstruct(packet.data, buffers))
        except RecursionError:
            raise DecodeError("payload nested too deeply") from None


def decode_text(text: str, protocol: int = 5) -> tuple[SocketIOPacket, int]:
    """Parse one text message: ``(packet, number of attachments that follow)``."""
    size = len(text)
    if not size:
        raise DecodeError("empty packet")
    number = ord(text[0]) - 48
    if not 0 <= number <= 6:
        raise DecodeError(f"unknown packet type {text[0]!r}")
    ptype = _TYPES[number]
    # fast paths: the most common packets, events on "/" without or with an ack id
    if ptype == EVENT and size > 1:
        if text[1] == "[":
            return SocketIOPacket(EVENT, "/", _load_event(text[1:], protocol)), 0
        bracket = text.find("[", 1, 18)
        if bracket > 1 and text[1:bracket].isdigit() and text[1:bracket].isascii():
            return SocketIOPacket(EVENT, "/", _load_event(text[bracket:], protocol),
                                  int(text[1:bracket])), 0
    pos = 1
    attachments = 0
    if ptype in (BINARY_EVENT, BINARY_ACK):
        dash = text.find("-", pos)
        digits = text[pos:dash] if dash > 0 else ""
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 3:
            raise DecodeError("illegal attachments")
        attachments = int(digits)
        if attachments > MAX_ATTACHMENTS or (protocol < 5 and attachments < 1):
            raise DecodeError("illegal attachments")
        pos = dash + 1
    nsp = "/"
    query = None
    if pos < size and text[pos] == "/":
        comma = text.find(",", pos)
        end = comma if comma >= 0 else size
        nsp = text[pos:end]
        pos = end + 1 if comma >= 0 else size
        if "?" in nsp:
            nsp, _, query = nsp.partition("?")
    start = pos
    while pos < size and "0" <= text[pos] <= "9":
        pos += 1
    if pos - start > 16:
        raise DecodeError("ack id too long")
    ack_id = int(text[start:pos]) if pos > start else None
    payload: Any = None
    if pos < size:
        try:
            payload = orjson.loads(text[pos:])
        except orjson.JSONDecodeError as exc:
            raise DecodeError("invalid JSON payload") from exc
        if payload is None:  # a present `null` payload is valid for no packet type
            raise DecodeError("invalid payload null")
    packet = SocketIOPacket(ptype, nsp, payload, ack_id, query, attachments)
    _validate(packet, protocol)
    return packet, attachments


def _load_event(json_text: str, protocol: int) -> list[Any]:
    try:
        data = orjson.loads(json_text)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid JSON payload") from exc
    _validate_event(data, protocol)
    return data  # type: ignore[no-any-return]


def _validate_event(data: Any, protocol: int) -> None:
    if not isinstance(data, list) or not data:
        raise DecodeError("event payload must be a non-empty array")
    name = data[0]
    if isinstance(name, str):
        if protocol >= 5 and name in RESERVED_EVENTS:
            raise DecodeError(f"reserved event name {name!r}")
    elif not isinstance(name, int | float) or isinstance(name, bool):
        raise DecodeError("event name must be a string or a number")


def _validate(packet: SocketIOPacket, protocol: int) -> None:
    ptype, data = packet.type, packet.data
    if ptype == CONNECT:
        if data is not None and not isinstance(data, dict):
            raise DecodeError("CONNECT payload must be an object")
    elif ptype == DISCONNECT:
        if data is not None:
            raise DecodeError("DISCONNECT carries no payload")
    elif ptype == CONNECT_ERROR:
        if not isinstance(data, str | dict):
            raise DecodeError("CONNECT_ERROR payload must be a string or an object")
    elif ptype in (EVENT, BINARY_EVENT):
        _validate_event(data, protocol)
    else:  # ACK, BINARY_ACK
        if packet.id is None:
            raise DecodeError("ACK without id")
        if not isinstance(data, list):
            raise DecodeError("ACK payload must be an array")


def _reconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Put the binary attachments back in place of their placeholders (an attachment that no
    placeholder names is dropped, and one may be named twice, as socket.io-parser allows)."""
    if isinstance(data, list):
        return [_reconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            num = data.get("num")
            if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num < len(buffers):
                raise DecodeError("illegal attachments")
            return buffers[num]
        return {key: _reconstruct(value, buffers) for key, value in data.items()}
    return data
