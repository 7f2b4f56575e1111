"""``sockjet`` command line: ``run`` a server, start the ``demo``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from ..bindings import process, runner
from ..exceptions import AdapterError

#: environment variable giving ``sockjet demo --client-js`` a default
CLIENT_JS_ENV = "SOCKJET_DEMO_CLIENT_JS"


def load(spec: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"sockjet: expected MODULE:ATTRIBUTE, got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"sockjet: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"sockjet: {module_name!r} has no attribute {attr!r}") from None
    return obj


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of processes, 0 or 'auto'") from None
    if count < 0:
        raise argparse.ArgumentTypeError("a number of processes, 0 or 'auto'")
    return count


def _add_bind(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="TCP port (default 3000)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug", "trace"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sockjet", description="Socket.IO for Python")
    commands = parser.add_subparsers(dest="command", required=True)

    run_cmd = commands.add_parser("run", help="serve MODULE:ATTRIBUTE (a server or ASGI app)")
    run_cmd.add_argument("target", help="e.g. myapp:io")
    _add_bind(run_cmd)
    run_cmd.add_argument("--runner", choices=["auto", "native", "uvicorn"], default="auto",
                         help="auto (default): the native runner for sockjet servers, uvicorn "
                              "for other ASGI apps")
    run_cmd.add_argument("--workers", type=_workers, default=1, metavar="N",
                         help="worker processes sharing the port (0 or 'auto': one per core); "
                              "any worker serves any client, no sticky sessions needed")
    run_cmd.add_argument("--metrics", action="store_true",
                         help="serve Prometheus metrics at /metrics on the server's port (needs "
                              "pip install 'sockjet[metrics]'; one process only)")
    run_cmd.add_argument("--metrics-port", type=int, default=None, metavar="P",
                         help="serve Prometheus metrics at /metrics on port P of --host (with "
                              "--workers N, worker i on port P+i)")

    demo_cmd = commands.add_parser(
        "demo", help="start the chat demo (in memory): the Socket.IO API on --port and the chat "
                     "page on --page-port, a second origin")
    _add_bind(demo_cmd)
    demo_cmd.add_argument("--page-port", type=int, default=None,
                          help="port of the chat page (default: --port + 1)")
    demo_cmd.add_argument("--client-js", metavar="PATH",
                          help="a socket.io-client browser bundle (e.g. node_modules/socket.io-"
                               "client/dist/socket.io.min.js) the API serves at /socket.io/"
                               "socket.io.js for the page, which otherwise loads it from the "
                               f"socket.io CDN (needs internet access); default: ${CLIENT_JS_ENV}")

    doctor_cmd = commands.add_parser(
        "doctor", help="check, as a browser would, that a page on --origin can use the server")
    doctor_cmd.add_argument("url", help="server URL, e.g. http://localhost:3000")
    doctor_cmd.add_argument("--origin", help="origin of the page, e.g. https://app.example.com")
    doctor_cmd.add_argument("--header", action="append", default=[], metavar="K:V",
                            help="extra request header (extraHeaders), repeatable")
    doctor_cmd.add_argument("--credentials", action="store_true",
                            help="the client uses withCredentials")
    doctor_cmd.add_argument("--eio", type=int, choices=[3, 4], default=4,
                            help="Engine.IO protocol: 3 for socket.io-client 2.x, 4 (default)")
    doctor_cmd.add_argument("--path", default="/socket.io/", help="default /socket.io/")
    doctor_cmd.add_argument("--timeout", type=float, default=5.0, help="seconds per step")
    doctor_cmd.add_argument("--json", action="store_true", help="machine-readable output")

    args = parser.parse_args(argv)
    if args.command == "doctor":
        return _doctor(args)
    client_js = None
    if args.command == "demo":
        source = "--client-js" if args.client_js else f"${CLIENT_JS_ENV}"
        args.client_js = args.client_js or os.environ.get(CLIENT_JS_ENV) or None
        if args.client_js is not None:
            from .demo import read_client_js

            try:
                client_js = read_client_js(args.client_js)
            except ValueError as exc:  # before anything listens: the demo does not start
                print(f"sockjet demo: {source} {exc}", file=sys.stderr)
                return 2
    logging.basicConfig(level=args.log_level.upper() if args.log_level != "trace" else 5,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from .demo import CDN_CLIENT_JS, CLIENT_JS_PATH, create_demo

        page_port = args.page_port if args.page_port is not None else args.port + 1
        try:
            app, sockets = create_demo(args.host, args.port, page_port, client_js)
        except OSError as exc:
            raise SystemExit(f"sockjet: cannot listen on {args.host}: {exc}") from None
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        if client_js is None:
            client = (f"the page loads the Socket.IO client from {CDN_CLIENT_JS} (the browser "
                      "needs internet access; without it, use --client-js PATH)")
        else:
            client = (f"the page loads the Socket.IO client from http://{shown}:{args.port}"
                      f"{CLIENT_JS_PATH} ({args.client_js}, {len(client_js)} bytes)")
        print(f"sockjet chat demo: open http://{shown}:{page_port}/ in a browser\n"
              f"  Socket.IO API on http://{shown}:{args.port}/socket.io/ accepts that page's "
              f"origin (cross-origin); Ctrl+C to stop\n  {client}", flush=True)
        runner.run(app, host=args.host, port=args.port, sockets=sockets,
                   log_level=args.log_level)
        return 0
    target = load(args.target)
    try:
        process.resolve(target)  # a sockjet server or an ASGI application
    except TypeError as exc:
        raise SystemExit(f"sockjet: {exc}") from None
    if args.metrics or args.metrics_port is not None:
        _enable_metrics(target, args)
    try:  # the server object itself: sockjet servers run on the native binding by default
        runner.run(target, host=args.host, port=args.port, runner=args.runner,
                   workers=args.workers, log_level=args.log_level)
    except TypeError as exc:  # e.g. --runner native for a plain ASGI app, workers on uvicorn
        raise SystemExit(f"sockjet: {exc}") from None
    except AdapterError as exc:  # an adapter could not start (Redis unreachable): a line
        raise SystemExit(f"sockjet: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"sockjet: cannot listen on {args.host}:{args.port}: {exc}") from None
    return 0


def _enable_metrics(target: Any, args: argparse.Namespace) -> None:
    if args.metrics and args.workers != 1:
        raise SystemExit("sockjet: --metrics serves the metrics of one process; with --workers "
                         "each worker has its own: use --metrics-port P (worker i serves them "
                         "on port P+i)")
    if args.metrics_port is not None and args.metrics_port == args.port:
        raise SystemExit("sockjet: --metrics-port must differ from --port (use --metrics to "
                         "serve them on the server's port)")
    try:
        from ..metrics import enable_metrics
    except ImportError as exc:
        raise SystemExit(f"sockjet: {exc}") from None
    try:
        enable_metrics(target, path="/metrics" if args.metrics else None,
                       port=args.metrics_port, host=args.host)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"sockjet: {exc}") from None


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, render, to_json

    headers: dict[str, str] = {}
    for item in args.header:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise SystemExit(f"sockjet doctor: --header expects K:V, got {item!r}")
        headers[key.strip()] = value.strip()
    try:
        result = diagnose(args.url, origin=args.origin, headers=headers,
                          credentials=args.credentials, eio=args.eio, path=args.path,
                          timeout=args.timeout)
    except ValueError as exc:
        raise SystemExit(f"sockjet doctor: {exc}") from None
    print(to_json(result) if args.json else render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
