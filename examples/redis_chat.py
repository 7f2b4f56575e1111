"""A chat server meant to run as several copies behind a load balancer, on one Redis.

    REDIS_URL=redis://127.0.0.1:6379/0 PORT=3000 python examples/redis_chat.py
    REDIS_URL=redis://127.0.0.1:6379/0 PORT=3001 python examples/redis_chat.py

A message said on one server reaches the room's members on every server; ``who`` lists the
members of a room wherever they are connected. ``cookie="io"`` lets a load balancer keep each
client on the server that holds its session (sticky sessions by cookie).
"""

import os

import sockjet

io = sockjet.Server(
    adapter=sockjet.RedisAdapter(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    cookie="io",
)


@io.on("connection")
async def connection(socket):
    socket.data["name"] = socket.handshake.auth.get("name", "anonymous")

    @socket.on("join")
    async def join(room):
        await socket.join(room)
        io.to(room).emit("joined", socket.data["name"], room)

    @socket.on("say")
    def say(room, text):
        io.to(room).emit("said", socket.data["name"], text)

    @socket.on("who")
    async def who(room):
        members = await io.in_(room).fetch_sockets()  # local and remote sockets
        return sorted(member.data["name"] for member in members)


if __name__ == "__main__":
    sockjet.run(io, host="0.0.0.0", port=int(os.environ.get("PORT", "3000")))
