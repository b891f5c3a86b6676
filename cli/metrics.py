"""`avtorlm metrics-serve`: the Prometheus endpoint, on a port of its own, read at every scrape."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

from cli.context import Context
from cli.output import say

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9480
REDIS_SECONDS = 3.0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `metrics-serve` command."""
    serve = commands.add_parser(
        "metrics-serve",
        parents=[common],
        help="serve Prometheus metrics at /metrics on a port of their own (Ctrl-C stops it)",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    serve.set_defaults(run=serve_metrics)


def serve_metrics(arguments: argparse.Namespace, context: Context) -> int:
    """Serve the metrics until Ctrl-C or SIGTERM."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import redis
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from adapters.metrics import InstallationCollector, LedgerSource
    from domain.seat_policy import OverLimitPolicy

    settings = context.settings
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=REDIS_SECONDS,
        socket_timeout=REDIS_SECONDS,
    )
    ledger = LedgerSource(
        context.store(), context.now, settings.grace_period, OverLimitPolicy(settings.over_limit_policy)
    )
    # A registry of its own: only the installation's metrics, none of this process's.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstallationCollector(ledger, client))

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes come every few seconds: they are not logged."""

    server = make_server(arguments.host, arguments.port, make_wsgi_app(registry), handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, _stop)
    say(f"Serving Prometheus metrics at http://{arguments.host}:{server.server_port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        client.close()
    return 0


def _stop(number: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)
