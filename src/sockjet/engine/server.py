"""The Engine.IO server: request routing, handshakes, CORS and the session table."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..codecs import engineio as eio
from ..exceptions import Forbidden
from .cors import CORS, OriginPolicy, PreflightHandler, policy_from_options, preflight_response
from .handlers import Handlers, HasHandlers, Invoker, is_awaitable
from .observer import REFUSAL_CAUSES, EngineObserver
from .protocol import Handshake
from .refusals import ERRORS, error_response
from .session import EngineSocket, ObservedEngineSocket, SessionConfig
from .transport import (
    DEFAULT_HTTP_LIMITS,
    HTTPLimits,
    HTTPRequest,
    RequestInfo,
    Response,
    WebSocketConnection,
)

log = logging.getLogger("sockjet.engine")

TRANSPORTS = ("polling", "websocket")

AllowRequest = Callable[[RequestInfo], "bool | Awaitable[bool]"]
#: an HTTP endpoint of :attr:`Engine.routes`: the request in, the response out
Route = Callable[[HTTPRequest], Awaitable[Response]]
#: a start or stop hook (see :meth:`Engine.add_serving_hooks`)
Hook = Callable[[], Awaitable[None]]

#: unsent bytes per client above which volatile packets are dropped
DEFAULT_QUEUE_HIGH_WATER = 1024 * 1024
#: unsent bytes per client above which it is disconnected as too slow
DEFAULT_QUEUE_LIMIT = 100 * 1024 * 1024


def _positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class Engine(HasHandlers):
    """The Engine.IO server: protocols 3 and 4 on one endpoint (``sockjet.EngineServer`` is this
    plus ``asgi_app()``; ``sockjet.Server`` runs one as its ``engine``).

    Times are in seconds (fractions allowed); the handshake advertises them in milliseconds.
    Event (``engine.on(name, handler)``): ``connection(socket)`` for each new session.
    """

    def __init__(
        self,
        *,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        max_http_buffer_size: int = 1_000_000,
        allow_eio3: bool = True,
        transports: Iterable[str] = TRANSPORTS,
        allow_upgrades: bool = True,
        upgrade_timeout: float = 10,
        close_timeout: float = 30,
        cookie: bool | str | dict[str, Any] | None = None,
        http_compression: bool | dict[str, Any] = True,
        per_message_deflate: bool = False,
        allow_request: AllowRequest | None = None,
        origins: Any = None,
        cors: CORS | None = None,
        handle_preflight_request: PreflightHandler | bool | None = None,
        queue_high_water: int = DEFAULT_QUEUE_HIGH_WATER,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        headers_timeout: float = DEFAULT_HTTP_LIMITS.headers_timeout,
        request_timeout: float = DEFAULT_HTTP_LIMITS.request_timeout,
        keep_alive_timeout: float = DEFAULT_HTTP_LIMITS.keep_alive_timeout,
        max_header_size: int = DEFAULT_HTTP_LIMITS.max_header_size,
        max_headers: int = DEFAULT_HTTP_LIMITS.max_headers,
        path: str = "/engine.io/",
    ) -> None:
        self.ping_interval = _positive("ping_interval", ping_interval)
        self.ping_timeout = _positive("ping_timeout", ping_timeout)
        self.upgrade_timeout = _positive("upgrade_timeout", upgrade_timeout)
        self.close_timeout = _positive("close_timeout", close_timeout)
        if not isinstance(max_http_buffer_size, int) or max_http_buffer_size <= 0:
            raise ValueError("max_http_buffer_size must be a positive number of bytes")
        self.max_http_buffer_size = max_http_buffer_size
        self.allow_eio3 = allow_eio3
        self.transports = tuple(transports)
        if not self.transports or any(t not in TRANSPORTS for t in self.transports):
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}")
        self.allow_upgrades = allow_upgrades
        if not isinstance(queue_high_water, int) or queue_high_water < 1:
            raise ValueError("queue_high_water must be a positive number of bytes")
        if not isinstance(queue_limit, int) or queue_limit < queue_high_water:
            raise ValueError("queue_limit must be an integer >= queue_high_water")
        self.queue_high_water = queue_high_water
        self.queue_limit = queue_limit
        for name, size in (("max_header_size", max_header_size), ("max_headers", max_headers)):
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        #: what the bindings enforce on every HTTP connection
        self.http_limits = HTTPLimits(
            headers_timeout=_positive("headers_timeout", headers_timeout),
            request_timeout=_positive("request_timeout", request_timeout),
            keep_alive_timeout=_positive("keep_alive_timeout", keep_alive_timeout),
            max_header_size=max_header_size,
            max_headers=max_headers,
        )
        self.per_message_deflate = per_message_deflate
        self.compression_threshold = _compression_threshold(http_compression)
        self.cookie = _cookie_template(cookie)
        self.allow_request = allow_request
        self.cors: OriginPolicy = policy_from_options(origins, cors)
        if handle_preflight_request not in (None, True, False) and not callable(
                handle_preflight_request):
            raise TypeError("handle_preflight_request must be a callable, True or False")
        self.handle_preflight_request = handle_preflight_request
        if self.cors.allows_all and origins is None and (cors is None or cors.origin is None):
            log.warning("all domains may connect (the default, as in the Socket.IO docs); "
                        "pass origins=[...] to list the sites allowed to use this server")
        self.path = normalise_path(path)
        self.sessions: dict[str, EngineSocket] = {}
        #: the class of each new session: a subclass may watch what its sessions carry (the
        #: Admin UI instrumentation counts packets and bytes that way), so that a server nobody
        #: watches pays nothing per packet
        self.session_class: type[EngineSocket] = EngineSocket
        #: makes the id of each new session (the worker processes of one server tag theirs)
        self.new_sid: Callable[[], str] = new_sid
        #: the event loop serving this engine (known once it serves; used for thread-safe calls)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: (start, stop) pairs: each start runs in :meth:`startup`, in order, and each stop in
        #: :meth:`shutdown`, in reverse order (the Socket.IO layer connects and closes its
        #: adapters there); see :meth:`add_serving_hooks`
        self._serving_hooks: list[tuple[Hook, Hook]] = []
        self._startup: asyncio.Future[None] | None = None  # the run of the starts, once begun
        self._started = False
        self._stopped = False  # the stops ran since the last start: a second shutdown skips them
        self._shut_down = False
        #: starts and stops take turns (a lock, and the loop it serves)
        self._lifecycle: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        #: the server's handlers (``connection``)
        self.handlers = Handlers()
        #: told of sessions, refusals, packets and bytes (``None``: nothing is counted; see
        #: :mod:`.observer`); set it before serving
        self.observer: EngineObserver | None = None
        #: other HTTP endpoints the bindings serve on this engine's port, by exact path, before
        #: the engine's own path (``sockjet.enable_metrics(io, path="/metrics")`` adds one)
        self.routes: dict[str, Route] = {}
        #: the index of the worker process serving this engine (set in each worker by
        #: ``workers=N``), ``None`` in a single process
        self.worker: int | None = None
        #: calls application handlers (of this engine and its sessions) and keeps their tasks
        self.invoker = Invoker(log)
        self._session_config = SessionConfig(
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
            upgrade_timeout=self.upgrade_timeout, close_timeout=self.close_timeout,
            max_http_buffer_size=max_http_buffer_size, queue_high_water=queue_high_water,
            queue_limit=queue_limit, compression_threshold=self.compression_threshold)

    @property
    def engine(self) -> Engine:
        """This engine: a binding serves ``target.engine`` whether it is given an engine or a
        Socket.IO server."""
        return self

    # -- application hooks ----------------------------------------------------------------------

    def forget(self, socket: EngineSocket) -> None:
        """Drop a closed session from the table (its sid is unknown from then on)."""
        if self.sessions.get(socket.sid) is socket:
            del self.sessions[socket.sid]

    def _new_session(self, sid: str, engine_protocol: int, request: RequestInfo, b64: bool,
                     upgrades: tuple[str, ...], transport: str) -> EngineSocket:
        self.loop = asyncio.get_running_loop()
        handshake = Handshake(sid, upgrades, self.ping_interval, self.ping_timeout,
                              self.max_http_buffer_size).encode()
        observer = self.observer
        socket: EngineSocket
        if observer is None:
            socket = self.session_class(sid, engine_protocol, request, b64, handshake,
                                        self._session_config, self.invoker, self.forget)
        else:
            socket = observed(self.session_class)(sid, engine_protocol, request, b64, handshake,
                                                  self._session_config, self.invoker,
                                                  self.forget, observer)
            observer.session_opened(socket, transport)
        self.sessions[sid] = socket
        self.invoker.emit(self.handlers, "connection", socket)
        return socket

    def _engine_protocol(self, value: str | None) -> int | None:
        if value == "4":
            return 4
        if value == "3" and self.allow_eio3:
            return 3
        return None

    async def _check_allowed(self, req: RequestInfo) -> str | None:
        """``None`` when the request may open a session, else the refusal reason."""
        if self.allow_request is None:
            return None
        try:
            allowed = self.allow_request(req)
            if is_awaitable(allowed):
                allowed = await allowed
            reason = None if allowed else "Forbidden"
        except Forbidden as exc:
            reason = exc.reason
        if reason is not None:
            origin = req.headers.get("origin")
            self.cors.log_once(f"{origin}\n{reason}",
                               "allow_request refused a session from origin %r: %s",
                               origin, reason)
        return reason

    def _refused(self, cause: str) -> None:
        observer = self.observer
        if observer is not None:
            observer.request_refused(cause)

    def _refuse(self, code: int, status: int = 400, message: str | None = None,
                cause: str | None = None) -> Response:
        """The error answer of Engine.IO ``code`` (counted as ``cause``, by default the code's
        own, when the engine has an observer)."""
        self._refused(cause or REFUSAL_CAUSES[code])
        return error_response(code, status, message)

    async def _reject(self, ws: WebSocketConnection, code: int, status: int = 400,
                      body: bytes | None = None, cause: str | None = None) -> None:
        """Refuse a WebSocket handshake with the error of Engine.IO ``code``."""
        self._refused(cause or REFUSAL_CAUSES[code])
        await ws.reject(status, ERRORS[code].encode() if body is None else body)

    def origins(self, *value: Any) -> Any:
        """``origins()`` returns the allowed origins; ``origins(new)`` replaces them (from the
        next request on) and returns the server, for chaining."""
        if not value:
            return self.cors.origins
        if len(value) > 1:
            raise TypeError("origins() takes one value: '*', an origin or a list of them")
        self.cors.set_origins(value[0])
        return self

    # -- HTTP entry point -----------------------------------------------------------------------

    async def handle_request(self, req: HTTPRequest) -> Response | None:
        """Answer a request under the engine path; ``None`` hands it back to the binding (an
        OPTIONS request when ``handle_preflight_request=False``)."""
        origin = req.headers.get("origin")
        if req.method == "OPTIONS" and origin is not None:
            return await self._preflight(req, origin)
        if origin is None:
            return await self._route(req)
        if not await self.cors.allows(origin):
            self.cors.refused(origin, f"{req.method} request")
            return self._refuse(4, 403, "Origin not allowed", "origin")
        response = await self._route(req)
        response.headers.extend(self.cors.response_headers(origin))
        return response

    async def _preflight(self, req: HTTPRequest, origin: str) -> Response | None:
        handler = self.handle_preflight_request
        if handler is False:
            return None
        if callable(handler):
            result = handler(req)
            if is_awaitable(result):
                result = await result
            status, headers, body = preflight_response(result)
            return Response(status, headers, body)
        if not await self.cors.allows(origin):
            self.cors.refused(origin, "preflight")
            return self._refuse(4, 403, "Origin not allowed", "origin")
        requested = req.headers.get("access-control-request-headers")
        return Response(204, self.cors.preflight_headers(origin, requested))

    async def _route(self, req: HTTPRequest) -> Response:
        query = req.query
        transport = query.get("transport")
        if transport not in self.transports:
            return self._refuse(0)
        if transport != "polling":  # a WebSocket transport on a plain HTTP request
            return self._refuse(3)
        jsonp = query.get("j")
        if jsonp is not None and not eio.valid_jsonp_index(jsonp):
            return self._refuse(3)
        sid = query.get("sid")
        if sid is not None:
            socket = self.sessions.get(sid)
            if socket is None:
                return self._refuse(1)
            if socket.transport != "polling":
                return self._refuse(3)
            if req.method == "GET":
                return await socket.handle_poll(req)
            if req.method == "POST":
                return await socket.handle_post(req)
            return self._refuse(3)
        if req.method != "GET":
            return self._refuse(2)
        engine_protocol = self._engine_protocol(query.get("EIO"))
        if engine_protocol is None:
            return self._refuse(5)
        refusal = await self._check_allowed(req)
        if refusal is not None:
            return self._refuse(4, 403, refusal, "allow_request")
        return await self._open_polling(req, engine_protocol)

    async def _open_polling(self, req: HTTPRequest, engine_protocol: int) -> Response:
        sid = self.new_sid()
        b64 = req.query.get("b64") in ("1", "true")
        upgrades = ("websocket",) if "websocket" in self.transports and self.allow_upgrades else ()
        socket = self._new_session(sid, engine_protocol, req, b64, upgrades, "polling")
        response = await socket.handle_poll(req)
        response.headers.extend(self._cookie_headers(sid))
        return response

    def _cookie_headers(self, sid: str) -> list[tuple[str, str]]:
        """``Set-Cookie`` for the first response of a session (polling or WebSocket 101)."""
        if self.cookie is None:
            return []
        name, _, attributes = self.cookie.partition("=")
        return [("set-cookie", f"{name}={sid}{attributes}")]

    # -- WebSocket entry point ------------------------------------------------------------------

    async def handle_websocket(self, ws: WebSocketConnection) -> None:
        origin = ws.headers.get("origin")
        if origin is not None and not await self.cors.allows(origin):
            self.cors.refused(origin, "WebSocket")
            return await self._reject(ws, 4, 403, b"Origin not allowed", "origin")
        query = ws.query
        transport = query.get("transport")
        if transport not in self.transports:
            return await self._reject(ws, 0)
        if transport != "websocket":
            return await self._reject(ws, 3)
        sid = query.get("sid")
        if sid is not None:
            socket = self.sessions.get(sid)
            if socket is None:
                return await self._reject(ws, 1)
            if not self.allow_upgrades:
                return await self._reject(ws, 3)
            return await socket.handle_upgrade(ws)
        engine_protocol = self._engine_protocol(query.get("EIO"))
        if engine_protocol is None:
            return await self._reject(ws, 5)
        refusal = await self._check_allowed(ws)
        if refusal is not None:
            return await self._reject(ws, 4, 403, refusal.encode(), "allow_request")
        sid = self.new_sid()
        await ws.accept(self._cookie_headers(sid))
        socket = self._new_session(sid, engine_protocol, ws, False, (), "websocket")
        await socket.run_websocket(ws)

    # -- lifecycle ------------------------------------------------------------------------------

    def add_serving_hooks(self, start: Hook, stop: Hook) -> None:
        """``start`` runs when a binding starts serving this engine, ``stop`` when it stops
        (add them before it serves: a pair added later starts with the next start). Stops must
        take being called more than once, and without their start: a shutdown runs every stop,
        also after a start that failed. A ``start`` that fails should leave things so that it
        can be tried again. Hooks must not call :meth:`startup` or :meth:`shutdown` themselves
        (each waits for the other's turn to end)."""
        self._serving_hooks.append((start, stop))

    @property
    def started(self) -> bool:
        """Whether :meth:`startup` has completed (and no :meth:`shutdown` came since)."""
        return self._started

    @property
    def shut_down(self) -> bool:
        """Whether :meth:`shutdown` ran since the last :meth:`startup` (a binding about to
        stop: what reaches it then is not a reason to start again)."""
        return self._shut_down

    async def startup(self) -> None:
        """A binding starts serving this engine on the running loop: the start hooks run, once
        until :meth:`shutdown` (every binding path calls this: the runners before listening,
        the ASGI app on lifespan startup and before its first request, since a wrapped app or a
        framework mounting it may never pass lifespan on; callers meanwhile wait for the one
        run). If a start fails (an unreachable Redis), the starts before it are stopped again,
        the exception is raised to every caller, and the next call tries again. Starts and
        stops never overlap: a start asked during a shutdown runs after its stops."""
        loop = asyncio.get_running_loop()
        if self._startup is not None and self._startup.get_loop() is not loop:
            self._startup = None  # started on a loop that is gone (asyncio.run once more)
            self._started = False
        if self._startup is None:
            self.loop = loop
            self._shut_down = False
            self._startup = asyncio.ensure_future(self._start_hooks())
        await asyncio.shield(self._startup)

    def _lifecycle_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lifecycle is None or self._lifecycle[0] is not loop:
            self._lifecycle = (loop, asyncio.Lock())  # a lock serves one loop
        return self._lifecycle[1]

    async def _start_hooks(self) -> None:
        run = asyncio.current_task()
        async with self._lifecycle_lock():
            done: list[Hook] = []
            self._stopped = False
            try:
                for start, stop in self._serving_hooks:
                    await start()
                    done.append(stop)
            except BaseException:
                await self._stop_hooks(done)
                if self._startup is run:  # after the unwind: a caller meanwhile gets this
                    self._startup = None  # failure (and a newer run stays the current one)
                raise
            self._started = True

    async def shutdown(self) -> None:
        """Close every session (``"server shutting down"``): pending polls are answered; then
        the stop hooks run (once: the bindings and lifespan may both ask). A start still
        running is interrupted first."""
        startup, self._startup = self._startup, None
        self._shut_down = True
        if startup is not None and startup.get_loop() is not asyncio.get_running_loop():
            startup = None  # of a loop that is gone
        if startup is not None and not startup.done():
            # a start still running (a caller cancelled, a signal during lifespan startup) is
            # not waited for: interrupted, it stops what it started
            startup.cancel()
        # all of it in turn: a start asked from now on runs after the stops
        async with self._lifecycle_lock():
            if startup is not None:
                await asyncio.wait([startup])
            self._started = False
            for socket in list(self.sessions.values()):
                socket.end("server shutting down")
            # let pending polls and WebSocket writers flush their close
            for _ in range(3):
                await asyncio.sleep(0)
            if not self._stopped:
                self._stopped = True
                await self._stop_hooks([stop for _start, stop in self._serving_hooks])

    @staticmethod
    async def _stop_hooks(stops: list[Hook]) -> None:
        for stop in reversed(stops):
            try:
                await stop()
            except Exception:
                log.exception("a shutdown hook failed")


_OBSERVED: dict[type[EngineSocket], type[ObservedEngineSocket]] = {
    EngineSocket: ObservedEngineSocket}


def observed(session_class: type[EngineSocket]) -> type[ObservedEngineSocket]:
    """The session class of an engine with an observer: :class:`ObservedEngineSocket` over
    ``session_class`` (the engine's, possibly a subclass of an instrumentation), made once."""
    mixed = _OBSERVED.get(session_class)
    if mixed is None:
        mixed = _OBSERVED[session_class] = type(
            f"Observed{session_class.__name__}", (ObservedEngineSocket, session_class),
            {"__slots__": ()})
    return mixed


def new_sid() -> str:
    """20 URL-safe characters (15 random bytes), like Node's base64id."""
    return secrets.token_urlsafe(15)


def normalise_path(path: str) -> str:
    if not isinstance(path, str) or not path:
        raise ValueError("path must be a non-empty string such as '/socket.io/'")
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _compression_threshold(option: bool | dict[str, Any]) -> int | None:
    if option is False or option is None:
        return None
    if option is True:
        return 1024
    if isinstance(option, dict):
        unknown = set(option) - {"threshold"}
        if unknown:
            raise ValueError(f"unknown http_compression keys: {sorted(unknown)}")
        threshold = option.get("threshold", 1024)
        if not isinstance(threshold, int) or threshold < 0:
            raise ValueError("http_compression threshold must be a non-negative integer")
        return threshold
    raise ValueError("http_compression must be a bool or {'threshold': bytes}")


_COOKIE_KEYS = {"name", "path", "http_only", "same_site", "secure", "domain", "max_age"}


def _cookie_template(option: bool | str | dict[str, Any] | None) -> str | None:
    """Pre-render the Set-Cookie value; the sid goes right after the first ``=``."""
    if option is None or option is False:
        return None
    opts: dict[str, Any] = {"name": "io", "path": "/", "http_only": True, "same_site": "Lax"}
    if isinstance(option, str):
        opts["name"] = option
    elif isinstance(option, dict):
        unknown = set(option) - _COOKIE_KEYS
        if unknown:
            raise ValueError(f"unknown cookie keys: {sorted(unknown)}; use {sorted(_COOKIE_KEYS)}")
        opts.update(option)
    elif option is not True:
        raise ValueError("cookie must be True, a cookie name, or a dict of cookie options")
    name = str(opts["name"])
    if not name or any(c in name for c in ' ;,="\t\r\n'):
        raise ValueError(f"invalid cookie name {name!r}")
    parts = [name + "="]
    if opts.get("domain"):
        parts.append(f"Domain={opts['domain']}")
    if opts.get("path"):
        parts.append(f"Path={opts['path']}")
    if opts.get("max_age") is not None:
        parts.append(f"Max-Age={int(opts['max_age'])}")
    if opts.get("http_only"):
        parts.append("HttpOnly")
    if opts.get("secure"):
        parts.append("Secure")
    same_site = opts.get("same_site")
    if same_site:
        value = str(same_site).capitalize()
        if value not in ("Strict", "Lax", "None"):
            raise ValueError("cookie same_site must be 'Strict', 'Lax' or 'None'")
        parts.append(f"SameSite={value}")
    return "; ".join(parts)
