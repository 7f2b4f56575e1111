"""A server with tighter limits than the defaults (docs/security.md).

    python examples/hardened_server.py      # http://127.0.0.1:3000/socket.io/
"""

import sockjet

io = sockjet.Server(
    origins=["https://app.example.com"],
    headers_timeout=10,          # slow heads are cut sooner
    keep_alive_timeout=15,       # behind a proxy that keeps upstream connections longer
    max_http_buffer_size=100_000,
)


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.on("echo", lambda *args: args)


if __name__ == "__main__":
    sockjet.run(io, host="127.0.0.1", port=3000)
