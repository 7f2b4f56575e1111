"""Engine.IO packet and payload codecs for protocols 3 and 4.

Pure functions, no I/O and no asyncio: the engine, the client and the tests share them.

A packet is an :class:`EnginePacket`: its :class:`EnginePacketType` and its data, ``str`` for
text packets or ``bytes`` for binary ones (``""`` when a packet carries nothing). It is a named
tuple, so ``(type, data)`` pairs compare equal to it and unpack the same way.
"""

from __future__ import annotations

import binascii
import enum
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib.parse import parse_qs

import orjson

from ..exceptions import DecodeError


class EnginePacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = EnginePacketType
#: the types by number (a tuple index is cheaper than the enum's lookup on the hot path)
_TYPES = tuple(EnginePacketType)


class EnginePacket(NamedTuple):
    type: EnginePacketType
    data: str | bytes = ""


#: v4 polling payload separator (ASCII record separator).
SEPARATOR = "\x1e"

_TYPE_CHARS = "0123456789"
_B64_ENCODE = binascii.b2a_base64
_B64_DECODE = binascii.a2b_base64


# -- single packets -----------------------------------------------------------------------------


def encode_text(ptype: int, data: str = "") -> str:
    """Text form of a packet: ``<type digit><data>`` (same in both protocols)."""
    return _TYPE_CHARS[ptype] + data


def encode_base64(ptype: int, data: bytes, engine_protocol: int) -> str:
    """Binary packet as text: ``b<base64>`` (v4, always a message) or ``b<type><base64>`` (v3)."""
    b64 = _B64_ENCODE(data, newline=False).decode("ascii")
    return "b" + b64 if engine_protocol >= 4 else "b" + _TYPE_CHARS[ptype] + b64


def encode_frame(ptype: int, data: str | bytes, engine_protocol: int,
                 b64: bool = False) -> str | bytes:
    """WebSocket frame for one packet (one packet per frame)."""
    if isinstance(data, str):
        return _TYPE_CHARS[ptype] + data
    if b64:
        return encode_base64(ptype, data, engine_protocol)
    if engine_protocol >= 4:
        return bytes(data)
    return bytes((ptype,)) + data


def decode_text(text: str, engine_protocol: int) -> EnginePacket:
    """Decode one text packet (a WebSocket text frame or one element of a payload)."""
    if not text:
        raise DecodeError("empty packet")
    head = text[0]
    if head == "b":
        return _decode_base64(text, engine_protocol)
    ptype = ord(head) - 48
    if not 0 <= ptype <= 6:
        raise DecodeError(f"unknown packet type {head!r}")
    return EnginePacket(_TYPES[ptype], text[1:])


def decode_frame(frame: str | bytes, engine_protocol: int) -> EnginePacket:
    """Decode one WebSocket frame."""
    if isinstance(frame, str):
        return decode_text(frame, engine_protocol)
    if engine_protocol >= 4:
        return EnginePacket(MESSAGE, bytes(frame))
    if not frame:
        raise DecodeError("empty binary frame")
    ptype = frame[0]
    if ptype > 6:
        raise DecodeError(f"unknown binary packet type {ptype}")
    return EnginePacket(_TYPES[ptype], bytes(frame[1:]))


def _decode_base64(text: str, engine_protocol: int) -> EnginePacket:
    if engine_protocol >= 4:
        ptype, b64 = MESSAGE, text[1:]
    else:
        if len(text) < 2:
            raise DecodeError("truncated base64 packet")
        number = ord(text[1]) - 48
        if not 0 <= number <= 6:
            raise DecodeError(f"unknown packet type {text[1]!r}")
        ptype, b64 = _TYPES[number], text[2:]
    try:
        return EnginePacket(ptype, _B64_DECODE(b64.encode("ascii"), strict_mode=True))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise DecodeError("invalid base64 data") from exc


# -- payloads (HTTP long-polling bodies) --------------------------------------------------------


def byte_length(data: str | bytes) -> int:
    """Bytes of a message on the wire: UTF-8 for text (Node's ``Buffer.byteLength``). Lone
    surrogates, which JSON may carry, count as the three bytes they take."""
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8", "surrogatepass"))
    return len(data)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (JavaScript ``string.length``), as v3 payloads count it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def payload_has_binary(packets: Iterable[EnginePacket]) -> bool:
    return any(not isinstance(data, str) for _, data in packets)


def encode_payload(
    packets: Sequence[EnginePacket], engine_protocol: int, b64: bool = False
) -> str | bytes:
    """Polling body for a batch of packets.

    v4: packets joined with ``\\x1e``, binary as ``b<base64>``.
    v3: ``<len>:<packet>`` records with UTF-16 lengths; if the batch holds binary and the session
    supports it (no ``b64``), an XHR2 binary payload (``bytes``) instead.
    """
    if engine_protocol >= 4:
        return SEPARATOR.join(
            [
                _TYPE_CHARS[t] + d if isinstance(d, str) else encode_base64(t, d, 4)
                for t, d in packets
            ]
        )
    if not b64 and payload_has_binary(packets):
        return encode_binary_payload(packets)
    parts = []
    for ptype, data in packets:
        text = _TYPE_CHARS[ptype] + data if isinstance(data, str) else encode_base64(ptype, data, 3)
        parts.append(f"{utf16_len(text)}:{text}")
    return "".join(parts) if parts else "0:"


def encode_binary_payload(packets: Sequence[EnginePacket]) -> bytes:
    """v3 XHR2 binary payload: ``<kind><length digits as raw 0-9 bytes>ff<packet>`` records."""
    out = bytearray()
    for ptype, data in packets:
        if isinstance(data, str):
            body = (_TYPE_CHARS[ptype] + data).encode()
            out.append(0)
        else:
            body = bytes((ptype,)) + data
            out.append(1)
        out += bytes(int(c) for c in str(len(body)))
        out.append(0xFF)
        out += body
    return bytes(out)


def decode_payload(body: str | bytes, engine_protocol: int) -> list[EnginePacket]:
    """Decode a polling body. ``bytes`` means an XHR2 binary payload (v3 only)."""
    if isinstance(body, bytes | bytearray | memoryview):
        if engine_protocol >= 4:
            raise DecodeError("binary payloads do not exist in protocol 4")
        return decode_binary_payload(bytes(body))
    if not body:
        raise DecodeError("empty payload")
    if engine_protocol >= 4:
        return [decode_text(part, 4) for part in body.split(SEPARATOR)]
    return _decode_v3_text_payload(body)


_V3_RECORD = re.compile(r"(\d+):")


def _decode_v3_text_payload(body: str) -> list[EnginePacket]:
    # Lengths count UTF-16 code units; work in that unit when the body is not plain ASCII.
    if body.isascii():
        units: str | bytes = body
        width = 1
    else:
        units = body.encode("utf-16-le", "surrogatepass")
        width = 2
    packets: list[EnginePacket] = []
    total = len(units) // width
    pos = 0
    while pos < total:
        colon = pos
        length = 0
        while True:
            if colon >= total:
                raise DecodeError("payload record without ':'")
            ch = _unit(units, colon, width)
            if ch == ":":
                break
            if not "0" <= ch <= "9" or colon - pos > 10:
                raise DecodeError("non-numeric payload length")
            length = length * 10 + ord(ch) - 48
            colon += 1
        if colon == pos:
            raise DecodeError("missing payload length")
        start = colon + 1
        end = start + length
        if end > total:
            raise DecodeError("payload length exceeds body")
        if length:
            if width == 1:
                text = body[start:end]
            else:
                try:
                    text = units[start * 2 : end * 2].decode("utf-16-le")  # type: ignore[union-attr]
                except UnicodeDecodeError as exc:
                    raise DecodeError("payload length splits a character") from exc
            packets.append(decode_text(text, 3))
        pos = end
    if not packets and body != "0:":
        raise DecodeError("empty payload")
    return packets


def _unit(units: str | bytes, index: int, width: int) -> str:
    if width == 1:
        return units[index]  # type: ignore[return-value]
    lo = units[index * 2]
    hi = units[index * 2 + 1]
    return chr(lo | (hi << 8))  # type: ignore[operator]


def decode_binary_payload(body: bytes) -> list[EnginePacket]:
    if not body:
        raise DecodeError("empty payload")
    packets: list[EnginePacket] = []
    pos = 0
    size = len(body)
    while pos < size:
        kind = body[pos]
        if kind > 1:
            raise DecodeError("bad record kind in binary payload")
        pos += 1
        length = 0
        digits = 0
        while True:
            if pos >= size:
                raise DecodeError("truncated binary payload")
            b = body[pos]
            pos += 1
            if b == 0xFF:
                break
            if b > 9 or digits > 10:
                raise DecodeError("bad length in binary payload")
            length = length * 10 + b
            digits += 1
        if not digits or not length or pos + length > size:
            raise DecodeError("bad length in binary payload")
        record = body[pos : pos + length]
        pos += length
        if kind == 0:
            try:
                packets.append(decode_text(record.decode("utf-8"), 3))
            except UnicodeDecodeError as exc:
                raise DecodeError("invalid UTF-8 in binary payload") from exc
        else:
            if record[0] > 6:
                raise DecodeError("unknown packet type in binary payload")
            packets.append(EnginePacket(_TYPES[record[0]], record[1:]))
    return packets


# -- JSONP --------------------------------------------------------------------------------------

_JSONP_INDEX = re.compile(r"[0-9]{1,10}")


def valid_jsonp_index(value: str) -> bool:
    return _JSONP_INDEX.fullmatch(value) is not None


def jsonp_wrap(index: str, payload: str) -> str:
    """``___eio[<j>]("<payload as a JS string>");`` for a JSONP poll response."""
    if not valid_jsonp_index(index):
        raise ValueError("JSONP index must be digits")
    literal = orjson.dumps(payload).decode()
    literal = literal.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"___eio[{index}]({literal});"


def jsonp_unwrap(text: str) -> tuple[str, str]:
    """Inverse of :func:`jsonp_wrap`: ``(index, payload)`` (used by the client)."""
    match = re.fullmatch(r"___eio\[(\d+)\]\((.*)\);", text, re.S)
    if match is None:
        raise DecodeError("not a JSONP response")
    try:
        payload = orjson.loads(match.group(2))
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad JSONP string") from exc
    if not isinstance(payload, str):
        raise DecodeError("JSONP payload is not a string")
    return match.group(1), payload


_ESCAPED_NEWLINE = re.compile(r"(\\)?\\n")


def jsonp_escape(payload: str) -> str:
    """What a JSONP client does before posting ``d=``: ``\\n`` → ``\\\\n``, newline → ``\\n``."""
    return payload.replace("\\n", "\\\\n").replace("\n", "\\n")


def jsonp_unescape(data: str) -> str:
    """Server side of :func:`jsonp_escape`."""
    data = _ESCAPED_NEWLINE.sub(lambda m: m.group(0) if m.group(1) else "\n", data)
    return data.replace("\\\\n", "\\n")


def decode_jsonp_form(body: bytes) -> str:
    """Payload carried in the ``d`` field of a form-encoded JSONP POST."""
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError("malformed JSONP form body") from exc
    values = fields.get("d")
    if not values:
        raise DecodeError("JSONP form body without 'd'")
    return jsonp_unescape(values[0])
