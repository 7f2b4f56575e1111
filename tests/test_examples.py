"""The runnable examples under examples/ do what their docstrings say."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from conftest import eventually, free_port, serve

import sockjet

ROOT = Path(__file__).parent.parent / "examples"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def load(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def status(url: str, origin: str | None, method: str = "GET",
                 headers: dict[str, str] | None = None) -> httpx.Response:
    sent = dict(headers or {})
    if origin:
        sent["origin"] = origin
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.request(method, HANDSHAKE, headers=sent)


async def test_explicit_origins() -> None:
    io = load("cors/explicit_origins.py").io
    async with serve(io) as url:
        assert (await status(url, "https://example.com")).status_code == 200
        assert (await status(url, "https://example.com:443")).status_code == 200
        assert (await status(url, "https://evil.example")).status_code == 403


async def test_same_origin_only() -> None:
    module = load("cors/same_origin_only.py")
    async with serve(module.app) as url:
        host = url.removeprefix("http://")
        assert (await status(url, None)).status_code == 200
        assert (await status(url, url, headers={"host": host})).status_code == 200
        assert (await status(url, "http://localhost:1")).status_code == 403
        async with httpx.AsyncClient() as client:
            assert "socket.io" in (await client.get(url + "/")).text


def test_runtime_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOCKJET_DEV", raising=False)
    assert load("cors/runtime_origins.py").io.origins() == ["https://example.com"]
    monkeypatch.setenv("SOCKJET_DEV", "1")
    assert load("cors/runtime_origins.py").io.origins() == ["http://localhost:3000"]


async def test_credentials_custom_header() -> None:
    io = load("cors/credentials_custom_header.py").io
    async with serve(io) as url:
        r = await status(url, "https://example.com", "OPTIONS", {
            "access-control-request-method": "GET",
            "access-control-request-headers": "my-custom-header"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-headers"] == "my-custom-header"
        assert r.headers["access-control-allow-credentials"] == "true"
        r = await status(url, "https://example.com")
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["set-cookie"].startswith("io=")


async def test_modern_cors_option() -> None:
    io = load("cors/modern_cors_option.py").io
    async with serve(io) as url:
        r = await status(url, "http://localhost:8080")
        assert r.headers["access-control-expose-headers"] == "x-request-id"
        r = await status(url, "http://localhost:8080", "OPTIONS",
                         {"access-control-request-method": "GET"})
        assert (r.status_code, r.headers["access-control-allow-headers"]) == (
            204, "my-custom-header")


async def test_engine_echo_example() -> None:
    engine = load("engine_echo.py").engine
    async with serve(engine) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/engine.io/?EIO=4&transport=polling")
        assert r.status_code == 200 and r.text.startswith("0{")


async def test_hardened_server_limits() -> None:
    io = load("hardened_server.py").io
    limits = io.engine.http_limits
    assert (limits.headers_timeout, limits.keep_alive_timeout) == (10, 15)
    assert io.engine.max_http_buffer_size == 100_000
    async with serve(io) as url, httpx.AsyncClient(base_url=url) as client:
        sid = (await client.get(HANDSHAKE)).text.split('"sid":"')[1].split('"')[0]
        big = await client.post(f"{HANDSHAKE}&sid={sid}", content=b"4" + b"x" * 100_000)
        assert big.status_code == 413
        r = await client.get(HANDSHAKE, headers={"x-big": "x" * 17_000})
        assert r.status_code == 431


async def test_starlette_mount_example() -> None:
    app = load("starlette_mount.py").app
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/")).text.startswith("Starlette here")
        r = await client.get("/engine.io/?EIO=4&transport=polling")
        assert r.status_code == 200 and r.text.startswith("0{")
        sid = r.text.split('"sid":"')[1].split('"')[0]
        await client.post(f"/engine.io/?EIO=4&transport=polling&sid={sid}", content="4echo")
        echo = await client.get(f"/engine.io/?EIO=4&transport=polling&sid={sid}")
        assert echo.text == "4echo"


async def test_embedded_server_stops_when_the_program_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("embedded_server.py")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    client = sockjet.AsyncClient(url, reconnection=False)
    client.on("disconnect", lambda reason: seen.setdefault("reason", reason))

    async def program() -> None:  # stands in for the example's your_program()
        hello = asyncio.get_running_loop().create_future()
        client.on("hello", hello.set_result)
        for _ in range(500):  # until the server listens
            try:
                await client.connect()
                break
            except ConnectionError:
                await asyncio.sleep(0.01)
        seen["hello"] = await asyncio.wait_for(hello, 5)

    monkeypatch.setattr(module, "your_program", program)
    await asyncio.wait_for(module.main(port), 15)
    assert seen["hello"] == "from an embedded server"
    await eventually(lambda: "reason" in seen)
    assert seen["reason"] == "transport close"  # the server closed the session on its way out
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):  # no longer listening
            await http.get(f"{url}/socket.io/?EIO=4&transport=polling")
    await client.disconnect()


async def test_embedded_server_reports_a_port_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("embedded_server.py")
    monkeypatch.setattr(module, "your_program", asyncio.Event().wait)  # would run forever
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            await asyncio.wait_for(module.main(busy.getsockname()[1]), 10)


async def test_redis_chat_and_notify_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two copies of the chat server on one Redis: what is said on one reaches the room on
    the other, ``who`` lists members of both, and the notifier reaches them through Redis."""
    from redisutil import redis_server

    async with redis_server() as r:
        monkeypatch.setenv("REDIS_URL", r.url)
        first, second = load("redis_chat.py").io, load("redis_chat.py").io
        async with serve(first) as url1, serve(second) as url2:
            said: list[tuple[Any, ...]] = []
            ann = sockjet.AsyncClient(url1, auth={"name": "ann"})
            bob = sockjet.AsyncClient(url2, auth={"name": "bob"})
            bob.on("said", lambda *args: said.append(args))
            for client in (ann, bob):
                await client.connect()
                client.emit("join", "room-42")
            await eventually(lambda: all("room-42" in io.of("/").adapter.rooms
                                         for io in (first, second)))
            assert await ann.emit_with_ack("who", "room-42") == ["ann", "bob"]
            ann.emit("say", "room-42", "hello")
            await eventually(lambda: said == [("ann", "hello")])
            notifier = load("redis_notify.py")
            await asyncio.to_thread(notifier.notify, "room-42", "build done")
            await notifier.notify_async("room-42", "deployed")
            await eventually(lambda: said[1:] == [("server", "build done"),
                                                  ("server", "deployed")])
            for client in (ann, bob):
                await client.disconnect()


async def test_admin_ui_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Admin UI logs in with the password whose hash the example is given, sees the
    sockets; the hosted UI's origin may connect with credentials, other origins may not."""
    import bcrypt

    hashed = bcrypt.hashpw(b"my password", bcrypt.gensalt(4)).decode()
    monkeypatch.setenv("ADMIN_PASSWORD_HASH", hashed)
    monkeypatch.delenv("ADMIN_MODE", raising=False)
    monkeypatch.delenv("ADMIN_READ_ONLY", raising=False)
    io = load("admin_ui.py").io
    async with serve(io) as url:
        r = await status(url, "https://admin.socket.io")
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://admin.socket.io"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert (await status(url, "https://evil.example")).status_code == 403
        user = sockjet.AsyncClient(url, auth={"name": "ann"}, reconnection=False)
        await user.connect()
        got: dict[str, Any] = {}
        ui = sockjet.AsyncClient(url + "/admin", reconnection=False,
                                 auth={"username": "admin", "password": "my password"})
        ui.on_any(lambda event, *args: got.setdefault(event, args))
        await ui.connect()
        await eventually(lambda: "all_sockets" in got)
        assert "ALL_EVENTS" in got["config"][0]["supportedFeatures"]
        assert {"id": user.id, "nsp": "/", "name": "ann"} in [
            {"id": s["id"], "nsp": s["nsp"], "name": s["data"].get("name")}
            for s in got["all_sockets"][0]]
        await ui.disconnect()
        wrong = sockjet.AsyncClient(url + "/admin", reconnection=False,
                                    auth={"username": "admin", "password": "guess"})
        with pytest.raises(sockjet.ConnectError, match="invalid credentials"):
            await wrong.connect()
        await wrong.disconnect()
        await user.disconnect()
