"""The host guide's examples, copied as they stand, reach the Redis that scripts/run starts."""

from __future__ import annotations

import re

from runner.supervisor import DEFAULT_REDIS_PORT
from tests.support.host_redis import guide_example, guide_text


def test_every_example_uses_run_env_s_host_url_or_else_the_port_scripts_run_listens_on() -> None:
    for marker in ("redis-cli", "python-redis-py", "python-host-client"):
        example = guide_example(marker)
        assert "AVTOR_HOST_REDIS_URL" in example, marker
        ports = set(re.findall(r"127\.0\.0\.1:(\d+)", example))
        assert ports == {str(DEFAULT_REDIS_PORT)}, (marker, ports)


def test_no_code_block_of_the_guide_points_at_another_local_port() -> None:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", guide_text(), flags=re.DOTALL)
    ports = {port for block in blocks for port in re.findall(r"127\.0\.0\.1:(\d+)", block)}
    assert ports == {str(DEFAULT_REDIS_PORT)}, ports
