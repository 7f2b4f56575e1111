"""Allow a list of domains (the "Handling CORS" page's first example).

Run:  python examples/cors/explicit_origins.py
Check: sockjet doctor http://127.0.0.1:3000 --origin https://example.com   (passes)
       sockjet doctor http://127.0.0.1:3000 --origin https://evil.example  (fails: refused)
"""

import sockjet

# Full origins; https://example.com and https://example.com:443 are the same origin.
io = sockjet.Server(origins=["https://example.com"])


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.emit("hello", "from an explicitly allowed origin")


if __name__ == "__main__":
    sockjet.run(io, port=3000)
