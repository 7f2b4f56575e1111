"""The runnable examples under examples/ do what their docstrings say."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from conftest import serve

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
