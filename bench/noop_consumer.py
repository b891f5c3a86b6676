"""The no-op stream consumer: the transport's own limit, which the enrolment consumer is measured against.

It does, with plain redis-py calls, the Redis work every enrolment consumer must
do and nothing else: read up to a batch of entries of `avtor:enrol:requests` as a
consumer of the group, write one decision list per entry (DEL, RPUSH, EXPIRE, as
the product does), then acknowledge and delete the batch, all in one transaction.
Every decision is the same: no entry is checked, no store is asked.

Run as `python -m bench.noop_consumer --redis-url URL`; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

import redis

from domain.moments import format_instant, utc_now
from worker.requests_stream import CONSUMER_GROUP, DECISION_KEY_PREFIX, REQUESTS_STREAM

READY = "is ready"
# A blocking read returns after this long with nothing, so that a stop is noticed.
BLOCK_MS = 200


def consume(
    client: redis.Redis, name: str, batch_size: int, ttl_seconds: int, stopping: threading.Event
) -> None:
    """Answer every entry of the stream with a fixed decision until `stopping` is set."""
    while not stopping.is_set():
        reply: Any = client.xreadgroup(
            CONSUMER_GROUP, name, {REQUESTS_STREAM: ">"}, count=batch_size, block=BLOCK_MS
        )
        if not reply:
            continue
        entries = reply[0][1]
        decided_at = format_instant(utc_now(), "milliseconds")
        ids: list[bytes] = []
        with client.pipeline(transaction=True) as pipe:
            for entry_id, fields in entries:
                ids.append(entry_id)
                request_id = fields.get(b"request_id", b"").decode("ascii", "replace")
                key = DECISION_KEY_PREFIX + request_id
                document = {
                    "request_id": request_id,
                    "allowed": True,
                    "outcome": "already_enrolled",
                    "decided_at": decided_at,
                }
                pipe.delete(key)
                pipe.rpush(key, json.dumps(document, separators=(",", ":")))
                pipe.expire(key, ttl_seconds)
            pipe.xack(REQUESTS_STREAM, CONSUMER_GROUP, *ids)
            pipe.xdel(REQUESTS_STREAM, *ids)
            pipe.execute()


def ensure_group(client: redis.Redis) -> None:
    """Create the stream and its group unless they exist."""
    try:
        client.xgroup_create(REQUESTS_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def main(argv: list[str] | None = None) -> int:
    """Run the no-op consumer until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.noop_consumer", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--name", default="noop")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--ttl", type=int, default=3600, help="seconds a decision list lives")
    arguments = parser.parse_args(argv)
    stopping = threading.Event()

    def stop(_number: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = redis.Redis.from_url(arguments.redis_url)
    ensure_group(client)
    print(f"No-op consumer {arguments.name} {READY}.", flush=True)
    consume(client, arguments.name, arguments.batch_size, arguments.ttl, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
