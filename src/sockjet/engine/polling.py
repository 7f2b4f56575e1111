"""HTTP long-polling, the parts without state: the response that carries a batch of packets (XHR
or JSONP, text or XHR2 binary, compressed when the client accepts it) and the packets a POST
body holds."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping, Sequence

from ..codecs import engineio as eio
from .transport import Response

_TEXT = "text/plain; charset=UTF-8"
_JAVASCRIPT = "text/javascript; charset=UTF-8"
_BINARY = "application/octet-stream"


def payload_response(packets: Sequence[eio.EnginePacket], engine_protocol: int, b64: bool,
                     query: Mapping[str, str], headers: Mapping[str, str],
                     compression_threshold: int | None) -> Response:
    """The answer to a poll: ``packets`` as a payload for this client."""
    jsonp = query.get("j")
    if jsonp is not None:  # JSONP: a script calling ___eio[j], binary always in base64
        payload = eio.encode_payload(packets, engine_protocol, b64=True)
        assert isinstance(payload, str)
        body, ctype = eio.jsonp_wrap(jsonp, payload).encode(), _JAVASCRIPT
    else:
        payload = eio.encode_payload(packets, engine_protocol, b64=b64)
        if isinstance(payload, bytes):
            body, ctype = payload, _BINARY
        else:
            body, ctype = payload.encode(), _TEXT
    response_headers = [("content-type", ctype), ("cache-control", "no-store")]
    if compression_threshold is not None and len(body) >= compression_threshold:
        encoding = pick_encoding(headers.get("accept-encoding", ""))
        if encoding == "gzip":
            body = gzip.compress(body, compresslevel=6, mtime=0)
        elif encoding == "deflate":
            body = zlib.compress(body)
        if encoding:
            response_headers.append(("content-encoding", encoding))
            response_headers.append(("vary", "Accept-Encoding"))
    return Response(200, response_headers, body)


def decode_post(body: bytes, engine_protocol: int, query: Mapping[str, str],
                headers: Mapping[str, str]) -> list[eio.EnginePacket]:
    """The packets of a POST body (JSONP form, XHR2 binary or text); raises
    :class:`~sockjet.exceptions.DecodeError` or ``UnicodeDecodeError``."""
    if "j" in query:
        return eio.decode_payload(eio.decode_jsonp_form(body), engine_protocol)
    if headers.get("content-type", "").startswith(_BINARY):
        return eio.decode_payload(body, engine_protocol)
    return eio.decode_payload(body.decode("utf-8"), engine_protocol)


def pick_encoding(accept: str) -> str | None:
    """gzip or deflate per ``Accept-Encoding``, as Node's engine.io negotiates (RFC 9110): the
    higher q-value wins; ``*`` stands only for the codings not named; on a tie the one the client
    named first, then gzip before deflate for those ``*`` covers. ``None``: neither."""
    named: dict[str, tuple[float, int]] = {}
    star: float | None = None
    items = accept.lower().split(",")
    for index, item in enumerate(items):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.strip()
        if name in ("gzip", "deflate"):
            named.setdefault(name, (q, index))
        elif name == "*" and star is None:
            star = q
    best: tuple[float, int, str] | None = None
    for order, coding in enumerate(("gzip", "deflate")):
        if coding in named:
            q, index = named[coding]
        elif star is not None:
            q, index = star, len(items) + order
        else:
            continue
        if q > 0 and (best is None or (-q, index) < (best[0], best[1])):
            best = (-q, index, coding)
    return None if best is None else best[2]


# New objects each time: the server adds CORS headers to the response it is given.

def ok_response() -> Response:
    """The answer to a POST whose packets were taken."""
    return Response(200, [("content-type", "text/html")], b"ok")


def payload_too_large() -> Response:
    """The answer to a POST over ``max_http_buffer_size`` (as Node's 413)."""
    return Response(413, [("content-type", "text/plain; charset=UTF-8")], b"Payload Too Large")
