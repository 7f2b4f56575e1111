"""Engine.IO client (protocols 3 and 4): the driver of :class:`~sockjet.engine.protocol.
EngineProtocol` on the client side. Polling runs on httpx, WebSocket on ``websockets``; this
module owns the requests, the sockets, the heartbeat timer and the cookie jar, while the protocol
core decides who pings, when the peer is gone, what a packet means, how POSTs are batched and how
the upgrade's probe goes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from ..codecs import engineio as eio
from ..engine.protocol import (
    PROBE_PING,
    UPGRADE_PACKET,
    EngineProtocol,
    Handshake,
    Heartbeat,
    Role,
    SessionState,
)

try:  # the client's HTTP stack is an optional extra: pip install "sockjet[client]"
    import httpx
except ImportError:  # pragma: no cover - exercised only without the extra
    httpx = None  # type: ignore[assignment]
import websockets
from websockets.asyncio.client import ClientConnection

from ..exceptions import ConnectionFailed, DecodeError, ProtocolError

log = logging.getLogger("sockjet.client")

OPEN, CLOSING, CLOSED = SessionState.OPEN, SessionState.CLOSING, SessionState.CLOSED


class _ClientSession(EngineProtocol):
    """The protocol core as the client plays it: what it writes waits in ``buffer`` until the
    POST loop or the WebSocket writer takes it."""

    __slots__ = ("_wake",)

    def __init__(self, engine_protocol: int, handshake: Handshake, wake: asyncio.Event) -> None:
        super().__init__(Role.CLIENT, engine_protocol, handshake.ping_interval,
                         handshake.ping_timeout, asyncio.get_running_loop().time)
        self._wake = wake

    def write_packet(self, ptype: eio.EnginePacketType, data: str | bytes = "") -> bool:
        if self.state is not OPEN:
            return False
        self.buffer.append(eio.EnginePacket(ptype, data))
        self._wake.set()
        return True


class EngineClient:
    """One Engine.IO session to a server. ``on_message(data)`` and ``on_close(reason)`` are
    called from the event loop; :meth:`send` never blocks."""

    def __init__(
        self,
        url: str,
        *,
        path: str,
        eio: int,
        transports: tuple[str, ...],
        upgrade: bool,
        query: dict[str, str],
        extra_headers: dict[str, str],
        polling_headers: dict[str, str],
        websocket_headers: dict[str, str],
        with_credentials: bool,
        timeout: float,
        on_message: Callable[[str | bytes], None],
        on_close: Callable[[str], None],
        cookies: Any = None,
    ) -> None:
        if httpx is None and "polling" in transports:
            raise ImportError('the polling transport needs httpx: pip install "sockjet[client]"')
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError(f"expected an http(s) or ws(s) URL, got {url!r}")
        secure = parts.scheme in ("https", "wss")
        self._http_base = f"{'https' if secure else 'http'}://{parts.netloc}"
        self._ws_base = f"{'wss' if secure else 'ws'}://{parts.netloc}"
        self.path = "/" + path.strip("/") + "/"
        #: the Engine.IO protocol spoken: 3 (socket.io 2.x servers) or 4
        self.engine_protocol = eio
        self.transports = transports
        self.upgrade = upgrade
        self.query = query
        self.extra_headers = extra_headers
        self.polling_headers = {**extra_headers, **polling_headers}
        self.websocket_headers = {**extra_headers, **websocket_headers}
        self.with_credentials = with_credentials
        self.timeout = timeout
        self._on_message = on_message
        self._on_close = on_close
        #: the server's terms, once connected
        self.handshake: Handshake | None = None
        self.transport: str | None = None
        self._session: _ClientSession | None = None
        self._opening = False
        self._http: Any = None
        self._cookies = cookies
        self._ws: ClientConnection | None = None
        self._writer: asyncio.Task[Any] | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._polling_idle = asyncio.Event()
        self._post_idle = asyncio.Event()
        self._post_idle.set()

    @property
    def sid(self) -> str | None:
        return self.handshake.sid if self.handshake is not None else None

    @property
    def state(self) -> str:
        """``"opening"``, ``"open"``, ``"closing"`` (sending what is queued, then the close
        packet) or ``"closed"``."""
        session = self._session
        if session is None:
            return "opening" if self._opening else "closed"
        return session.state

    @property
    def _open(self) -> bool:
        session = self._session
        return session is not None and session.state is OPEN

    # -- opening --------------------------------------------------------------------------------

    def _url(self, base: str, transport: str, sid: str | None = None) -> str:
        query = {**self.query, "EIO": str(self.engine_protocol), "transport": transport}
        if sid:
            query["sid"] = sid
        return f"{base}{self.path}?{urlencode(query)}"

    async def connect(self) -> None:
        self._opening = True
        try:
            if "polling" in self.transports:
                self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=None),
                                               cookies=self._cookies)
                await self._open_polling()
            else:
                await self._open_websocket()
        finally:
            self._opening = False

    async def _open_polling(self) -> None:
        try:
            response = await asyncio.wait_for(
                self._http.get(self._url(self._http_base, "polling"),
                               headers=self.polling_headers),
                self.timeout)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            await self._drop_http()
            raise ConnectionFailed(f"cannot reach {self._http_base}: {exc!r}") from None
        self._forget_cookies()
        if response.status_code != 200:
            await self._drop_http()
            raise ConnectionFailed(_describe_refusal(response.status_code, response.content))
        try:
            packets = self._decode_response(response)
            if not packets or packets[0].type != eio.OPEN:
                raise ProtocolError("no open packet")
            self._start(Handshake.decode(packets[0].data))
        except (DecodeError, UnicodeDecodeError, ProtocolError):
            await self._drop_http()
            raise ConnectionFailed("the server did not answer with an Engine.IO handshake"
                                   ) from None
        self.transport = "polling"
        self._receive(packets[1:])
        self._spawn(self._poll_loop())
        self._spawn(self._post_loop())
        assert self.handshake is not None
        if (self.upgrade and "websocket" in self.transports
                and "websocket" in self.handshake.upgrades):
            self._spawn(self._try_upgrade())

    async def _open_websocket(self) -> None:
        try:
            ws = await websockets.connect(
                self._url(self._ws_base, "websocket"), additional_headers=self._ws_headers(),
                open_timeout=self.timeout, max_size=None, compression=None)
        except websockets.InvalidStatus as exc:
            raise ConnectionFailed(_describe_refusal(exc.response.status_code,
                                                     exc.response.body or b"")) from None
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise ConnectionFailed(f"cannot reach {self._ws_base}: {exc!r}") from None
        try:
            first = await asyncio.wait_for(ws.recv(), self.timeout)
            ptype, data = eio.decode_frame(first, self.engine_protocol)
            if ptype != eio.OPEN:
                raise ProtocolError("no open packet")
            handshake = Handshake.decode(data)
        except (DecodeError, ProtocolError, TimeoutError, websockets.WebSocketException) as exc:
            await ws.close()
            raise ConnectionFailed(f"no Engine.IO handshake over WebSocket: {exc!r}") from None
        self._ws = ws
        self.transport = "websocket"
        self._start(handshake)
        self._spawn(self._ws_reader(ws))
        self._writer = self._spawn(self._ws_writer(ws))

    def _start(self, handshake: Handshake) -> None:
        self.handshake = handshake
        self._session = _ClientSession(self.engine_protocol, handshake, self._wake)
        self._arm_timer()

    # -- heartbeat ------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        session = self._session
        assert session is not None
        self._timer = asyncio.get_running_loop().call_at(session.heartbeat_at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        session = self._session
        if session is None or session.state is not OPEN:
            return
        if session.heartbeat() is Heartbeat.TIMED_OUT:
            self._spawn(self._shutdown("ping timeout"))
        else:
            self._arm_timer()

    # -- incoming -------------------------------------------------------------------------------

    def _receive(self, packets: list[eio.EnginePacket]) -> None:
        for ptype, data in packets:
            session = self._session
            if session is None or session.state is not OPEN:
                return
            try:
                message = session.receive(ptype, data)
            except ProtocolError as exc:  # a heartbeat in the wrong direction: ignored, as
                log.debug("ignored: %s", exc)  # socket.io-client does
                continue
            if message is not None:
                self._on_message(message)
            elif session.state is CLOSED:  # the server's close packet
                self._spawn(self._shutdown("transport close"))
                return
            else:  # a pong (v3) brings the next ping closer than the timer's deadline
                timer = self._timer
                if timer is not None and session.heartbeat_at < timer.when():
                    timer.cancel()
                    self._arm_timer()

    def _decode_response(self, response: Any) -> list[eio.EnginePacket]:
        body = response.content
        ctype = response.headers.get("content-type", "")
        if ctype.startswith("application/octet-stream"):
            return eio.decode_payload(body, self.engine_protocol)
        return eio.decode_payload(body.decode("utf-8"), self.engine_protocol)

    def _forget_cookies(self) -> None:
        if not self.with_credentials and self._http is not None:
            self._http.cookies.clear()

    async def _poll_loop(self) -> None:
        url = self._url(self._http_base, "polling", self.sid)
        while self._open and self.transport == "polling":
            if self._paused:
                self._polling_idle.set()
                return
            try:
                response = await self._http.get(url, headers=self.polling_headers)
                self._forget_cookies()
                if response.status_code != 200:
                    raise ConnectionFailed(f"poll answered HTTP {response.status_code}")
                packets = self._decode_response(response)
            except (httpx.HTTPError, OSError, ConnectionFailed, DecodeError,
                    UnicodeDecodeError) as exc:
                if self._open and self.transport == "polling":
                    log.debug("poll failed: %r", exc)
                    await self._shutdown("transport error")
                return
            self._receive(packets)

    async def _post_loop(self) -> None:
        url = self._url(self._http_base, "polling", self.sid)
        while self._open and self.transport == "polling":
            session = self._session
            assert session is not None and self.handshake is not None
            if self._paused or not session.buffer:  # paused: the upgrade takes the buffer over
                self._wake.clear()
                await self._wake.wait()
                continue
            self._post_idle.clear()
            # stay under the server's maxPayload (socket.io-client 4 splits its batches too)
            try:
                await self._post(url, session.take(self.handshake.max_payload))
            except (httpx.HTTPError, OSError, ConnectionFailed) as exc:
                if self._open:
                    log.debug("POST failed: %r", exc)
                    await self._shutdown("transport error")
                return
            finally:
                self._post_idle.set()

    async def _post(self, url: str, packets: list[eio.EnginePacket]) -> None:
        payload = eio.encode_payload(packets, self.engine_protocol)
        headers = dict(self.polling_headers)
        if isinstance(payload, bytes):
            headers["content-type"] = "application/octet-stream"
            body = payload
        else:
            headers["content-type"] = "text/plain;charset=UTF-8"
            body = payload.encode()
        response = await self._http.post(url, content=body, headers=headers)
        self._forget_cookies()
        if response.status_code != 200:
            raise ConnectionFailed(f"POST answered HTTP {response.status_code}")

    # -- WebSocket ------------------------------------------------------------------------------

    def _ws_headers(self) -> dict[str, str]:
        headers = dict(self.websocket_headers)
        if self.with_credentials and self._http is not None and self._http.cookies:
            headers["cookie"] = "; ".join(f"{c.name}={c.value}" for c in self._http.cookies.jar)
        return headers

    async def _ws_reader(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                try:
                    packet = eio.decode_frame(frame, self.engine_protocol)
                except DecodeError:
                    await self._shutdown("parse error")
                    return
                self._receive([packet])
        except websockets.WebSocketException:
            pass
        if self._open:
            await self._shutdown("transport close")

    async def _ws_writer(self, ws: ClientConnection) -> None:
        session = self._session
        assert session is not None
        try:
            while session.state is not CLOSED:
                if not session.buffer:
                    if session.state is CLOSING:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                for ptype, data in session.take():
                    await ws.send(eio.encode_frame(ptype, data, self.engine_protocol))
        except websockets.WebSocketException:
            if self._open:
                await self._shutdown("transport error")

    async def _try_upgrade(self) -> None:
        try:
            ws = await websockets.connect(
                self._url(self._ws_base, "websocket", self.sid),
                additional_headers=self._ws_headers(), open_timeout=self.timeout,
                max_size=None, compression=None)
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            log.debug("upgrade failed, staying on polling: %r", exc)
            return
        try:
            await ws.send(PROBE_PING)
            answer = await asyncio.wait_for(ws.recv(), self.timeout)
            if not EngineProtocol.probe_answered(answer):
                raise ConnectionFailed("bad probe answer")
            # pause polling: the server releases the pending GET with a noop
            self._paused = True
            await asyncio.wait_for(self._polling_idle.wait(), self.timeout)
            await asyncio.wait_for(self._post_idle.wait(), self.timeout)
            await ws.send(UPGRADE_PACKET)
        except (OSError, TimeoutError, ConnectionFailed, websockets.WebSocketException) as exc:
            log.debug("upgrade failed, staying on polling: %r", exc)
            await ws.close()
            if self._paused and self._open:
                self._paused = False
                self._polling_idle.clear()
                self._wake.set()
                self._spawn(self._poll_loop())
            return
        if not self._open:
            await ws.close()
            return
        self._ws = ws
        self.transport = "websocket"
        self._wake.set()  # the POST loop ends; the WebSocket writer takes the buffer
        self._spawn(self._ws_reader(ws))
        self._writer = self._spawn(self._ws_writer(ws))
        log.debug("upgraded %s to websocket", self.sid)

    # -- outgoing -------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """Queue a message (dropped when the session is not open)."""
        session = self._session
        if session is not None:
            session.write_packet(eio.MESSAGE, data)

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close from our side: what is queued goes out, the close packet last."""
        session = self._session
        if session is None or session.state is not OPEN:
            return
        session.buffer.append(eio.EnginePacket(eio.CLOSE))
        session.state = CLOSING
        if self.transport == "websocket" and self._ws is not None:
            self._wake.set()
            writer = self._writer
            if writer is not None:  # it sends what is queued, the close packet last, and ends
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(writer), 2)
        elif self._http is not None:
            with contextlib.suppress(httpx.HTTPError, OSError, ConnectionFailed):
                await self._post(self._url(self._http_base, "polling", self.sid),
                                 session.take())
        await self._shutdown("io client disconnect", notify=False)

    async def _shutdown(self, reason: str, notify: bool = True) -> None:
        session = self._session
        if session is None or session.close_reason is not None:
            return
        session.state = CLOSED  # already, when the server's close packet ended it
        session.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake.set()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        await self._drop_http()
        if notify:
            self._on_close(reason)

    async def _drop_http(self) -> None:
        if self._http is not None:
            self._cookies = self._http.cookies
            with contextlib.suppress(Exception):
                await self._http.aclose()
            self._http = None

    @property
    def cookies(self) -> Any:
        """The cookie jar (kept across reconnections when ``with_credentials``)."""
        return self._http.cookies if self._http is not None else self._cookies

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _describe_refusal(status: int, body: bytes | bytearray) -> str:
    try:
        error = orjson.loads(body)
        return f"HTTP {status}: {error.get('message', error)} (code {error.get('code')})"
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
