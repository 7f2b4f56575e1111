"""A server embedded in your own asyncio program, and stopped by it (docs/server.md).

Run:  python examples/embedded_server.py      # serves http://127.0.0.1:3000/socket.io/ for 60 s
"""

import asyncio

import sockjet

io = sockjet.Server(origins=["https://app.example.com"])


@io.on("connection")
def connection(socket: sockjet.Socket) -> None:
    socket.emit("hello", "from an embedded server")


async def your_program() -> None:
    await asyncio.sleep(60)  # whatever else the process does while the server runs


async def main(port: int = 3000) -> None:
    server = asyncio.create_task(sockjet.serve(io, host="127.0.0.1", port=port))
    program = asyncio.create_task(your_program())
    # until your program is done, or the server stops (SIGINT, SIGTERM) or cannot start
    done, _ = await asyncio.wait([server, program], return_when=asyncio.FIRST_COMPLETED)
    program.cancel()
    server.cancel()  # stops listening, closes every session, answers pending polls
    await asyncio.wait([server, program])
    await io.close()  # releases the adapters (nothing to release for the in-memory one)
    for task in done:
        task.result()  # raises what failed, if anything did (a port in use...)


if __name__ == "__main__":
    asyncio.run(main())
