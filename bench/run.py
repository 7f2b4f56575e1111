"""Side-by-side benchmarks: sockjet, python-socketio and Node socket.io under the same load.

    pip install -e ".[bench]" && npm ci --prefix bench/node
    python bench/run.py                      # every scenario, 3 rounds
    python bench/run.py --scenarios b,c1 --rounds 5 --servers sockjet,node

Each run starts the server under test and a Node load generator (bench/node/loadgen.js), waits
until the load is set up, measures CPU (server, generator, everything else) and memory over the
measured phase only, and stops both. Rounds alternate the order of the servers; the table shows
medians and ratios. All traffic stays on 127.0.0.1.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).parent
PY = sys.executable

# name -> command (PORT is replaced)
SERVERS: dict[str, list[str]] = {
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
    "node-cluster-w2": ["node", str(HERE / "node" / "cluster_server.js"), "PORT", "2"],
}
#: extra environment per server (a baseline revision of sockjet runs from its own source tree)
ENVS: dict[str, dict[str, str]] = {}

MIXED_KINDS = [["sio4", "websocket"], ["sio4", "polling"], ["sio2", "websocket"],
               ["sio2", "polling"]]

# key -> (description, generator config, unit of one operation)
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

    @property
    def cpu_us_per_op(self) -> float | None:
        return self.server_cpu_s / self.ops * 1e6 if self.ops else None


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
    _, config, _ = SCENARIOS[key]
    port = free_port()
    cmd = [part.replace("PORT", str(port)) for part in SERVERS[server]]
    env = {**os.environ, **ENVS.get(server, {})}
    with started(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) as srv:
        wait_listening(port, srv)
        time.sleep(0.3)
        sproc = psutil.Process(srv.pid)
        rss_before = sproc.memory_info().rss
        gen_cmd = ["node", str(HERE / "node" / "loadgen.js"),
                   json.dumps({**config, "url": f"http://127.0.0.1:{port}"})]
        with started(gen_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL) as gen:
            assert gen.stdin is not None
            gproc = psutil.Process(gen.pid)
            try:
                read_event(gen, 300)  # ready: the load is set up
                s0, g0, b0, t0 = cpu_seconds(sproc), cpu_seconds(gproc), busy_seconds(), \
                    time.monotonic()
                gen.stdin.write(b"go\n")
                gen.stdin.flush()
                done = read_event(gen, 600)
                s1, g1, b1, t1 = cpu_seconds(sproc), cpu_seconds(gproc), busy_seconds(), \
                    time.monotonic()
                run = Run(server, key, True)
                run.ops = done.get("acks") or done.get("delivered") or done.get("connected") or 0
                run.per_second = done.get("per_second", 0)
                run.p50_ms, run.p99_ms = done.get("p50_ms"), done.get("p99_ms")
                run.server_cpu_s, run.generator_cpu_s = s1 - s0, g1 - g0
                run.other_cpu_s = max(0.0, (b1 - b0) - run.server_cpu_s - run.generator_cpu_s)
                run.wall_s = t1 - t0
                if done.get("expected") and done.get("delivered", 0) < done["expected"]:
                    run.error = f"delivered {done['delivered']} of {done['expected']}"
                if config["scenario"] == "storm":
                    time.sleep(1.0)  # idle connections
                    rss = sproc.memory_info().rss
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


def report(runs: list[Run], servers: list[str], keys: list[str]) -> str:
    lines = [f"# sockjet benchmarks — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python "
             f"{platform.python_version()}, Node {node_version()}", ""]
    for key in keys:
        title, _, unit = SCENARIOS[key]
        lines += [f"## {key}: {title}", "",
                  f"| server | ops/s | p50 ms | p99 ms | server CPU µs per {unit} | "
                  "memory KiB/conn | generator CPU s | other CPU s | failed runs |",
                  "|---|---|---|---|---|---|---|---|---|"]
        medians: dict[str, float | None] = {}
        throughput: dict[str, float | None] = {}
        for server in servers:
            mine = [r for r in runs if r.server == server and r.scenario == key]
            good = [r for r in mine if r.ok and not r.error]
            cpu = median([r.cpu_us_per_op for r in good])
            medians[server] = cpu
            throughput[server] = median([r.per_second for r in good])
            failed = len(mine) - len(good)
            errors = "; ".join(sorted({r.error for r in mine if r.error}))[:80]
            lines.append(
                f"| {server} | {fmt(median([r.per_second for r in good]), 0)} | "
                f"{fmt(median([r.p50_ms for r in good]), 2)} | "
                f"{fmt(median([r.p99_ms for r in good]), 2)} | {fmt(cpu, 2)} | "
                f"{fmt(median([r.rss_per_connection_kb for r in good]), 1)} | "
                f"{fmt(median([r.generator_cpu_s for r in good]), 2)} | "
                f"{fmt(median([r.other_cpu_s for r in good]), 2)} | "
                f"{failed}{' (' + errors + ')' if errors else ''} |")
        ours = medians.get("sockjet")
        ratios = [f"sockjet/{name} = {ours / value:.2f}" for name, value in medians.items()
                  if name != "sockjet" and ours and value]
        if ratios:
            lines += ["", "CPU per operation, ratio: " + ", ".join(ratios)
                      + " (below 1: sockjet uses less)"]
        scaling = [f"{name} = {many / one:.2f}" for name, one, many in (
            (server.removesuffix("-w2").removesuffix("-cluster"), throughput.get(
                server.removesuffix("-w2").removesuffix("-cluster")), throughput[server])
            for server in servers if server.endswith("-w2")) if one and many]
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
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default="sockjet,python-socketio,"
                        "python-socketio-nodeflate,node")
    parser.add_argument("--out", default=str(HERE / "results" / "latest"))
    parser.add_argument("--baseline", metavar="REV[,REV...]",
                        help="also run sockjet as of these git revisions (before/after in one "
                        "run)")
    args = parser.parse_args()
    keys = [k for k in args.scenarios.split(",") if k]
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


def measure(args: argparse.Namespace, keys: list[str], servers: list[str]) -> None:
    for key in keys:
        if key not in SCENARIOS:
            raise SystemExit(f"unknown scenario {key!r}; choose from {', '.join(SCENARIOS)}")
    for server in servers:
        if server not in SERVERS:
            raise SystemExit(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10k clients need descriptors
    runs: list[Run] = []
    for round_index in range(args.rounds):
        order = servers[round_index % len(servers):] + servers[:round_index % len(servers)]
        for key in keys:
            for server in order:
                run = run_one(server, key)
                runs.append(run)
                print(f"round {round_index + 1} {key:>3} {server:<26} "
                      + (f"{run.per_second:>10,.0f} ops/s  {fmt(run.cpu_us_per_op, 2):>8} µs/op"
                         if run.ok else f"failed: {run.error}"), flush=True)
    text = report(runs, servers, keys)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps([r.__dict__ for r in runs], indent=1))


if __name__ == "__main__":
    main()
