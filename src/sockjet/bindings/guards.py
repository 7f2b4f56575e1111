"""What every HTTP connection of a binding is held to, whoever parses it: the size of a request
head, the number of its headers, and the deadlines of the connection (idle, head, whole
request). The native binding and the uvicorn protocols both use these, so that the two bindings
refuse the same things the same way."""

from __future__ import annotations

import asyncio
import enum
import logging
import resource
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from ..engine.interface import HTTPLimits

log = logging.getLogger("sockjet.server")


class Refused(Exception):
    """A request refused before it reached the application (raised from parser callbacks)."""

    def __init__(self, status: int, cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause


def refusal_bytes(status: int) -> bytes:
    """A complete ``Connection: close`` response for a refusal (plain text body)."""
    phrase = HTTPStatus(status).phrase
    body = phrase.encode()
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


#: after a refusal, how long and how much a connection keeps reading (and dropping) before closing
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024


class Lingering:
    """A lingering close: our side is shut for writing after the refusal, and what the client
    still sends is read and dropped for a moment before the connection closes. Closing with
    unread input would make the kernel answer with a reset, and the client could lose the
    refusal itself (a 431 for a 1 MB head, a 413 for a body still on its way)."""

    __slots__ = ("_handle", "_left", "_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._left = LINGER_BYTES
        self._handle: asyncio.TimerHandle | None = None
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._handle = loop.call_later(LINGER_SECONDS, transport.close)

    def discard(self, length: int) -> None:
        self._left -= length
        if self._left < 0:
            self.cancel()
            self._transport.close()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class HeadGuard:
    """Counts the request head as it arrives: the request line plus header lines (with their
    CRLFs) must stay within ``max_header_size`` bytes and ``max_headers`` lines.

    Parsers buffer an unfinished header line before calling back, so the raw bytes of an
    unfinished head are counted too (:meth:`unfinished`, from the read after the one where the
    head began): an 8 MB header line is refused after ``max_header_size`` bytes plus at most two
    reads, never buffered whole. The exact size is checked when the head completes.
    """

    __slots__ = ("active", "count", "max_count", "max_size", "raw", "size")

    def __init__(self, limits: HTTPLimits) -> None:
        self.max_size = limits.max_header_size
        self.max_count = limits.max_headers
        self.active = False  # a head has begun and is not complete
        self.size = 0
        self.count = 0
        self.raw = 0

    def begin(self) -> None:
        self.active = True
        self.size = self.count = 0
        self.raw = -1  # the head began inside the chunk being parsed: counted from the next one

    def url(self, length: int) -> None:
        """A chunk of the URL (checked as it comes: parsers buffer it)."""
        self.size += length
        if self.size > self.max_size:
            self.refuse()

    def header(self, name_len: int, value_len: int) -> None:
        self.count += 1
        self.size += name_len + value_len + 4  # "name: value\r\n"
        if self.count > self.max_count or self.size > self.max_size:
            self.refuse()

    def refuse(self) -> None:
        """Raise the refusal for the count or size passed (hot paths count inline)."""
        if self.count > self.max_count:
            raise Refused(431, "more headers than max_headers")
        raise Refused(431, "request head over max_header_size")

    def complete(self, method_len: int) -> None:
        """The head is complete; its exact size includes the request line's other parts."""
        self.active = False
        self.size += method_len + 12  # "M URL HTTP/1.1\r\n" besides the URL
        if self.size > self.max_size:
            raise Refused(431, "request head over max_header_size")

    def unfinished(self, length: int) -> None:
        """A chunk of ``length`` bytes was parsed and the head is still incomplete."""
        if self.raw < 0:
            self.raw = 0
            return
        self.raw += length
        if self.raw > self.max_size:
            raise Refused(431, "request head over max_header_size")


class Phase(enum.IntEnum):
    """What a connection is waiting for, and so which deadline applies."""

    NONE = 0  # a response is being produced (a long-poll may wait): the engine's timers rule
    IDLE = 1  # between requests: keep_alive_timeout
    HEAD = 2  # a request head is arriving: headers_timeout from its first byte
    BODY = 3  # its body is arriving: request_timeout from its first byte


class Deadlines:
    """One lazily re-armed timer per connection. Moving to a phase with a later deadline costs
    no timer operation; the timer, when it fires early, re-arms itself for the current deadline.
    ``on_expired(phase)`` runs when the current phase's deadline passes."""

    __slots__ = ("_at", "_handle", "_handle_at", "_limits", "_loop", "_on_expired",
                 "_request_start", "phase")

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: HTTPLimits,
                 on_expired: Callable[[Phase], None]) -> None:
        self._loop = loop
        self._limits = limits
        self._on_expired = on_expired
        self.phase = Phase.NONE
        self._at = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0
        self._request_start = 0.0

    def idle(self) -> None:
        self._set(Phase.IDLE, self._loop.time() + self._limits.keep_alive_timeout)

    def head(self) -> None:
        now = self._loop.time()
        self._request_start = now
        self._set(Phase.HEAD, now + self._limits.headers_timeout)

    def body(self) -> None:
        self._set(Phase.BODY, self._request_start + self._limits.request_timeout)

    def clear(self) -> None:
        self.phase = Phase.NONE

    def cancel(self) -> None:
        self.phase = Phase.NONE
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _set(self, phase: Phase, at: float) -> None:
        self.phase = phase
        self._at = at
        handle = self._handle
        if handle is not None:
            if self._handle_at <= at:
                return  # fires first, then re-arms for ``at``
            handle.cancel()
        self._arm(at)

    def _arm(self, at: float) -> None:
        self._handle_at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        phase = self.phase
        if phase is Phase.NONE:
            return
        if self._loop.time() < self._at:
            self._arm(self._at)
            return
        self.phase = Phase.NONE
        self._on_expired(phase)


class DescriptorWatch:
    """Notices that the process is running out of file descriptors.

    uvloop then accepts and drops new connections silently (libuv keeps a spare descriptor for
    that) and plain asyncio calls the loop's exception handler on every failed ``accept()``;
    neither spins, but neither says why clients are being turned away. This logs the condition
    once per shortage (and at most once a minute: a flood draining from the listen backlog can
    touch the limit again right away), judging from the descriptor numbers of new connections
    (the kernel hands out the lowest free number, so a high one means few are left) and from
    asyncio's accept errors.
    """

    __slots__ = ("_high", "_logged_at", "_low", "_quiet", "_short")

    def __init__(self) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        unlimited = soft == resource.RLIM_INFINITY or soft <= 0
        self._high = 1 << 62 if unlimited else max(soft - 16, soft * 15 // 16)
        self._low = 1 << 62 if unlimited else soft * 3 // 4
        self._short = False
        self._quiet = False  # this shortage was not logged: neither is its end
        self._logged_at = -3600.0

    def connection(self, fd: int) -> None:
        if fd >= self._high:
            self.shortage()
        elif self._short and fd < self._low:
            self._short = False
            if not self._quiet:
                log.warning("file descriptors available again: accepting new connections")

    def shortage(self) -> None:
        if self._short:
            return
        self._short = True
        now = time.monotonic()
        self._quiet = now - self._logged_at < 60
        if not self._quiet:
            self._logged_at = now
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.error("out of file descriptors (limit %d): new connections are refused until "
                      "some close; existing clients are still served. Raise the limit "
                      "(ulimit -n) or add workers/servers", soft)


#: one per process: descriptors are a process-wide resource
descriptors = DescriptorWatch()

#: what asyncio's selector loop reports (through the exception handler) when accept() fails
#: for lack of descriptors or memory
_ACCEPT_FAILURE = "socket.accept() out of system resource"


def watch_accept_failures(loop: asyncio.AbstractEventLoop) -> None:
    """Route asyncio's accept failures to :data:`descriptors` (logged once per shortage, not
    once per retry) and pass every other exception to the loop's previous handler. Installed
    once per loop and left in place: a late accept retry may fire after the server closed."""
    previous = loop.get_exception_handler()
    if getattr(previous, "watches_accept_failures", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILURE:
            descriptors.shortage()
        elif _late_accept_retry(context):
            pass
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.watches_accept_failures = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


def _late_accept_retry(context: dict[str, Any]) -> bool:
    """asyncio retries a failed ``accept()`` a second later by re-adding the listening socket to
    the selector; if the server closed meanwhile (shutdown during a shortage), that retry fails
    on the closed socket. Nothing is lost: the server is gone on purpose."""
    exc = context.get("exception")
    return (isinstance(exc, ValueError) and "Invalid file descriptor" in str(exc)
            and "_start_serving" in repr(context.get("handle")))
