"""`avtorlm serve`: the console and the HTTP API, on uvicorn, working on the store directly."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from adapters.sql.access import SqlAccess
from cli.context import Context
from cli.output import say, warn
from cli.workers import WorkersUnavailable, ask_workers
from config.logs import configure_logging
from config.settings import DEVELOPMENT_MODE_NOTICE
from domain.services.access import list_administrators
from web.console import AskWorkers, Console, WorkersUnreachable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8480
# A refresh on the screen waits this long for the admin worker before saying it is still queued.
REFRESH_WAIT_SECONDS = 60.0

log = logging.getLogger(__name__)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `serve` command."""
    serve = commands.add_parser("serve", help="run the console and the HTTP API (Ctrl-C stops it)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    serve.set_defaults(run=run_console, json=False, show_keys=False)


def run_console(arguments: argparse.Namespace, context: Context) -> int:
    """Serve the console until Ctrl-C or SIGTERM."""
    # The web framework and the server are loaded by this command only: every other one starts faster.
    import uvicorn

    from adapters.passwords import Argon2Passwords
    from web.app import create_app

    if bool(arguments.tls_cert) != bool(arguments.tls_key):
        warn("Give both --tls-cert and --tls-key to serve HTTPS, or neither.")
        return 2
    settings = context.settings
    json_logs = settings.log_format == "json"
    if json_logs:
        configure_logging("console", "json")
    tell, alert = (_log_info, _log_warning) if json_logs else (say, warn)
    store = context.store()
    console = Console(context, SqlAccess(store.engine), Argon2Passwords(), workers(context))
    if settings.development_mode:
        alert(DEVELOPMENT_MODE_NOTICE)
    if not list_administrators(console.access):
        alert(
            "No administrator can sign in yet: create one with "
            "`avtorlm admin add NAME --password-stdin` (the console need not be stopped)."
        )
    scheme = "https" if arguments.tls_cert else "http"
    host = f"[{arguments.host}]" if ":" in arguments.host else arguments.host
    tell(f"The Avtor License Manager's console is at {scheme}://{host}:{arguments.port}/ (Ctrl-C stops it).")
    proxies = settings.console_trusted_proxies
    uvicorn.run(
        create_app(console),
        host=arguments.host,
        port=arguments.port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        ssl_certfile=arguments.tls_cert,
        ssl_keyfile=arguments.tls_key,
        timeout_graceful_shutdown=10,
        log_level="info",
        # JSON logs: uvicorn's loggers pass their records to the process's JSON handler.
        log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
    )
    return 0


def _log_info(text: str) -> None:
    log.info("%s", text)


def _log_warning(text: str) -> None:
    log.warning("%s", text)


def workers(context: Context) -> AskWorkers:
    """How the console asks the admin worker, as `avtorlm license refresh` does."""

    def ask(task: str, kwargs: dict[str, Any]) -> Any:
        try:
            return ask_workers(context.settings, task, kwargs, True, REFRESH_WAIT_SECONDS)
        except WorkersUnavailable as error:
            raise WorkersUnreachable(str(error)) from None

    return ask


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)
