"""Messages the manager could not handle, kept in Redis for an operator to inspect.

The list `avtor.dead-letter` holds one JSON object a message, newest first:
when, why, the task name and id when known, and the message as received.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any

import redis

log = logging.getLogger(__name__)

DEAD_LETTER_KEY = "avtor.dead-letter"
KEEP = 10_000
MAX_BODY_BYTES = 64 * 1024


def record_dead_letter(
    client: redis.Redis, reason: str, *, task: object = None, task_id: object = None, message: Any = None
) -> None:
    """Keep a message the manager could not handle; never raises (it runs on error paths)."""
    entry = {
        "at": datetime.now(UTC).isoformat(),
        "reason": reason,
        "task": _text(task),
        "id": _text(task_id),
        "message": _describe(message),
    }
    try:
        with client.pipeline() as pipe:
            pipe.lpush(DEAD_LETTER_KEY, json.dumps(entry, ensure_ascii=True, default=repr))
            pipe.ltrim(DEAD_LETTER_KEY, 0, KEEP - 1)
            pipe.execute()
    except Exception:
        log.exception("Could not keep a dead letter (%s) in Redis: %r", reason, entry)
    else:
        log.error(
            "Message kept in %s: %s (task %s, id %s)", DEAD_LETTER_KEY, reason, entry["task"], entry["id"]
        )


def read_dead_letters(client: redis.Redis, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters first."""
    raw = client.lrange(DEAD_LETTER_KEY, 0, limit - 1)
    return [json.loads(item) for item in raw]


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:300]


def _describe(message: Any) -> dict[str, Any] | None:
    """The parts of a kombu message worth keeping, safe to serialize."""
    if message is None:
        return None
    body = getattr(message, "body", message)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    described: dict[str, Any] = {
        "headers": _jsonable(getattr(message, "headers", None)),
        "properties": _jsonable(getattr(message, "properties", None)),
        "content_type": _text(getattr(message, "content_type", None)),
        "content_encoding": _text(getattr(message, "content_encoding", None)),
    }
    if isinstance(body, bytes | bytearray):
        described["body_base64"] = base64.b64encode(bytes(body[:MAX_BODY_BYTES])).decode("ascii")
        described["body_truncated"] = len(body) > MAX_BODY_BYTES
    else:
        described["body"] = _jsonable(body)
    return described


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        return repr(value)[:MAX_BODY_BYTES]
    return value
