"""How cross-server messages are serialised: msgpack (binary arguments stay bytes) for what
sockjet sends, msgpack or JSON for what it receives (Node's adapters send JSON unless a
message holds binary; every reader tells them apart by the first byte, ``{`` for JSON)."""

from __future__ import annotations

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
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"not msgpack: {exc}") from None
