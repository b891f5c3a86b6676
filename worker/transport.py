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


class GuardedQoS(kombu_redis.QoS):
    """Unacknowledged messages put back on close, or left for the visibility timeout if Redis is gone."""

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)
        except self.channel.connection_errors as error:
            # While a lost connection is being closed, kombu may no longer be able to reach
            # Redis; the messages are still in Redis's unacked set and come back after the
            # visibility timeout, so the worker goes on and reconnects instead of stopping.
            log.warning(
                "Could not put back %d unacknowledged message(s) now (%r); they return after the "
                "visibility timeout.",
                len(self._delivered),
                error,
            )
            self._delivered.clear()
            return None


class GuardedChannel(kombu_redis.Channel):
    """A Redis channel that sets aside items it cannot turn into messages."""

    QoS = GuardedQoS

    def _get_pool(self, asynchronous: bool = False) -> Any:
        # After a lost connection is closed, late acknowledgements and restores still reach
        # this channel; kombu then fails with AttributeError, which stops the worker. As a
        # connection error it is logged, the message stays unacknowledged in Redis (so it
        # returns after the visibility timeout), and the worker reconnects.
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.ConnectionError("the connection to Redis was closed; reconnecting")
        return super()._get_pool(asynchronous)

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
