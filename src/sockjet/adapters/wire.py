"""How cross-server messages are serialised: msgpack (binary arguments stay bytes) for what
sockjet sends, msgpack or JSON for what it receives (Node's adapters send JSON unless a
message holds binary; every reader tells them apart by the first byte, ``{`` for JSON).

A JavaScript ``Date`` in a Node server's msgpack (notepack.io, @msgpack/msgpack) is a msgpack
timestamp; it is read as the string a Node server sends its clients for it (``toJSON``:
``2024-05-01T12:00:00.123Z``), since the data of these messages ends up in Socket.IO packets,
whose JSON has no dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson


def _fallback(value: Any) -> Any:
    """What msgpack cannot pack goes as its JSON form (as orjson writes it for Socket.IO)."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return orjson.loads(orjson.dumps(value))


def pack(value: Any) -> bytes:
    """``value`` as msgpack (bytes as ``bin``, strings as ``str``, as notepack.io reads them)."""
    packed: bytes = msgpack.packb(value, use_bin_type=True, default=_fallback)
    return packed


def unpack(payload: bytes) -> Any:
    """A message as Node's adapters or sockjet wrote it: JSON if it starts with ``{``, else
    msgpack. :class:`ValueError` if it is neither."""
    if payload[:1] == b"{":
        return orjson.loads(payload)
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"not msgpack: {exc}") from None
    # the heads of msgpack timestamps (32, 64 and 96 bits): only a message that has one of
    # these bytes somewhere is walked (a byte scan costs little beside the unpacking)
    if b"\xd6\xff" in payload or b"\xd7\xff" in payload or b"\xc7\x0c\xff" in payload:
        value = _dates_as_json(value)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dates_as_json(value: Any) -> Any:
    """``value`` with every msgpack timestamp as JavaScript's ``Date.toJSON()`` writes it."""
    if isinstance(value, msgpack.Timestamp):
        ms = value.to_unix_nano() // 1_000_000  # a Date counts whole milliseconds
        try:
            when = _EPOCH + timedelta(milliseconds=ms)
        except OverflowError:  # outside years 1-9999, where Python has no dates: the count
            return ms
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, list):
        return [_dates_as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _dates_as_json(item) for key, item in value.items()}
    return value
