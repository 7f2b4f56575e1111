"""python-socketio as an ASGI app (run by uvicorn with uvloop + httptools by bench/run.py),
with the benchmark app (same as bench/node/server.js)."""

import asyncio
import time

import socketio

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", ping_timeout=60)
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def echo(sid: str, *args: object) -> tuple:
    return args


@sio.on("broadcast", namespace="/control")
async def broadcast(sid: str, opts: dict) -> dict:
    payload = bytes([7]) * opts["size"] if opts.get("binary") else "x" * opts["size"]
    started = time.monotonic()
    rate = opts.get("rate") or 0
    batch = max(1, round(rate / 100)) if rate else 50
    seq = 0
    while seq < opts["count"]:
        for _ in range(min(batch, opts["count"] - seq)):
            await sio.emit("tick", (seq, time.time() * 1000, payload))
            seq += 1
        await asyncio.sleep(0.01 if rate else 0)
    return {"elapsed": (time.monotonic() - started) * 1000}


@sio.on("count", namespace="/control")
async def count(sid: str) -> int:
    return len(sio.manager.rooms.get("/", {}).get(None, {}))


@sio.on("connect", namespace="/control")
async def control_connect(sid: str, environ: dict) -> None:
    pass
