"""``sockjet doctor``: plays the browser against a Socket.IO server and says, step by step, what
the browser would conclude and why (the "Troubleshooting" section of the CORS docs, automated).

Steps: preflight (when custom headers or credentials need one), handshake GET, a POST, the
WebSocket upgrade; each with the given Origin. Works against any Socket.IO server, Node or ours.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.typing import Origin

from ..engine.cors import parse_origin

# request headers a browser sends without a preflight (the CORS safelist, for our GET/POST)
_SAFELISTED = {"accept", "accept-language", "content-language", "content-type"}


@dataclass
class Step:
    name: str
    ok: bool
    summary: str
    why: str = ""
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diagnosis:
    url: str
    origin: str | None
    eio: int
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step


class _Target:
    def __init__(self, url: str, path: str) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL such as http://localhost:3000, got {url!r}")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        base = parts.path if parts.path not in ("", "/") else path
        self.path = "/" + base.strip("/") + "/"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)


def _request(target: _Target, method: str, query: str, headers: dict[str, str], body: bytes,
             timeout: float) -> tuple[int, dict[str, str], bytes]:
    conn = target.connection(timeout)
    try:
        conn.request(method, target.path + "?" + query, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        lowered: dict[str, str] = {}
        for key, value in response.getheaders():
            k = key.lower()
            lowered[k] = lowered[k] + ", " + value if k in lowered else value
        return response.status, lowered, data
    finally:
        conn.close()


def _cors_verdict(headers: dict[str, str], origin: str, credentials: bool) -> tuple[str, str]:
    """``("", "")`` when a browser accepts the response, else ``(why, fix)``."""
    acao = headers.get("access-control-allow-origin")
    if acao is None:
        return ("CORS header 'Access-Control-Allow-Origin' missing: the browser blocks the "
                "response (the server did not list this origin, or CORS is off)",
                f"allow the origin on the server: origins=[{origin!r}] (sockjet) or "
                f"cors: {{origin: [{origin!r}]}} (Node socket.io 3+)")
    if acao == "*":
        if credentials:
            return ("'Access-Control-Allow-Origin: *' is not allowed with credentials "
                    "(withCredentials): the browser blocks the response",
                    "reflect the origin instead of '*' (sockjet does with credentials=True)")
    elif acao != origin:
        return (f"'Access-Control-Allow-Origin: {acao}' does not match the page origin {origin}",
                f"allow {origin!r} on the server")
    if credentials and headers.get("access-control-allow-credentials") != "true":
        return ("withCredentials needs 'Access-Control-Allow-Credentials: true', which is "
                "missing", "enable credentials in the server's CORS settings")
    return "", ""


def _refusal(status: int, body: bytes, origin: str | None) -> tuple[str, str]:
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if isinstance(error, dict) and "code" in error:
        code, message = error.get("code"), error.get("message")
        if code == 5:
            return (f"the server does not speak this Engine.IO version ({message})",
                    "use --eio 4 (socket.io-client 3+), or enable allowEIO3 / allow_eio3 on "
                    "the server for socket.io-client 2.x")
        if code == 4 and message == "Origin not allowed":
            return (f"the server refuses the origin {origin}",
                    f"add {origin!r} to the server's origins")
        if code == 4:
            return (f"refused by the server's allow_request / allowRequest: {message}",
                    "check the server's allow_request logic")
        if code == 0:
            return ("the server does not accept the polling transport (Transport unknown)",
                    "enable polling on the server, or use transports: ['websocket']")
        return f"Engine.IO error {code}: {message}", ""
    if status == 404:
        return ("nothing answers at this path: wrong path, or not a Socket.IO server",
                "check the path (--path, default /socket.io/) and the server's `path` option")
    return (f"unexpected HTTP {status}: {body[:120]!r}",
            "is this a Socket.IO server? check the URL and path")


def _parse_handshake(body: bytes, eio: int) -> dict[str, Any] | None:
    text = body.decode("utf-8", "replace")
    if eio == 3:
        match = re.match(r"(\d+):0(\{.*?\})(?=\d+:|$)", text)
        raw = match.group(2) if match else None
    else:
        raw = text[1:].split("\x1e")[0] if text.startswith("0{") else None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "sid" in data else None


def diagnose(url: str, *, origin: str | None = None, headers: dict[str, str] | None = None,
             credentials: bool = False, eio: int = 4, path: str = "/socket.io/",
             timeout: float = 5.0) -> Diagnosis:
    """Run every step and return the diagnosis (see :func:`render`)."""
    target = _Target(url, path)
    result = Diagnosis(url=target.origin + target.path, origin=origin, eio=eio)
    headers = dict(headers or {})
    if origin is not None and parse_origin(origin) is None and origin != "null":
        raise ValueError(f"--origin must look like https://example.com, got {origin!r}")
    cross = origin is not None and parse_origin(origin) != parse_origin(target.origin)
    base = {"Accept": "*/*", **headers}
    if origin is not None:
        base["Origin"] = origin

    # 0. reachability
    try:
        socket.create_connection((target.host, target.port), timeout=timeout).close()
    except OSError as exc:
        result.add(Step("connect", False, f"cannot reach {target.host}:{target.port}",
                        why=f"server unreachable: {exc.strerror or exc}",
                        fix="is the server running, on this host and port?"))
        return result

    # 1. preflight, when the browser would send one
    custom = sorted(h.lower() for h in headers if h.lower() not in _SAFELISTED)
    if cross and custom:
        pre_headers = {"Origin": origin or "", "Access-Control-Request-Method": "GET",
                       "Access-Control-Request-Headers": ",".join(custom)}
        try:
            status, got, body = _request(target, "OPTIONS", f"EIO={eio}&transport=polling",
                                         pre_headers, b"", timeout)
        except OSError as exc:
            result.add(Step("preflight", False, "no answer", why=str(exc)))
            return result
        why, fix = ("", "")
        if not 200 <= status < 300:
            why, fix = (f"the preflight (OPTIONS) got HTTP {status}; browsers need a 2xx",
                        "let the server answer preflights (sockjet does by default; Node 2.x "
                        "needs handlePreflightRequest)")
        else:
            why, fix = _cors_verdict(got, origin or "", credentials)
            allowed = {h.strip().lower() for h in got.get("access-control-allow-headers",
                                                            "").split(",") if h.strip()}
            missing = [h for h in custom if h not in allowed and
                       not ("*" in allowed and not credentials)]
            if not why and missing:
                why = ("request header(s) not allowed by the preflight "
                       f"(Access-Control-Allow-Headers): {', '.join(missing)}")
                fix = "add them to the server's allowed_headers / allowedHeaders"
        result.add(Step("preflight", not why, f"OPTIONS → {status}", why=why, fix=fix,
                        details={"headers": got}))
        if why:
            return result

    # 2. handshake
    try:
        status, got, body = _request(target, "GET", f"EIO={eio}&transport=polling", base, b"",
                                     timeout)
    except OSError as exc:
        result.add(Step("handshake", False, "no answer", why=f"server unreachable: {exc}"))
        return result
    if status != 200:
        why, fix = _refusal(status, body, origin)
        if cross and status in (400, 403) and "access-control-allow-origin" not in got:
            why += ("; the browser reports this as a CORS error ('Access-Control-Allow-Origin' "
                    "missing)")
        result.add(Step("handshake", False, f"GET → HTTP {status}", why=why, fix=fix,
                        details={"body": body[:200].decode("utf-8", "replace")}))
        return result
    open_packet = _parse_handshake(body, eio)
    if open_packet is None:
        result.add(Step("handshake", False, "GET → 200 but no Engine.IO handshake",
                        why="the answer is not an Engine.IO open packet: not a Socket.IO server "
                            "at this path, or a proxy answering instead",
                        fix="check the URL and path",
                        details={"body": body[:200].decode("utf-8", "replace")}))
        return result
    sid = str(open_packet["sid"])
    why, fix = _cors_verdict(got, origin or "", credentials) if cross else ("", "")
    result.add(Step("handshake", not why, f"GET → 200, sid {sid}, EIO {eio}, upgrades "
                    f"{open_packet.get('upgrades')}", why=why, fix=fix,
                    details={"handshake": open_packet, "headers": got}))
    if why:
        return result

    # 3. a POST (a ping for v3, a namespace connect for v4; both harmless)
    payload = b"1:2" if eio == 3 else b"40"
    try:
        status, got, body = _request(
            target, "POST", f"EIO={eio}&transport=polling&sid={sid}",
            {**base, "Content-Type": "text/plain;charset=UTF-8"}, payload, timeout)
    except OSError as exc:
        result.add(Step("post", False, "no answer", why=str(exc)))
        return result
    if status != 200:
        why, fix = _refusal(status, body, origin)
        if status == 400 and b'"code":1' in body:
            why = ("the session is unknown to the server that got the POST: several server "
                   "processes without sticky sessions?")
            fix = "enable sticky sessions, or use WebSocket only"
    else:
        why, fix = _cors_verdict(got, origin or "", credentials) if cross else ("", "")
    result.add(Step("post", not why, f"POST → HTTP {status}", why=why, fix=fix))

    # 4. WebSocket upgrade
    if "websocket" in (open_packet.get("upgrades") or []):
        result.add(_check_upgrade(target, sid, eio, origin, headers, timeout))
    else:
        result.add(Step("upgrade", True, "the server offers no WebSocket upgrade (polling only)"))
    _close_session(target, sid, eio, base, timeout)
    return result


def _check_upgrade(target: _Target, sid: str, eio: int, origin: str | None,
                   headers: dict[str, str], timeout: float) -> Step:
    scheme = "wss" if target.secure else "ws"
    url = (f"{scheme}://{target.host}:{target.port}{target.path}?EIO={eio}"
           f"&transport=websocket&sid={sid}")

    async def probe() -> Step:
        try:
            ws_origin = None if origin is None else Origin(origin)
            async with websockets.connect(url, origin=ws_origin, additional_headers=headers,
                                          open_timeout=timeout, compression=None) as ws:
                await ws.send("2probe")
                answer = await asyncio.wait_for(ws.recv(), timeout)
                if answer != "3probe":
                    return Step("upgrade", False, f"probe answered {answer!r}",
                                why="the server did not complete the upgrade probe")
                await ws.send("5")
                return Step("upgrade", True, "WebSocket 101, probe 2probe/3probe, upgraded")
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body or b""
            why = f"the WebSocket handshake got HTTP {status} {body[:80]!r}"
            fix = ""
            if status == 403:
                why = f"the server refuses WebSocket connections from {origin}"
                fix = f"add {origin!r} to the server's origins"
            return Step("upgrade", False, f"WebSocket → HTTP {status}", why=why, fix=fix)
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            return Step("upgrade", False, "WebSocket failed", why=str(exc) or type(exc).__name__,
                        fix="a proxy in front of the server must forward WebSocket upgrades")

    return asyncio.run(probe())


def _close_session(target: _Target, sid: str, eio: int, headers: dict[str, str],
                   timeout: float) -> None:
    try:
        _request(target, "POST", f"EIO={eio}&transport=polling&sid={sid}",
                 {**headers, "Content-Type": "text/plain;charset=UTF-8"},
                 b"1:1" if eio == 3 else b"1", timeout)
    except OSError:
        pass  # best effort: the session also ends by heartbeat timeout


def render(result: Diagnosis) -> str:
    lines = [f"sockjet doctor {result.url}  (EIO {result.eio}"
             + (f", Origin {result.origin})" if result.origin else ", no Origin)")]
    for step in result.steps:
        mark = "ok  " if step.ok else "FAIL"
        lines.append(f"  [{mark}] {step.name}: {step.summary}")
        if step.why:
            lines.append(f"         why: {step.why}")
        if step.fix:
            lines.append(f"         fix: {step.fix}")
    lines.append("verdict: " + ("a browser on this origin can connect" if result.ok else
                                "a browser on this origin would fail (see above)"))
    return "\n".join(lines)


def to_json(result: Diagnosis) -> str:
    data = asdict(result)
    data["ok"] = result.ok
    return json.dumps(data, indent=2)
