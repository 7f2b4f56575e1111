"""``sockjet doctor`` against our server configured right and wrong, against a plain HTTP server,
and against nothing. The doctor runs as the real CLI (a subprocess, as users run it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import SOCKJET, free_port, run_command, serve

import sockjet

PAGE = "http://localhost:5173"  # a typical dev-server origin, not the server's own


async def doctor(*args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = await run_command(SOCKJET, "doctor", *args, "--json")
    return code, json.loads(out), err.decode()


def steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in report["steps"]}


async def doctor_text(*args: str) -> tuple[int, str]:
    code, out, _ = await run_command(SOCKJET, "doctor", *args, stderr=asyncio.subprocess.STDOUT)
    return code, out.decode()


@pytest.mark.parametrize("eio", ["3", "4"])
async def test_default_config_passes_every_step(eio: str) -> None:
    async with serve(sockjet.Server()) as url:
        code, report, _ = await doctor(url, "--origin", PAGE, "--credentials", "--eio", eio)
    assert code == 0 and report["ok"]
    assert list(steps(report)) == ["handshake", "post", "upgrade"]
    assert steps(report)["upgrade"]["summary"].startswith("WebSocket 101")


async def test_listed_origin_with_custom_header_passes_preflight() -> None:
    io = sockjet.Server(origins=[PAGE], cors=None)
    async with serve(io) as url:
        code, report, _ = await doctor(url, "--origin", PAGE, "--header", "X-Token: abc")
    assert code == 0, report
    assert list(steps(report)) == ["preflight", "handshake", "post", "upgrade"]


async def test_human_output_explains_failure() -> None:
    async with serve(sockjet.Server(origins=["https://app.example.com"])) as url:
        code, text = await doctor_text(url, "--origin", PAGE)
    assert code == 1
    assert "[FAIL] handshake: GET → HTTP 403" in text
    assert f"refuses the origin {PAGE}" in text
    assert "'Access-Control-Allow-Origin' missing" in text
    assert f"fix: add '{PAGE}' to the server's origins" in text
    assert text.rstrip().endswith("a browser on this origin would fail (see above)")


# Wrong configurations: (server options, doctor args, failing step, words in the reason)
WRONG: list[tuple[str, dict[str, Any], list[str], str, str]] = [
    ("unlisted origin", {"origins": ["https://app.example.com"]}, [], "handshake",
     "refuses the origin"),
    ("wildcard with credentials",
     {"cors": sockjet.CORS(origin="*", credentials=False)}, ["--credentials"], "handshake",
     "'Access-Control-Allow-Origin: *' is not allowed with credentials"),
    ("credentials header off", {"cors": sockjet.CORS(origin=[PAGE], credentials=False)},
     ["--credentials"], "handshake", "Access-Control-Allow-Credentials: true"),
    ("custom header not allowed", {"cors": sockjet.CORS(allowed_headers=["x-other"])},
     ["--header", "X-Token: abc"], "preflight", "not allowed by the preflight"),
    ("preflight handed to the app", {"handle_preflight_request": False},
     ["--header", "X-Token: abc"], "preflight", "HTTP 404"),
    ("protocol 3 not accepted", {"allow_eio3": False}, ["--eio", "3"], "handshake",
     "does not speak this Engine.IO version"),
    ("allow_request refuses", {"allow_request": lambda request: False}, [], "handshake",
     "allow_request"),
    ("polling disabled", {"transports": ["websocket"]}, [], "handshake", "polling transport"),
]


@pytest.mark.parametrize(("options", "args", "step", "words"),
                         [case[1:] for case in WRONG], ids=[case[0] for case in WRONG])
async def test_wrong_configurations_fail_with_reason(options: dict[str, Any], args: list[str],
                                                     step: str, words: str) -> None:
    async with serve(sockjet.Server(**options)) as url:
        code, report, _ = await doctor(url, "--origin", PAGE, *args)
    assert code == 1
    assert not report["ok"]
    failing = [s for s in report["steps"] if not s["ok"]]
    assert failing[0]["name"] == step, report
    assert words in failing[0]["why"], failing[0]


async def test_wrong_path() -> None:
    async with serve(sockjet.Server(path="/realtime/")) as url:
        code, report, _ = await doctor(url, "--origin", PAGE)
        assert code == 1
        assert "wrong path" in steps(report)["handshake"]["why"]
        code, report, _ = await doctor(url, "--origin", PAGE, "--path", "/realtime/")
        assert code == 0


async def test_runtime_origin_change_flips_the_verdict() -> None:
    io = sockjet.Server(origins=["https://app.example.com"])
    async with serve(io) as url:
        assert (await doctor(url, "--origin", PAGE))[0] == 1
        io.origins([PAGE])
        assert (await doctor(url, "--origin", PAGE))[0] == 0


async def test_plain_http_server_is_not_socketio() -> None:
    async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<h1>hello</h1>"})

    async with serve(hello) as url:
        code, report, _ = await doctor(url, "--origin", PAGE)
        text_code, text = await doctor_text(url)
    assert code == 1 and text_code == 1
    assert "not a Socket.IO server" in steps(report)["handshake"]["why"]
    assert "no Engine.IO handshake" in text


async def test_unreachable_server() -> None:
    code, report, _ = await doctor(f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert report["steps"][0]["name"] == "connect"
    assert "unreachable" in report["steps"][0]["why"]


async def test_bad_arguments() -> None:
    code, text = await doctor_text("ftp://x")
    assert code != 0 and "expected an http(s) URL" in text
    code, text = await doctor_text("http://127.0.0.1:1", "--header", "nocolon")
    assert code != 0 and "--header expects K:V" in text


async def test_verdicts_match_the_browser() -> None:
    """For every cross-origin server configuration the Chromium tests record (test_cors_browser
    CASES), the doctor's verdict equals what the browser concluded, for both client versions."""
    from test_cors_browser import CASES

    page_port = free_port()
    compared = 0

    async def check(case: Any, url: str, version: int) -> tuple[str, int, bool]:
        args = ["--origin", case.origin(page_port, url), "--eio", str(case.eio(version))]
        for key, value in case.headers.items():
            args += ["--header", f"{key}: {value}"]
        if case.sends_credentials(version):
            args.append("--credentials")
        code, _, _ = await doctor(url, *args)
        return case.name, version, code == 0

    for case in CASES:
        if case.page == "same-origin":
            continue
        page_origin = case.origin(page_port, "http://127.0.0.1:1")
        async with serve(case.make_server(page_origin)) as url:
            server_url = url.replace("127.0.0.1", "localhost")  # the browser tests' layout
            results = await asyncio.gather(*(check(case, server_url, v) for v in case.clients))
        for name, version, ok in results:
            assert ok == case.expect.connected, (name, version)
            compared += 1
    assert compared >= 30
