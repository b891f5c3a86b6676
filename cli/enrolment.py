"""`avtorlm enrolment`: the hosts' stream of editors' starts, its consumers, and the entries set aside."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cli.context import Context
from cli.output import emit_json, say, table
from cli.workers import WorkersUnavailable
from config import Settings

if TYPE_CHECKING:
    from worker.requests_stream import StreamState

# A consumer reads at least every 50 ms while it runs; one silent this long is gone or stuck.
ALIVE_WITHIN_MS = 10_000
REDIS_SECONDS = 3.0
KEPT_SHOWN = 20


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `enrolment` command."""
    enrolment = commands.add_parser(
        "enrolment",
        parents=[common],
        help="the editors' starts waiting in Redis, the consumers deciding them, the entries set aside",
    )
    enrolment.add_argument(
        "--kept",
        type=int,
        nargs="?",
        const=KEPT_SHOWN,
        metavar="N",
        help=f"also list the newest N entries set aside, with why (default {KEPT_SHOWN})",
    )
    enrolment.set_defaults(run=show_enrolment)


def show_enrolment(arguments: argparse.Namespace, context: Context) -> int:
    """Print the stream's state and, with --kept, the entries set aside."""
    state = read_state(context.settings)
    kept = read_kept_entries(context.settings, arguments.kept) if arguments.kept else []
    if context.json:
        emit_json({**state_document(state), "kept_entries": kept})
        return 0
    for line in state_lines(state):
        say(line)
    if arguments.kept:
        say()
        if not kept:
            say("No entry has been set aside.")
        else:
            rows = [[entry["at"], entry.get("request_id") or "-", entry["reason"]] for entry in kept]
            # The reasons are sentences worth reading whole.
            say(table(["AT", "REQUEST ID", "WHY"], rows, widest=200))
    return 0


def read_state(settings: Settings) -> StreamState:
    """The stream's state from Redis; WorkersUnavailable says which Redis could not be reached."""
    import redis

    from worker.requests_stream import read_stream_state

    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=REDIS_SECONDS,
        socket_timeout=REDIS_SECONDS,
    )
    try:
        return read_stream_state(client)
    except redis.RedisError as error:
        where = str(settings.redis_url)
        raise WorkersUnavailable(
            f"The enrolment stream in Redis at {where} could not be read ({error}). Check that Redis "
            "runs and that AVTOR_REDIS_URL names it."
        ) from None
    finally:
        client.close()


def read_kept_entries(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The newest entries set aside."""
    import redis

    from worker.requests_stream import read_kept

    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=REDIS_SECONDS)
    try:
        return read_kept(client, max(1, limit))
    finally:
        client.close()


def state_document(state: StreamState) -> dict[str, Any]:
    """The stream's state as JSON."""
    alive = state.alive(ALIVE_WITHIN_MS)
    return {
        "consumers_alive": len(alive),
        "consumers": [
            {"name": consumer.name, "holding": consumer.pending, "last_read_ms_ago": consumer.idle_ms}
            for consumer in state.consumers
        ],
        "waiting": state.waiting,
        "oldest_waiting_seconds": None if state.oldest_age_ms is None else state.oldest_age_ms / 1000,
        "entries_set_aside": state.kept,
    }


def state_lines(state: StreamState) -> list[str]:
    """The stream's state in a few sentences an administrator can act on."""
    alive = state.alive(ALIVE_WITHIN_MS)
    lines = [f"Enrolment consumers alive: {len(alive)}"]
    if state.waiting:
        age = "" if state.oldest_age_ms is None else f", the oldest for {state.oldest_age_ms / 1000:.1f} s"
        lines.append(f"Editors' starts waiting: {state.waiting}{age}")
    else:
        lines.append("Editors' starts waiting: none")
    if not alive:
        lines.append(
            "No enrolment consumer is reading: editors wait for their decision until one runs. "
            "Start one with `avtor-enrolment-consumer` (same AVTOR_REDIS_URL and AVTOR_DATABASE_URL)."
        )
    if state.kept:
        lines.append(
            f"{'1 entry' if state.kept == 1 else f'{state.kept} entries'} set aside as unreadable or "
            "failing: `avtorlm enrolment --kept` shows them and why."
        )
    return lines
