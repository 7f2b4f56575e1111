"""Prometheus metrics (``sockjet.enable_metrics``, ``sockjet run --metrics``): real servers on
127.0.0.1 scraped over HTTP, their exposition parsed with prometheus_client's own parser, and
each metric checked to move as what the clients did says it must."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import eventually, free_port, serve, sockjet_process
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from rawclient import RawConnection

import sockjet
from sockjet.bindings.native import NativeServer
from sockjet.bindings.native.http import HTTPConnection
from sockjet.engine.observer import EngineObserver
from sockjet.engine.session import EngineSocket, ObservedEngineSocket
from sockjet.metrics import Metrics

GOOD_ORIGIN = "http://app.example"
BAD_ORIGIN = "http://evil.example"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; a series that is not exposed fails (it must be there, even at 0)."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not exposed: {sorted(k for k, _ in samples)}"
    return samples[key]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def app_server(**options: Any) -> tuple[sockjet.Server, CollectorRegistry]:
    """A server whose metrics are on, served at /metrics of its own port."""
    io = sockjet.Server(origins=[GOOD_ORIGIN],
                        allow_request=lambda req: "x-deny" not in req.headers, **options)
    registry = sockjet.enable_metrics(io, CollectorRegistry(), path="/metrics",
                                      lag_interval=0.01)

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.on("echo", lambda *args: list(args))

    def refuse(socket: sockjet.Socket) -> None:
        raise sockjet.ConnectionRefused("not you")

    io.of("/admin").use(refuse)
    return io, registry


async def until_scraped(http: httpx.AsyncClient, url: str, condition: Any,
                        timeout: float = 5.0) -> Samples:
    """Scrape until ``condition(samples)`` holds (fails after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(http, url)
        if condition(samples):
            return samples
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def connected(url: str, **options: Any) -> sockjet.AsyncClient:
    client = sockjet.AsyncClient(url, reconnection=False, **options)
    await client.connect()
    return client


# -- one scripted session, on each binding -------------------------------------------------------


async def test_a_session_moves_every_metric(binding: str) -> None:
    io, _ = app_server()
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        metrics_url = f"{url}/metrics"
        start = await scrape(http, metrics_url)
        for transport in ("polling", "websocket"):
            for protocol in ("3", "4"):
                assert value(start, "sockjet_connected_clients", transport=transport,
                             protocol=protocol) == 0
                assert value(start, "sockjet_connections_total", transport=transport,
                             protocol=protocol) == 0
        for cause in ("origin", "allow_request", "unknown_transport", "unknown_sid",
                      "bad_handshake_method", "bad_request", "unsupported_protocol"):
            assert value(start, "sockjet_requests_refused_total", cause=cause) == 0
        assert value(start, "sockjet_sockets", namespace="/") == 0
        assert value(start, "sockjet_upgrades_total") == 0

        # a WebSocket client connects: the gauge and the counter, with their labels
        ws_client = await connected(url, transports=["websocket"])
        assert type(next(iter(io.engine.sessions.values()))) is ObservedEngineSocket
        after_connect = await scrape(http, metrics_url)
        assert value(after_connect, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert value(after_connect, "sockjet_connections_total", transport="websocket",
                     protocol="4") == 1
        assert value(after_connect, "sockjet_connected_clients", transport="polling",
                     protocol="4") == 0
        assert value(after_connect, "sockjet_sockets", namespace="/") == 1

        # refusals: a handshake from an origin not listed (polling and WebSocket), one that
        # allow_request refuses, and malformed ones
        base = f"{url}/socket.io/"
        refused = await http.get(f"{base}?EIO=4&transport=polling",
                                 headers={"origin": BAD_ORIGIN})
        assert refused.status_code == 403
        raw = await RawConnection.open(url)
        with pytest.raises(ConnectionError, match="403"):
            await raw.ws_handshake("/socket.io/?EIO=4&transport=websocket",
                                   {"Origin": BAD_ORIGIN})
        raw.close()
        assert (await http.get(f"{base}?EIO=4&transport=polling",
                               headers={"x-deny": "1"})).status_code == 403
        assert (await http.get(f"{base}?EIO=9&transport=polling")).status_code == 400
        assert (await http.get(f"{base}?EIO=4&transport=carrier-pigeon")).status_code == 400
        assert (await http.get(f"{base}?EIO=4&transport=polling&sid=nope")).status_code == 400
        assert (await http.post(f"{base}?EIO=4&transport=polling")).status_code == 400
        after_refusals = await scrape(http, metrics_url)
        moved = {cause: delta(after_connect, after_refusals, "sockjet_requests_refused_total",
                              cause=cause)
                 for cause in ("origin", "allow_request", "unsupported_protocol",
                               "unknown_transport", "unknown_sid", "bad_handshake_method",
                               "bad_request")}
        assert moved == {"origin": 2, "allow_request": 1, "unsupported_protocol": 1,
                         "unknown_transport": 1, "unknown_sid": 1, "bad_handshake_method": 1,
                         "bad_request": 0}
        # no session was opened by any of them
        assert delta(after_connect, after_refusals, "sockjet_connections_total",
                     transport="polling", protocol="4") == 0

        # an event with an ack: packets and bytes both ways
        payload = "x" * 5000
        assert await ws_client.emit_with_ack("echo", payload, timeout=5) == [payload]
        after_echo = await scrape(http, metrics_url)
        assert delta(after_refusals, after_echo, "sockjet_packets_total", direction="in") >= 1
        assert delta(after_refusals, after_echo, "sockjet_packets_total", direction="out") >= 1
        assert delta(after_refusals, after_echo, "sockjet_bytes_total", direction="in") > 5000
        assert delta(after_refusals, after_echo, "sockjet_bytes_total", direction="out") > 5000

        # a polling client, and one that upgrades: three clients on "/"
        polling_client = await connected(url, transports=["polling"])
        upgrading_client = await connected(url)
        await eventually(lambda: sum(s.transport == "websocket"
                                     for s in io.engine.sessions.values()) == 2)
        three = await scrape(http, metrics_url)
        assert value(three, "sockjet_connected_clients", transport="polling", protocol="4") == 1
        assert value(three, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 2
        assert value(three, "sockjet_connections_total", transport="polling", protocol="4") == 2
        assert value(three, "sockjet_upgrades_total") == 1
        assert value(three, "sockjet_sockets", namespace="/") == 3

        # a broadcast to the three: fan-out 3 (the bucket up to 5, not the one up to 2), and
        # a broadcast to an empty room: fan-out 0
        io.emit("news", "hello")
        io.to("nobody").emit("news", "hello")
        fanned = await scrape(http, metrics_url)
        histogram = "sockjet_broadcast_recipients"
        assert delta(three, fanned, f"{histogram}_count") == 2
        assert delta(three, fanned, f"{histogram}_sum") == 3
        assert delta(three, fanned, f"{histogram}_bucket", le="0.0") == 1
        assert delta(three, fanned, f"{histogram}_bucket", le="2.0") == 1
        assert delta(three, fanned, f"{histogram}_bucket", le="5.0") == 2
        assert delta(three, fanned, f"{histogram}_bucket", le="+Inf") == 2
        assert delta(three, fanned, "sockjet_packets_total", direction="out") == 3

        # CONNECT refusals of the Socket.IO layer
        for namespace, error in (("/admin", "not you"), ("/nowhere", "Invalid namespace")):
            with pytest.raises(sockjet.ConnectError, match=error):
                await connected(url + namespace, transports=["websocket"])
        refusals = await scrape(http, metrics_url)
        assert value(refusals, "sockjet_connect_errors_total", reason="middleware") == 1
        assert value(refusals, "sockjet_connect_errors_total", reason="invalid_namespace") == 1
        assert value(refusals, "sockjet_connect_errors_total", reason="middleware_error") == 0

        # disconnections, with the reason and the transport they ended on
        await eventually(lambda: len(io.engine.sessions) == 3)
        before_bye = await scrape(http, metrics_url)
        assert ws_client.id is not None
        ws_session = io.sockets.sockets[ws_client.id].conn.engine
        await ws_client.disconnect()  # the client closes: "transport close"
        await eventually(lambda: ws_session.close_reason is not None)
        observer = io.engine.observer
        assert isinstance(observer, Metrics)
        sent = observer.packets_out
        assert not ws_session.send("too late")  # nothing is queued, nothing counted
        assert observer.packets_out == sent
        polling_sid = next(s.id for s in io.sockets.sockets.values()
                           if s.transport == "polling")
        io.sockets.sockets[polling_sid].disconnect(True)  # the server closes: "forced close"
        await eventually(lambda: len(io.engine.sessions) == 1)
        after_bye = await scrape(http, metrics_url)
        assert delta(before_bye, after_bye, "sockjet_disconnections_total",
                     reason="transport close", transport="websocket") == 1
        assert delta(before_bye, after_bye, "sockjet_disconnections_total",
                     reason="forced close", transport="polling") == 1
        assert value(after_bye, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert value(after_bye, "sockjet_connected_clients", transport="polling",
                     protocol="4") == 0
        assert value(after_bye, "sockjet_sockets", namespace="/") == 1
        await upgrading_client.disconnect()
        await polling_client.disconnect()

        # the event loop's lag is sampled (every 10 ms here): the samples keep coming
        first = value(after_bye, "sockjet_event_loop_lag_seconds_count")
        assert first > 0
        lag = await until_scraped(http, metrics_url, lambda samples: value(
            samples, "sockjet_event_loop_lag_seconds_count") > first)
        assert value(lag, "sockjet_event_loop_lag_seconds_bucket", le="+Inf") == \
            value(lag, "sockjet_event_loop_lag_seconds_count")
        assert value(lag, "sockjet_event_loop_lag_seconds_sum") >= 0


async def test_scrape_formats_and_methods(binding: str) -> None:
    io, _ = app_server()
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        raw = await http.get(f"{url}/metrics", headers={"accept-encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert "# TYPE sockjet_connections_total counter" in raw.text  # httpx decompressed it
        plain = await http.get(f"{url}/metrics", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        openmetrics = await http.get(f"{url}/metrics",
                                     headers={"accept": "application/openmetrics-text"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
        head = await http.head(f"{url}/metrics")
        assert head.status_code == 200 and head.content == b""
        post = await http.post(f"{url}/metrics")
        assert post.status_code == 405
        # the Socket.IO path is served as before, other paths are still not found
        assert (await http.get(f"{url}/socket.io/?EIO=4&transport=polling")).status_code == 200
        assert (await http.get(f"{url}/metricsx")).status_code == 404


async def test_the_route_comes_before_the_engine_path(binding: str) -> None:
    """With the engine on "/", /metrics is still the metrics."""
    io = sockjet.Server(path="/")
    sockjet.enable_metrics(io, CollectorRegistry(), path="/metrics")
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        assert "sockjet_connected_clients" in (await http.get(f"{url}/metrics")).text
        assert (await http.get(f"{url}/?EIO=4&transport=polling")).status_code == 200


async def test_a_metrics_port_of_its_own(binding: str) -> None:
    io, _ = app_server()
    port = free_port()
    sockjet.enable_metrics(io, port=port)  # the same metrics, served on another port too
    metrics_url = f"http://127.0.0.1:{port}"
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        client = await connected(url, transports=["websocket"])
        samples = await scrape(http, f"{metrics_url}/metrics")
        assert value(samples, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert "sockjet_connected_clients" in (await http.get(f"{metrics_url}/")).text
        assert (await http.get(f"{metrics_url}/other")).status_code == 404
        assert (await http.post(f"{metrics_url}/metrics")).status_code == 405
        assert (await http.head(f"{metrics_url}/metrics")).content == b""
        raw = await RawConnection.open(metrics_url)  # a client that sends half a head
        await raw.send(b"GET /metrics HTTP/1.1\r\n")
        raw.close()
        await client.disconnect()
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.ConnectError):  # closed with the server
            await http.get(f"{metrics_url}/metrics")


async def test_in_your_own_asgi_app() -> None:
    """metrics_app routed in a Starlette app, itself wrapped by the server's ASGI app."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    io = sockjet.Server()
    registry = sockjet.enable_metrics(io, CollectorRegistry())
    web = Starlette(routes=[Route("/metrics", sockjet.metrics_app(registry)),
                            Route("/", lambda request: PlainTextResponse("home"))])
    async with serve(io.asgi_app(web)) as url, httpx.AsyncClient(timeout=10) as http:
        client = await connected(url, transports=["websocket"])
        samples = await scrape(http, f"{url}/metrics")
        assert value(samples, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert (await http.get(url)).text == "home"
        await client.disconnect()


async def test_broadcasts_with_acks_and_recovery() -> None:
    """Fan-out is reported by every kind of broadcast: with acks, and with the offsets of
    connection state recovery (one encoding per protocol); no lag samples when asked not to."""
    io = sockjet.Server(connection_state_recovery=True)
    registry = sockjet.enable_metrics(io, CollectorRegistry(), lag_interval=None)
    io.on("connection", lambda socket: socket.on("ask", lambda: "yes"))
    async with serve(io) as url:
        clients = [await connected(url, transports=["websocket"]) for _ in range(2)]
        for client in clients:
            client.on("ask", lambda: "yes")
        assert await io.timeout(5).emit_with_ack("ask") == ["yes", "yes"]
        assert await io.to("nobody").timeout(5).emit_with_ack("ask") == []
        io.emit("news", b"\x00binary")  # with an offset: 2 packets each (an attachment)
        samples = parse(_text(registry))
        assert value(samples, "sockjet_broadcast_recipients_count") == 3
        assert value(samples, "sockjet_broadcast_recipients_sum") == 4
        assert value(samples, "sockjet_broadcast_recipients_bucket", le="0.0") == 1
        assert value(samples, "sockjet_event_loop_lag_seconds_count") == 0
        for client in clients:
            await client.disconnect()


# -- metrics off: nothing of it runs ---------------------------------------------------------------


async def test_without_metrics_nothing_is_counted() -> None:
    io = sockjet.Server()
    assert io.engine.observer is None and io.observer is None and io.engine.routes == {}
    server = NativeServer(io, "127.0.0.1", 0)
    assert type(server.connection()) is HTTPConnection
    async with serve(io) as url:
        client = await connected(url, transports=["websocket"])
        assert type(next(iter(io.engine.sessions.values()))) is EngineSocket
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/metrics")).status_code == 404
        await client.disconnect()
    sockjet.enable_metrics(io, CollectorRegistry())
    assert type(server.connection()) is HTTPConnection  # bytes are the engine's to count


async def test_a_broadcast_counts_its_packets_and_bytes_once_for_all_recipients() -> None:
    io = sockjet.Server(ping_interval=300)  # no heartbeat in the middle of the count
    registry = sockjet.enable_metrics(io, CollectorRegistry(), path="/metrics",
                                      lag_interval=None)
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        clients = [await connected(url, transports=["websocket"]) for _ in range(3)]
        got: list[Any] = []
        for client in clients:
            client.on("tick", got.append)
        before = await scrape(http, f"{url}/metrics")
        io.emit("tick", "é" * 10)  # 20 bytes in UTF-8
        await eventually(lambda: len(got) == 3)
        after = await scrape(http, f"{url}/metrics")
        packet = '2["tick","' + "é" * 10 + '"]'  # the Socket.IO packet, its type included
        size = 1 + len(packet.encode())  # and the Engine.IO type
        assert delta(before, after, "sockjet_bytes_total", direction="out") == 3 * size
        assert delta(before, after, "sockjet_packets_total", direction="out") == 3
        for client in clients:
            await client.disconnect()
    assert registry is not None


def test_importing_the_server_does_not_import_prometheus() -> None:
    code = ("import sys, sockjet, sockjet.server, sockjet.bindings.runner, "
            "sockjet.tools.cli, sockjet.adapters.workers\n"
            "sockjet.Server()\n"
            "assert 'prometheus_client' not in sys.modules, 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_clear_error_without_prometheus_client() -> None:
    code = ("import sys\nsys.modules['prometheus_client'] = None\nimport sockjet\n"
            "try:\n    sockjet.enable_metrics\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                         capture_output=True, text=True).stdout
    assert "pip install 'sockjet[metrics]'" in out


# -- the API --------------------------------------------------------------------------------------


def test_enable_metrics_arguments() -> None:
    io = sockjet.Server()
    registry = CollectorRegistry()
    assert sockjet.enable_metrics(io, registry) is registry
    assert sockjet.enable_metrics(io, path="/m") is registry  # adds to the same metrics
    assert "/m" in io.engine.routes
    with pytest.raises(ValueError, match="another registry"):
        sockjet.enable_metrics(io, CollectorRegistry())
    with pytest.raises(ValueError, match="sockjet metrics already"):
        sockjet.enable_metrics(sockjet.Server(), registry)
    with pytest.raises(ValueError, match="path"):
        sockjet.enable_metrics(io, path="metrics")
    with pytest.raises(ValueError, match="port"):
        sockjet.enable_metrics(io, port=70000)
    with pytest.raises(ValueError, match="lag_interval"):
        sockjet.enable_metrics(sockjet.Server(), CollectorRegistry(), lag_interval=0)
    with pytest.raises(TypeError, match="needs a sockjet server"):
        sockjet.enable_metrics(object())
    other = sockjet.Server()
    other.engine.observer = EngineObserver()
    with pytest.raises(ValueError, match="observer already"):
        sockjet.enable_metrics(other, CollectorRegistry())


def test_an_engine_server_and_an_asgi_app() -> None:
    engine = sockjet.EngineServer()
    registry = sockjet.enable_metrics(engine, CollectorRegistry())
    names = {family.name for family in registry.collect()}
    assert "sockjet_connected_clients" in names and "sockjet_sockets" not in names
    io = sockjet.Server(allow_eio3=False)
    registry = sockjet.enable_metrics(io.asgi_app(), CollectorRegistry())
    assert isinstance(io.engine.observer, Metrics) and io.observer is io.engine.observer
    samples = parse(_text(registry))
    assert ("sockjet_connected_clients",
            frozenset({("transport", "polling"), ("protocol", "3")})) not in samples
    assert value(samples, "sockjet_sockets", namespace="/") == 0


def _text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


async def test_metrics_app() -> None:
    registry = CollectorRegistry()
    sockjet.enable_metrics(sockjet.Server(), registry)
    app = sockjet.metrics_app(registry)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/",
             "headers": [(b"accept-encoding", b"gzip")]}
    await app(scope, receive, send)
    start, body = sent
    assert start["status"] == 200
    assert (b"content-encoding", b"gzip") in start["headers"]
    assert b"sockjet_connected_clients" in gzip.decompress(body["body"])
    sent.clear()
    await app({**scope, "method": "DELETE", "headers": []}, receive, send)
    assert sent[0]["status"] == 405
    sent.clear()
    lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def lifespan_receive() -> dict[str, Any]:
        return next(lifespan)

    await app({"type": "lifespan"}, lifespan_receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]


# -- the command line -----------------------------------------------------------------------------

APP = """\
import prometheus_client
import sockjet

io = sockjet.Server()


@io.on("connection")
def connection(socket):
    socket.on("echo", lambda *args: list(args))


# metrics enabled by the application, at /metrics of its port
io_with_path = sockjet.Server()
sockjet.enable_metrics(io_with_path, prometheus_client.CollectorRegistry(), path="/metrics")
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "metrics_app.py").write_text(APP)
    yield tmp_path


async def until_answers(http: httpx.AsyncClient, url: str, proc: Any, cwd: Path) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            break
        try:
            if (await http.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answer from {url}:\n{(cwd / 'sockjet.log').read_text()}")


async def test_cli_metrics_on_the_server_port(app_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with sockjet_process(app_dir, "run", "metrics_app:io", "--port", str(port),
                               "--metrics") as proc, httpx.AsyncClient(timeout=10) as http:
        await until_answers(http, f"{url}/metrics", proc, app_dir)
        client = await connected(url, transports=["websocket"])
        assert await client.emit_with_ack("echo", 1, timeout=5) == [1]
        samples = await scrape(http, f"{url}/metrics")
        assert value(samples, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert value(samples, "sockjet_sockets", namespace="/") == 1
        assert value(samples, "sockjet_packets_total", direction="in") >= 1
        # the default registry: the process's own metrics come along
        assert any(name.startswith("process_") for name, _ in samples)
        await client.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def free_consecutive_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free now (``free_port`` checks one only: the
    next may be the local port of some connection)."""
    while True:
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first + 1, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first


async def test_cli_metrics_port_with_workers(app_dir: Path) -> None:
    """The application enabled metrics at /metrics; with workers, each serves its own on the
    metrics port (worker i on P + i), and none on the shared port (a warning says so)."""
    port, metrics_port = free_port(), free_consecutive_ports(2)
    while port in (metrics_port, metrics_port + 1):
        port = free_port()
    async with sockjet_process(app_dir, "run", "metrics_app:io_with_path", "--port", str(port),
                               "--workers", "2", "--metrics-port", str(metrics_port)) as proc, \
            httpx.AsyncClient(timeout=10) as http:
        for index in range(2):  # worker i on metrics_port + i, each with its own numbers
            await until_answers(http, f"http://127.0.0.1:{metrics_port + index}/metrics", proc,
                                app_dir)
        client = await connected(f"http://127.0.0.1:{port}", transports=["websocket"])
        counts = []
        for index in range(2):
            samples = await scrape(http, f"http://127.0.0.1:{metrics_port + index}/metrics")
            counts.append(value(samples, "sockjet_connected_clients", transport="websocket",
                                protocol="4"))
        assert sorted(counts) == [0, 1]
        await client.disconnect()
        assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    log = (app_dir / "sockjet.log").read_text()
    assert log.count("metrics are not served at /metrics on the shared port") == 1, log


@pytest.mark.parametrize(("options", "message"), [
    (["--metrics", "--workers", "2"], "use --metrics-port P"),
    (["--metrics-port", "PORT"], "must differ from --port"),
])
async def test_cli_metrics_refusals(app_dir: Path, options: list[str], message: str) -> None:
    port = str(free_port())
    options = [port if option == "PORT" else option for option in options]
    async with sockjet_process(app_dir, "run", "metrics_app:io", "--port", port,
                               *options) as proc:
        code = await asyncio.wait_for(proc.wait(), 15)
    log = (app_dir / "sockjet.log").read_text()
    assert code != 0 and message in log, log
    assert not re.search("Traceback", log)


async def test_metrics_and_the_admin_ui_together_each_see_everything() -> None:
    """Both observe one server: the engine's sessions count for both (one session class mixing
    the two), and the Socket.IO layer tells both of broadcasts and sockets."""
    io = sockjet.Server()
    registry = sockjet.enable_metrics(io, CollectorRegistry(), path="/metrics")
    admin = sockjet.instrument(io, auth=False, mode="development")
    async with serve(io) as url, httpx.AsyncClient(timeout=10) as http:
        client = await connected(url, transports=["websocket"])
        (socket,) = io.of("/").sockets.values()
        names = [cls.__name__ for cls in type(socket.conn.engine).__mro__]
        assert names[:3] == ["ObservedMeteredSession", "ObservedEngineSocket", "MeteredSession"]
        io.emit("news", "both")
        samples = await scrape(http, f"{url}/metrics")
        assert value(samples, "sockjet_connected_clients", transport="websocket",
                     protocol="4") == 1
        assert value(samples, "sockjet_broadcast_recipients_sum") == 1
        assert admin is not None and registry is not None
        await client.disconnect()


async def test_a_metrics_port_in_use_stops_the_start_and_leaves_nothing_running() -> None:
    io = sockjet.Server()
    registry = CollectorRegistry()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sockjet.enable_metrics(io, registry, port=taken.getsockname()[1], lag_interval=0.01)
        with pytest.raises(OSError):
            await io.engine.startup()
    await asyncio.sleep(0.05)  # five lag intervals: the lag sampling stopped with the start
    assert not registry.get_sample_value("sockjet_event_loop_lag_seconds_count")
    assert not io.engine.started
    await io.close()
