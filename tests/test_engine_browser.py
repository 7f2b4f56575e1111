"""engine.io-client 3 in headless Chromium: JSONP polling (the transport only a browser runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import NODE_DIR, eventually, run_node_json, serve

from sockjet import EngineServer, EngineSocket

PAGE = """<!doctype html><meta charset="utf-8"><script src="/eio3.js"></script><script>
const sent = [["text", "hello"], ["text", "héllo € 😀 𝄞 中文"], ["text", "line\\nbreak \\\\n"],
              ["bin", [0, 1, 2, 253, 254, 255]]];
const got = [];
// the engine runs on a server of its own (the binding under test): JSONP crosses origins
const socket = eio(new URLSearchParams(location.search).get("server"),
                   {path: "/engine.io/", transports: ["polling"], forceJSONP: true});
socket.binaryType = "arraybuffer";
socket.on("open", () => {
  for (const [kind, value] of sent)
    socket.send(kind === "bin" ? new Uint8Array(value).buffer : value);
});
socket.on("message", (data) => {
  got.push(typeof data === "string" ? ["text", data] : ["bin", Array.from(new Uint8Array(data))]);
  if (got.length === sent.length) {
    window.__result = {got, sent, transport: socket.transport.name,
                       jsonp: socket.transport.constructor.name};
    socket.close();
  }
});
socket.on("error", (e) => { window.__result = {error: String(e)}; });
</script>"""


def page_app(bundle: Path) -> Any:
    script = bundle.read_bytes()
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/eio3.js":
            body, ctype = script, b"text/javascript"
        else:
            body, ctype = PAGE.encode(), b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_jsonp_polling_in_chromium(binding: str) -> None:
    # a short heartbeat: once the browser is gone its session ends within 2 s, poll or not
    engine = EngineServer(ping_interval=1, ping_timeout=1)
    queries: list[dict[str, str]] = []

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        queries.append(dict(socket.request.query))
        socket.on("message", socket.send)

    page = page_app(NODE_DIR / "node_modules" / "eio3" / "engine.io.js")
    async with serve(page) as page_url, serve(engine) as url:
        out = await run_node_json("browser.js", {"url": f"{page_url}/?server={url}",
                                                 "timeout": 20000}, timeout=60)
        await eventually(lambda: not engine.sessions)
    assert out.get("error") is None, out
    result = out["result"]
    assert result.get("error") is None, out
    assert result["got"] == result["sent"]
    assert result["transport"] == "polling"
    assert queries[0]["j"] == "0" and queries[0]["b64"] == "1" and queries[0]["EIO"] == "3"
