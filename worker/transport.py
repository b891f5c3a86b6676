"""kombu's Redis transport, made to survive whatever a host pushes onto a queue.

kombu parses each item it pops before Celery sees it. An item that is not a
message envelope (not JSON, or JSON of the wrong shape) raises inside the
worker's event loop: either the worker stops, or (for a KeyError, which kombu
counts as a connection error) it reconnects and the item is silently gone. This
transport keeps such items in the dead-letter list and goes on with the next.
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


def network_errors(connection_errors: tuple[type[BaseException], ...]) -> tuple[type[BaseException], ...]:
    """The errors that really mean a lost connection: kombu's list without KeyError."""
    return tuple(error for error in connection_errors if error is not KeyError)


def envelope_problem(item: Any) -> str | None:
    """Why `item` cannot be a kombu message envelope, or None if it can."""
    if not isinstance(item, dict):
        return f"the item is a JSON {type(item).__name__}, not an object"
    properties = item.get("properties")
    if not isinstance(properties, dict):
        return "the item has no 'properties' object"
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str | int) or isinstance(tag, bool):
        return "the item's properties have no delivery_tag"
    if properties.get("body_encoding") not in (None, "base64"):
        return "the item's properties.body_encoding must be base64"
    priority = properties.get("priority")
    if priority is not None and (
        not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 255
    ):
        return "the item's properties.priority must be a whole number from 0 to 255"
    delivery_info = properties.get("delivery_info")
    if not isinstance(delivery_info, dict) or not all(
        isinstance(delivery_info.get(name), str) for name in ("exchange", "routing_key")
    ):
        return "the item's properties.delivery_info must name an exchange and a routing_key"
    for name, kinds in (("headers", dict), ("content-type", str), ("content-encoding", str), ("body", str)):
        if item.get(name) is not None and not isinstance(item[name], kinds):
            return f"the item's {name} has the wrong type"
    return None


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

    def _get_client(self) -> Any:
        client = super()._get_client()
        return _RememberingRedis if client is redis.Redis else client

    def _get_pool(self, asynchronous: bool = False) -> Any:
        # After a lost connection is closed, late acknowledgements and restores still reach
        # this channel; kombu then fails with AttributeError, which stops the worker. As a
        # connection error it is logged, the message stays unacknowledged in Redis (so it
        # returns after the visibility timeout), and the worker reconnects.
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.ConnectionError("the connection to Redis was closed; reconnecting")
        return super()._get_pool(asynchronous)

    def _brpop_read(self, **options: Any) -> Any:
        client = self.client
        if isinstance(client, _RememberingRedis):
            client.last_popped = None
        try:
            return super()._brpop_read(**options)
        except Empty:
            raise
        except network_errors(self.connection_errors):
            raise
        except Exception as error:
            popped = getattr(client, "last_popped", None)
            queue, item = popped if isinstance(popped, list | tuple) and len(popped) == 2 else (None, None)
            log.exception("An item on queue %s is not a message; it is kept and skipped.", queue)
            self.keep(f"not a message envelope: {error!r}", queue, item)
            return True

    def keep(self, reason: str, queue: Any, item: Any) -> None:
        """Put an item that is not a message in the dead-letter list."""
        with self.conn_or_acquire() as side_client:
            record_dead_letter(
                side_client,
                reason,
                message={"queue": None if queue is None else bytes_to_str(queue), "item": _text(item)},
            )


class GuardedTransport(kombu_redis.Transport):
    """The Redis transport with guarded channels: every popped item is delivered or kept."""

    Channel = GuardedChannel

    def _deliver(self, message: Any, queue: Any) -> Any:
        problem = envelope_problem(message)
        if problem is None:
            return super()._deliver(message, queue)
        # Raising here would make the channel keep the raw item; raise something that is
        # not a connection error so that it is kept rather than taken for a lost connection.
        raise MalformedEnvelope(problem)


class MalformedEnvelope(ValueError):
    """An item popped from a queue that is JSON but not a message envelope."""


def _text(item: Any) -> str | None:
    if item is None:
        return None
    if isinstance(item, bytes):
        return item.decode("utf-8", "backslashreplace")
    return str(item)
