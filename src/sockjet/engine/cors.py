"""Cross-origin policy, as the Socket.IO "Handling CORS" page describes it, minus the pitfalls of
the Node 2.x implementation: default ports are normalised, nothing matches by substring, and
every request of a session (upgrades included) is checked, not only the handshake."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .notices import LogOnce

log = logging.getLogger("sockjet.cors")

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ALL = ("*", "*:*")
_V2_FORM = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|\*):(\d{1,5}|\*)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

OriginCallable = Callable[[str], "bool | Awaitable[bool]"]


@dataclass(frozen=True, slots=True)
class CORS:
    """The modern ``cors`` option: ``sockjet.Server(cors=sockjet.CORS(origin=[...]))``.

    ``origin`` takes the same values as the ``origins`` option (default: all domains).
    """

    origin: Any = None
    credentials: bool = True
    methods: Iterable[str] = ("GET", "POST")
    allowed_headers: Iterable[str] | None = None
    exposed_headers: Iterable[str] | None = None
    max_age: int | None = 600


def same_origin(request: Any) -> bool:
    """``allow_request`` recipe: only pages served by this very host (no ``Origin`` header, as
    non-browser clients, or an ``Origin`` equal to the request's own scheme://host)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host")
    if host is None:
        return False
    own = parse_origin(f"{request.scheme}://{host}")
    return own is not None and parse_origin(origin) == own


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an Origin header value, or ``None`` if it is not one."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if port == 0:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if not scheme or not host or parts.path or parts.query or parts.fragment or parts.username:
        return None
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return scheme, host.lower(), port


class OriginPolicy:
    """Which origins may talk to the server, and the CORS headers they get."""

    def __init__(
        self,
        origins: Any = None,
        *,
        credentials: bool = True,
        methods: Iterable[str] = ("GET", "POST"),
        allowed_headers: Iterable[str] | None = None,
        exposed_headers: Iterable[str] | None = None,
        max_age: int | None = 600,
    ) -> None:
        self.credentials = bool(credentials)
        self.methods = _header_list("methods", methods)
        self.allowed_headers = (
            None if allowed_headers is None else _header_list("allowed_headers", allowed_headers)
        )
        self.exposed_headers = (
            None if exposed_headers is None else _header_list("exposed_headers", exposed_headers)
        )
        if max_age is not None and (not isinstance(max_age, int) or max_age < 0):
            raise ValueError("max_age must be a non-negative number of seconds or None")
        self.max_age = max_age
        self.log_once = LogOnce(log, logging.WARNING)
        self.set_origins(origins)

    # -- configuration --------------------------------------------------------------------------

    @property
    def origins(self) -> Any:
        """The value as configured (``"*"`` when all domains are allowed by default)."""
        return self._value

    @property
    def allows_all(self) -> bool:
        return self._all

    def set_origins(self, origins: Any) -> None:
        """Replace the allowed origins; applies to the next request. Raises ``ValueError``."""
        value = "*" if origins is None else origins
        entries = [value] if isinstance(value, str | re.Pattern) or callable(value) else value
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise ValueError(f"origins must be '*', an origin, or a list of them, not {value!r}")
        exact: set[tuple[str, str, int]] = set()
        any_port: set[tuple[str, str]] = set()
        host_port: set[tuple[str, int]] = set()
        hosts: set[str] = set()
        ports: set[int] = set()
        patterns: list[re.Pattern[str]] = []
        callables: list[OriginCallable] = []
        allow_all = allow_null = False
        for entry in list(entries):
            if isinstance(entry, re.Pattern):
                patterns.append(entry)
            elif callable(entry):
                callables.append(entry)
            elif not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"invalid origins entry {entry!r}: expected a string, a "
                                 "compiled regular expression or a callable")
            elif entry in _ALL:
                allow_all = True
            elif entry == "null":
                allow_null = True
            elif "://" in entry:
                scheme, _, rest = entry.partition("://")
                if "*" in rest.removesuffix(":*"):
                    raise ValueError(f"invalid origin {entry!r}: no wildcard hosts; use a "
                                     "compiled regular expression for a family of origins")
                if rest.endswith(":*"):
                    parsed = parse_origin(f"{scheme}://{rest[:-2]}")
                    if parsed is None:
                        raise ValueError(f"invalid origin {entry!r}")
                    any_port.add(parsed[:2])
                else:
                    parsed = parse_origin(entry.rstrip("/") if entry.count("/") == 3 else entry)
                    if parsed is None:
                        raise ValueError(f"invalid origin {entry!r}: expected "
                                         "scheme://host[:port] such as 'https://example.com'")
                    exact.add(parsed)
            else:
                match = _V2_FORM.fullmatch(entry)
                if match is None:
                    raise ValueError(
                        f"invalid origins entry {entry!r}: use a full origin "
                        f"('https://{entry}'), or 'host:port', 'host:*', '*:port'")
                host, port = match.group(1).lower().strip("[]"), match.group(2)
                if port != "*" and not 0 < int(port) <= 65535:
                    raise ValueError(f"invalid origins entry {entry!r}: port out of range")
                if host == "*":  # "*:*" was taken above
                    ports.add(int(port))
                elif port == "*":
                    hosts.add(host)
                else:
                    host_port.add((host, int(port)))
        self._value = value
        self._all = allow_all
        self._null = allow_null or allow_all
        self._exact, self._any_port, self._host_port = exact, any_port, host_port
        self._hosts, self._ports = hosts, ports
        self._patterns, self._callables = patterns, callables

    # -- checks ---------------------------------------------------------------------------------

    async def allows(self, origin: str) -> bool:
        """Whether a request carrying ``Origin: origin`` may proceed."""
        if self._all:
            return True
        if origin == "null":
            return self._null
        parsed = parse_origin(origin)
        if parsed is not None:
            scheme, host, port = parsed
            if (parsed in self._exact or (scheme, host) in self._any_port
                    or (host, port) in self._host_port or host in self._hosts
                    or port in self._ports):
                return True
        for pattern in self._patterns:
            if pattern.fullmatch(origin):
                return True
        for fn in self._callables:
            result = fn(origin)
            if inspect.isawaitable(result):
                result = await result
            if result:
                return True
        return False

    def refused(self, origin: str, where: str) -> None:
        """Log an origin refusal, once per origin."""
        self.log_once(origin, "refused %s from origin %r: not in the allowed origins %r",
                      where, origin, self._value)

    # -- headers --------------------------------------------------------------------------------

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        """CORS headers for an accepted cross-origin response."""
        if self._all and not self.credentials:
            headers = [("access-control-allow-origin", "*")]
        else:
            headers = [("access-control-allow-origin", origin), ("vary", "Origin")]
        if self.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if self.exposed_headers:
            headers.append(("access-control-expose-headers", self.exposed_headers))
        return headers

    def preflight_headers(self, origin: str, requested: str | None) -> list[tuple[str, str]]:
        headers = self.response_headers(origin)
        headers.append(("access-control-allow-methods", self.methods))
        if self.allowed_headers is not None:
            headers.append(("access-control-allow-headers", self.allowed_headers))
        elif requested:
            headers.append(("access-control-allow-headers", requested))
            headers.append(("vary", "Access-Control-Request-Headers"))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        return headers


def _header_list(name: str, values: Iterable[str]) -> str:
    items = [values] if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str) or not all(_TOKEN.fullmatch(p.strip())
                                                for p in item.split(",")):
            raise ValueError(f"invalid {name} entry {item!r}")
    return ",".join(p.strip() for item in items for p in item.split(","))


def policy_from_options(origins: Any, cors: CORS | None) -> OriginPolicy:
    """Build the policy from the ``origins=`` and ``cors=`` options (not both)."""
    if cors is None:
        return OriginPolicy(origins)
    if not isinstance(cors, CORS):
        raise TypeError("cors must be a sockjet.CORS(...) instance")
    if origins is not None and cors.origin is not None:
        raise ValueError("give the allowed origins once: either origins=... or "
                         "cors=CORS(origin=...), not both")
    return OriginPolicy(
        cors.origin if cors.origin is not None else origins,
        credentials=cors.credentials,
        methods=cors.methods,
        allowed_headers=cors.allowed_headers,
        exposed_headers=cors.exposed_headers,
        max_age=cors.max_age,
    )


PreflightHandler = Callable[[Any], Any]


def preflight_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Normalise what a ``handle_preflight_request`` callable returned."""
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise TypeError("handle_preflight_request must return (status, headers[, body])")
    status, headers = result[0], result[1]
    body = result[2] if len(result) == 3 else b""
    if isinstance(headers, dict):
        headers = list(headers.items())
    pairs = [(str(k), "true" if v is True else str(v)) for k, v in headers]
    if isinstance(body, str):
        body = body.encode()
    return int(status), pairs, bytes(body)
