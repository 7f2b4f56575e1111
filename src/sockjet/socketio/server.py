"""The Socket.IO server: connections, namespaces (static and dynamic), the connect flow."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any, overload
from urllib.parse import parse_qsl

from ..codecs import socketio as sio
from ..engine.handlers import H, Invoker
from ..engine.protocol import SessionState
from ..engine.server import Engine, new_sid
from ..engine.session import EngineSocket
from ..exceptions import AdapterError, ConnectionRefused, DecodeError
from .namespace import AdapterFactory, Namespace, ParentNamespace
from .observer import Observers, SocketIOObserver
from .operator import BroadcastOperator
from .recovery import Restored, recovery_options
from .socket import Handshake, Socket

log = logging.getLogger("sockjet.socketio")

class Connection:
    """One Engine.IO session seen by the Socket.IO layer: decodes packets, routes them to the
    sockets of its namespaces, and writes their packets."""

    __slots__ = (
        "__weakref__",
        "_timer",
        "connecting",
        "decoder",
        "engine",
        "server",
        "socketio_protocol",
        "sockets",
    )

    def __init__(self, server: SocketServer, engine: EngineSocket) -> None:
        self.server = server
        self.engine = engine
        #: the client's Socket.IO protocol: 4 for Engine.IO 3 clients (socket.io-client 2.x),
        #: else 5
        self.socketio_protocol = 5 if engine.engine_protocol >= 4 else 4
        self.decoder = sio.Decoder(5)  # v5 validation rules apply to both (as in Node 4.x)
        #: connected sockets by namespace name
        self.sockets: dict[str, Socket] = {}
        #: namespaces whose CONNECT is being processed (middlewares running)
        self.connecting: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        engine.set_message_hook(self._on_message)
        engine.on("close", self._on_close)
        if self.socketio_protocol == 4:  # v2 clients are connected to "/" implicitly
            server.connect_namespace(self, "/", {})
        else:
            self._timer = asyncio.get_running_loop().call_later(
                server.connect_timeout, self._on_connect_timeout)

    def send(self, text: str, attachments: Iterable[bytes]) -> bool:
        ok = self.engine.send(text)
        for attachment in attachments:
            ok = self.engine.send(attachment) and ok
        return ok

    def _on_message(self, data: str | bytes) -> None:
        try:
            packet = self.decoder.feed(data)
        except DecodeError as exc:
            log.debug("closing %s: %s", self.engine.sid, exc)
            return self.engine.close()
        if packet is None:
            return
        if packet.type == sio.CONNECT:
            nsp = packet.nsp
            if nsp in self.sockets or nsp in self.connecting:
                log.debug("closing %s: second CONNECT for %s", self.engine.sid, nsp)
                return self.engine.close()
            if self.socketio_protocol == 4:
                auth = dict(parse_qsl(packet.query or "", keep_blank_values=True))
            else:
                auth = packet.data or {}
            self.server.connect_namespace(self, nsp, auth)
            return
        socket = self.sockets.get(packet.nsp)
        if socket is None or packet.type == sio.CONNECT_ERROR:
            log.debug("closing %s: packet for unconnected namespace %s", self.engine.sid,
                      packet.nsp)
            return self.engine.close()
        socket.receive(packet)

    def attach(self, socket: Socket) -> None:
        """``socket`` joined its namespace over this connection."""
        self.sockets[socket.nsp.name] = socket
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def detach(self, socket: Socket) -> None:
        if self.sockets.get(socket.nsp.name) is socket:
            del self.sockets[socket.nsp.name]

    def _on_connect_timeout(self) -> None:
        self._timer = None
        if not self.sockets:
            self.engine.close()

    def disconnect_all(self) -> None:
        """``socket.disconnect(True)``: every namespace, then the connection."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self.engine.close()

    def _on_close(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for socket in list(self.sockets.values()):
            socket.end(reason)
        self.connecting.clear()

    # -- namespace connect replies --------------------------------------------------------------

    def send_connect(self, socket: Socket) -> None:
        data: dict[str, str] | None = None
        if self.socketio_protocol == 5:
            data = {"sid": socket.id} if socket.pid is None else {"sid": socket.id,
                                                                  "pid": socket.pid}
        self.send(sio.encode(sio.CONNECT, socket.nsp.name, data)[0], ())

    def send_connect_error(self, nsp: str, message: str, data: Any = None) -> None:
        if self.socketio_protocol == 5 or message == "Invalid namespace":
            payload: Any = {"message": message}
            if data is not None and self.socketio_protocol == 5:
                payload["data"] = data
        else:  # socket.io 2.x clients get err.data || err.message
            payload = data if data is not None else message
        self.send(sio.encode(sio.CONNECT_ERROR, nsp, payload)[0], ())


class SocketServer:
    """Socket.IO protocols 4 and 5 over the Engine.IO server (options of both, as keywords).

    ``adapter`` is a factory ``adapter(namespace) -> Adapter``.
    """

    def __init__(
        self,
        *,
        adapter: AdapterFactory,
        connect_timeout: float = 45,
        cleanup_empty_child_namespaces: bool = True,
        connection_state_recovery: bool | dict[str, Any] | None = None,
        path: str = "/socket.io/",
        **engine_options: Any,
    ) -> None:
        if not callable(adapter):
            raise TypeError("adapter must be a factory: adapter(namespace) -> Adapter")
        if not isinstance(connect_timeout, int | float) or connect_timeout <= 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        self.engine = Engine(path=path, **engine_options)
        self.engine.on("connection", self._on_engine_connection)
        #: calls the Socket.IO handlers and middlewares (failures logged as sockjet.socketio)
        self.invoker = Invoker(log)
        self.connect_timeout = float(connect_timeout)
        #: remove a dynamic child namespace once it has no sockets (Node: off by default)
        self.cleanup_empty_child_namespaces = bool(cleanup_empty_child_namespaces)
        #: connection state recovery (``None``: off)
        self.recovery = recovery_options(connection_state_recovery)
        self._adapter_factory = adapter
        #: what watches this server (:meth:`observe`; see :mod:`.observer`), or ``None``
        self.observer: SocketIOObserver | None = None
        self._nsps: dict[str, Namespace] = {}
        self._parents: list[ParentNamespace] = []
        #: whether a binding serves this server (adapters made from then on are initialised
        #: at once)
        self._serving = False
        self._adapters_closed = False  # by a stop: the next start makes new ones
        self.engine.add_serving_hooks(self._init_adapters, self._close_adapters)
        self.of("/")

    # -- namespaces -----------------------------------------------------------------------------

    def of(self, name: Any) -> Namespace:
        """The namespace ``name`` (created on first use), or a dynamic namespace for a compiled
        regular expression (full match) or a callable ``(name, auth) -> bool`` (may be async)."""
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            nsp = self._nsps.get(name)
            if nsp is None:
                nsp = self._nsps[name] = Namespace(self, name, self._adapter_factory)
                if self._serving:
                    self.invoker.track(nsp.adapter.init())
            return nsp
        if isinstance(name, re.Pattern) or callable(name):
            parent = ParentNamespace(self, name, self._adapter_factory)
            self._parents.append(parent)
            return parent
        raise TypeError("namespace must be a name, a compiled regex or a callable")

    def observe(self, observer: SocketIOObserver) -> None:
        """Tell ``observer`` of the sockets, rooms and outgoing events of every namespace, those
        made later included; with an observer already there, both are told
        (:class:`~.observer.Observers`)."""
        if not isinstance(observer, SocketIOObserver):
            raise TypeError("an observer is a SocketIOObserver (sockjet.socketio.observer)")
        if self.observer is not None:
            current = self.observer
            others = current.observers if isinstance(current, Observers) else (current,)
            if observer in others:
                return
            observer = Observers(*others, observer)
        self.observer = observer
        for nsp in (*self._nsps.values(), *self._parents):  # dynamic children are in _nsps
            nsp.observer = observer

    @property
    def adapter_factory(self) -> AdapterFactory:
        """The factory that makes each namespace's adapter (the ``adapter`` option)."""
        return self._adapter_factory

    def replace_adapter(self, adapter: AdapterFactory) -> None:
        """Use another adapter factory from now on: the namespaces that exist get a new adapter
        from it (their old one is closed) and later ones are made with it. Allowed only while no
        socket is connected (rooms are not carried over): :class:`RuntimeError` otherwise."""
        if not callable(adapter):
            raise TypeError("adapter must be a factory: adapter(namespace) -> Adapter")
        busy = [name for name, nsp in self._nsps.items() if nsp.sockets]
        if busy:
            raise RuntimeError("cannot replace the adapter while sockets are connected "
                               f"(namespaces {', '.join(sorted(busy))})")
        self._adapter_factory = adapter
        old = []
        for nsp in self._nsps.values():
            old.append(nsp.adapter)
            nsp.use_adapter(adapter)
            if self._serving:
                self.invoker.track(nsp.adapter.init())
        for previous in old:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(previous.close())
            else:
                self.invoker.track(previous.close())

    @property
    def sockets(self) -> Namespace:
        """The main namespace ``/`` (as ``io.sockets`` in Node)."""
        return self._nsps["/"]

    @property
    def namespaces(self) -> dict[str, Namespace]:
        return dict(self._nsps)

    async def _match_dynamic(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        for parent in self._parents:
            matcher = parent.matcher
            if isinstance(matcher, re.Pattern):
                ok = matcher.fullmatch(name) is not None
            else:
                ok = matcher(name, auth)
                if inspect.isawaitable(ok):
                    ok = await ok
            if ok:
                existing = self._nsps.get(name)
                if existing is not None:  # created meanwhile by another connection
                    return existing
                child = Namespace(self, name, self._adapter_factory, parent)
                # reachable only once its adapter works: if init fails, nothing stays behind
                try:
                    await child.adapter.init()
                    if self._adapters_closed:  # the server stopped meanwhile
                        raise AdapterError("the server is shutting down")
                except BaseException:
                    self.invoker.track(child.adapter.close())
                    raise
                existing = self._nsps.get(name)
                if existing is not None:  # made by another connection while ours started
                    self.invoker.track(child.adapter.close())
                    return existing
                self._nsps[name] = child
                parent.children[name] = child
                return child
        return None

    def remove_child_namespace(self, nsp: Namespace) -> None:
        """Forget an empty child of a dynamic namespace and release its adapter."""
        if self._nsps.get(nsp.name) is not nsp or nsp.parent is None:
            return
        del self._nsps[nsp.name]
        nsp.parent.children.pop(nsp.name, None)
        self.invoker.track(nsp.adapter.close())

    # -- shortcuts to the main namespace --------------------------------------------------------

    @overload
    def on(self, event: str, handler: H) -> H: ...

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        return self.sockets.on(event, handler)

    def use(self, middleware: H) -> H:
        return self.sockets.use(middleware)

    def to(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.sockets.to(rooms)

    in_ = to

    def except_(self, rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.sockets.except_(rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        return self.sockets.volatile

    @property
    def local(self) -> BroadcastOperator:
        return self.sockets.local

    def compress(self, flag: bool = True) -> BroadcastOperator:
        return self.sockets.compress(flag)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self.sockets.timeout(seconds)

    def emit(self, event: str, *args: Any) -> bool:
        return self.sockets.emit(event, *args)

    def send(self, *args: Any) -> bool:
        return self.sockets.send(*args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        return await self.sockets.emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[Any]:
        return await self.sockets.fetch_sockets()

    def sockets_join(self, rooms: str | Iterable[str]) -> None:
        self.sockets.sockets_join(rooms)

    def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        self.sockets.sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        self.sockets.disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any, ack: bool = False,
                               timeout: float | None = None) -> list[Any]:
        return await self.sockets.server_side_emit(event, *args, ack=ack, timeout=timeout)

    async def all_rooms(self) -> set[str]:
        """The rooms of the main namespace on every server (``io.of("/").adapter.allRooms()``)."""
        return await self.sockets.all_rooms()

    def origins(self, *value: Any) -> Any:
        """``io.origins()`` returns the allowed origins; ``io.origins(new)`` sets them for the
        next requests (the runtime setter of the Socket.IO docs) and returns the server."""
        result = self.engine.origins(*value)
        return self if value else result

    def emit_threadsafe(self, event: str, *args: Any, to: str | Iterable[str] | None = None,
                        namespace: str = "/") -> None:
        """Emit from any thread: the emit runs on the server's event loop."""
        loop = self.engine.loop
        if loop is None:
            raise RuntimeError("the server is not running yet (no event loop to emit on)")
        operator = BroadcastOperator(self.of(namespace))
        if to is not None:
            operator = operator.to(to)
        loop.call_soon_threadsafe(operator.emit, event, *args)

    async def close(self) -> None:
        """Disconnect every client (``"server shutting down"``) and release the adapters."""
        await self.engine.shutdown()

    async def _init_adapters(self) -> None:
        """The binding starts serving: every adapter made so far connects (an adapter that
        cannot, such as a Redis one whose server is unreachable, stops the start)."""
        if self._adapters_closed:
            # served before and closed since: closed adapters cannot serve again, so every
            # namespace gets a new one (no socket is connected between a stop and a start)
            self._adapters_closed = False
            for nsp in list(self._nsps.values()):
                nsp.use_adapter(self._adapter_factory)
        self._serving = True
        try:
            for nsp in list(self._nsps.values()):
                await nsp.adapter.init()
        except BaseException:
            # adapters stay open, so that the next start tries them again
            self._serving = False
            raise

    async def _close_adapters(self) -> None:
        self._serving = False
        self._adapters_closed = True
        for nsp in list(self._nsps.values()):
            await nsp.adapter.close()

    # -- connect flow ---------------------------------------------------------------------------

    def _on_engine_connection(self, engine_socket: EngineSocket) -> None:
        Connection(self, engine_socket)

    def connect_namespace(self, conn: Connection, name: str, auth: dict[str, Any]) -> None:
        """A client's CONNECT to namespace ``name``: middlewares, then the socket or a refusal."""
        nsp = self._nsps.get(name)
        if nsp is not None and not nsp.middlewares and not self._may_restore(conn, auth):
            self._finish_connect(conn, self._new_socket(nsp, conn, auth))  # fast path: no await
            return
        conn.connecting.add(name)
        self.invoker.track(self._connect_async(conn, name, auth))

    async def _connect_async(self, conn: Connection, name: str, auth: dict[str, Any]) -> None:
        nsp: Namespace | None = None
        try:
            try:
                nsp = self._nsps.get(name) or await self._match_dynamic(name, auth)
            except Exception:  # the matcher raised, or the new namespace's adapter cannot start
                log.exception("cannot open the dynamic namespace %s", name)
                if conn.engine.state is SessionState.OPEN:
                    conn.send_connect_error(name, "Internal server error")
                    self._connect_refused("namespace_error")
                return
            if nsp is None:
                if conn.engine.state is SessionState.OPEN:
                    conn.send_connect_error(name, "Invalid namespace")
                    self._connect_refused("invalid_namespace")
                return
            nsp.connecting(+1)  # before any await: the namespace stays while we are on our way
            restored = await self._restore(nsp, conn, auth)
            if conn.engine.state is not SessionState.OPEN:
                return
            socket = self._new_socket(nsp, conn, auth, restored)
            skip = restored is not None and self.recovery is not None and \
                self.recovery.skip_middlewares
            try:
                for middleware in () if skip else tuple(nsp.middlewares):
                    result = middleware(socket)
                    if inspect.isawaitable(result):
                        await result
            except ConnectionRefused as exc:
                conn.send_connect_error(name, exc.message, exc.data)
                self._connect_refused("middleware")
                return
            except Exception:
                log.exception("connection middleware failed on %s", name)
                conn.send_connect_error(name, "Internal server error")
                self._connect_refused("middleware_error")
                return
            if conn.engine.state is SessionState.OPEN:
                self._finish_connect(conn, socket, restored.missed if restored else ())
        finally:
            conn.connecting.discard(name)
            if nsp is not None:
                nsp.connecting(-1)

    def _connect_refused(self, reason: str) -> None:
        observer = self.observer
        if observer is not None:
            observer.connect_refused(reason)

    def _may_restore(self, conn: Connection, auth: dict[str, Any]) -> bool:
        """A protocol 5 client asks for its previous session (Node: ``pid`` and ``offset`` in
        the CONNECT payload, both strings)."""
        return (self.recovery is not None and conn.socketio_protocol == 5
                and isinstance(auth.get("pid"), str) and isinstance(auth.get("offset"), str))

    async def _restore(self, nsp: Namespace, conn: Connection,
                       auth: dict[str, Any]) -> Restored | None:
        if not self._may_restore(conn, auth):
            return None
        try:
            return await nsp.adapter.restore_session(auth["pid"], auth["offset"])
        except Exception:  # a new session rather than none (a Redis outage, say)
            log.exception("cannot restore a session on %s", nsp.name)
            return None

    def _new_socket(self, nsp: Namespace, conn: Connection, auth: dict[str, Any],
                    restored: Restored | None = None) -> Socket:
        engine = conn.engine
        request = engine.request
        pid = None
        if conn.socketio_protocol == 4:
            sid = engine.sid if nsp.name == "/" else f"{nsp.name}#{engine.sid}"
        elif restored is not None:
            sid, pid = restored.session.sid, restored.session.pid
        else:
            sid = new_sid()
            if self.recovery is not None:
                pid = new_sid()
        now = time.time()
        client = request.client
        handshake = Handshake(
            headers=request.headers,
            query=dict(request.query),
            auth=auth,
            address=client[0] if client else "",
            time=formatdate(now, usegmt=True),
            issued=int(now * 1000),
            secure=request.scheme in ("https", "wss"),
            xdomain="origin" in request.headers,
            url=request.path + ("?" + request.raw_query.decode("latin-1")
                                if request.raw_query else ""),
        )
        return Socket(nsp, conn, sid, handshake, pid, restored)

    def _finish_connect(self, conn: Connection, socket: Socket,
                        missed: Iterable[list[Any]] = ()) -> None:
        for data in missed:  # before the CONNECT reply, as Node writes them
            text, attachments = sio.encode(sio.EVENT, socket.nsp.name, data)
            conn.send(text, attachments)
        conn.send_connect(socket)
        socket.start()
