"""Side-by-side benchmarks: sockjet, python-socketio and Node socket.io under the same load.

    pip install -e ".[bench]" && npm ci --prefix bench/node
    python bench/run.py                      # every scenario, 3 rounds
    python bench/run.py --scenarios b,c1 --rounds 5 --servers sockjet,node
    python bench/run.py --servers sockjet-redis,node-redis --scenarios r1 --rounds 3

Each run starts the server under test and a Node load generator (bench/node/loadgen.js), waits
until the load is set up, measures CPU (server, generator, everything else) and memory over the
measured phase only, and stops both. A server on Redis (a :class:`Deployment`) is several server
processes and a redis-server of their own, all started for each run and stopped after it; its
server CPU is the sum over its server processes, Redis's CPU is measured apart. Rounds alternate
the order of the servers; the table shows medians and ratios. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).parent
PY = sys.executable


@dataclass(frozen=True)
class Deployment:
    """One server made of ``servers`` processes of ``command`` (PORT and REDIS_URL replaced:
    each its own port, all the same Redis), on a redis-server started for the run. Only the
    scenarios written for that many servers (``"servers"`` in their config) run on it."""

    command: list[str] = field(default_factory=list)
    servers: int = 2


# name -> command (PORT is replaced), or a Deployment of several processes on Redis
SERVERS: dict[str, list[str] | Deployment] = {
    "sockjet": [PY, str(HERE / "servers" / "sockjet_app.py"), "PORT"],
    "python-socketio": [PY, "-m", "uvicorn", "psio_app:app", "--app-dir", str(HERE / "servers"),
                        "--host", "127.0.0.1", "--port", "PORT", "--loop", "uvloop",
                        "--http", "httptools", "--log-level", "warning"],
    "python-socketio-nodeflate": [PY, "-m", "uvicorn", "psio_app:app", "--app-dir",
                                  str(HERE / "servers"), "--host", "127.0.0.1", "--port", "PORT",
                                  "--loop", "uvloop", "--http", "httptools", "--log-level",
                                  "warning", "--ws-per-message-deflate", "false"],
    "node": ["node", str(HERE / "node" / "server.js"), "PORT"],
    # several processes on one port (scenarios b and c1 are the ones the workers are measured by)
    "sockjet-w2": [PY, str(HERE / "servers" / "sockjet_app.py"), "PORT", "2"],
    # connection state recovery on (offsets on every broadcast, the packet log)
    "sockjet-recovery": [PY, str(HERE / "servers" / "sockjet_app.py"), "PORT", "--recovery"],
    # Prometheus metrics on (sockjet.enable_metrics: counters, fan-out, event-loop lag timer)
    "sockjet-metrics": [PY, str(HERE / "servers" / "sockjet_app.py"), "PORT", "--metrics"],
    # instrumented for the Admin UI (production mode, no UI connected)
    "sockjet-admin": [PY, str(HERE / "servers" / "sockjet_app.py"), "PORT", "--admin"],
    "node-cluster-w2": ["node", str(HERE / "node" / "cluster_server.js"), "PORT", "2"],
    # two servers on one Redis, each with its own port (scenario r1)
    "sockjet-redis": Deployment([PY, str(HERE / "servers" / "sockjet_app.py"), "PORT",
                                 "--redis", "REDIS_URL"]),
    "node-redis": Deployment(["node", str(HERE / "node" / "redis_server.js"), "PORT",
                              "REDIS_URL"]),
}
#: extra environment per server (a baseline revision of sockjet runs from its own source tree)
ENVS: dict[str, dict[str, str]] = {}

MIXED_KINDS = [["sio4", "websocket"], ["sio4", "polling"], ["sio2", "websocket"],
               ["sio2", "polling"]]

# key -> (description, generator config, unit of one operation); "servers" in a config (not
# passed to the generator) is how many server processes on Redis the scenario needs (default 1)
SCENARIOS: dict[str, tuple[str, dict[str, Any], str]] = {
    "a1": ("connection storm, 1,000 WebSocket clients",
           {"scenario": "storm", "clients": 1000, "concurrency": 100}, "connection"),
    "a2": ("connection storm, 5,000 WebSocket clients",
           {"scenario": "storm", "clients": 5000, "concurrency": 100}, "connection"),
    "b": ("echo with ack, 100 WebSocket clients, 10 s",
          {"scenario": "echo", "clients": 100, "duration": 10}, "ack"),
    "c1": ("broadcast to 1,000 WebSocket clients, max throughput",
           {"scenario": "fanout", "clients": 1000, "count": 300}, "delivered message"),
    "c2": ("broadcast to 1,000 WebSocket clients at 10k messages/s",
           {"scenario": "fanout", "clients": 1000, "count": 100, "rate": 10},
           "delivered message"),
    "d": ("broadcast to 10,000 WebSocket clients",
          {"scenario": "fanout", "clients": 10000, "count": 30}, "delivered message"),
    "e": ("polling-only echo with ack, 200 keep-alive clients, 10 s",
          {"scenario": "echo", "clients": 200, "duration": 10, "transport": "polling"}, "ack"),
    "f": ("binary broadcast to 200 mixed clients (v2+v4, polling+WebSocket)",
          {"scenario": "mixed", "clients": 200, "count": 50, "kinds": MIXED_KINDS},
          "delivered message"),
    # clients alternate between the two servers; the broadcasts are asked of the first one, so
    # half of the deliveries cross Redis
    "r1": ("broadcast through Redis to 1,000 WebSocket clients on two servers, max throughput",
           {"scenario": "fanout", "clients": 1000, "count": 300, "servers": 2},
           "delivered message"),
}


@dataclass
class Run:
    server: str
    scenario: str
    ok: bool
    error: str = ""
    ops: float = 0
    per_second: float = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu_s: float = 0
    generator_cpu_s: float = 0
    other_cpu_s: float = 0
    wall_s: float = 0
    rss_per_connection_kb: float | None = None
    #: several server processes: the CPU seconds of each (the first one is asked to broadcast)
    server_cpu_parts: list[float] | None = None
    #: on Redis: the redis-server's CPU seconds (in none of the other figures)
    redis_cpu_s: float | None = None
    delivered_per_server: list[int] | None = None

    @property
    def cpu_us_per_op(self) -> float | None:
        return self.server_cpu_s / self.ops * 1e6 if self.ops else None

    @property
    def redis_cpu_us_per_op(self) -> float | None:
        if self.redis_cpu_s is None or not self.ops:
            return None
        return self.redis_cpu_s / self.ops * 1e6


def server_count(server: str) -> int:
    """How many server processes on Redis ``server`` is (1: a plain server, no Redis)."""
    spec = SERVERS[server]
    return spec.servers if isinstance(spec, Deployment) else 1


def scenario_servers(key: str) -> int:
    return int(SCENARIOS[key][1].get("servers", 1))


def fits(server: str, key: str) -> bool:
    """Whether scenario ``key`` is written for a server like ``server`` (one process, or a
    deployment of as many servers on Redis as the scenario spreads its clients over)."""
    return server_count(server) == scenario_servers(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    total = times.user + times.system
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = child.cpu_times()
            total += t.user + t.system
    return total


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(
        t, "softirq", 0)


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start listening")


@contextlib.contextmanager
def started(cmd: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` in its own process group, killed with everything it started (worker processes)."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def redis_command(port: int, *args: str) -> Any:
    """One command to the Redis on 127.0.0.1:``port`` over a fresh connection: its reply
    (integers, strings, lists of them); an error reply raises RuntimeError."""
    parts = [a.encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection(("127.0.0.1", port), 2) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")

        def reply() -> Any:
            line = reader.readline()
            kind, rest = line[:1], line[1:].rstrip(b"\r\n")
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                raise RuntimeError(f"Redis: {rest.decode()}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                return None if size < 0 else reader.read(size + 2)[:-2].decode()
            if kind == b"*":
                return [reply() for _ in range(max(0, int(rest)))]
            raise RuntimeError(f"Redis: unexpected reply {line!r}")

        return reply()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server on a free 127.0.0.1 port, nothing persisted, in its own process group
    (killed on the way out); its log in ``workdir``."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian/Ubuntu: apt-get install "
                           "redis-server)")
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
    with (workdir / "redis.log").open("wb") as log, \
            started(cmd, stdout=log, stderr=subprocess.STDOUT) as proc:
        wait_listening(port, proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_command(port, "PING") == "PONG":
                    break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield port, proc


def redis_cpu_seconds(port: int) -> float:
    """The redis-server's own CPU time (``INFO cpu``: getrusage, all its threads), in
    microseconds' resolution where /proc counts 10 ms clock ticks: a few hundred PUBLISH cost
    less than one tick."""
    info = redis_command(port, "INFO", "cpu")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])


def wait_subscribed(port: int, servers: int, procs: list[subprocess.Popen[bytes]],
                    timeout: float = 20) -> None:
    """Wait until Redis counts the subscriptions of all ``servers`` (each server's adapter of
    ``/`` subscribes to its request channel and to the pattern of its broadcasts), so that no
    broadcast of the measured phase can miss a server."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
        _, channels = redis_command(port, "PUBSUB", "NUMSUB", "socket.io-request#/#")
        patterns = redis_command(port, "PUBSUB", "NUMPAT")
        if int(channels) >= servers and int(patterns) >= servers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the servers did not subscribe on Redis ({channels} of "
                               f"{servers} request channels, {patterns} patterns)")
        time.sleep(0.05)


@dataclass
class Deployed:
    """What :func:`deploy` started: the server processes (with their ports) and Redis."""

    ports: list[int]
    procs: list[psutil.Process]
    redis_port: int | None = None

    def server_cpu(self) -> list[float]:
        return [cpu_seconds(proc) for proc in self.procs]

    def rss(self) -> int:
        return sum(proc.memory_info().rss for proc in self.procs)


@contextlib.contextmanager
def deploy(server: str) -> Iterator[Deployed]:
    """Start ``server`` (its Redis first, for a :class:`Deployment`), wait until it serves, and
    stop everything on the way out (servers first, then Redis)."""
    spec = SERVERS[server]
    env = {**os.environ, **ENVS.get(server, {})}
    with contextlib.ExitStack() as stack:
        if not isinstance(spec, Deployment):
            port = free_port()
            cmd = [part.replace("PORT", str(port)) for part in spec]
            srv = stack.enter_context(started(cmd, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, env=env))
            wait_listening(port, srv)
            time.sleep(0.3)
            yield Deployed([port], [psutil.Process(srv.pid)])
            return
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="sockjet-bench-redis-")))
        redis_port, _ = stack.enter_context(redis_server(workdir))
        url = f"redis://127.0.0.1:{redis_port}"
        ports: list[int] = []
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        for index in range(spec.servers):
            port = free_port()
            cmd = [part.replace("REDIS_URL", url).replace("PORT", str(port))
                   for part in spec.command]
            logs.append(workdir / f"server{index}.log")
            log = stack.enter_context(logs[-1].open("wb"))
            procs.append(stack.enter_context(started(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                     env=env)))
            ports.append(port)
        try:
            for port, proc in zip(ports, procs, strict=True):
                wait_listening(port, proc)
            wait_subscribed(redis_port, spec.servers, procs)
        except RuntimeError as exc:
            tails = [f"{path.name}: {path.read_text(errors='replace')[-300:].strip()}"
                     for path in logs if path.stat().st_size]
            raise RuntimeError("; ".join([str(exc), *tails])) from None
        time.sleep(0.3)
        yield Deployed(ports, [psutil.Process(proc.pid) for proc in procs], redis_port)


def read_event(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({proc.poll()})")
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if event.get("event") == "error":
                raise RuntimeError(event["error"].splitlines()[0])
            return event  # type: ignore[no-any-return]
    raise RuntimeError("load generator timed out")


def run_one(server: str, key: str) -> Run:
    config = {k: v for k, v in SCENARIOS[key][1].items() if k != "servers"}
    with deploy(server) as dep:
        rss_before = dep.rss()
        urls = [f"http://127.0.0.1:{port}" for port in dep.ports]
        config.update({"url": urls[0], "urls": urls} if len(urls) > 1 else {"url": urls[0]})
        gen_cmd = ["node", str(HERE / "node" / "loadgen.js"), json.dumps(config)]
        with started(gen_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL) as gen:
            assert gen.stdin is not None
            gproc = psutil.Process(gen.pid)

            def redis_cpu() -> float:
                return redis_cpu_seconds(dep.redis_port) if dep.redis_port else 0.0

            try:
                read_event(gen, 300)  # ready: the load is set up
                s0, r0, g0, b0, t0 = dep.server_cpu(), redis_cpu(), cpu_seconds(gproc), \
                    busy_seconds(), time.monotonic()
                gen.stdin.write(b"go\n")
                gen.stdin.flush()
                done = read_event(gen, 600)
                s1, r1, g1, b1, t1 = dep.server_cpu(), redis_cpu(), cpu_seconds(gproc), \
                    busy_seconds(), time.monotonic()
                run = Run(server, key, True)
                run.ops = done.get("acks") or done.get("delivered") or done.get("connected") or 0
                run.per_second = done.get("per_second", 0)
                run.p50_ms, run.p99_ms = done.get("p50_ms"), done.get("p99_ms")
                parts = [after - before for before, after in zip(s0, s1, strict=True)]
                run.server_cpu_s, run.generator_cpu_s = sum(parts), g1 - g0
                if len(parts) > 1:
                    run.server_cpu_parts = parts
                if dep.redis_port:
                    run.redis_cpu_s = r1 - r0
                run.other_cpu_s = max(0.0, (b1 - b0) - run.server_cpu_s - run.generator_cpu_s
                                      - (r1 - r0))
                run.wall_s = t1 - t0
                run.delivered_per_server = done.get("delivered_per_server")
                if done.get("expected") and done.get("delivered", 0) < done["expected"]:
                    run.error = f"delivered {done['delivered']} of {done['expected']}"
                    if run.delivered_per_server:
                        run.error += " (per server: " + ", ".join(
                            map(str, run.delivered_per_server)) + ")"
                if config["scenario"] == "storm":
                    time.sleep(1.0)  # idle connections
                    rss = dep.rss()
                    run.rss_per_connection_kb = (rss - rss_before) / max(run.ops, 1) / 1024
                gen.stdin.write(b"quit\n")
                gen.stdin.flush()
                return run
            except (RuntimeError, BrokenPipeError) as exc:
                return Run(server, key, False, error=str(exc))


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def reference(servers: list[str]) -> str | None:
    """The server the ratios are about: sockjet, or the first sockjet variant of the table
    (sockjet-redis in r1)."""
    if "sockjet" in servers:
        return "sockjet"
    return next((s for s in servers if s.startswith("sockjet") and "@" not in s), None)


def report(runs: list[Run], servers: list[str], keys: list[str],
           notes: list[str] | None = None) -> str:
    lines = [f"# sockjet benchmarks — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python "
             f"{platform.python_version()}, Node {node_version()}", ""]
    if notes:
        lines += [*notes, ""]
    for key in keys:
        title, _, unit = SCENARIOS[key]
        table = [server for server in servers if fits(server, key)]
        on_redis = scenario_servers(key) > 1
        lines += [f"## {key}: {title}", "",
                  f"| server | ops/s | p50 ms | p99 ms | server CPU µs per {unit} | "
                  + ("Redis CPU ms | server CPU s, A / B | " if on_redis else "")
                  + "memory KiB/conn | generator CPU s | other CPU s | failed runs |",
                  "|---|---|---|---|---|" + ("---|---|" if on_redis else "")
                  + "---|---|---|---|"]
        medians: dict[str, float | None] = {}
        redis_medians: dict[str, float | None] = {}
        throughput: dict[str, float | None] = {}
        for server in table:
            mine = [r for r in runs if r.server == server and r.scenario == key]
            good = [r for r in mine if r.ok and not r.error]
            cpu = median([r.cpu_us_per_op for r in good])
            medians[server] = cpu
            redis_medians[server] = median([r.redis_cpu_us_per_op for r in good])
            redis_ms = median([r.redis_cpu_s * 1e3 for r in good if r.redis_cpu_s is not None])
            throughput[server] = median([r.per_second for r in good])
            failed = len(mine) - len(good)
            errors = "; ".join(sorted({r.error for r in mine if r.error}))[:80]
            redis_cells = ""
            if on_redis:
                parts = [r.server_cpu_parts for r in good if r.server_cpu_parts]
                split = " / ".join(fmt(median([p[i] for p in parts]), 2)
                                   for i in range(scenario_servers(key))) if parts else "—"
                redis_cells = f"{fmt(redis_ms, 1)} | {split} | "
            lines.append(
                f"| {server} | {fmt(median([r.per_second for r in good]), 0)} | "
                f"{fmt(median([r.p50_ms for r in good]), 2)} | "
                f"{fmt(median([r.p99_ms for r in good]), 2)} | {fmt(cpu, 2)} | "
                + redis_cells +
                f"{fmt(median([r.rss_per_connection_kb for r in good]), 1)} | "
                f"{fmt(median([r.generator_cpu_s for r in good]), 2)} | "
                f"{fmt(median([r.other_cpu_s for r in good]), 2)} | "
                f"{failed}{' (' + errors + ')' if errors else ''} |")
        ref = reference(table)
        ours = medians.get(ref) if ref else None
        ratios = [f"{ref}/{name} = {ours / value:.2f}" for name, value in medians.items()
                  if name != ref and ours and value]
        if ratios:
            lines += ["", "CPU per operation, ratio: " + ", ".join(ratios)
                      + " (below 1: sockjet uses less)"]
        if on_redis:
            theirs = redis_medians.get(ref) if ref else None
            redis_ratios = [f"{ref}/{name} = {theirs / value:.2f}"
                            for name, value in redis_medians.items()
                            if name != ref and theirs and value]
            lines += ["", "Server CPU is the sum over both server processes (A: asked to "
                      "broadcast, publishes to Redis and delivers to its half of the clients; "
                      "B: delivers what it reads from Redis to the other half). Redis CPU is "
                      "the redis-server's over the phase (its INFO cpu), counted in no other "
                      "column; the same Redis build and settings for every server"
                      + ("; per operation, ratio " + ", ".join(redis_ratios)
                         if redis_ratios else "") + "."]
        scaling = [f"{name} = {many / one:.2f}" for name, one, many in (
            (server.removesuffix("-w2").removesuffix("-cluster"), throughput.get(
                server.removesuffix("-w2").removesuffix("-cluster")), throughput[server])
            for server in table if server.endswith("-w2")) if one and many]
        if scaling:
            lines += ["", "Throughput with 2 worker processes ÷ with 1: " + ", ".join(scaling)]
        lines.append("")
    return "\n".join(lines)


def node_version() -> str:
    node = shutil.which("node")
    if not node:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", help="comma-separated keys (default: every scenario "
                        "written for one of the servers chosen)")
    parser.add_argument("--servers", default="sockjet,python-socketio,"
                        "python-socketio-nodeflate,node")
    parser.add_argument("--out", default=str(HERE / "results" / "latest"))
    parser.add_argument("--baseline", metavar="REV[,REV...]",
                        help="also run sockjet as of these git revisions (before/after in one "
                        "run)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the generator's config of every scenario chosen, for a "
                        "small trial (e.g. --set clients=100 --set count=10); the report says "
                        "so")
    args = parser.parse_args()
    keys = [k for k in (args.scenarios or "").split(",") if k]
    servers = [s for s in args.servers.split(",") if s]
    with contextlib.ExitStack() as stack:
        for position, rev in enumerate(r for r in (args.baseline or "").split(",") if r):
            servers.insert(1 + position, stack.enter_context(baseline_server(rev)))
        measure(args, keys, servers)


@contextlib.contextmanager
def baseline_server(rev: str) -> Iterator[str]:
    """A git worktree of ``rev`` whose ``src`` the benchmark app imports instead of this tree's."""
    repo = HERE.parent
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=repo, check=True,
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sockjet-baseline-") as tmp:
        tree = Path(tmp) / short
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=repo,
                       check=True, capture_output=True)
        name = f"sockjet@{short}"
        SERVERS[name] = SERVERS["sockjet"]
        ENVS[name] = {"PYTHONPATH": str(tree / "src")}
        try:
            yield name
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                           capture_output=True)


def overrides(settings: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` settings (VALUE read as JSON when it is, else as a string)."""
    result: dict[str, Any] = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set {setting!r}: expected KEY=VALUE")
        if name in ("scenario", "servers", "url", "urls"):
            raise SystemExit(f"--set {name}: not a setting a trial may change")
        try:
            result[name] = json.loads(value)
        except json.JSONDecodeError:
            result[name] = value
    return result


def measure(args: argparse.Namespace, keys: list[str], servers: list[str]) -> None:
    for server in servers:
        if server not in SERVERS:
            raise SystemExit(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    if not keys:  # every scenario one of the servers can run
        keys = [key for key in SCENARIOS if any(fits(server, key) for server in servers)]
    for key in keys:
        if key not in SCENARIOS:
            raise SystemExit(f"unknown scenario {key!r}; choose from {', '.join(SCENARIOS)}")
        if not any(fits(server, key) for server in servers):
            raise SystemExit(f"scenario {key} runs on {describe_fit(key)}; none of the servers "
                             f"chosen ({', '.join(servers)}) does")
    for key in keys:
        for server in servers:
            if not fits(server, key):
                print(f"skipped: {key} on {server} (scenario {key} runs on {describe_fit(key)})",
                      flush=True)
    if any(isinstance(SERVERS[server], Deployment) for server in servers) \
            and shutil.which("redis-server") is None:
        raise SystemExit("the servers on Redis need redis-server (Debian/Ubuntu: apt-get install "
                         "redis-server)")
    notes: list[str] = []
    changed = overrides(args.set)
    if changed:
        for key in keys:
            title, config, unit = SCENARIOS[key]
            SCENARIOS[key] = (title, {**config, **changed}, unit)
        notes.append("**Trial settings, not the scenarios as described:** "
                     + ", ".join(f"{name}={json.dumps(value)}" for name, value in changed.items())
                     + " (`--set`).")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10k clients need descriptors
    runs: list[Run] = []
    for round_index in range(args.rounds):
        for key in keys:
            # rounds alternate the order of the servers this scenario runs on
            mine = [server for server in servers if fits(server, key)]
            shift = round_index % len(mine)
            for server in mine[shift:] + mine[:shift]:
                run = run_one(server, key)
                runs.append(run)
                print(f"round {round_index + 1} {key:>3} {server:<26} "
                      + (f"{run.per_second:>10,.0f} ops/s  {fmt(run.cpu_us_per_op, 2):>8} µs/op"
                         if run.ok else f"failed: {run.error}")
                      + (f"  (Redis {run.redis_cpu_s * 1e3:.1f} ms)"
                         if run.redis_cpu_s is not None else ""), flush=True)
    text = report(runs, servers, keys, notes)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps([r.__dict__ for r in runs], indent=1))


def describe_fit(key: str) -> str:
    """Which servers scenario ``key`` runs on, in words."""
    count = scenario_servers(key)
    names = ", ".join(server for server in SERVERS if server_count(server) == count)
    if count == 1:
        return f"one server ({names}, ...)"
    return f"{count} servers on one Redis ({names})"


if __name__ == "__main__":
    main()
