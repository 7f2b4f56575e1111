"""Prometheus metrics for a sockjet server (the ``metrics`` extra: ``pip install
'sockjet[metrics]'``, which brings ``prometheus-client``).

``sockjet.enable_metrics(io)`` makes a :class:`Metrics` object the observer of the server's
engine and Socket.IO layer (see :mod:`sockjet.engine.observer` and
:mod:`sockjet.socketio.observer`) and registers it as a collector; it returns the registry.
The hot paths only add to plain integers; the metric families are built when the registry is
scraped. ``path="/metrics"`` serves them on the server's own port (both bindings),
``port=P`` on a port of their own; :func:`metrics_app` is an ASGI app to mount in another
application. The metrics and what they cost: docs/observability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError("sockjet's metrics need the prometheus-client package: "
                      "pip install 'sockjet[metrics]'") from exc

from .bindings.asgi import Receive, Scope, Send
from .bindings.native.http import render
from .codecs.engineio import byte_length
from .engine.observer import REFUSAL_CAUSES, EngineObserver
from .engine.server import Engine
from .engine.session import EngineSocket, Prepared
from .engine.transport import HTTPRequest, Response
from .socketio.observer import SocketIOObserver
from .socketio.server import SocketServer

log = logging.getLogger("sockjet.metrics")

__all__ = ["Metrics", "MetricsApp", "enable_metrics", "metrics_app"]

#: seconds between two event-loop lag samples (the timer is the only work metrics add when idle)
DEFAULT_LAG_INTERVAL = 0.5
#: upper bounds of the buckets of the broadcast fan-out histogram (recipients)
FANOUT_BUCKETS = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                  50000, 100000)
#: upper bounds of the buckets of the event-loop lag histogram (seconds)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: what a request line and headers to the metrics port may take (bytes, seconds)
_MAX_HEAD = 16384
_CLIENT_TIMEOUT = 10.0

_CAUSES = ("origin", "allow_request", *REFUSAL_CAUSES.values())
_CONNECT_REFUSALS = ("invalid_namespace", "namespace_error", "middleware", "middleware_error")
_NOT_FOUND = Response(404, [("content-type", "text/plain")], b"Not Found")
_BAD_METHOD = Response(405, [("content-type", "text/plain"), ("allow", "GET, HEAD")],
                       b"Method Not Allowed")


class Buckets:
    """A histogram kept as plain integers (no lock, one bisection per observation); the
    Prometheus family is built when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


def prepared_bytes(prepared: Prepared) -> int:
    """The bytes of a broadcast's packets (type and data), as sessions count their others."""
    return sum(1 + byte_length(packet.data) for packet in prepared.packets)


class Metrics(EngineObserver, SocketIOObserver):
    """The observer of one server's engine (and Socket.IO layer) and the collector of its
    metrics. Made by :func:`enable_metrics`; ``server.engine.observer`` is this object."""

    def __init__(self, engine: Engine, socketio: SocketServer | None,
                 registry: CollectorRegistry, lag_interval: float | None) -> None:
        super().__init__()
        self.engine = engine
        self.socketio = socketio
        self.registry = registry
        #: where the metrics are served: a path on the server's port, a port of their own
        self.path: str | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        protocols = ("3", "4") if engine.allow_eio3 else ("4",)
        kinds = [(t, p) for t in ("polling", "websocket") for p in protocols]
        #: (transport, Engine.IO protocol) -> sessions open now / opened so far
        self.connected: dict[tuple[str, ...], int] = dict.fromkeys(kinds, 0)
        self.connections: dict[tuple[str, ...], int] = dict.fromkeys(kinds, 0)
        #: (reason, transport) -> sessions closed
        self.disconnections: dict[tuple[str, ...], int] = {}
        self.upgrades = 0
        self.refusals: dict[str, int] = dict.fromkeys(_CAUSES, 0)
        self.connect_refusals: dict[str, int] = dict.fromkeys(_CONNECT_REFUSALS, 0)
        self.fanout = Buckets(FANOUT_BUCKETS)
        self.lag = Buckets(LAG_BUCKETS)
        self.lag_interval = lag_interval
        self._lag_loop: asyncio.AbstractEventLoop | None = None
        self._lag_due = 0.0
        self._lag_timer: asyncio.TimerHandle | None = None
        self._port_server: asyncio.Server | None = None

    # -- what the engine reports ----------------------------------------------------------------

    def session_opened(self, socket: EngineSocket, transport: str) -> None:
        key = (transport, str(socket.engine_protocol))
        self.connected[key] = self.connected.get(key, 0) + 1
        self.connections[key] = self.connections.get(key, 0) + 1
        if self._lag_timer is None:  # a server run by no binding (in-process, in tests)
            self.start_lag_timer()

    def session_upgraded(self, socket: EngineSocket) -> None:
        protocol = str(socket.engine_protocol)
        self.connected[("polling", protocol)] -= 1
        key = ("websocket", protocol)
        self.connected[key] = self.connected.get(key, 0) + 1
        self.upgrades += 1

    def session_closed(self, socket: EngineSocket, reason: str) -> None:
        transport = socket.transport
        self.connected[(transport, str(socket.engine_protocol))] -= 1
        key = (reason, transport)
        self.disconnections[key] = self.disconnections.get(key, 0) + 1

    def request_refused(self, cause: str) -> None:
        self.refusals[cause] = self.refusals.get(cause, 0) + 1

    # -- what the Socket.IO layer reports -------------------------------------------------------

    def broadcast(self, recipients: int, prepared: Prepared | None) -> None:
        self.fanout.observe(recipients)
        if prepared is not None:
            self.packets_out += recipients * len(prepared.packets)
            self.bytes_out += recipients * prepared_bytes(prepared)

    def connect_refused(self, reason: str) -> None:
        self.connect_refusals[reason] = self.connect_refusals.get(reason, 0) + 1

    # -- event-loop lag -------------------------------------------------------------------------

    def start_lag_timer(self) -> None:
        """Sample the lag of the running event loop every ``lag_interval`` seconds: how late
        a timer fires is how long callbacks waited for their turn."""
        if self.lag_interval is None or self._lag_timer is not None:
            return
        loop = self._lag_loop = asyncio.get_running_loop()
        self._lag_due = loop.time() + self.lag_interval
        self._lag_timer = loop.call_at(self._lag_due, self._lag_tick)

    def stop_lag_timer(self) -> None:
        if self._lag_timer is not None:
            self._lag_timer.cancel()
            self._lag_timer = None

    def _lag_tick(self) -> None:
        loop = self._lag_loop
        assert loop is not None and self.lag_interval is not None
        now = loop.time()
        self.lag.observe(max(0.0, now - self._lag_due))
        self._lag_due = now + self.lag_interval
        self._lag_timer = loop.call_at(self._lag_due, self._lag_tick)

    # -- the collector --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The metric families, built from the counts as they are now."""
        connected = GaugeMetricFamily(
            "sockjet_connected_clients",
            "Engine.IO sessions open now, by transport and Engine.IO protocol",
            labels=["transport", "protocol"])
        for (transport, protocol), value in sorted(dict(self.connected).items()):
            connected.add_metric([transport, protocol], value)
        yield connected
        yield _counter("sockjet_connections",
                       "Engine.IO sessions opened, by transport at the handshake and protocol",
                       ["transport", "protocol"], self.connections)
        yield _counter("sockjet_disconnections",
                       "Engine.IO sessions closed, by close reason and transport",
                       ["reason", "transport"], self.disconnections)
        upgrades = CounterMetricFamily("sockjet_upgrades",
                                       "Sessions upgraded from polling to WebSocket")
        upgrades.add_metric([], self.upgrades)
        yield upgrades
        yield _counter("sockjet_requests_refused",
                       "HTTP requests and WebSocket handshakes refused by the engine, by cause",
                       ["cause"], {(cause,): n for cause, n in dict(self.refusals).items()})
        packets = CounterMetricFamily(
            "sockjet_packets", "Engine.IO packets received from clients (in) and queued for "
            "them (out)", labels=["direction"])
        packets.add_metric(["in"], self.packets_in)
        packets.add_metric(["out"], self.packets_out)
        yield packets
        transferred = CounterMetricFamily(
            "sockjet_bytes", "Bytes of the Engine.IO packets received from and sent to clients "
            "(type and data, UTF-8 for text)",
            labels=["direction"])
        transferred.add_metric(["in"], self.bytes_in)
        transferred.add_metric(["out"], self.bytes_out)
        yield transferred
        yield self.lag.family("sockjet_event_loop_lag_seconds",
                              "How late the event loop ran a timer, sampled periodically")
        if self.socketio is None:
            return
        sockets = GaugeMetricFamily("sockjet_sockets",
                                    "Socket.IO sockets connected now, by namespace",
                                    labels=["namespace"])
        for name, nsp in sorted(self.socketio.namespaces.items()):
            sockets.add_metric([name], len(nsp.sockets))
        yield sockets
        yield _counter("sockjet_connect_errors",
                       "Socket.IO CONNECT requests answered with CONNECT_ERROR, by reason",
                       ["reason"], {(r,): n for r, n in dict(self.connect_refusals).items()})
        yield self.fanout.family("sockjet_broadcast_recipients",
                                 "Sockets of this server each broadcast reached")

    def describe(self) -> list[Metric]:
        """The families this collector makes (the registry checks that no other one makes them)."""
        return list(self.collect())

    # -- serving --------------------------------------------------------------------------------

    async def serve_route(self, request: HTTPRequest) -> Response:
        """The metrics as an endpoint of the server's own port (``Engine.routes``)."""
        if request.method not in ("GET", "HEAD"):
            return _BAD_METHOD
        return exposition(self.registry, request.headers.get("accept"),
                          request.headers.get("accept-encoding"))

    async def startup(self) -> None:
        """The server starts serving (an engine startup hook): the lag timer, the metrics
        port. In a worker process of ``workers=N``, the port is ``port`` + the worker's index,
        and metrics are not served on the shared port (each worker has its own)."""
        self.start_lag_timer()
        worker = self.engine.worker
        if worker is not None and self.path is not None and \
                self.engine.routes.get(self.path) == self.serve_route:
            del self.engine.routes[self.path]
            if worker == 0:
                log.warning("with worker processes, metrics are not served at %s on the shared "
                            "port (each worker has its own): serve them with a metrics port "
                            "(worker i on port + i)", self.path)
        if self.port is not None and self._port_server is None:
            port = self.port + (worker or 0)
            try:
                self._port_server = await asyncio.start_server(
                    self._serve_client, self.host, port, limit=_MAX_HEAD)
            except BaseException:  # the port is taken: nothing of this start stays running
                self.stop_lag_timer()
                raise
            log.info("metrics on http://%s:%s/metrics", self.host, port)

    async def shutdown(self) -> None:
        self.stop_lag_timer()
        server, self._port_server = self._port_server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        """One connection to the metrics port: one request (``/metrics`` or ``/``), one answer,
        then the connection closes."""
        try:
            async with asyncio.timeout(_CLIENT_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                response, method = self._answer(head)
                writer.write(render(response, keep_alive=False, head_only=method == "HEAD"))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[Response, str]:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if path not in ("/metrics", "/"):
            return _NOT_FOUND, method
        if method not in ("GET", "HEAD"):
            return _BAD_METHOD, method
        return exposition(self.registry, headers.get("accept"),
                          headers.get("accept-encoding")), method


def _counter(name: str, documentation: str, labels: list[str],
             values: Mapping[tuple[str, ...], int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(dict(values).items()):
        family.add_metric(list(key), value)
    return family


def exposition(registry: CollectorRegistry, accept: str | None,
               accept_encoding: str | None) -> Response:
    """The registry in the format the scraper asked for (``Accept``: Prometheus text or
    OpenMetrics), gzipped when it accepts that."""
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(registry)
    headers = [("content-type", content_type)]
    if accept_encoding and "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=6)
        headers.append(("content-encoding", "gzip"))
    return Response(200, headers, body)


def _engine_and_server(server: Any) -> tuple[Engine, SocketServer | None]:
    engine = getattr(server, "engine", None)
    if not isinstance(engine, Engine):
        raise TypeError(f"enable_metrics needs a sockjet server (sockjet.Server or "
                        f"sockjet.EngineServer), got {server!r}")
    if isinstance(server, SocketServer):
        return engine, server
    inner = getattr(server, "server", None)  # the ASGI app of a server
    return engine, inner if isinstance(inner, SocketServer) else None


def enable_metrics(server: Any, registry: CollectorRegistry | None = None, *,
                   path: str | None = None, port: int | None = None, host: str = "127.0.0.1",
                   lag_interval: float | None = DEFAULT_LAG_INTERVAL) -> CollectorRegistry:
    """Collect Prometheus metrics for ``server`` (a ``sockjet.Server``, a
    ``sockjet.EngineServer`` or the ASGI app of one) into ``registry`` (default:
    ``prometheus_client.REGISTRY``, with the process metrics); returns the registry.

    ``path``: also serve them on the server's own port at this path (``"/metrics"``), on both
    bindings. ``port``: serve them on a port of their own on ``host`` (started with the server;
    with ``workers=N``, worker i serves on ``port + i``). ``lag_interval``: seconds between two
    samples of the event loop's lag (``None``: not measured). Call it before the server
    starts; calling it again for the same server adds ``path``/``port`` to the same metrics.
    """
    engine, socketio = _engine_and_server(server)
    metrics = engine.observer
    if isinstance(metrics, Metrics):
        if registry is not None and registry is not metrics.registry:
            raise ValueError("metrics are enabled for this server already, with another "
                             "registry")
    elif metrics is not None:
        raise ValueError(f"the server's engine has an observer already: {metrics!r}")
    else:
        if lag_interval is not None and (not isinstance(lag_interval, int | float)
                                         or lag_interval <= 0):
            raise ValueError("lag_interval must be a positive number of seconds or None")
        registry = REGISTRY if registry is None else registry
        metrics = Metrics(engine, socketio, registry, lag_interval)
        try:
            registry.register(metrics)
        except ValueError:  # names already registered
            raise ValueError(
                "this registry has sockjet metrics already (another server's): give each "
                "server its own, enable_metrics(io, registry=prometheus_client."
                "CollectorRegistry())") from None
        engine.observer = metrics
        if socketio is not None:
            socketio.observe(metrics)
        engine.add_serving_hooks(metrics.startup, metrics.shutdown)
    if path is not None:
        if not path.startswith("/"):
            raise ValueError("path must start with '/', e.g. '/metrics'")
        metrics.path = path
        engine.routes[path] = metrics.serve_route
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be a TCP port number, got {port!r}")
        metrics.port, metrics.host = port, host
    return metrics.registry


def metrics_app(registry: CollectorRegistry | None = None) -> MetricsApp:
    """An ASGI app that answers every HTTP request with the metrics of ``registry`` (default:
    ``prometheus_client.REGISTRY``), to route in another application, e.g. Starlette's
    ``Route("/metrics", sockjet.metrics_app(registry))``."""
    return MetricsApp(REGISTRY if registry is None else registry)


class MetricsApp:
    """The ASGI app of :func:`metrics_app` (an object, not a function, so that routers such as
    Starlette's treat it as an ASGI app)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        response = _BAD_METHOD if method not in ("GET", "HEAD") else exposition(
            self.registry, headers.get("accept"), headers.get("accept-encoding"))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in (*response.headers,
                                             ("content-length", str(len(response.body))))]})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else response.body})
