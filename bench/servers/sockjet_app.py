"""sockjet under its default runner, with the benchmark app (same as bench/node/server.js).

Usage: python sockjet_app.py PORT [WORKERS] [--redis URL] [--recovery] [--metrics] [--admin] (worker
processes: 1 by default; with ``--redis``, the classic Redis adapter on that Redis: one server of
several on it; with ``--recovery``, connection state recovery on; with ``--metrics``, Prometheus
metrics on, served at /metrics; with ``--admin``, instrumented for the Admin UI in production
mode, no client of it connected)."""

import asyncio
import sys
import time

import sockjet


def redis_url(argv: list[str]) -> str | None:
    """The URL after ``--redis`` (removed from ``argv`` with it), if any."""
    if "--redis" not in argv:
        return None
    index = argv.index("--redis")
    url = argv[index + 1]
    del argv[index:index + 2]
    return url


REDIS_URL = redis_url(sys.argv)
OPTIONS: dict = {"adapter": sockjet.RedisAdapter(REDIS_URL)} if REDIS_URL else {}
if "--recovery" in sys.argv:
    sys.argv.remove("--recovery")
    OPTIONS["connection_state_recovery"] = True
io = sockjet.Server(origins="*", ping_interval=25, ping_timeout=60, **OPTIONS)
if "--metrics" in sys.argv:
    sys.argv.remove("--metrics")
    sockjet.enable_metrics(io, path="/metrics")
if "--admin" in sys.argv:
    sys.argv.remove("--admin")
    sockjet.instrument(io, auth=False, mode="production")


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.on("echo", lambda *args: args)


control = io.of("/control")


@control.on("connection")
def control_connection(socket: sockjet.Socket) -> None:
    @socket.on("broadcast")
    async def broadcast(opts: dict) -> dict:
        payload = bytes([7]) * opts["size"] if opts.get("binary") else "x" * opts["size"]
        started = time.monotonic()
        # rate = broadcasts per second (0: as fast as possible, 50 per event-loop turn)
        rate = opts.get("rate") or 0
        interval = max(0.01, 1 / rate) if rate else 0.0
        batch = max(1, round(rate * interval)) if rate else 50
        seq = 0
        while seq < opts["count"]:
            for _ in range(min(batch, opts["count"] - seq)):
                io.emit("tick", seq, time.time() * 1000, payload)
                seq += 1
            if rate:  # paced against the start, so timer drift does not accumulate
                await asyncio.sleep(max(0.0, started + seq / batch * interval - time.monotonic()))
            else:
                await asyncio.sleep(0)
        return {"elapsed": (time.monotonic() - started) * 1000}

    socket.on("count", lambda: len(io.sockets.sockets))


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    sockjet.run(io, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                workers=workers)
