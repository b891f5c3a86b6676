"""The hosts' stream of "editor started" entries, and the decisions written back, on Redis.

Hosts add entries to `avtor:enrol:requests`; the enrolment consumers read them
through the consumer group `avtor-enrolment`. Hosts are not trusted: an entry can
be of any size. Entries are therefore read through a small Lua script that returns
only the fields the contract knows, each cut to what an entry may hold in all, and
the entry's real size: a consumer never pulls a huge entry across the network.

That is also why a consumer does not wait with `XREADGROUP ... BLOCK`: a blocking
read hands over whole entries, whatever their size (a host could make a consumer
read hundreds of megabytes at once), and a script cannot block. When nothing waits,
the consumer reads again after a short pause instead (see the consumer's `idle_pause`).

Every call here is a public redis-py call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

REQUESTS_STREAM = "avtor:enrol:requests"
CONSUMER_GROUP = "avtor-enrolment"
DECISION_KEY_PREFIX = "avtor:enrol:decision:"
KEPT_KEY = "avtor:enrol:dead-letters"
# Each consumer's last read, by Redis's clock (ms): who is alive, for `avtorlm status`.
CONSUMERS_KEY = "avtor:enrol:consumers"
KEEP = 10_000
# What the consumers have decided, counted by the settle script (so several consumers add
# up): `decisions:<outcome>`, and the decision latency (from the entry's arrival in the
# stream to its settling, by Redis's clock) as `latency_ms_le:<bound>` counts (each entry
# in the first bucket it fits, `+Inf` beyond the last), `latency_ms_sum` and `settled`.
STATS_KEY = "avtor:enrol:stats"
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)

# The contract's limit for one entry, field names and values together.
MAX_ENTRY_BYTES = 8 * 1024
KNOWN_FIELDS = ("request_id", "username", "occurred_at", "host", "v")
# A value longer than this makes its entry too large anyway, so nothing more is read of it.
FIELD_READ_BYTES = MAX_ENTRY_BYTES + 1
# How long one read may keep taking entries, in milliseconds (it takes at least one).
READ_BUDGET_MS = 20
# Names of unknown fields kept to describe an entry that is set aside.
OTHER_NAMES_SHOWN = 8
OTHER_NAME_BYTES = 64

# KEYS[1] the stream, KEYS[2] the consumers' last reads. ARGV: mode ("read" or
# "claim"), group, consumer, count, the byte limit of a value, how many other names
# to show and their byte limit, then (for "claim") the min idle ms and the cursor,
# the time budget in ms, and from ARGV[11] on the known field names.
# Returns {cursor, entries}; each entry is {id, size in bytes, number of fields,
# deliveries, {name, value, ...} of the known fields (first occurrence, values cut),
# {some other names, cut}}.
# Entries are taken one at a time, and the script stops taking once its time budget is
# spent: an entry of hundreds of thousands of fields holds Redis for a moment, never
# for seconds, and is set aside like any other entry too large. Only the fields that fit
# in an entry of the largest accepted size are looked at; more make it too large anyway.
_READ_SCRIPT = """
local mode, group, consumer, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local limit, other_shown, other_bytes = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cursor, budget = ARGV[9], tonumber(ARGV[10])
local wanted = {}
for i = 11, #ARGV do wanted[ARGV[i]] = true end
local function ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
local began = ms()
redis.call('ZADD', KEYS[2], began, consumer)
local out = {}
for _ = 1, count do
  local entries
  if mode == 'read' then
    local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', KEYS[1], '>')
    if not reply then break end
    entries = reply[1][2]
  else
    local reply = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[8], cursor, 'COUNT', 1)
    cursor, entries = reply[1], reply[2]
  end
  for _, entry in ipairs(entries) do
    -- Redis 6.2 reports an entry deleted while pending as nil.
    if entry and entry[2] then
      local id, fields = entry[1], entry[2]
      local deliveries = 1
      if mode ~= 'read' then
        local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
        if pending[1] then deliveries = pending[1][4] end
      end
      local size, known, seen, others = 0, {}, {}, {}
      local last = math.min(#fields, 2 * (limit + 1))
      for i = 1, last, 2 do
        local name, value = fields[i], fields[i + 1]
        size = size + #name + #value
        if wanted[name] and not seen[name] then
          seen[name] = true
          table.insert(known, name)
          table.insert(known, string.sub(value, 1, limit))
        elseif not wanted[name] and #others < other_shown then
          table.insert(others, string.sub(name, 1, other_bytes))
        end
      end
      -- -1: more fields than an entry of the largest accepted size can hold.
      if last < #fields then size = -1 end
      table.insert(out, {id, size, #fields / 2, deliveries, known, others})
    end
  end
  if (mode ~= 'read' and cursor == '0-0') or ms() - began >= budget then break end
end
return {cursor, out}
"""


# KEYS[1] the stream, KEYS[2] the list of entries set aside, KEYS[3] the consumers' counts
# (STATS_KEY), KEYS[4..] the decision lists. ARGV: group, decision lifetime in seconds, how
# many entries set aside, how many to keep at most, then one decision document per decision
# list, the entries set aside, and the ids of the entries to acknowledge and remove. One
# script is one atomic step, like MULTI, at a third of the client's work for a batch of a
# hundred. A document's outcome is read with a pattern: json.dumps escapes every quote
# inside a value, so `"outcome":"` is only ever the field itself.
_SETTLE_SCRIPT = """
local group, ttl, kept, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local answers = #KEYS - 3
local outcomes = {}
for i = 1, answers do
  local key = KEYS[i + 3]
  redis.call('DEL', key)
  redis.call('RPUSH', key, ARGV[4 + i])
  redis.call('EXPIRE', key, ttl)
  local outcome = string.match(ARGV[4 + i], '"outcome":"([%w_]+)"') or 'unknown'
  outcomes[outcome] = (outcomes[outcome] or 0) + 1
end
for outcome, times in pairs(outcomes) do
  redis.call('HINCRBY', KEYS[3], 'decisions:' .. outcome, times)
end
for i = 1, kept do
  redis.call('LPUSH', KEYS[2], ARGV[4 + answers + i])
end
if kept > 0 then redis.call('LTRIM', KEYS[2], 0, keep - 1) end
local first = 5 + answers + kept
if first <= #ARGV then
  redis.call('XACK', KEYS[1], group, unpack(ARGV, first))
  redis.call('XDEL', KEYS[1], unpack(ARGV, first))
  local now = redis.call('TIME')
  local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
  local bounds, buckets, sum = {LATENCY_BOUNDS_MS}, {}, 0
  for i = first, #ARGV do
    local latency = math.max(0, now_ms - tonumber(string.match(ARGV[i], '^(%d+)')))
    sum = sum + latency
    local bucket = '+Inf'
    for _, bound in ipairs(bounds) do
      if latency <= bound then bucket = tostring(bound) break end
    end
    buckets[bucket] = (buckets[bucket] or 0) + 1
  end
  for bucket, times in pairs(buckets) do
    redis.call('HINCRBY', KEYS[3], 'latency_ms_le:' .. bucket, times)
  end
  redis.call('HINCRBY', KEYS[3], 'latency_ms_sum', sum)
  redis.call('HINCRBY', KEYS[3], 'settled', #ARGV - first + 1)
end
return 1
""".replace("LATENCY_BOUNDS_MS", ", ".join(str(bound) for bound in LATENCY_BOUNDS_MS))


# KEYS[1] the stream, KEYS[2] the consumers' last reads. ARGV: group, this consumer, how
# long (ms) a consumer must have been silent. Removes, from the group and the last reads,
# every other consumer that holds nothing and has been silent that long; returns their names.
_FORGET_SCRIPT = """
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then return {} end
local t = redis.call('TIME')
local now, silent = t[1] * 1000 + math.floor(t[2] / 1000), tonumber(ARGV[3])
local last_read = {}
local reads = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #reads, 2 do last_read[reads[i]] = tonumber(reads[i + 1]) end
-- Every consumer the group or the last reads know, with what it holds (0: nothing).
local holding = {}
for name in pairs(last_read) do holding[name] = 0 end
for _, consumer in ipairs(consumers) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  holding[info['name']] = tonumber(info['pending'])
end
local gone = {}
for name, pending in pairs(holding) do
  local seen = last_read[name]
  if name ~= ARGV[2] and pending == 0 and (not seen or now - seen > silent) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    redis.call('ZREM', KEYS[2], name)
    table.insert(gone, name)
  end
end
return gone
"""


@dataclass(frozen=True)
class Entry:
    """One entry as read: its id, the known fields (values cut), and what it really weighs."""

    id: str
    fields: dict[str, bytes]
    # Bytes of names and values in all; -1 when it has more fields than any accepted entry.
    size: int
    field_count: int
    deliveries: int = 1
    other_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """A decision to write for the host that sent `request_id`."""

    request_id: str
    document: dict[str, Any]


@dataclass
class Settlement:
    """What a decided batch leaves in Redis: answers, kept entries, and the entries to remove."""

    answers: list[Answer] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Consumer:
    """A consumer of the group as Redis sees it."""

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True)
class StreamState:
    """What an administrator needs to know of the stream: who reads it, what waits, since when."""

    waiting: int
    pending: int
    oldest_age_ms: int | None
    consumers: tuple[Consumer, ...]
    kept: int

    def alive(self, within_ms: int) -> list[Consumer]:
        """The consumers that spoke to Redis within the last `within_ms` milliseconds."""
        return [consumer for consumer in self.consumers if consumer.idle_ms <= within_ms]


class RequestStream:
    """The stream as one consumer of the group uses it."""

    def __init__(self, client: redis.Redis, consumer: str, decision_ttl_seconds: int) -> None:
        self.client = client
        self.consumer = consumer
        self.decision_ttl_seconds = decision_ttl_seconds
        self._script = client.register_script(_READ_SCRIPT)
        self._settle = client.register_script(_SETTLE_SCRIPT)
        self._forget = client.register_script(_FORGET_SCRIPT)

    def ensure_group(self) -> None:
        """Create the stream and its group if needed; entries added before any consumer ran are read too."""
        try:
            self.client.xgroup_create(REQUESTS_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read(self, count: int) -> list[Entry]:
        """Entries no consumer of the group has had yet, at most `count`, without waiting."""
        _, entries = self._run("read", count)
        return entries

    def reclaim(self, count: int, min_idle_ms: int, cursor: str) -> tuple[str, list[Entry]]:
        """Take over entries another consumer (or this one) held longer than `min_idle_ms`."""
        return self._run("claim", count, str(min_idle_ms), cursor)

    def keep_holding(self, entry_ids: Sequence[str]) -> None:
        """Tell the group this consumer still works on `entry_ids`, so no other takes them over."""
        if entry_ids:
            self.client.xclaim(
                REQUESTS_STREAM, CONSUMER_GROUP, self.consumer, 0, list(entry_ids), justid=True
            )

    def settle(self, settlement: Settlement) -> None:
        """Write the decisions, keep what was set aside, acknowledge and remove the entries, at once."""
        decision_keys = [DECISION_KEY_PREFIX + answer.request_id for answer in settlement.answers]
        documents = [
            json.dumps(answer.document, ensure_ascii=False, separators=(",", ":"))
            for answer in settlement.answers
        ]
        kept = [json.dumps(entry, ensure_ascii=False) for entry in settlement.kept]
        self._settle(
            keys=[REQUESTS_STREAM, KEPT_KEY, STATS_KEY, *decision_keys],
            args=[
                CONSUMER_GROUP,
                self.decision_ttl_seconds,
                len(kept),
                KEEP,
                *documents,
                *kept,
                *settlement.entry_ids,
            ],
        )

    def forget_departed(self, idle_ms: int) -> list[str]:
        """Remove consumers that hold nothing and have not read for `idle_ms`, in one atomic step.

        Checking and removing at once matters: removing a consumer drops what it holds, so
        one that took entries between a check and a removal would lose them.
        """
        departed = self._forget(
            keys=[REQUESTS_STREAM, CONSUMERS_KEY], args=[CONSUMER_GROUP, self.consumer, idle_ms]
        )
        return [_text(name) for name in departed]

    def _run(self, mode: str, count: int, *claim: str) -> tuple[str, list[Entry]]:
        limits = [str(FIELD_READ_BYTES), str(OTHER_NAMES_SHOWN), str(OTHER_NAME_BYTES)]
        claim_args = list(claim) if claim else ["", "0-0"]
        cursor, rows = self._script(
            keys=[REQUESTS_STREAM, CONSUMERS_KEY],
            args=[
                mode,
                CONSUMER_GROUP,
                self.consumer,
                count,
                *limits,
                *claim_args,
                READ_BUDGET_MS,
                *KNOWN_FIELDS,
            ],
        )
        return _text(cursor), [_entry(row) for row in rows]


def _entry(row: list[Any]) -> Entry:
    entry_id, size, field_count, deliveries, known, others = row
    fields = {_text(known[i]): bytes(known[i + 1]) for i in range(0, len(known), 2)}
    return Entry(
        _text(entry_id),
        fields,
        int(size),
        int(field_count),
        int(deliveries),
        tuple(_text(name) for name in others),
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_consumers(client: redis.Redis) -> list[Consumer]:
    """The group's consumers: what each holds, and how long ago it last read."""
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.zrange(CONSUMERS_KEY, 0, -1, withscores=True)
        pipe.xinfo_consumers(REQUESTS_STREAM, CONSUMER_GROUP)
        (seconds, microseconds), last_reads, rows = pipe.execute(raise_on_error=False)
    now_ms = seconds * 1000 + microseconds // 1000
    holding = {} if isinstance(rows, Exception) else {_text(row["name"]): int(row["pending"]) for row in rows}
    return [
        Consumer(_text(name), holding.get(_text(name), 0), max(0, now_ms - int(score)))
        for name, score in last_reads
    ]


def read_stream_state(client: redis.Redis) -> StreamState:
    """The stream's state for `avtorlm status`: waiting entries, the oldest one's age, the consumers."""
    with client.pipeline(transaction=False) as pipe:
        pipe.xlen(REQUESTS_STREAM)
        pipe.xrange(REQUESTS_STREAM, count=1)
        pipe.llen(KEPT_KEY)
        pipe.time()
        waiting, first, kept, (seconds, microseconds) = pipe.execute()
    consumers = read_consumers(client)
    now_ms = seconds * 1000 + microseconds // 1000
    oldest = now_ms - int(_text(first[0][0]).partition("-")[0]) if first else None
    return StreamState(
        waiting=int(waiting),
        pending=sum(consumer.pending for consumer in consumers),
        oldest_age_ms=None if oldest is None else max(0, oldest),
        consumers=tuple(consumers),
        kept=int(kept),
    )


def read_kept(client: redis.Redis, limit: int = 100) -> list[dict[str, Any]]:
    """The entries set aside, newest first."""
    return [json.loads(item) for item in client.lrange(KEPT_KEY, 0, limit - 1)]
