"""The real npm engine.io-client 3.x (protocol 3) and 6.x (protocol 4) against our engine."""

from __future__ import annotations

import pytest
from conftest import run_node_json, serve

from sockjet import EngineServer, EngineSocket

#: everything here goes through a binding: each test runs on both
pytestmark = pytest.mark.usefixtures("binding")

MESSAGES = [
    {"text": "hello"},
    {"text": "héllo wörld € ünïcødé"},
    {"text": "astral 😀🎉 𝄞 and 中文"},
    {"hex": "000102fdfeff"},
    {"text": ""},
    {"text": "x" * 5000 + "😀"},
    {"hex": bytes(range(256)).hex() * 4},
    {"text": 'quotes " and \\ backslashes \n newlines'},
]


def echo_engine(**options: object) -> EngineServer:
    engine = EngineServer(**options)  # type: ignore[arg-type]

    @engine.on("connection")
    def connection(socket: EngineSocket) -> None:
        socket.on("message", socket.send)

    return engine


MODES = {
    "polling": {"transports": ["polling"]},
    "websocket": {"transports": ["websocket"]},
    "upgrade": {"transports": ["polling", "websocket"], "expectUpgrade": True},
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("version", [3, 6])
async def test_echo_round_trip(version: int, mode: str) -> None:
    engine = echo_engine()
    async with serve(engine) as url:
        result = await run_node_json(
            "eio_client.js",
            {"version": version, "url": url, "path": "/engine.io/", "messages": MESSAGES,
             **MODES[mode]},
        )
    assert result.get("error") is None, result
    assert result["received"] == MESSAGES
    assert result["transport"] == ("polling" if mode == "polling" else "websocket")
    assert result["upgraded"] == (mode == "upgrade")
    assert engine.sessions == {}


@pytest.mark.parametrize("mode", ["polling", "upgrade"])
async def test_v3_force_base64(mode: str) -> None:
    engine = echo_engine()
    seen_b64: list[bool] = []
    engine.on("connection", lambda s: seen_b64.append(s.request.query.get("b64") == "1"))
    async with serve(engine) as url:
        result = await run_node_json(
            "eio_client.js",
            {"version": 3, "url": url, "path": "/engine.io/", "messages": MESSAGES,
             "forceBase64": True, **MODES[mode]},
        )
    assert result.get("error") is None, result
    assert result["received"] == MESSAGES
    assert seen_b64 == [True]
