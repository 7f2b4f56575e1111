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
    # rate = broadcasts per second (0: as fast as possible, 50 per event-loop turn)
    rate = opts.get("rate") or 0
    interval = max(0.01, 1 / rate) if rate else 0.0
    batch = max(1, round(rate * interval)) if rate else 50
    seq = 0
    while seq < opts["count"]:
        for _ in range(min(batch, opts["count"] - seq)):
            await sio.emit("tick", (seq, time.time() * 1000, payload))
            seq += 1
        if rate:  # paced against the start, so timer drift does not accumulate
            await asyncio.sleep(max(0.0, started + seq / batch * interval - time.monotonic()))
        else:
            await asyncio.sleep(0)
    return {"elapsed": (time.monotonic() - started) * 1000}


@sio.on("count", namespace="/control")
async def count(sid: str) -> int:
    return len(sio.manager.rooms.get("/", {}).get(None, {}))


@sio.on("connect", namespace="/control")
async def control_connect(sid: str, environ: dict) -> None:
    pass
