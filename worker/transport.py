"""kombu's Redis transport, made to survive whatever a host pushes onto a queue, and to lose nothing it takes.

kombu parses each item it pops before Celery sees it. An item that is not a
message envelope (not JSON, or JSON of the wrong shape) raises inside the
worker's event loop: either the worker stops, or (for a KeyError, which kombu
counts as a connection error) it reconnects and the item is silently gone. This
transport keeps such items in the dead-letter list and goes on with the next.

kombu takes a message with BRPOP and only then records it as unacknowledged: a
worker killed between the two (or a Redis that stops between them) loses that
message. This transport moves each message atomically into a list of the
channel's own in Redis instead (its "taking list", one per queue), and records
the message as unacknowledged and removes it from that list in one transaction.
A message is therefore always on its queue, in a taking list, or in the
unacknowledged set. Taking lists are registered with a heartbeat; the list of a
channel that has not beaten for the visibility timeout (its worker died) is put
back on its queue by any other worker, as kombu does with unacknowledged messages.

A channel on one queue (as the enrolment workers are) waits with BLMOVE. A
channel on several queues first moves the first message of the first queue that
has one, with a script; when none has one, it waits with BLMOVE on one queue for
a fifth of a second, then looks at all of them again, turning to the next queue
each time. Consumers that never acknowledge (Celery's event and reply queues),
key prefixes, and a Redis that refuses BLMOVE or scripts keep kombu's BRPOP.
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
# How long a channel on several queues waits on one of them before it looks at all again.
SEVERAL_QUEUES_WAIT_SECONDS = 0.2
# KEYS: the queues in the order to look at them, then their taking lists in the same order.
# Moves the oldest message of the first queue that has one; replies [queue, message] or nil.
_TAKE_FIRST_SCRIPT = """
local count = #KEYS / 2
for index = 1, count do
  local item = redis.call('LMOVE', KEYS[index], KEYS[count + index], 'RIGHT', 'LEFT')
  if item then return {KEYS[index], item} end
end
return false
"""
_SEVERAL = "<several queues>"  # the awaited reply is the script's


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
        taken = self.channel.taken.pop(delivery_tag, None)
        if taken is None:
            super().append(message, delivery_tag)
            return
        raw, taking_key = taken
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            # One transaction: the message leaves the taking list as it becomes unacknowledged.
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key,
                delivery_tag,
                dumps([message._raw, delivery["exchange"], delivery["routing_key"]]),
            ).lrem(taking_key, 1, raw).execute()
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
    taking_key: str = ""  # the taking list of the first queue taken from
    _taking_from: str | None = None  # the queue of the BLMOVE whose reply is awaited, or _SEVERAL
    _taking_unread = False  # a take was sent whose reply has not been read by _take
    _blmove_refused = False
    _look_at_all = True  # on several queues: the next take looks at every queue
    _warned_brpop = False
    _beaten_at: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.taking_key = f"{TAKING_PREFIX}{uuid.uuid4().hex}"
        self.takings: dict[str, str] = {}  # queue -> its taking list
        # delivery tag -> (item, taking list), until it is unacknowledged
        self.taken: dict[Any, tuple[bytes, str]] = {}
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)

    def taking_list(self, queue: str) -> str:
        """The taking list of `queue`: the channel's first one for the first queue taken from."""
        key = self.takings.get(queue)
        if key is None:
            key = f"{TAKING_PREFIX}{uuid.uuid4().hex}" if self.takings else self.taking_key
            self.takings[queue] = key
        return key

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
            not keys
            or self.global_keyprefix
            or self._blmove_refused
            or self._no_ack_queues.intersection(queues)
        ):
            # Never acknowledged (so never taken off a taking list), prefixed keys, or a
            # Redis that refuses to take atomically: kombu's BRPOP.
            if not self._warned_brpop and not self._no_ack_queues.intersection(queues):
                self._warned_brpop = True
                log.warning(
                    "This worker takes from %s with BRPOP (%s): a message taken at the instant the "
                    "worker is killed is lost until its host sends it again.",
                    ", ".join(sorted({bytes_to_str(key) for key in keys})),
                    "keys have a prefix" if self.global_keyprefix else "Redis refused atomic takes",
                )
            self._taking_from = None
            super()._brpop_start(timeout)
            return
        if self._taking_unread:
            # The reply of the last take was never read (a dropped connection, a poll
            # error): what it took may sit in a taking list. Between takes those lists hold
            # nothing else, so all of it goes back to its queues.
            self.give_back_taken()
            self._taking_unread = False
        takings = [self.taking_list(key) for key in keys]
        self.beat()
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self._taking_unread = True
        if len(keys) > 1 and self._look_at_all:
            self._taking_from = _SEVERAL
            self.client.connection.send_command("EVAL", _TAKE_FIRST_SCRIPT, len(keys) * 2, *keys, *takings)
            return
        source = keys[0]
        wait = timeout or 0
        if len(keys) > 1:
            wait = min(wait or SEVERAL_QUEUES_WAIT_SECONDS, SEVERAL_QUEUES_WAIT_SECONDS)
        self._taking_from = source
        self.client.connection.send_command("BLMOVE", source, takings[0], "RIGHT", "LEFT", wait)

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
            taking_key = self.takings.get(bytes_to_str(queue)) if queue is not None else None
            if taking_from is not None and item is not None and taking_key is not None:
                self.taken = {tag: taken for tag, taken in self.taken.items() if taken[0] != item}
                with self.conn_or_acquire() as side_client:
                    side_client.lrem(taking_key, 1, item)
            return True

    def _take(self, taking_from: str, **options: Any) -> bool:
        """Read the reply of BLMOVE or of the script and deliver the message it took."""
        command = "EVAL" if taking_from == _SEVERAL else "BLMOVE"
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.ResponseError as refusal:
                # An old Redis, an ACL without BLMOVE or scripts, or a Redis out of memory
                # (taking writes, BRPOP does not): this channel takes with BRPOP from now on.
                self._taking_unread = False
                self._blmove_refused = True
                log.warning("Redis refused %s (%s); taking messages with BRPOP instead.", command, refusal)
                raise Empty() from None
            self._taking_unread = False
            if taking_from == _SEVERAL:
                source, item = (None, None) if reply is None else (bytes_to_str(reply[0]), reply[1])
            else:
                source, item = taking_from, reply
            # Several queues: a take that found nothing waits on one queue next; one that
            # waited looks at all again.
            self._look_at_all = taking_from != _SEVERAL or item is not None
            if item is None or source is None:
                if taking_from != _SEVERAL and len(self.active_queues) > 1:
                    self._queue_cycle.rotate(self._queue_of(taking_from))  # wait on the next one next
                raise Empty()
            if isinstance(self.client, _RememberingRedis):
                self.client.last_popped = (source, item)
            queue = self._queue_of(source)
            self._queue_cycle.rotate(queue)
            payload = loads(bytes_to_str(item))
            tag = payload.get("properties", {}).get("delivery_tag") if isinstance(payload, dict) else None
            if isinstance(tag, str | int) and not isinstance(tag, bool):
                self.taken[tag] = (item, self.taking_list(source))
            self.connection._deliver(payload, queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _queue_of(self, key: str) -> str:
        """The queue a list belongs to (a queue's list of one priority has a suffix)."""
        return key.rsplit(self.sep, 1)[0]

    def beat(self, force: bool = False) -> None:
        """Tell other workers this channel's taking lists are alive (at most once a second)."""
        now = time.time()
        if not self.takings or (not force and now - self._beaten_at < HEARTBEAT_SECONDS):
            return  # never took anything (nothing to vouch for), or beat just now
        with self.conn_or_acquire() as side_client:
            side_client.pipeline().zadd(TAKING_REGISTRY, dict.fromkeys(self.takings.values(), now)).hset(
                TAKING_SOURCES, mapping={key: queue for queue, key in self.takings.items()}
            ).execute()
        self._beaten_at = now

    def restore_abandoned_takings(self) -> int:
        """Put back on their queues the messages of taking lists whose channel stopped beating."""
        restored = 0
        stale_before = time.time() - self.visibility_timeout
        with self.conn_or_acquire() as side_client:
            for raw_key in side_client.zrangebyscore(TAKING_REGISTRY, "-inf", stale_before):
                key = bytes_to_str(raw_key)
                if key in self.takings.values():
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
        """Put what this channel took but never delivered back on its queues."""
        if self.takings:
            with self.conn_or_acquire() as side_client:
                for queue, key in self.takings.items():
                    _move_back(side_client, key, queue)
        self.taken.clear()

    def close(self) -> None:
        if self.takings:
            try:
                if self._in_poll and self._taking_from is not None:
                    # kombu would deliver the reply still awaited while closing; leave what
                    # it took in the taking list instead, to go back with the rest.
                    command = "EVAL" if self._taking_from == _SEVERAL else "BLMOVE"
                    self._in_poll = None  # type: ignore[assignment]
                    self._taking_from = None
                    self.client.parse_response(self.client.connection, command)
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
