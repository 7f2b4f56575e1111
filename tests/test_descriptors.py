"""Out of file descriptors: accept errors neither spin the loop nor crash, existing clients keep
being served, and the condition is logged once. The server runs in its own process under a low
descriptor limit, on each binding and on both event loops (uvloop in production, plain asyncio
when embedded with ``await sockjet.serve(...)``)."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import pytest
from conftest import SOCKJET, free_port, kill_group
from rawclient import RawConnection

import sockjet

APP = """
import sockjet
io = sockjet.Server(origins="*", keep_alive_timeout=30, headers_timeout=30)
io.on("connection", lambda socket: socket.on("echo", lambda x: x))
"""

EMBEDDED = """
import asyncio, sys
from app import io
import sockjet
asyncio.run(sockjet.serve(io, port=int(sys.argv[1])))  # the caller's loop: plain asyncio
"""

LIMIT = 96


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.mark.parametrize("how", ["native-uvloop", "native-asyncio", "uvicorn"])
async def test_out_of_descriptors_is_survived_and_logged_once(tmp_path: Path, how: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "embedded.py").write_text(EMBEDDED)
    port = free_port()
    if how == "native-asyncio":
        command = [sys.executable, "embedded.py", str(port)]
    else:
        command = [str(SOCKJET), "run", "app:io", "--port", str(port)]
        if how == "uvicorn":
            command += ["--runner", "uvicorn"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, stdout=log, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=_low_limit, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    flood: list[RawConnection] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                client = sockjet.AsyncClient(url, transports=["websocket"], reconnection=False)
                await client.connect()
                break
            except ConnectionError:
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise
                await asyncio.sleep(0.1)

        for _ in range(LIMIT * 2):  # far more connections than descriptors left
            try:
                flood.append(await asyncio.wait_for(RawConnection.open(url), 2))
            except (OSError, TimeoutError):
                pass
        cpu_before, started = _cpu_seconds(proc.pid), time.monotonic()
        acks = 0
        while time.monotonic() - started < 3:  # the connected client is served all along
            assert await client.emit_with_ack("echo", acks, timeout=1) == acks
            acks += 1
            await asyncio.sleep(0.01)  # paced: the server's own work stays small
        cpu = _cpu_seconds(proc.pid) - cpu_before
        assert acks > 100
        # ~250 acks cost a few hundredths of a second; a loop retrying accept() would burn
        # most of the 3 s
        assert cpu < 0.6, f"server used {cpu:.2f} s of CPU in 3 s: spinning"
        assert proc.returncode is None

        for conn in flood:
            conn.close()
        flood.clear()
        # once descriptors are free again, new clients get in
        deadline = time.monotonic() + 10
        while True:
            late = sockjet.AsyncClient(url, transports=["websocket"], reconnection=False)
            try:
                await late.connect()
                break
            except ConnectionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert await late.emit_with_ack("echo", "late", timeout=2) == "late"
        await late.disconnect()
        await client.disconnect()
    finally:
        for conn in flood:
            conn.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                kill_group(proc.pid)
                await proc.wait()
    text = log_path.read_text()
    assert text.count("out of file descriptors") == 1, text
    assert "Traceback" not in text, text
    assert "socket.accept() out of system resource" not in text, text
