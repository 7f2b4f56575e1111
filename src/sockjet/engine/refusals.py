"""The Engine.IO error table (the same in engine.io 3 and 6) and the HTTP answers built from it."""

from __future__ import annotations

import orjson

from .transport import Response

#: Engine.IO error codes and their messages
ERRORS = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}


def error_response(code: int, status: int = 400, message: str | None = None) -> Response:
    """``{"code": code, "message": ...}`` as JSON, with ``status`` (400 unless refused: 403)."""
    body = orjson.dumps({"code": code, "message": message or ERRORS[code]})
    return Response(status, [("content-type", "application/json")], body)
