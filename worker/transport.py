"""kombu's Redis transport, made to survive whatever a host pushes onto a queue, and to lose nothing it takes.

kombu parses each item it pops before Celery sees it. An item that is not a
message envelope (not JSON, or JSON of the wrong shape) raises inside the
worker's event loop: either the worker stops, or (for a KeyError, which kombu
counts as a connection error) it reconnects and the item is silently gone. This
transport keeps such items in the dead-letter list and goes on with the next.

kombu takes a message with BRPOP and only then records it as unacknowledged: a
worker killed between the two (or a Redis that stops between them) loses that
message. A channel that consumes one queue (as the enrolment workers do) takes
with BLMOVE instead, into a list of its own in Redis (its "taking list"), and
records the message as unacknowledged and removes it from that list in one
transaction. A message is therefore always on its queue, in a taking list, or in
the unacknowledged set. Taking lists are registered with a heartbeat; the list of
a channel that has not beaten for the visibility timeout (its worker died) is put
back on its queue by any other worker, as kombu does with unacknowledged messages.
Consumers that never acknowledge (Celery's event and reply queues), channels on
several queues, and a Redis that refuses BLMOVE keep kombu's BRPOP.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from queue import Empty
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from worker.dead_letters import record_dead_letter

log = logging.getLogger(__name__)

# Taking lists by their last heartbeat (a sorted set), and the queue each takes from.
TAKING_REGISTRY = "avtor.taking"
TAKING_SOURCES = "avtor.taking.sources"
TAKING_PREFIX = "avtor.taking."
HEARTBEAT_SECONDS = 1.0


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

    channel: GuardedChannel

    def append(self, message: Any, delivery_tag: Any) -> None:
        raw = self.channel.taken.pop(delivery_tag, None)
        if raw is None:
            super().append(message, delivery_tag)
            return
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            # One transaction: the message leaves the taking list as it becomes unacknowledged.
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key,
                delivery_tag,
                dumps([message._raw, delivery["exchange"], delivery["routing_key"]]),
            ).lrem(self.channel.taking_key, 1, raw).execute()
        virtual.QoS.append(self, message, delivery_tag)

    def ack_many(self, delivery_tags: Sequence[Any]) -> None:
        """Acknowledge several messages in one round trip."""
        with self.pipe_or_acquire() as pipe:
            for tag in delivery_tags:
                self._remove_from_indices(tag, pipe)
            pipe.execute()
        for tag in delivery_tags:
            virtual.QoS.ack(self, tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> Any:
        restored = super().restore_visible(start, num, interval)
        try:
            self.channel.beat(force=True)
            self.channel.restore_abandoned_takings()
        except self.channel.connection_errors:
            log.debug("Could not look for abandoned taking lists now.", exc_info=True)
        return restored

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
    """A Redis channel that sets aside items it cannot turn into messages, and takes atomically."""

    QoS = GuardedQoS
    taking_key: str = ""
    _taking_from: str | None = None  # the queue of the BLMOVE whose reply is awaited
    _taking_source: str | None = None  # the queue this channel takes from
    _taking_unread = False  # a BLMOVE was sent whose reply has not been read by _take
    _blmove_refused = False
    _warned_several = False
    _beaten_at: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.taking_key = f"{TAKING_PREFIX}{uuid.uuid4().hex}"
        self.taken: dict[Any, bytes] = {}  # delivery tag -> item, until it is unacknowledged
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue: Any, no_ack: Any, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            # Never recorded as unacknowledged, so never taken off a taking list: BRPOP.
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _brpop_start(self, timeout: Any = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if (
            len(keys) != 1
            or self.global_keyprefix
            or self._blmove_refused
            or self._no_ack_queues.intersection(queues)
        ):
            # Several queues (or priorities) cannot be waited on with BLMOVE: kombu's BRPOP.
            if len(keys) > 1 and not self._warned_several:
                self._warned_several = True
                log.warning(
                    "This worker takes from several queues (%s) with BRPOP: a message taken at the "
                    "instant the worker is killed is lost until its host sends it again. Run "
                    "enrolment workers on their queue alone (-Q avtor.enrolment) to take atomically.",
                    ", ".join(sorted({bytes_to_str(key) for key in keys})),
                )
            self._taking_from = None
            super()._brpop_start(timeout)
            return
        [source] = keys
        if self._taking_unread:
            # The reply of the last BLMOVE was never read (a dropped connection, a poll
            # error): what it took may sit in the taking list. Between takes that list holds
            # nothing else, so all of it goes back to its queue.
            self.give_back_taken()
            self._taking_unread = False
        self._taking_source = source
        self.beat()
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self._taking_from = source
        self._taking_unread = True
        self.client.connection.send_command("BLMOVE", source, self.taking_key, "RIGHT", "LEFT", timeout or 0)

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
        taking_from, self._taking_from = self._taking_from, None
        try:
            if taking_from is None:
                return super()._brpop_read(**options)
            return self._take(taking_from, **options)
        except Empty:
            raise
        except network_errors(self.connection_errors):
            raise
        except Exception as error:
            popped = getattr(client, "last_popped", None)
            queue, item = popped if isinstance(popped, list | tuple) and len(popped) == 2 else (None, None)
            log.exception("An item on queue %s is not a message; it is kept and skipped.", queue)
            self.keep(f"not a message envelope: {error!r}", queue, item)
            if taking_from is not None and item is not None:
                self.taken = {tag: raw for tag, raw in self.taken.items() if raw != item}
                with self.conn_or_acquire() as side_client:
                    side_client.lrem(self.taking_key, 1, item)
            return True

    def _take(self, source: str, **options: Any) -> bool:
        """Read the reply of BLMOVE and deliver the message it took."""
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.ResponseError as refusal:
                # An old Redis, an ACL without BLMOVE, or a Redis out of memory (BLMOVE
                # writes, BRPOP does not): this channel takes with BRPOP from now on.
                self._taking_unread = False
                self._blmove_refused = True
                log.warning("Redis refused BLMOVE (%s); taking messages with BRPOP instead.", refusal)
                raise Empty() from None
            self._taking_unread = False
            if item is None:
                raise Empty()
            if isinstance(self.client, _RememberingRedis):
                self.client.last_popped = (source, item)
            self._queue_cycle.rotate(source)
            payload = loads(bytes_to_str(item))
            tag = payload.get("properties", {}).get("delivery_tag") if isinstance(payload, dict) else None
            if isinstance(tag, str | int) and not isinstance(tag, bool):
                self.taken[tag] = item
            self.connection._deliver(payload, source)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def beat(self, force: bool = False) -> None:
        """Tell other workers this channel's taking list is alive (at most once a second)."""
        now = time.time()
        if self._taking_source is None or (not force and now - self._beaten_at < HEARTBEAT_SECONDS):
            return  # never took anything (nothing to vouch for), or beat just now
        with self.conn_or_acquire() as side_client:
            side_client.pipeline().zadd(TAKING_REGISTRY, {self.taking_key: now}).hset(
                TAKING_SOURCES, self.taking_key, self._taking_source
            ).execute()
        self._beaten_at = now

    def restore_abandoned_takings(self) -> int:
        """Put back on their queues the messages of taking lists whose channel stopped beating."""
        restored = 0
        stale_before = time.time() - self.visibility_timeout
        with self.conn_or_acquire() as side_client:
            for raw_key in side_client.zrangebyscore(TAKING_REGISTRY, "-inf", stale_before):
                key = bytes_to_str(raw_key)
                if key == self.taking_key:
                    continue
                source = side_client.hget(TAKING_SOURCES, key)
                if source is not None:
                    restored += _move_back(side_client, key, bytes_to_str(source))
                if side_client.llen(key) == 0:
                    pipe = side_client.pipeline()
                    pipe.zrem(TAKING_REGISTRY, key).hdel(TAKING_SOURCES, key).execute()
        if restored:
            log.warning("Put back %d message(s) a stopped worker had taken but not started.", restored)
        return restored

    def give_back_taken(self) -> None:
        """Put what this channel took but never delivered back on its queue."""
        if self._taking_source is not None:
            with self.conn_or_acquire() as side_client:
                _move_back(side_client, self.taking_key, self._taking_source)
        self.taken.clear()

    def close(self) -> None:
        if self._taking_source is not None:
            try:
                if self._in_poll and self._taking_from is not None:
                    # kombu would deliver the reply still awaited while closing; leave what
                    # it took in the taking list instead, to go back with the rest.
                    self._in_poll = None  # type: ignore[assignment]
                    self._taking_from = None
                    self.client.parse_response(self.client.connection, "BLMOVE")
                self._taking_unread = False
                self.give_back_taken()
            except Exception:  # whatever is left returns when the heartbeat is stale
                log.debug("Could not give back taken messages on close.", exc_info=True)
        super().close()

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


def acknowledge(messages: Sequence[Any]) -> None:
    """Acknowledge `messages`: those of a guarded channel in one round trip per channel."""
    by_channel: dict[int, list[Any]] = {}
    for message in messages:
        if not message.acknowledged:
            by_channel.setdefault(id(message.channel), []).append(message)
    for group in by_channel.values():
        qos = getattr(group[0].channel, "qos", None)
        if not isinstance(qos, GuardedQoS) or len(group) == 1:
            for message in group:
                message.ack()
            continue
        qos.ack_many([message.delivery_tag for message in group])
        for message in group:
            message._state = "ACK"


def _move_back(client: Any, taking_key: str, queue: str) -> int:
    """Move every message of a taking list back to the end of its queue that is taken next."""
    moved = 0
    while client.lmove(taking_key, queue, "RIGHT", "RIGHT") is not None:
        moved += 1
    return moved


def _text(item: Any) -> str | None:
    if item is None:
        return None
    if isinstance(item, bytes):
        return item.decode("utf-8", "backslashreplace")
    return str(item)
