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
import weakref
from http import HTTPStatus
from typing import Any

from ..engine.transport import HTTPLimits
from ..exceptions import RequestRefused

log = logging.getLogger("sockjet.server")




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


class Phase(enum.IntEnum):
    """What a connection is waiting for, and so which deadline applies."""

    NONE = 0  # a response is being produced (a long-poll may wait): the engine's timers rule
    IDLE = 1  # between requests: keep_alive_timeout
    HEAD = 2  # a request head is arriving: headers_timeout from its first byte
    BODY = 3  # its body is arriving: request_timeout from its first byte


class GuardedConnection:
    """Mixin for an HTTP protocol: the head limits and the deadlines of its connection.

    The state lives on the protocol object itself (no helper objects per connection: a server
    with thousands of connections pays for every object in garbage-collection time).

    Head: ``max_header_size`` bytes (request line plus header lines with their CRLFs) and
    ``max_headers`` lines. The protocol counts cheaply as the head arrives (``on_header`` runs
    for every header of every request): ``_head_size`` gathers the lengths of URL chunks, names
    and values, and :meth:`_head_complete` adds the fixed parts and decides. Parsers buffer an
    unfinished line before calling back, so the raw bytes of an unfinished head are counted too
    (:meth:`_head_unfinished`, from the read after the one where the head began): an 8 MB header
    line is refused after ``max_header_size`` bytes plus at most two reads, never buffered whole.

    Deadlines: one per :class:`Phase`; the loop's :class:`Sweeper` checks every connection that
    has one and calls :meth:`_deadline_expired` once it has passed.
    """

    _limits: HTTPLimits
    _sweeper: Sweeper
    _head_active: bool  # a head has begun and is not complete
    _head_size: int
    _head_raw: int
    _phase: Phase
    _deadline: float
    _request_start: float

    def _guard_init(self, limits: HTTPLimits, sweeper: Sweeper) -> None:
        self._limits = limits
        self._sweeper = sweeper
        self._head_active = False
        self._head_size = self._head_raw = 0
        self._phase = Phase.NONE
        self._deadline = self._request_start = 0.0

    # -- the head -------------------------------------------------------------------------------

    def _head_begin(self) -> None:
        self._head_active = True
        self._head_size = 0
        self._head_raw = -1  # began inside the chunk being parsed: counted from the next one
        now = self._sweeper.loop.time()
        self._request_start = now
        self._set_deadline(Phase.HEAD, now + self._limits.headers_timeout)

    def _head_url(self, length: int) -> None:
        self._head_size += length
        if self._head_size > self._limits.max_header_size:  # URLs are buffered: refused early
            self._head_too_large()

    def _head_complete(self, method_len: int, count: int) -> None:
        """The head is complete: ``_head_size`` plus the request line's other parts
        (``M URL HTTP/1.1\\r\\n``) and each header line's ``: `` and CRLF, against the limits;
        its body's deadline starts."""
        self._head_active = False
        if count > self._limits.max_headers:
            self._head_too_many()
        if self._head_size + method_len + 12 + 4 * count > self._limits.max_header_size:
            self._head_too_large()
        self._set_deadline(Phase.BODY, self._request_start + self._limits.request_timeout)

    def _head_unfinished(self, length: int) -> None:
        """A chunk of ``length`` bytes was parsed and the head is still incomplete."""
        if self._head_raw < 0:
            self._head_raw = 0
            return
        self._head_raw += length
        if self._head_raw > self._limits.max_header_size:
            self._head_too_large()

    @staticmethod
    def _head_too_many() -> None:
        raise RequestRefused(431, "more headers than max_headers")

    @staticmethod
    def _head_too_large() -> None:
        raise RequestRefused(431, "request head over max_header_size")

    # -- deadlines ------------------------------------------------------------------------------

    def _deadline_idle(self) -> None:
        self._set_deadline(Phase.IDLE, self._sweeper.loop.time() + self._limits.keep_alive_timeout)

    def _deadline_clear(self) -> None:
        """No deadline (a response is being produced, or the connection is done)."""
        if self._phase is not Phase.NONE:
            self._phase = Phase.NONE
            self._sweeper.forget(self)

    def _set_deadline(self, phase: Phase, at: float) -> None:
        if self._phase is Phase.NONE:
            self._sweeper.watch(self)
        self._phase = phase
        self._deadline = at

    def _deadline_passed(self) -> None:
        """Called by the sweeper once the deadline has passed."""
        phase = self._phase
        self._deadline_clear()
        self._deadline_expired(phase)

    def _deadline_expired(self, phase: Phase) -> None:
        raise NotImplementedError


class Sweeper:
    """One repeating check per event loop over the connections that have a deadline.

    Deadlines are met to within a tenth of the shortest timeout in use (at least 50 ms, at most
    1 s), which is what slow-client deadlines need; per-connection timers would cost an
    allocation and a cancellation for every connection and request instead.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = (
        weakref.WeakKeyDictionary())

    __slots__ = ("__weakref__", "_handle", "_watched", "interval", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._watched: set[GuardedConnection] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.interval = 1.0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, limits: HTTPLimits) -> Sweeper:
        """The loop's sweeper, checking often enough for ``limits`` (look it up once per
        server, or per connection only where the protocol knows no server)."""
        sweeper = cls._by_loop.get(loop)
        if sweeper is None:
            sweeper = cls._by_loop[loop] = cls(loop)
        shortest = min(limits.keep_alive_timeout, limits.headers_timeout, limits.request_timeout)
        sweeper.interval = min(sweeper.interval, max(0.05, shortest / 10))
        return sweeper

    def watch(self, conn: GuardedConnection) -> None:
        self._watched.add(conn)
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self._sweep)

    def forget(self, conn: GuardedConnection) -> None:
        self._watched.discard(conn)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self._watched if c._deadline <= now]:
            conn._deadline_passed()
        self._handle = (self.loop.call_later(self.interval, self._sweep) if self._watched
                        else None)


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
