"""Engine.IO client (protocols 3 and 4): polling on httpx, WebSocket on ``websockets``, the
upgrade between them, heartbeats in the right direction, and a cookie jar for credentials."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from ..codecs import engineio as eio

try:  # the client's HTTP stack is an optional extra: pip install "sockjet[client]"
    import httpx
except ImportError:  # pragma: no cover - exercised only without the extra
    httpx = None  # type: ignore[assignment]
import websockets
from websockets.asyncio.client import ClientConnection

from ..exceptions import ConnectionFailed, DecodeError

log = logging.getLogger("sockjet.client")




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
        self.protocol = eio
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
        self.sid: str | None = None
        self.ping_interval = 25.0
        self.ping_timeout = 20.0
        self.max_payload = 1_000_000
        self.transport: str | None = None
        self.state = "closed"
        self._http: Any = None
        self._cookies = cookies
        self._ws: ClientConnection | None = None
        self._writer: asyncio.Task[Any] | None = None
        self._queue: list[eio.EnginePacket] = []
        self._wake: asyncio.Event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.TimerHandle | None = None
        self._paused = False
        self._polling_idle = asyncio.Event()
        self._post_idle = asyncio.Event()
        self._post_idle.set()

    # -- opening --------------------------------------------------------------------------------

    def _url(self, base: str, transport: str, sid: str | None = None) -> str:
        query = {**self.query, "EIO": str(self.protocol), "transport": transport}
        if sid:
            query["sid"] = sid
        return f"{base}{self.path}?{urlencode(query)}"

    async def connect(self) -> None:
        self.state = "opening"
        if "polling" in self.transports:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, read=None),
                                           cookies=self._cookies)
            await self._open_polling()
        else:
            await self._open_websocket()

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
        packets = self._decode_response(response)
        if not packets or packets[0][0] != eio.OPEN:
            await self._drop_http()
            raise ConnectionFailed("the server did not answer with an Engine.IO handshake")
        self.transport = "polling"
        self._on_open(packets[0][1])
        for ptype, data in packets[1:]:
            self._on_packet(ptype, data)
        self._spawn(self._poll_loop())
        self._spawn(self._post_loop())
        if self.upgrade and "websocket" in self.transports and "websocket" in self._upgrades:
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
            ptype, data = eio.decode_frame(first, self.protocol)
        except (DecodeError, TimeoutError, websockets.WebSocketException) as exc:
            await ws.close()
            raise ConnectionFailed(f"no Engine.IO handshake over WebSocket: {exc!r}") from None
        if ptype != eio.OPEN:
            await ws.close()
            raise ConnectionFailed("no Engine.IO handshake over WebSocket")
        self._ws = ws
        self.transport = "websocket"
        self._on_open(data)  # type: ignore[arg-type]
        self._spawn(self._ws_reader(ws))
        self._writer = self._spawn(self._ws_writer(ws))

    def _on_open(self, data: str | bytes) -> None:
        info = orjson.loads(data)
        self.sid = info["sid"]
        self.ping_interval = info.get("pingInterval", 25000) / 1000
        self.ping_timeout = info.get("pingTimeout", 20000) / 1000
        self.max_payload = info.get("maxPayload", 1_000_000)
        self._upgrades = info.get("upgrades", [])
        self.state = "open"
        self._arm_heartbeat()

    # -- heartbeat ------------------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        loop = asyncio.get_running_loop()
        if self.protocol >= 4:  # the server pings; silence past interval+timeout means dead
            self._heartbeat = loop.call_later(self.ping_interval + self.ping_timeout,
                                              self._lost, "ping timeout")
        else:  # we ping; the pong must come within ping_timeout
            self._heartbeat = loop.call_later(self.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        self.send_packet(eio.PING)
        self._heartbeat = asyncio.get_running_loop().call_later(
            self.ping_timeout, self._lost, "ping timeout")

    def _lost(self, reason: str) -> None:
        self._heartbeat = None
        self._spawn(self._shutdown(reason))

    # -- incoming -------------------------------------------------------------------------------

    def _on_packet(self, ptype: int, data: str | bytes) -> None:
        if ptype == eio.MESSAGE:
            self._on_message(data)
        elif ptype == eio.PING and self.protocol >= 4:
            self._arm_heartbeat()
            self.send_packet(eio.PONG)
        elif ptype == eio.PONG and self.protocol < 4:
            self._arm_heartbeat()
        elif ptype == eio.CLOSE:
            self._spawn(self._shutdown("transport close"))

    def _decode_response(self, response: Any) -> list[eio.EnginePacket]:
        body = response.content
        ctype = response.headers.get("content-type", "")
        if ctype.startswith("application/octet-stream"):
            return eio.decode_payload(body, self.protocol)
        return eio.decode_payload(body.decode("utf-8"), self.protocol)

    def _forget_cookies(self) -> None:
        if not self.with_credentials and self._http is not None:
            self._http.cookies.clear()

    async def _poll_loop(self) -> None:
        url = self._url(self._http_base, "polling", self.sid)
        while self.state == "open" and self.transport == "polling":
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
                if self.state == "open" and self.transport == "polling":
                    log.debug("poll failed: %r", exc)
                    await self._shutdown("transport error")
                return
            for ptype, data in packets:
                self._on_packet(ptype, data)

    async def _post_loop(self) -> None:
        url = self._url(self._http_base, "polling", self.sid)
        while self.state == "open" and self.transport == "polling":
            if self._paused or not self._queue:  # paused: the upgrade takes over the queue
                self._wake.clear()
                await self._wake.wait()
                continue
            self._post_idle.clear()
            batch = self._take_batch()
            payload = eio.encode_payload(batch, self.protocol)
            headers = dict(self.polling_headers)
            if isinstance(payload, bytes):
                headers["content-type"] = "application/octet-stream"
                body = payload
            else:
                headers["content-type"] = "text/plain;charset=UTF-8"
                body = payload.encode()
            try:
                response = await self._http.post(url, content=body, headers=headers)
                self._forget_cookies()
                if response.status_code != 200:
                    raise ConnectionFailed(f"POST answered HTTP {response.status_code}")
            except (httpx.HTTPError, OSError, ConnectionFailed) as exc:
                if self.state == "open":
                    log.debug("POST failed: %r", exc)
                    await self._shutdown("transport error")
                return
            finally:
                self._post_idle.set()

    def _take_batch(self) -> list[eio.EnginePacket]:
        # stay under the server's maxPayload (v4 clients split their batches too)
        batch: list[eio.EnginePacket] = []
        size = 0
        while self._queue:
            _, data = self._queue[0]
            cost = len(data) * (4 if isinstance(data, str) else 2) + 16
            if batch and size + cost > self.max_payload:
                break
            batch.append(self._queue.pop(0))
            size += cost
        return batch

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
                    ptype, data = eio.decode_frame(frame, self.protocol)
                except DecodeError:
                    await self._shutdown("parse error")
                    return
                self._on_packet(ptype, data)
        except websockets.WebSocketException:
            pass
        if self.state == "open":
            await self._shutdown("transport close")

    async def _ws_writer(self, ws: ClientConnection) -> None:
        try:
            while self.state in ("open", "closing"):
                if not self._queue:
                    if self.state == "closing":
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._queue = self._queue, []
                for ptype, data in batch:
                    await ws.send(eio.encode_frame(ptype, data, self.protocol))
        except websockets.WebSocketException:
            if self.state == "open":
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
            await ws.send("2probe")
            if await asyncio.wait_for(ws.recv(), self.timeout) != "3probe":
                raise ConnectionFailed("bad probe answer")
            # pause polling: the server releases the pending GET with a noop
            self._paused = True
            await asyncio.wait_for(self._polling_idle.wait(), self.timeout)
            await asyncio.wait_for(self._post_idle.wait(), self.timeout)
            await ws.send("5")
        except (OSError, TimeoutError, ConnectionFailed, websockets.WebSocketException) as exc:
            log.debug("upgrade failed, staying on polling: %r", exc)
            await ws.close()
            if self._paused and self.state == "open":
                self._paused = False
                self._polling_idle.clear()
                self._wake.set()
                self._spawn(self._poll_loop())
            return
        if self.state != "open":
            await ws.close()
            return
        self._ws = ws
        self.transport = "websocket"
        self._wake.set()  # the POST loop ends; the WebSocket writer takes the queue
        self._spawn(self._ws_reader(ws))
        self._writer = self._spawn(self._ws_writer(ws))
        log.debug("upgraded %s to websocket", self.sid)

    # -- outgoing -------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        self.send_packet(eio.MESSAGE, data)

    def send_packet(self, ptype: int, data: str | bytes = "") -> None:
        if self.state != "open":
            return
        self._queue.append((ptype, data))
        self._wake.set()

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close from our side (sends the close packet)."""
        if self.state != "open":
            return
        if self.transport == "websocket" and self._ws is not None:
            self._queue.append((eio.CLOSE, ""))
            self.state = "closing"
            self._wake.set()
            writer = self._writer
            if writer is not None:  # it sends what is queued, the close packet last, and ends
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(writer), 2)
        elif self._http is not None:
            batch = [*self._queue, (eio.CLOSE, "")]
            self._queue = []
            payload = eio.encode_payload(batch, self.protocol)
            with contextlib.suppress(httpx.HTTPError, OSError):
                await self._http.post(
                    self._url(self._http_base, "polling", self.sid),
                    content=payload if isinstance(payload, bytes) else payload.encode(),
                    headers={**self.polling_headers,
                             "content-type": "application/octet-stream"
                             if isinstance(payload, bytes) else "text/plain;charset=UTF-8"})
        await self._shutdown("io client disconnect", notify=False)

    async def _shutdown(self, reason: str, notify: bool = True) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
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

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _describe_refusal(status: int, body: bytes) -> str:
    try:
        error = orjson.loads(body)
        return f"HTTP {status}: {error.get('message', error)} (code {error.get('code')})"
    except (orjson.JSONDecodeError, AttributeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
