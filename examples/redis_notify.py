"""Notify connected users from code that is not a Socket.IO server (a background job, a web
view): the message goes through Redis to every server of the fleet, which deliver it to the
users' sockets.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/redis_notify.py room-42 "build done"
"""

import asyncio
import os
import sys

import sockjet

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def notify(room: str, text: str) -> None:
    """From blocking code (a Django view, a Celery task)."""
    emitter = sockjet.BlockingRedisEmitter(REDIS_URL)
    try:
        emitter.to(room).emit("said", "server", text)
    finally:
        emitter.close()


async def notify_async(room: str, text: str) -> None:
    """From asyncio code (a FastAPI endpoint, an aiohttp job)."""
    emitter = sockjet.RedisEmitter(REDIS_URL)
    try:
        await emitter.to(room).emit("said", "server", text)
    finally:
        await emitter.close()


if __name__ == "__main__":
    notify(sys.argv[1], sys.argv[2])
    asyncio.run(notify_async(sys.argv[1], sys.argv[2] + " (async)"))
