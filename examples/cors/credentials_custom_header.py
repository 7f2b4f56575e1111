"""Cookies (withCredentials) and a custom header, with a custom preflight handler — the page's
last example. The browser client is:

    const socket = io("https://api.example.com", {
      withCredentials: true,
      transportOptions: { polling: { extraHeaders: { "my-custom-header": "abcd" } } },
    });

Run:  python examples/cors/credentials_custom_header.py
Check: sockjet doctor http://127.0.0.1:3000 --origin https://example.com \\
         --credentials --header "my-custom-header: abcd"
"""

import sockjet


def handle_preflight_request(request: object) -> tuple[int, dict[str, object], bytes]:
    # Replaces the default preflight answer entirely (it may also be async).
    return 200, {
        "Access-Control-Allow-Origin": "https://example.com",
        "Access-Control-Allow-Methods": "GET,POST",
        "Access-Control-Allow-Headers": "my-custom-header",
        "Access-Control-Allow-Credentials": True,
    }, b""


io = sockjet.Server(
    origins=["https://example.com"],
    handle_preflight_request=handle_preflight_request,
    cookie=True,  # the io=<sid> cookie the browser sends back with withCredentials
)


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.emit("header", socket.handshake.headers.get("my-custom-header"))


if __name__ == "__main__":
    sockjet.run(io, port=3000)
