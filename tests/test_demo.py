"""README command 1's demo: the chat server with a cross-origin setup, run by the CLI, used by
two users in headless Chromium and by the real socket.io-client 4 in Node. Chromium reaches
nothing but 127.0.0.1: the page either gets the CDN's bundle from npm, or none (no internet
access) and must say so, or the one the demo serves with ``--client-js``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import NODE_DIR, eventually, free_port, run_node_json, serve, sockjet_process

import sockjet
from sockjet.tools import cli
from sockjet.tools.demo import CDN_CLIENT_JS, NPM_BUNDLE, create_chat, demo_origins

#: the socket.io-client 4 bundle npm installed for the tests
BUNDLE = NODE_DIR / "node_modules" / "sio4" / "dist" / "socket.io.min.js"


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
    assert f"loads the Socket.IO client from {CDN_CLIENT_JS}" in log
    assert "Traceback" not in log


async def test_demo_page_without_internet_says_how_to_get_the_client(tmp_path: Path) -> None:
    port, page_port = free_port(), free_port()
    async with sockjet_process(tmp_path, "demo", "--port", str(port),
                               "--page-port", str(page_port)) as proc:
        await wait_ready(f"http://127.0.0.1:{port}", proc, tmp_path / "sockjet.log")
        out = await run_node_json("demo_browser.js", {
            "url": f"http://127.0.0.1:{page_port}/", "expect": "no-client",
            "networks": ["offline", "not-a-bundle"]}, timeout=60)
    assert out.get("error") is None, out
    assert CDN_CLIENT_JS in out["aborted"]
    offline, not_a_bundle = out["pages"]
    assert offline["status"].startswith(
        f"The Socket.IO client could not be loaded from {CDN_CLIENT_JS}; the chat cannot start "
        "without it.\nWithout internet access, stop the demo and start it again with "
        "`sockjet demo --client-js PATH`")
    assert f"`npm i socket.io-client` installs one at {NPM_BUNDLE}" in offline["status"]
    assert offline["status"].endswith("or give this browser internet access.")
    assert not_a_bundle["status"].startswith(
        f"The Socket.IO client loaded from {CDN_CLIENT_JS} but did not define io()")
    assert "`sockjet demo --client-js PATH`" in not_a_bundle["status"]
    assert offline["joinHidden"] and not_a_bundle["joinHidden"]


async def test_demo_serves_client_js_and_chats_without_internet(tmp_path: Path) -> None:
    port, page_port = free_port(), free_port()
    api, page = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{page_port}"
    bundle = BUNDLE.read_bytes()
    async with sockjet_process(tmp_path, "demo", "--port", str(port), "--page-port",
                               str(page_port), "--client-js", str(BUNDLE)) as proc:
        await wait_ready(api, proc, tmp_path / "sockjet.log")
        async with httpx.AsyncClient(timeout=5) as client:
            html = (await client.get(page + "/")).text
            assert f'<script src="{api}/socket.io/socket.io.js"' in html
            assert "cdn.socket.io" not in html
            served = await client.get(f"{api}/socket.io/socket.io.js")
            assert served.status_code == 200 and served.content == bundle
            assert served.headers["content-type"] == "application/javascript; charset=utf-8"
            assert served.headers["cache-control"] == "no-cache"
            etag = served.headers["etag"]
            again = await client.get(f"{api}/socket.io/socket.io.js",
                                     headers={"if-none-match": f"W/{etag}"})
            assert again.status_code == 304 and again.content == b""
            head = await client.head(f"{api}/socket.io/socket.io.js")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(bundle))
            post = await client.post(f"{api}/socket.io/socket.io.js")
            assert post.status_code == 405
            # what the page links to watch the demo: the Admin UI and the metrics
            assert 'href="https://admin.socket.io"' in html and f'href="{api}/metrics"' in html
            metrics = await client.get(f"{api}/metrics")
            assert metrics.status_code == 200 and "sockjet_connected_clients" in metrics.text
            hosted = await client.get(f"{api}/socket.io/?EIO=4&transport=polling",
                                      headers={"origin": "https://admin.socket.io"})
            assert hosted.headers["access-control-allow-origin"] == "https://admin.socket.io"
            assert hosted.headers["access-control-allow-credentials"] == "true"
        admin = sockjet.AsyncClient(api + "/admin", reconnection=False)
        configs: list[Any] = []
        stats: list[Any] = []
        admin.on("config", configs.append)
        admin.on("server_stats", stats.append)
        await admin.connect()
        await eventually(lambda: configs)
        assert "EMIT" not in configs[0]["supportedFeatures"]  # read-only: it only looks
        # the demo's page app ignores lifespan: the server still started (the stats timer)
        await eventually(lambda: stats)
        assert stats[0]["clientsCount"] >= 1
        await admin.disconnect()
        out = await run_node_json("demo_browser.js", {"url": page + "/", "network": "offline"},
                                  timeout=60)
        assert out.get("error") is None, out
        assert out["aborted"] == []  # the page needed nothing from outside
        assert "alice: hello from alice 😀" in out["bobLog"]
        assert "bob joined (2 online)" in out["aliceLog"]
        assert out["status"].startswith(f"connected to {api} (cross-origin)")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    log = read(tmp_path / "sockjet.log")
    assert (f"loads the Socket.IO client from {api}/socket.io/socket.io.js "
            f"({BUNDLE}, {len(bundle)} bytes)") in log
    assert "Traceback" not in log


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "environment"])
def test_demo_client_js_that_is_not_a_file_stops_the_demo(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = {"missing": tmp_path / "missing.js", "directory": tmp_path,
            "empty": tmp_path / "empty.js", "environment": tmp_path / "missing.js"}[case]
    if case == "empty":
        path.write_bytes(b"")
    port = str(free_port())
    if case == "environment":
        monkeypatch.setenv("SOCKJET_DEMO_CLIENT_JS", str(path))
        assert cli.main(["demo", "--port", port]) == 2
    else:
        monkeypatch.delenv("SOCKJET_DEMO_CLIENT_JS", raising=False)
        assert cli.main(["demo", "--port", port, "--client-js", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    option = "$SOCKJET_DEMO_CLIENT_JS" if case == "environment" else "--client-js"
    problem = {"missing": "no such file", "directory": "not a file", "empty": "the file is empty",
               "environment": "no such file"}[case]
    assert err == (f"sockjet demo: {option} {path}: {problem}; expected a socket.io-client "
                   f"browser bundle such as {NPM_BUNDLE} (from `npm i socket.io-client`)\n")


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
