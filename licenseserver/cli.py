"""`avtor-license-server`: start the development license server with one command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import as_file, files
from pathlib import Path
from types import FrameType

from licenseserver.keys import KeysFileError, load_keys, save_keys
from licenseserver.server import LicenseServer, LicenseServerState
from licenseserver.signing import (
    DEVELOPMENT_WARNING,
    KeyPairError,
    Signer,
    development_signer,
    load_signer,
    write_new_key_pair,
)

DEFAULT_PORT = 8470
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is stopped (Ctrl-C or SIGTERM); return the exit code."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if arguments.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if arguments.generate_key_pair is not None:
        signer = write_new_key_pair(arguments.generate_key_pair)
        print(f"A new key pair is in {arguments.generate_key_pair}. Its public key:\n{signer.public_key}")
        return 0
    try:
        signer = development_signer() if arguments.key_pair is None else load_signer(arguments.key_pair)
        keys_path = arguments.keys
        if arguments.state is not None and arguments.state.exists():
            keys_path = arguments.state
            keys = load_keys(keys_path, datetime.now(UTC))
        elif keys_path is None:
            with as_file(files("licenseserver") / "data" / "demo-keys.json") as demo:
                keys = load_keys(demo, datetime.now(UTC))
            keys_path = "the demo keys"
        else:
            keys = load_keys(keys_path, datetime.now(UTC))
    except (KeysFileError, KeyPairError) as error:
        print(f"The development license server cannot start: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        state = LicenseServerState(keys, signer, saved_to=arguments.state)
        if arguments.state is not None:
            save_keys(arguments.state, keys.values())
        server = LicenseServer((arguments.host, arguments.port), state)
    except OSError as error:
        print(
            f"The development license server cannot listen on {arguments.host}:{arguments.port}: "
            f"{error.strerror}. Choose another --port.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _announce(server, signer, len(keys), str(keys_path))
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avtor-license-server",
        description="The development license server: answers like the vendor's license service, API "
        "versions 1 and 2, with switches under /_dev for tests and demos. Never for production.",
    )
    parser.add_argument(
        "--keys", type=Path, help="JSON file of license keys (default: the shipped demo keys)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep the keys in FILE: read from it when it exists (instead of --keys), written after "
        "every change, so a restart keeps seats and expiry as they were",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--key-pair",
        type=Path,
        help="signing key pair from --generate-key-pair (default: the development pair)",
    )
    parser.add_argument(
        "--generate-key-pair", type=Path, metavar="FILE", help="write a new signing key pair to FILE and exit"
    )
    parser.add_argument("--quiet", action="store_true", help="log only switches and problems")
    return parser


def _announce(server: LicenseServer, signer: Signer, key_count: int, keys_path: str) -> None:
    host, port = server.server_address[:2]
    print(f"Avtor development license server on http://{host!s}:{port} ({key_count} keys from {keys_path}).")
    print(f"Public key: {signer.public_key}")
    print(f"  export AVTOR_LICENSE_SERVER_URL=http://{host!s}:{port}")
    print(f"  export AVTOR_LICENSE_SERVER_PUBLIC_KEY={signer.public_key}")
    if signer.is_development_key:
        # The manager trusts the development key only in development mode.
        print("  export AVTOR_DEVELOPMENT_MODE=1")
        print(f"WARNING: {DEVELOPMENT_WARNING}")
    sys.stdout.flush()


def _stop(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
