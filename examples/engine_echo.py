"""A bare Engine.IO echo server.

Run:  python examples/engine_echo.py
Try:  curl "http://127.0.0.1:3000/engine.io/?EIO=4&transport=polling"
"""

import sockjet

engine = sockjet.EngineServer(ping_interval=25, ping_timeout=20)


@engine.on("connection")
def connection(socket: sockjet.EngineSocket) -> None:
    print("open", socket.sid, "protocol", socket.engine_protocol, "over", socket.transport)
    socket.on("message", socket.send)
    socket.on("upgrade", lambda: print("upgraded", socket.sid))
    socket.on("close", lambda reason: print("close", socket.sid, reason))


if __name__ == "__main__":
    sockjet.run(engine, host="127.0.0.1", port=3000)
