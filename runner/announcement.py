"""What `scripts/run` tells the administrator once everything runs, and the run.env it writes."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from config import Settings, hide_password
from runner.children import ROOT

# The Redis URL of the hosts' user (the CMS), which the demo and host_client read.
HOST_URL_VARIABLE = "AVTOR_HOST_REDIS_URL"

# The variables another shell needs to reach the running system.
EXPORTED = [
    "AVTOR_DATA_DIR",
    "AVTOR_DATABASE_URL",
    "AVTOR_REDIS_URL",
    HOST_URL_VARIABLE,
    "AVTOR_LICENSE_SERVER_URL",
    "AVTOR_LICENSE_SERVER_PUBLIC_KEY",
    "AVTOR_DEVELOPMENT_MODE",
    "AVTOR_REVALIDATE_EVERY",
    "AVTOR_REVALIDATE_TICK",
]


@dataclass(frozen=True)
class ConsoleSignIn:
    """Where the console runs and who signs in to it; the password goes to run.env only."""

    url: str
    name: str
    password: str


def console_variables(console: ConsoleSignIn) -> list[str]:
    """`NAME=value` lines for run.env: how to sign in to the console (not exported to processes)."""
    values = {
        "CONSOLE_URL": console.url,
        "CONSOLE_ADMIN_NAME": console.name,
        "CONSOLE_ADMIN_PASSWORD": console.password,
    }
    return [f"{name}={_quoted(value)}" for name, value in values.items()]


def exports(env: Mapping[str, str], data_dir: Path, shown: bool = False) -> list[str]:
    """`NAME=value` lines that point a shell at this run; passwords hidden when `shown` on screen."""
    values = {"AVTOR_DATA_DIR": str(data_dir.resolve())} | {
        name: env[name] for name in EXPORTED if env.get(name) and name != "AVTOR_DATA_DIR"
    }
    if shown:
        values = {name: hide_password(value) for name, value in values.items()}
    return [f"{name}={_quoted(values[name])}" for name in EXPORTED if name in values]


def write_env_file(path: Path, lines: Sequence[str], variables: Sequence[str] = ()) -> None:
    """Write the exports for `. data/run.env`, readable by the owner only (it holds passwords).

    `variables` are written as plain shell variables: the shell that sources the file has
    them, the processes it starts do not.
    """
    path.touch(mode=0o600)
    path.chmod(0o600)
    text = "".join(f"export {line}\n" for line in lines) + "".join(f"{line}\n" for line in variables)
    path.write_text(text, encoding="utf-8")


def banner(
    settings: Settings,
    notes: Sequence[str],
    env_file: Path,
    shown_exports: Sequence[str],
    host_url: str | None = None,
    console: ConsoleSignIn | None = None,
) -> str:
    """Where everything runs, how to use the console and the command line, and the hosts' Redis URL.

    Never a password: the console's is in run.env, as the Redis users' are.
    """
    hosts = (
        [
            "Hosts (the CMS) add editors' starts to the stream avtor:enrol:requests as the Redis user "
            f"{_user_of(host_url)}:",
            f"  {hide_password(host_url)}  (its password: {HOST_URL_VARIABLE} in {_shown_path(env_file)})",
            "",
        ]
        if host_url
        else []
    )
    signing_in = (
        [
            f"Open the console: {console.url}",
            f"  sign in as {console.name}; the password is in {_shown_path(env_file)} "
            "(CONSOLE_ADMIN_PASSWORD, new at every start)",
            "",
        ]
        if console
        else []
    )
    lines = [
        "",
        "The Avtor License Manager runs. Stop it with Ctrl-C.",
        f"  store            {settings.store_url}",
        *(f"  {note}" for note in notes),
        "",
        *signing_in,
        "Use the administrator's command line in another terminal:",
        f"  cd {ROOT}",
        f"  . {_shown_path(env_file)}        # or these exports:",
        *(f"  export {line}" for line in shown_exports),
        "  .venv/bin/avtorlm status",
        '  .venv/bin/avtorlm eula accept --by "Your Name"',
        "  .venv/bin/avtorlm license add AVTR-DEMO-ACTV-SEAT-0005",
        "  .venv/bin/avtorlm user list",
        "",
        *hosts,
        "Watch the whole story: scripts/demo",
        "",
    ]
    return "\n".join(lines)


def spoken(duration: timedelta) -> str:
    """A duration as the settings take it: 3d, 1m, 10s."""
    seconds = duration.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _user_of(url: str) -> str:
    return urlsplit(url).username or "default"


def _quoted(value: str) -> str:
    safe = all(character.isalnum() or character in "/:._-=+@" for character in value)
    return value if safe else "'" + value.replace("'", "'\\''") + "'"


def _shown_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path.resolve())
