"""A chat server that the Socket.IO Admin UI can watch and drive.

Make a bcrypt hash of the password you will type in the UI, then start the server with it:

    python -c "import bcrypt; print(bcrypt.hashpw(b'my password', bcrypt.gensalt()).decode())"
    ADMIN_PASSWORD_HASH='$2b$12$...' python examples/admin_ui.py

Open https://admin.socket.io, enter http://localhost:3000 as the server URL, "admin" and your
password. ADMIN_MODE=production sends the UI the counts only; ADMIN_READ_ONLY=1 lets it look
but not act.
"""

import os

import sockjet

io = sockjet.Server(
    # the hosted UI is a page of another origin that sends credentials: allow it next to the
    # application's own pages
    cors=sockjet.CORS(origin=["https://admin.socket.io", "https://example.com"],
                      credentials=True),
)


@io.on("connection")
def connection(socket):
    socket.data["name"] = socket.handshake.auth.get("name", "anonymous")
    socket.on("join", lambda room: socket.join(room))
    socket.on("say", lambda room, text: io.to(room).emit("said", socket.data["name"], text))


admin = sockjet.instrument(
    io,
    auth={
        "type": "basic",
        "username": "admin",
        "password": os.environ["ADMIN_PASSWORD_HASH"],  # a bcrypt hash, never the password
    },
    mode=os.environ.get("ADMIN_MODE", "development"),
    read_only=os.environ.get("ADMIN_READ_ONLY") == "1",
)

if __name__ == "__main__":
    sockjet.run(io, port=int(os.environ.get("PORT", "3000")))
