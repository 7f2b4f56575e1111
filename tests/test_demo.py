"""README command 1's demo: the chat server with a cross-origin setup, run by the CLI, used by
two users in headless Chromium and by the real socket.io-client 4 in Node."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
from conftest import free_port, run_node_json, serve, sockjet_process

from sockjet.tools.demo import create_chat, demo_origins


async def wait_ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if proc.returncode is not None:
                break
            try:
                r = await client.get(f"{url}/socket.io/?EIO=4&transport=polling")
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"demo did not start: {read(log)}")


def read(path: Path) -> str:
    return path.read_text()


async def test_demo_cli_chat_in_browser_cross_origin(tmp_path: Path) -> None:
    port, page_port = free_port(), free_port()
    api, page = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{page_port}"
    async with sockjet_process(tmp_path, "demo", "--port", str(port),
                               "--page-port", str(page_port)) as proc:
        await wait_ready(api, proc, tmp_path / "sockjet.log")
        async with httpx.AsyncClient(timeout=5) as client:
            html = (await client.get(page + "/")).text
            assert f'const API = "{api}"' in html
            refused = await client.get(f"{api}/socket.io/?EIO=4&transport=polling",
                                       headers={"origin": "http://evil.example"})
            assert refused.status_code == 403
        out = await run_node_json("demo_browser.js", {"url": page + "/"}, timeout=60)
        assert out.get("error") is None, out
        assert "alice: hello from alice 😀" in out["bobLog"]
        assert "bob joined (2 online)" in out["aliceLog"]
        assert out["status"].startswith(f"connected to {api} (cross-origin)")
        assert "websocket" in out["status"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    log = read(tmp_path / "sockjet.log")
    assert f"open {page}/" in log
    assert "Traceback" not in log


async def test_chat_api_with_node_client() -> None:
    io = create_chat()
    async with serve(io) as url:
        out = await run_node_json("sio_client.js", {"version": 4, "url": url, "steps": [
            {"op": "connect", "name": "a", "listen": ["chat", "joined"]},
            {"op": "wait", "name": "a", "event": "connect"},
            {"op": "emit", "name": "a", "event": "chat", "args": ["too early"], "ack": True},
            {"op": "emit", "name": "a", "event": "join", "args": [""], "ack": True},
            {"op": "emit", "name": "a", "event": "join", "args": ["ann"], "ack": True},
            {"op": "emit", "name": "a", "event": "chat", "args": ["hi"], "ack": True},
            {"op": "wait", "name": "a", "event": "chat"},
        ]})
    results = out["results"]
    assert results[2] == []  # not joined: acknowledged with nothing
    assert results[3] == [{"error": "a name of 1 to 32 characters, please"}]
    assert results[4] == [{"users": 1, "history": []}]
    assert results[5] == [1]
    assert results[6][0]["from"] == "ann" and results[6][0]["text"] == "hi"


def test_demo_origins() -> None:
    assert demo_origins("127.0.0.1", (3000, 3001)) == [
        "http://127.0.0.1:3000", "http://127.0.0.1:3001",
        "http://localhost:3000", "http://localhost:3001"]
    assert demo_origins("0.0.0.0", (3000, 3001)) == ["*:3000", "*:3001"]
