"""The asyncio Socket.IO client: namespaces, auth, events, acks, binary, reconnection with
backoff and jitter, buffering while disconnected, connection state recovery."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from functools import partial
from typing import Any, overload
from urllib.parse import urlencode, urlsplit

from ..codecs import socketio as sio
from ..engine.handlers import H, Handler, Handlers, HasHandlers, Invoker
from ..exceptions import ConnectError, DecodeError
from ..socketio.acks import Acks, AckWaiter, ack_args
from .engine import EngineClient

log = logging.getLogger("sockjet.client")

_MANAGER_EVENTS = frozenset({"reconnect_attempt", "reconnect", "reconnect_error",
                             "reconnect_failed"})


class ClientNamespace(HasHandlers):
    """One namespace of a client: its own handlers, id, auth, emits and acks.

    ``on(event, handler)`` (a decorator too): server events get their arguments and the
    handler's return value is the ack; ``connect()``, ``disconnect(reason)`` and
    ``connect_error(error)`` tell the namespace's state.
    """

    def __init__(self, client: AsyncClient, name: str, auth: Any) -> None:
        self.client = client
        self.name = name
        self.auth = auth
        #: the socket id the server gave (``None`` while disconnected)
        self.id: str | None = None
        self.connected = False
        #: True when the last connection restored the previous session (state recovery)
        self.recovered = False
        self.handlers = Handlers()
        #: the callbacks waiting for the server's acks
        self.acks = Acks()
        self._any: list[Handler] = []
        self._ack_ids = 0
        self._buffer: list[tuple[str, list[bytes]]] = []
        self._pid: str | None = None
        self._offset: str | None = None
        self._connected_event = asyncio.Event()
        self._result: asyncio.Future[None] | None = None
        self._server_disconnected = False
        self._pending = False  # CONNECT sent, no answer yet

    def __repr__(self) -> str:
        return f"<ClientNamespace {self.name!r} id={self.id!r} connected={self.connected}>"

    # -- handlers -------------------------------------------------------------------------------

    def on_any(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every event from the server, before its handlers."""
        self._any.append(handler)
        return handler

    def _fire(self, event: str, *args: Any) -> None:
        self.client.invoker.emit(self.handlers, event, *args)

    # -- sending --------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Handler | None = None) -> None:
        """Send an event; buffered while disconnected (unless ``buffer_while_disconnected`` is
        off). ``callback(*ack_args)`` runs when the server acknowledges."""
        self._emit(event, args, callback)

    def _emit(self, event: str, args: tuple[Any, ...], callback: Handler | None) -> int | None:
        if not isinstance(event, str):
            raise TypeError("event name must be a string")
        if event in sio.RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        ack_id = None
        if callback is not None:
            ack_id = self._ack_ids
            self._ack_ids += 1
            self.acks.add(ack_id, callback)
        text, attachments = sio.encode(sio.EVENT, self.name, [event, *args], ack_id)
        if self.connected:
            self.client._send(text, attachments)
        elif self.client.buffer_while_disconnected:
            self._buffer.append((text, attachments))
        return ack_id

    def send(self, *args: Any, callback: Handler | None = None) -> None:
        self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the ack: one value, a tuple for several, ``None`` for none.
        Raises :class:`~sockjet.exceptions.AckTimeout` after ``timeout`` seconds."""
        waiter = AckWaiter()
        ack_id = self._emit(event, args, waiter)
        assert ack_id is not None
        return await self.acks.wait(ack_id, waiter, timeout, repr(event))

    def disconnect(self) -> None:
        """Leave this namespace (the connection stays for the others; with none left, it
        closes, as socket.io-client's does)."""
        if self.connected:
            self.client._send(sio.encode(sio.DISCONNECT, self.name)[0], [])
            self._on_disconnect("io client disconnect")
        self._server_disconnected = True  # no automatic reconnection for it
        self.client._close_if_unused()

    # -- protocol -------------------------------------------------------------------------------

    def _connect_packet(self, protocol: int) -> str:
        auth = self.auth() if callable(self.auth) else self.auth
        if protocol == 5:
            payload: dict[str, Any] = dict(auth or {})
            if self._pid is not None:
                payload = {"pid": self._pid, "offset": self._offset, **payload}
            return sio.encode(sio.CONNECT, self.name, payload or None)[0]
        name = self.name
        if auth:  # socket.io 2.x: the namespace query carries the auth
            name += "?" + urlencode(auth)
        return sio.encode(sio.CONNECT, name)[0] if name != "/" else "0"

    def _on_connect(self, sid: str, pid: str | None) -> None:
        previous = self._pid
        self.recovered = pid is not None and pid == previous
        self._pid = pid
        if not self.recovered:
            self._offset = None
        self.id = sid
        self.connected = True
        self._pending = False
        self._server_disconnected = False
        self._connected_event.set()
        if self._result is not None and not self._result.done():
            self._result.set_result(None)
        buffered, self._buffer = self._buffer, []
        self._fire("connect")
        for text, attachments in buffered:
            self.client._send(text, attachments)

    def _on_connect_error(self, data: Any) -> None:
        self._pending = False
        if isinstance(data, dict) and self.client.socketio_protocol == 5:  # {message, data?}
            error = ConnectError(str(data.get("message", data)), data.get("data"))
        elif isinstance(data, dict):  # protocol 4 sends ``err.data || err.message``
            message = data.get("message")
            error = ConnectError(message if isinstance(message, str) else str(data), data)
        else:
            error = ConnectError(str(data), data)
        if self._result is not None and not self._result.done():
            self._result.set_exception(error)
        self._fire("connect_error", error)

    def _on_event(self, packet: sio.SocketIOPacket) -> None:
        data = packet.data
        event, args = data[0], data[1:]
        if self._pid is not None and args and isinstance(args[-1], str):
            self._offset = args[-1]  # connection state recovery: the last offset seen
        invoker = self.client.invoker
        for fn in tuple(self._any):
            invoker.call(fn, event, *args)
        handlers = self.handlers.get(event)
        if handlers:
            ack_id = packet.id
            invoker.run_event(handlers, event, args,
                              None if ack_id is None else partial(self._ack, ack_id),
                              self.name)

    def _ack(self, ack_id: int, result: Any) -> None:
        text, attachments = sio.encode(sio.ACK, self.name, ack_args(result), ack_id)
        self.client._send(text, attachments)

    def _on_ack(self, packet: sio.SocketIOPacket) -> None:
        if packet.id is not None:
            self.acks.resolve(packet.id, packet.data, self.client.invoker)

    def _on_disconnect(self, reason: str) -> None:
        self._pending = False
        if not self.connected:
            return
        self.connected = False
        self.id = None
        self._connected_event.clear()
        self._fire("disconnect", reason)


class AsyncClient:
    """A Socket.IO client for servers of any version (socket.io 2.x with ``eio=3``, 3.x/4.x and
    sockjet with ``eio=4``).

    ``on``/``emit``/``emit_with_ack`` act on the main namespace ``/``; ``of(name)`` gives
    other namespaces, connected together with it over one connection.
    """

    def __init__(
        self,
        url: str,
        *,
        path: str = "/socket.io/",
        eio: int = 4,
        transports: tuple[str, ...] | list[str] = ("polling", "websocket"),
        upgrade: bool = True,
        auth: Any = None,
        query: dict[str, str] | None = None,
        extra_headers: dict[str, str] | None = None,
        transport_options: dict[str, dict[str, Any]] | None = None,
        with_credentials: bool = False,
        timeout: float = 20.0,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        buffer_while_disconnected: bool = True,
    ) -> None:
        if eio not in (3, 4):
            raise ValueError("eio must be 3 (socket.io 2.x servers) or 4")
        transports = tuple(transports)
        if not transports or any(t not in ("polling", "websocket") for t in transports):
            raise ValueError("transports must be a non-empty subset of ('polling', 'websocket')")
        if not 0 <= randomization_factor <= 1:
            raise ValueError("randomization_factor must be between 0 and 1")
        if reconnection_delay <= 0 or reconnection_delay_max < reconnection_delay:
            raise ValueError("need 0 < reconnection_delay <= reconnection_delay_max")
        options = transport_options or {}
        unknown = set(options) - {"polling", "websocket"}
        if unknown:
            raise ValueError(f"unknown transport_options keys: {sorted(unknown)}")
        parts = urlsplit(url if "://" in url else "http://" + url)
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.path = path
        self.eio = eio
        #: the Socket.IO protocol spoken: 4 with ``eio=3`` (socket.io 2.x servers), else 5
        self.socketio_protocol = 5 if eio == 4 else 4
        self.transports = transports
        self.upgrade = upgrade
        self.query = dict(query or {})
        self.extra_headers = dict(extra_headers or {})
        self.polling_headers = dict(options.get("polling", {}).get("extra_headers", {}))
        self.websocket_headers = dict(options.get("websocket", {}).get("extra_headers", {}))
        self.with_credentials = with_credentials
        self.timeout = timeout
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.randomization_factor = randomization_factor
        self.buffer_while_disconnected = buffer_while_disconnected
        self.engine: EngineClient | None = None
        self._namespaces: dict[str, ClientNamespace] = {}
        self._decoder = sio.Decoder(self.socketio_protocol)
        #: manager handlers (``reconnect``...)
        self.handlers = Handlers()
        #: calls handlers and keeps their tasks
        self.invoker = Invoker(log)
        self._closed_by_user = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._done: asyncio.Event | None = None
        self._cookies: Any = None
        main = urlsplit(url if "://" in url else "http://" + url).path
        self.of(main if main not in ("", "/") else "/", auth)

    # -- namespaces and handlers ----------------------------------------------------------------

    def of(self, name: str, auth: Any = None) -> ClientNamespace:
        """The namespace ``name`` (created on first use; connected with the client)."""
        if not name.startswith("/"):
            name = "/" + name
        nsp = self._namespaces.get(name)
        if nsp is None:
            nsp = self._namespaces[name] = ClientNamespace(self, name, auth)
            if self.engine is not None and self.engine.state == "open":
                self._connect_namespace(nsp)
        elif auth is not None:
            nsp.auth = auth
        return nsp

    @property
    def main(self) -> ClientNamespace:
        return next(iter(self._namespaces.values()))

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Handlers of the main namespace; manager events (``reconnect_attempt(n)``,
        ``reconnect(n)``, ``reconnect_error(exc)``, ``reconnect_failed()``) too."""
        if event in _MANAGER_EVENTS:
            return self.handlers.on(event, handler)
        return self.main.on(event, handler)

    def on_any(self, handler: Handler) -> Handler:
        return self.main.on_any(handler)

    def emit(self, event: str, *args: Any, callback: Handler | None = None) -> None:
        self.main.emit(event, *args, callback=callback)

    def send(self, *args: Any, callback: Handler | None = None) -> None:
        self.main.send(*args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        return await self.main.emit_with_ack(event, *args, timeout=timeout)

    @property
    def id(self) -> str | None:
        return self.main.id

    @property
    def connected(self) -> bool:
        return self.main.connected

    @property
    def transport(self) -> str | None:
        return self.engine.transport if self.engine is not None else None

    @property
    def cookies(self) -> Any:
        return self.engine.cookies if self.engine is not None else self._cookies

    # -- connecting -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection and every namespace; raises :class:`ConnectError` when a
        namespace refuses, ``ConnectionError`` when the server cannot be reached."""
        self._closed_by_user = False
        self._done = asyncio.Event()
        for nsp in self._namespaces.values():
            nsp._server_disconnected = False
        await self._open()
        results = [nsp._result for nsp in self._namespaces.values() if nsp._result is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*results), self.timeout)
        except BaseException:
            await self._close_engine()
            raise

    async def _open(self) -> None:
        query = dict(self.query)
        main = self._namespaces.get("/")
        if self.socketio_protocol == 4 and main is not None and main.auth:
            # socket.io 2.x connects "/" on its own: its auth can only ride in the handshake
            # query, where 2.x servers read tokens (socket.handshake.query)
            auth = main.auth() if callable(main.auth) else main.auth
            query.update({str(k): str(v) for k, v in dict(auth).items()})
        engine = EngineClient(
            self.url, path=self.path, eio=self.eio, transports=self.transports,
            upgrade=self.upgrade, query=query, extra_headers=self.extra_headers,
            polling_headers=self.polling_headers, websocket_headers=self.websocket_headers,
            with_credentials=self.with_credentials, timeout=self.timeout,
            on_message=self._on_message, on_close=self._on_engine_close,
            cookies=self._cookies if self.with_credentials else None)
        self.engine = engine
        self._decoder = sio.Decoder(self.socketio_protocol)
        loop = asyncio.get_running_loop()
        for nsp in self._namespaces.values():
            nsp._pending = False
            nsp._result = None if nsp._server_disconnected else loop.create_future()
            if nsp._result is not None:
                nsp._result.add_done_callback(_retrieve)
        await engine.connect()
        for nsp in self._namespaces.values():
            if not nsp._server_disconnected:
                self._connect_namespace(nsp)

    def _connect_namespace(self, nsp: ClientNamespace) -> None:
        if nsp.connected or nsp._pending:
            return
        if nsp._result is None or nsp._result.done():
            nsp._result = asyncio.get_running_loop().create_future()
            nsp._result.add_done_callback(_retrieve)
        if self.socketio_protocol == 4:
            if nsp.name == "/":
                return  # socket.io 2.x connects "/" by itself
            main = self._namespaces.get("/")
            if main is not None and not main.connected:
                return  # sent once "/" is connected, as socket.io-client 2.x does
        nsp._pending = True
        self._send(nsp._connect_packet(self.socketio_protocol), [])

    def _send(self, text: str, attachments: list[bytes]) -> None:
        engine = self.engine
        if engine is None:
            return
        engine.send(text)
        for attachment in attachments:
            engine.send(attachment)

    # -- incoming -------------------------------------------------------------------------------

    def _on_message(self, data: str | bytes) -> None:
        try:
            packet = self._decoder.feed(data)
        except DecodeError as exc:
            log.warning("bad packet from the server: %s", exc)
            return
        if packet is None:
            return
        nsp = self._namespaces.get(packet.nsp)
        if nsp is None:
            return
        ptype = packet.type
        if ptype == sio.CONNECT:
            reply: dict[str, Any] = packet.data if isinstance(packet.data, dict) else {}
            engine_sid = self.engine.sid if self.engine else ""
            sid = reply.get("sid") or (engine_sid if nsp.name == "/" else
                                       f"{nsp.name}#{engine_sid}")
            nsp._on_connect(str(sid), reply.get("pid"))
            if self.socketio_protocol == 4 and nsp.name == "/":
                for other in self._namespaces.values():
                    if other.name != "/" and not other._server_disconnected:
                        self._connect_namespace(other)
        elif ptype in (sio.EVENT, sio.BINARY_EVENT):
            nsp._on_event(packet)
        elif ptype in (sio.ACK, sio.BINARY_ACK):
            nsp._on_ack(packet)
        elif ptype == sio.CONNECT_ERROR:
            if self.socketio_protocol == 4 and nsp.name == "/":
                for each in self._namespaces.values():  # v2: an error on "/" concerns all
                    each._on_connect_error(packet.data)
            else:
                nsp._on_connect_error(packet.data)
        elif ptype == sio.DISCONNECT:
            nsp._server_disconnected = True
            nsp._on_disconnect("io server disconnect")
            self._close_if_unused()

    def _on_engine_close(self, reason: str) -> None:
        for nsp in self._namespaces.values():
            nsp._on_disconnect(reason)
            if nsp._result is not None and not nsp._result.done():
                nsp._result.set_exception(ConnectionError(f"connection closed: {reason}"))
        self._cookies = self.engine.cookies if self.engine else self._cookies
        if self._closed_by_user or not self.reconnection or all(
                nsp._server_disconnected for nsp in self._namespaces.values()):
            self._finish()
            return
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closed_by_user:
            attempt += 1
            if self.reconnection_attempts is not None and attempt > self.reconnection_attempts:
                self._emit_manager("reconnect_failed")
                self._finish()
                return
            await asyncio.sleep(self._backoff(attempt))
            if self._closed_by_user:
                return
            self._emit_manager("reconnect_attempt", attempt)
            try:
                await self._open()
                wanted = [nsp._result for nsp in self._namespaces.values()
                          if not nsp._server_disconnected and nsp._result is not None]
                await asyncio.wait_for(asyncio.gather(*wanted), self.timeout)
            except (ConnectionError, TimeoutError, OSError) as exc:
                self._emit_manager("reconnect_error", exc)
                await self._close_engine()
                continue
            self._emit_manager("reconnect", attempt)
            return

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, as socket.io-client: base * 2^(n-1) ± factor."""
        delay = self.reconnection_delay * (2 ** (attempt - 1))
        if self.randomization_factor:
            deviation = random.random() * self.randomization_factor * delay
            delay = delay - deviation if random.random() < 0.5 else delay + deviation
        return float(min(delay, self.reconnection_delay_max))

    def _emit_manager(self, event: str, *args: Any) -> None:
        self.invoker.emit(self.handlers, event, *args)

    # -- closing --------------------------------------------------------------------------------

    async def disconnect(self) -> None:
        """Leave every namespace and close the connection (no reconnection)."""
        self._closed_by_user = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        for nsp in self._namespaces.values():
            if nsp.connected:
                self._send(sio.encode(sio.DISCONNECT, nsp.name)[0], [])
        await self._close_engine()
        for nsp in self._namespaces.values():
            nsp._on_disconnect("io client disconnect")
        self._finish()

    def _close_if_unused(self) -> None:
        """Close the connection once no namespace uses it any more (every one disconnected by
        the server or left by us): ``wait()`` returns, no reconnection."""
        if self._closed_by_user or self.engine is None or self.engine.state != "open":
            return
        if any(not nsp._server_disconnected for nsp in self._namespaces.values()):
            return
        self._closed_by_user = True
        self.invoker.track(self._close_unused())

    async def _close_unused(self) -> None:
        await self._close_engine()
        self._finish()

    async def _close_engine(self) -> None:
        if self.engine is not None:
            await self.engine.close()
            self._cookies = self.engine.cookies

    def _finish(self) -> None:
        if self._done is not None:
            self._done.set()

    async def wait(self) -> None:
        """Return once the client is disconnected for good (by you, the server, or after the
        reconnection attempts ran out)."""
        if self._done is not None:
            await self._done.wait()

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a namespace's connect outcome as seen (``connect`` reports it when awaited)."""
    if not future.cancelled():
        future.exception()
