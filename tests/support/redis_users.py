"""The installation's Redis users (config/redis_users.py) on a test's Redis, and what they were refused.

A Redis server's users are shared by all its databases, and the tests' Redis may be
shared with other runs: each call creates users with names of its own and deletes
them afterwards (which also closes their connections).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from config.redis_users import (
    USER_NAMES,
    RedisUser,
    Role,
    installation_users,
    new_passwords,
    redis_version_of,
    setuser_arguments,
    url_for,
)


@dataclass(frozen=True)
class InstallationUsers:
    """The three users on one Redis: their names, their URLs, and the server's ACL log of them."""

    users: tuple[RedisUser, ...]
    urls: dict[Role, str]
    manager_url: str

    def name(self, role: Role) -> str:
        return next(user.name for user in self.users if user.role is role)

    def url(self, role: Role) -> str:
        return self.urls[role]

    def refusals(self, *roles: Role) -> list[dict[str, Any]]:
        """What the server's ACL log holds for the users of `roles` (every role by default)."""
        names = {self.name(role) for role in roles or tuple(Role)}
        manager = redis.Redis.from_url(self.manager_url, decode_responses=True)
        try:
            entries: list[dict[str, Any]] = manager.acl_log(count=1000)
        finally:
            manager.close()
        return [entry for entry in entries if entry["username"] in names]


@contextlib.contextmanager
def redis_users(manager_url: str) -> Iterator[InstallationUsers]:
    """The installation's users, named for this call, on the Redis of `manager_url` (which may run ACL)."""
    manager = redis.Redis.from_url(manager_url, decode_responses=True)
    version = redis_version_of(str(manager.info("server")["redis_version"]))
    token = secrets.token_hex(4)
    names = {role: f"{USER_NAMES[role]}-test-{token}" for role in Role}
    users = installation_users(new_passwords(), names)
    try:
        for arguments in setuser_arguments(users, version):
            manager.execute_command("ACL", "SETUSER", *arguments)
        yield InstallationUsers(
            tuple(users),
            {user.role: url_for(manager_url, user.name, user.password) for user in users},
            manager_url,
        )
    finally:
        manager.execute_command("ACL", "DELUSER", *names.values())
        manager.close()
