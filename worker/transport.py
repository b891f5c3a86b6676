"""kombu's Redis transport, made to survive whatever a host pushes onto a queue.

kombu parses each item it pops before Celery sees it; an item that is not a
message envelope (not JSON, or JSON of the wrong shape) raises inside the
worker's event loop and stops the worker. This transport keeps such an item in
the dead-letter list and goes on with the next one.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from worker.dead_letters import record_dead_letter

log = logging.getLogger(__name__)


class _RememberingRedis(redis.Redis):
    """A Redis client that remembers the last item BRPOP returned, so it is never lost."""

    last_popped: Any = None

    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        reply = super().parse_response(connection, command_name, **options)
        if command_name == "BRPOP":
            self.last_popped = reply
        return reply


class GuardedChannel(kombu_redis.Channel):
    """A Redis channel that sets aside items it cannot turn into messages."""

    def _get_client(self) -> Any:
        client = super()._get_client()
        return _RememberingRedis if client is redis.Redis else client

    def _brpop_read(self, **options: Any) -> Any:
        client = self.client
        if isinstance(client, _RememberingRedis):
            client.last_popped = None
        try:
            return super()._brpop_read(**options)
        except (Empty, *self.connection_errors):
            raise
        except Exception as error:
            popped = getattr(client, "last_popped", None)
            queue, item = popped if isinstance(popped, list | tuple) and len(popped) == 2 else (None, None)
            log.exception("An item on queue %s is not a message; it is kept and skipped.", queue)
            with self.conn_or_acquire() as side_client:
                record_dead_letter(
                    side_client,
                    f"not a message envelope: {error!r}",
                    message={"queue": None if queue is None else bytes_to_str(queue), "item": _text(item)},
                )
            return True


class GuardedTransport(kombu_redis.Transport):
    """The Redis transport with guarded channels."""

    Channel = GuardedChannel


def _text(item: Any) -> str | None:
    if item is None:
        return None
    if isinstance(item, bytes):
        return item.decode("utf-8", "backslashreplace")
    return str(item)
