"""The Redis job queue: leases, fencing tokens, retries, fair shares, limits; redis-py + Lua only.

Redis only says what to do next; Postgres is the truth about jobs. So the queue
keeps nothing once a job is acked, and every state change is one Lua script (one
round trip, atomic), timed by the Redis server's clock so consumers agree.

Fairness: each owner (tenant) has a waiting set of its own, ordered by the owner's
priority then FIFO; claims take owners in turn (round robin over the ring of owners
with waiting jobs). So a priority orders one owner's own jobs only: 100 jobs at
priority 1000 from one owner never run before another owner's next job, and an
owner's backlog delays another owner's job by at most one claim per owner waiting.
`owner=None` is one shared tenant (everything FIFO by priority, as a plain queue).

Key layout (every key shares the hash tag ``{<name>}``, so the scripts run on Redis
Cluster; per-owner and per-job keys are built inside the scripts from the prefix and
hash to the same slot):

``sq:{name}:ring``       ZSET owners with waiting jobs; score = turn (lowest claims next)
``sq:{name}:turn``       STRING turn counter of the ring
``sq:{name}:w:<owner>``  ZSET the owner's waiting ids; score = (MAX_PRIORITY - priority) *
                         2**42 + seq: highest priority first, FIFO within one
``sq:{name}:since``      ZSET every waiting id; score = when it became waiting (count, age)
``sq:{name}:delayed``    ZSET job ids not yet due; score = due time (ms)
``sq:{name}:active``     ZSET claimed job ids; score = lease expiry (ms)
``sq:{name}:dead``       ZSET dead job ids; score = time of death (ms); trimmed to
                         ``max_dead`` jobs and ``max_dead_bytes``
``sq:{name}:deadbytes``  STRING sum of the dead jobs' ``size`` fields
``sq:{name}:seq``        STRING enqueue counter (FIFO order within a priority)
``sq:{name}:token``      STRING last fencing token issued (see the token floor below)
``sq:{name}:paused``     STRING present while the queue is paused
``sq:{name}:consumers``  ZSET consumer id -> last seen (ms); idle ones dropped by sweep
``sq:{name}:marker``     LIST wake-up markers for ``wait_for_job`` (BLPOP), at most 1024
``sq:{name}:dangling``   ZSET ids dropped because their job record was gone (reported by sweep)
``sq:{name}:rate:<o>``   HASH token bucket of owner o's submissions (tokens, ts)
``sq:{name}:signin:<c>`` HASH token bucket of client c's failed sign-ins (tokens, ts)
``sq:{name}:job:<id>``   HASH state, owner, prio, order, created, attempt, failures, stalls,
                         token, consumer, lease, errors (JSON list, last 10), size (dead)

Each script (one EVALSHA) opens with its purpose, KEYS, ARGV and return value; see
``_SCRIPTS``. The scripts read before they write: an id whose job record is gone
(evicted, deleted by hand) is dropped from the set it was found in and recorded in
``dangling``, never a Lua error and never a half-written record; Postgres' reconcile
enqueues such a job again. A record whose state names a set that does not hold it
(a "ghost") reads as unknown, so reconcile re-enqueues it and enqueue starts it afresh.

Fencing tokens only grow across the whole queue: a claim never issues a token below
the server time in microseconds (~1.8e15, a Postgres bigint) nor below the floor the
system of record sets with ``raise_token_floor`` (the largest token Postgres holds),
so a Redis that restarts empty on a clock running behind cannot issue old tokens.
A lease that has run out still belongs to its token until a sweep reclaims the job;
from then on that token can neither extend, ack nor fail it.

Waking: an enqueue (and a resume, a sweep that frees jobs, an ack or death under the
in-flight cap, a job put off to later) pushes markers; each blocked ``wait_for_job``
BLPOP takes one, so one new job wakes one worker, which re-plans its wait (a job put
off to later shortens it to the due time). Retried and reclaimed jobs keep their
original place in their owner's order.

The server is checked (``maxmemory-policy`` must be ``noeviction``, Redis >= 6.2) on
a Queue's first enqueue or claim; ``check_server()`` does it up front and each
``sweep()`` again (a policy switched on later shows in ``SweepResult.problem``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis
from redis.exceptions import NoScriptError

from chalicelib.errors import QueueConfigError
from chalicelib.rules import MAX_OWNER, MAX_PRIORITY, MIN_PRIORITY

if TYPE_CHECKING:
    from chalicelib.settings import Settings

MAX_JOB_ID_LENGTH = 200
MAX_OWNER_LENGTH = MAX_OWNER  # rules.owner: the same rule where keys are made
MAX_ERROR_CHARS = 2000
ERROR_HISTORY = 10
MARKER_MAX = 1024
SWEEP_BATCH = 1000
PROMOTE_ON_CLAIM = 100
MAX_LEASE_MS = 3_600_000  # one hour: a worker that needs longer extends its lease
DANGLING_MAX = 1000
DANGLING_PER_CLAIM = 100  # dangling ids a claim may skip past before it gives up
DEAD_RECORD_OVERHEAD = 256  # bytes counted per dead job on top of its error history
MIN_REDIS_VERSION = (6, 2)

_KEY_NAMES: dict[str, str] = {
    "ring": "ZSET owners with waiting jobs -> turn",
    "turn": "STRING turn counter of the ring",
    "since": "ZSET every waiting id -> when it became waiting (ms)",
    "delayed": "ZSET ids not yet due -> due time (ms)",
    "active": "ZSET claimed ids -> lease expiry (ms)",
    "dead": "ZSET dead ids -> time of death (ms)",
    "deadbytes": "STRING sum of the dead jobs' sizes (bytes)",
    "seq": "STRING enqueue counter",
    "token": "STRING last fencing token issued",
    "paused": "STRING present while paused",
    "consumers": "ZSET consumer id -> last seen (ms)",
    "marker": "LIST wake-up markers for wait_for_job",
    "dangling": "ZSET ids dropped for a missing job record -> when (ms)",
}


@dataclass(frozen=True)
class Claim:
    """A leased job: only `token` may extend, ack or fail it. `attempt` is 1 on the first claim."""

    job_id: str
    token: int
    attempt: int


@dataclass(frozen=True)
class FailOutcome:
    """What `fail` did: `delayed` until `retry_at_ms`, `dead`, or `stale` (not the current token).

    `attempt` is the claim number of the attempt that failed.
    """

    state: Literal["delayed", "dead", "stale"]
    retry_at_ms: int | None
    attempt: int


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: due delayed -> wait, expired lease -> wait, stalled too often -> dead.

    `dropped`: ids whose job record was gone (dangling), found by this sweep or by
    claims since the last one. `problem`: why the server is unsafe for the queue
    (an eviction policy switched on after start-up), else None. `complete`: False when
    the time budget ran out with due work left (the next sweep goes on).
    """

    promoted: list[str]
    reclaimed: list[str]
    dead: list[str]
    dropped: list[str]
    problem: str | None = None
    complete: bool = True


@dataclass(frozen=True)
class JobView:
    """What the queue holds for one job (`Queue.inspect`): its state ("waiting", "delayed",
    "active", "dead"), and where they apply its consumer, lease expiry and due time (ms)."""

    state: str
    consumer: str | None
    lease_until_ms: int | None
    due_ms: int | None
    attempt: int | None


@dataclass(frozen=True)
class ConsumerView:
    """A consumer (`Queue.consumers`): last seen (ms), jobs it holds, its soonest lease end."""

    consumer: str
    last_seen_ms: int | None
    jobs: int
    lease_until_ms: int | None


@dataclass(frozen=True)
class Admission:
    """A submission limit's answer: allowed, or refused with a code and a retry delay.

    `code` is "rate_limited" (the owner's token bucket is empty) or
    "too_many_waiting" (the owner already has the maximum number of jobs waiting).
    """

    allowed: bool
    code: str | None = None
    retry_after_ms: int = 0


# --- Lua -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arg:
    name: str
    kind: Literal["string", "number", "strings"]  # "strings": every remaining ARGV
    meaning: str


@dataclass(frozen=True)
class _Script:
    purpose: str
    argv: tuple[_Arg, ...]
    returns: str
    body: str


# ARGV[1] and ARGV[2] of every script, bound by the prelude.
_COMMON_ARGV = (
    _Arg("PREFIX", "string", "the queue's key prefix 'sq:{name}:' (per-owner and job keys)"),
    _Arg("offset_ms", "number", "added to the server clock (tests move time with it)"),
)

# Numbers going back to Redis pass through num(): Lua would print them with 14 digits.
_CLOCK = """
local JOB = PREFIX .. 'job:'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + offset_ms
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2]) + offset_ms * 1000

local function num(x) return string.format('%.0f', x) end
"""

# Helpers, in dependency order; a script carries only those it calls (less work per call).
_HELPERS: dict[str, str] = {
    "wait_key": """
local function wait_key(owner) return PREFIX .. 'w:' .. owner end
""",
    "dropped": """
-- an id whose job record is gone: forget it, note it for the sweep to report
local function dropped(id)
  redis.call('ZADD', K.dangling, num(now), id)
  local extra = redis.call('ZCARD', K.dangling) - __DANGLING_MAX__
  if extra > 0 then redis.call('ZPOPMIN', K.dangling, extra) end
end
""",
    "home": """
-- the set that must hold a job in each state (a record in no such set is a ghost)
local HOME = {waiting = K.since, delayed = K.delayed, active = K.active, dead = K.dead}
local function known(id, state)
  return state ~= false and HOME[state] ~= nil and redis.call('ZSCORE', HOME[state], id) ~= false
end
""",
    "to_wait": """
-- the caller has read the record: it exists, with its owner and order
local function to_wait(id, jk, owner, order)
  redis.call('HSET', jk, 'state', 'waiting')
  redis.call('ZADD', wait_key(owner), order, id)
  redis.call('ZADD', K.since, num(now), id)
  if redis.call('ZSCORE', K.ring, owner) == false then
    redis.call('ZADD', K.ring, redis.call('INCR', K.turn), owner)
  end
end
""",
    "unwait": """
local function unwait(id, owner)
  local wk = wait_key(owner)
  redis.call('ZREM', wk, id)
  redis.call('ZREM', K.since, id)
  if redis.call('EXISTS', wk) == 0 then redis.call('ZREM', K.ring, owner) end
end
""",
    "has_work": """
local function has_work()
  if redis.call('ZCARD', K.since) > 0 then return true end
  local first = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
  return first[2] ~= nil and tonumber(first[2]) <= now
end
""",
    "wake": """
local function wake(n)
  if n <= 0 or redis.call('EXISTS', K.paused) == 1 then return end
  local marks = {}
  for i = 1, math.min(n, __MARKER_MAX__) do marks[i] = '1' end
  redis.call('LPUSH', K.marker, unpack(marks))
  redis.call('LTRIM', K.marker, 0, __MARKER_MAX__ - 1)
end
""",
    "record": """
local function record(jk, kind, attempt, message)
  local history = cjson.decode(redis.call('HGET', jk, 'errors') or '[]')
  history[#history + 1] = {at = now, attempt = attempt, kind = kind,
                           error = string.sub(message, 1, __MAX_ERROR_CHARS__)}
  while #history > __ERROR_HISTORY__ do table.remove(history, 1) end
  redis.call('HSET', jk, 'errors', cjson.encode(history))
end
""",
    "unbury": """
-- forget a dead job's record and its share of deadbytes
local function unbury(id)
  local jk = JOB .. id
  redis.call('ZREM', K.dead, id)
  redis.call('DECRBY', K.deadbytes, tonumber(redis.call('HGET', jk, 'size') or '0'))
  redis.call('DEL', jk)
end
""",
    "bury": """
-- dead, then trim the oldest dead jobs to max_dead jobs and max_dead_bytes
local function bury(id, jk, max_dead, max_dead_bytes)
  local size = string.len(redis.call('HGET', jk, 'errors') or '') + string.len(id)
               + __DEAD_RECORD_OVERHEAD__
  redis.call('HSET', jk, 'state', 'dead', 'size', size)
  redis.call('HDEL', jk, 'token', 'consumer', 'lease')
  redis.call('ZADD', K.dead, num(now), id)
  redis.call('INCRBY', K.deadbytes, size)
  while redis.call('ZCARD', K.dead) > max_dead
        or tonumber(redis.call('GET', K.deadbytes) or '0') > max_dead_bytes do
    local oldest = redis.call('ZRANGE', K.dead, 0, 0)
    if oldest[1] == nil then break end
    unbury(oldest[1])
  end
end
""",
    "promote": """
local function promote(limit)
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', num(now), 'LIMIT', 0, limit)
  local promoted = {}
  for _, id in ipairs(due) do
    local jk = JOB .. id
    redis.call('ZREM', K.delayed, id)
    local v = redis.call('HMGET', jk, 'state', 'owner', 'order')
    if v[1] == 'delayed' and v[3] then
      to_wait(id, jk, v[2] or '', v[3])
      promoted[#promoted + 1] = id
    else
      dropped(id)
    end
  end
  return promoted
end
""",
    "current": """
local function current(jk, token)
  local v = redis.call('HMGET', jk, 'state', 'token', 'attempt')
  return v[1] == 'active' and v[2] == token, tonumber(v[3] or '0')
end
""",
    "bulk": """
-- one command per 500 arguments (Lua's unpack has a limit)
local function bulk(command, key, args)
  for i = 1, #args, 500 do
    redis.call(command, key, unpack(args, i, math.min(i + 499, #args)))
  end
end
""",
    "take": """
-- lease up to `count` jobs, one per owner's turn; {id, token, attempt, ...}
local function take(consumer, lease, count, cap)
  redis.call('ZADD', K.consumers, num(now), consumer)
  if redis.call('EXISTS', K.paused) == 1 then return {} end
  promote(__PROMOTE_ON_CLAIM__)
  local n = count
  if cap > 0 then n = math.min(n, cap - redis.call('ZCARD', K.active)) end
  local expires = num(now + lease)
  local out = {}
  local skips = __DANGLING_PER_CLAIM__
  -- tokens base+1, base+2, ...: above the last one issued and never below the clock
  local base = math.max(tonumber(redis.call('GET', K.token) or '0'), now_us - 1)
  local issued, popped, leased = 0, {}, {}
  while n > 0 do
    local head = redis.call('ZRANGE', K.ring, 0, 1)
    local owner = head[1]
    if owner == nil then break end
    local wk = wait_key(owner)
    -- one job per owner's turn; an owner alone in the ring takes all it can at once
    local ids = redis.call('ZPOPMIN', wk, head[2] == nil and n or 1)
    if redis.call('EXISTS', wk) == 0 then
      redis.call('ZREM', K.ring, owner)
    elseif head[2] ~= nil then  -- to the back of the ring: the next turn is the next owner's
      redis.call('ZADD', K.ring, redis.call('INCR', K.turn), owner)
    end
    for i = 1, #ids, 2 do
      local id = ids[i]
      local jk = JOB .. id
      popped[#popped + 1] = id
      local v = redis.call('HMGET', jk, 'state', 'attempt')
      if v[1] == 'waiting' then
        issued = issued + 1
        local token = num(base + issued)
        local attempt = tonumber(v[2] or '0') + 1
        redis.call('HSET', jk, 'state', 'active', 'attempt', attempt, 'token', token,
                   'consumer', consumer, 'lease', expires)
        leased[#leased + 1] = expires
        leased[#leased + 1] = id
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = attempt
        n = n - 1
      else
        dropped(id)
        skips = skips - 1
      end
    end
    if skips <= 0 then break end
  end
  bulk('ZREM', K.since, popped)
  bulk('ZADD', K.active, leased)
  if issued > 0 then redis.call('SET', K.token, num(base + issued)) end
  return out
end
""",
    "finish": """
local function finish(id, token)
  local jk = JOB .. id
  if not current(jk, token) then return 0 end
  redis.call('ZREM', K.active, id)
  redis.call('DEL', jk)
  return 1
end
""",
    "bucket": """
-- a token bucket at key: refills `rate` tokens per ms up to `burst`; takes `cost` if it can.
-- Returns 0 when taken (or cost 0 and a token is there), else ms until one token is there.
local function bucket(key, rate, burst, cost)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(v[1] or burst), tonumber(v[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then return math.ceil((1 - tokens) / rate) end
  if cost > 0 then
    tokens = tokens - cost
    redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'ts', num(now))
    redis.call('PEXPIRE', key, math.ceil(burst / rate) + 1000)
  end
  return 0
end
""",
}

_SCRIPTS: dict[str, _Script] = {
    "enqueue": _Script(
        "Add a job unless it is waiting, delayed or active; a dead (or ghost) one starts afresh.",
        (
            _Arg("id", "string", "job id"),
            _Arg("owner", "string", "the owner whose turn it waits for ('' = shared)"),
            _Arg("priority", "number", "-1000..1000, orders the owner's own jobs"),
            _Arg("delay_ms", "number", "0 = waiting now, else delayed that long"),
        ),
        "1 if added, 0 if already there",
        """
local jk = JOB .. id
local state = redis.call('HGET', jk, 'state')
local held = known(id, state)
if held and state ~= 'dead' then return 0 end
if held then unbury(id) else redis.call('DEL', jk) end  -- a ghost record goes too
local seq = redis.call('INCR', K.seq) % __SEQ_SPAN__
local order = num((__MAX_PRIORITY__ - priority) * __SEQ_SPAN__ + seq)
redis.call('HSET', jk, 'owner', owner, 'prio', num(priority), 'order', order,
           'created', num(now), 'attempt', 0, 'failures', 0, 'stalls', 0)
if delay_ms > 0 then
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('ZADD', K.delayed, num(now + delay_ms), id)
else
  to_wait(id, jk, owner, order)
end
wake(1)  -- a delayed job wakes a worker too, to shorten its wait to the due time
return 1
""",
    ),
    "claim": _Script(
        "Record the consumer; unless paused, promote due delayed jobs and lease up to `count`"
        " (fewer at the in-flight cap), owners in turn, a new fencing token each.",
        (
            _Arg("consumer", "string", "consumer id"),
            _Arg("lease_ms", "number", "lease length"),
            _Arg("count", "number", "most jobs to lease"),
            _Arg("cap", "number", "global in-flight cap, 0 = none"),
        ),
        "{id, token, attempt, id, token, attempt, ...}",
        """
return take(consumer, lease_ms, count, cap)
""",
    ),
    "extend": _Script(
        "Push the lease expiry out, for the current token only.",
        (
            _Arg("id", "string", "job id"),
            _Arg("token", "string", "the caller's fencing token"),
            _Arg("lease_ms", "number", "new lease length from now"),
        ),
        "1 if extended, 0 for a stale token",
        """
local jk = JOB .. id
if not current(jk, token) then return 0 end
local expires = num(now + lease_ms)
redis.call('HSET', jk, 'lease', expires)
redis.call('ZADD', K.active, expires, id)
return 1
""",
    ),
    "ack": _Script(
        "Forget a finished job (current token only); under a cap, wake a worker for the slot.",
        (
            _Arg("id", "string", "job id"),
            _Arg("token", "string", "the caller's fencing token"),
            _Arg("cap", "number", "global in-flight cap, 0 = none"),
        ),
        "1 if acked, 0 for a stale token",
        """
local done = finish(id, token)
if done == 1 and cap > 0 and has_work() then wake(1) end
return done
""",
    ),
    "ack_and_claim": _Script(
        "Ack a finished job (current token only), then lease the next job: one round trip per"
        " job for a busy worker. The claim happens even when the ack finds a stale token.",
        (
            _Arg("id", "string", "the finished job's id"),
            _Arg("token", "string", "its fencing token"),
            _Arg("consumer", "string", "consumer id"),
            _Arg("lease_ms", "number", "lease length of the next job"),
            _Arg("cap", "number", "global in-flight cap, 0 = none"),
        ),
        "{acked 1/0, {id, token, attempt} or {}}",
        """
local done = finish(id, token)
return {done, take(consumer, lease_ms, 1, cap)}
""",
    ),
    "ack_many": _Script(
        "Ack a batch of finished jobs, each for its current token only.",
        (
            _Arg("cap", "number", "global in-flight cap, 0 = none"),
            _Arg("acks", "strings", "id1, token1, id2, token2, ..."),
        ),
        "{1/0 per pair, in order}",
        """
local out, ids, keys, seen = {}, {}, {}, {}
for i = 1, #acks, 2 do
  local id = acks[i]
  local jk = JOB .. id
  local v = redis.call('HMGET', jk, 'state', 'token')
  if v[1] == 'active' and v[2] == acks[i + 1] and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
    keys[#keys + 1] = jk
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
bulk('ZREM', K.active, ids)
for i = 1, #keys, 500 do redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys))) end
local freed = #ids
if freed > 0 and cap > 0 and has_work() then wake(freed) end
return out
""",
    ),
    "fail": _Script(
        "Record a failure (current token only): retryable with failures left -> delayed with"
        " full-jitter exponential backoff; else -> dead.",
        (
            _Arg("id", "string", "job id"),
            _Arg("token", "string", "the caller's fencing token"),
            _Arg("message", "string", "error text (kept, cut to MAX_ERROR_CHARS)"),
            _Arg("retryable", "number", "1 if another attempt may succeed"),
            _Arg("max_attempts", "number", "failures before dead"),
            _Arg("base_ms", "number", "backoff of the first retry"),
            _Arg("max_ms", "number", "backoff ceiling"),
            _Arg("jitter", "number", "0..1, the fraction of the ceiling to wait"),
            _Arg("max_dead", "number", "dead jobs kept"),
            _Arg("max_dead_bytes", "number", "bytes of dead jobs kept"),
            _Arg("cap", "number", "global in-flight cap, 0 = none"),
        ),
        "{'delayed', due ms, attempt} | {'dead', -1, attempt} | {'stale', -1, attempt}",
        """
local jk = JOB .. id
local ok, attempt = current(jk, token)
if not ok then return {'stale', -1, attempt} end
local failures = redis.call('HINCRBY', jk, 'failures', 1)
record(jk, 'error', attempt, message)
redis.call('ZREM', K.active, id)
if retryable == 1 and failures < max_attempts then
  local ceiling = math.min(max_ms, base_ms * 2 ^ (failures - 1))
  local due = now + math.floor(jitter * ceiling)
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('HDEL', jk, 'token', 'consumer', 'lease')
  redis.call('ZADD', K.delayed, num(due), id)
  wake(1)  -- a worker blocked past the due time shortens its wait
  return {'delayed', num(due), attempt}
end
bury(id, jk, max_dead, max_dead_bytes)
if cap > 0 and has_work() then wake(1) end
return {'dead', -1, attempt}
""",
    ),
    "sweep": _Script(
        "One batch of upkeep: promote due delayed jobs; expired leases back to their owner's"
        " wait (a stall) or dead at max_stalls; drop idle consumers; report dangling ids.",
        (
            _Arg("max_stalls", "number", "lease expiries before dead"),
            _Arg("max_dead", "number", "dead jobs kept"),
            _Arg("max_dead_bytes", "number", "bytes of dead jobs kept"),
            _Arg("ttl_ms", "number", "a consumer unseen this long is forgotten"),
            _Arg("batch", "number", "most jobs promoted, and most reclaimed, in this call"),
        ),
        "{promoted ids, reclaimed ids, dead ids, dropped (dangling) ids, 1 if more is due}",
        """
local promoted = promote(batch)
local reclaimed, dead = {}, {}
local expired = redis.call('ZRANGEBYSCORE', K.active, '-inf', '(' .. num(now),
                           'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local jk = JOB .. id
  redis.call('ZREM', K.active, id)
  local v = redis.call('HMGET', jk, 'state', 'attempt', 'consumer', 'order', 'owner')
  if v[1] ~= 'active' or not v[4] then
    dropped(id)
  else
    local stalls = redis.call('HINCRBY', jk, 'stalls', 1)
    record(jk, 'stall', tonumber(v[2] or '0'), 'lease expired (consumer ' .. (v[3] or '?') .. ')')
    if stalls >= max_stalls then
      bury(id, jk, max_dead, max_dead_bytes)
      dead[#dead + 1] = id
    else
      redis.call('HDEL', jk, 'token', 'consumer', 'lease')
      to_wait(id, jk, v[5] or '', v[4])
      reclaimed[#reclaimed + 1] = id
    end
  end
end
redis.call('ZREMRANGEBYSCORE', K.consumers, '-inf', '(' .. num(now - ttl_ms))
wake(#promoted + #reclaimed)
local gone = {}
local popped = redis.call('ZPOPMIN', K.dangling, __DANGLING_MAX__)
for i = 1, #popped, 2 do gone[#gone + 1] = popped[i] end
local more = 0
if #redis.call('ZRANGEBYSCORE', K.delayed, '-inf', num(now), 'LIMIT', 0, 1) > 0
   or #redis.call('ZRANGEBYSCORE', K.active, '-inf', '(' .. num(now), 'LIMIT', 0, 1) > 0 then
  more = 1
end
return {promoted, reclaimed, dead, gone, more}
""",
    ),
    "states": _Script(
        "The state of each id (read only); a ghost record (in no set) reads as unknown.",
        (_Arg("ids", "strings", "job ids"),),
        "{state or false, per id}",
        """
local out = {}
for i, id in ipairs(ids) do
  local state = redis.call('HGET', JOB .. id, 'state')
  if known(id, state) then out[i] = state else out[i] = false end
end
return out
""",
    ),
    "inspect": _Script(
        "For the admin console: each id's state, consumer, lease expiry, due time and"
        " attempt (read only); a ghost record (in no set) reads as unknown.",
        (_Arg("ids", "strings", "job ids"),),
        "{now ms, {{state, consumer, lease ms, due ms, attempt} or false per field, per id}}",
        """
local out = {}
for i, id in ipairs(ids) do
  local v = redis.call('HMGET', JOB .. id, 'state', 'consumer', 'lease', 'attempt')
  if known(id, v[1]) then
    local due = false
    if v[1] == 'delayed' then due = redis.call('ZSCORE', K.delayed, id) end
    out[i] = {v[1], v[2] or false, v[3] or false, due, v[4] or false}
  else
    out[i] = false
  end
end
return {num(now), out}
""",
    ),
    "consumers": _Script(
        "For the admin console: consumers seen (most recent first) and those holding leases,"
        " each with its jobs in flight and the soonest lease expiry among them (read only).",
        (_Arg("top", "number", "most consumers listed"),),
        "{now ms, {consumer, last seen ms, jobs, soonest lease expiry ms or -1, ...}}",
        """
local jobs, lease, order = {}, {}, {}
local active = redis.call('ZRANGE', K.active, 0, 999, 'WITHSCORES')
for i = 1, #active, 2 do
  local c = redis.call('HGET', JOB .. active[i], 'consumer') or '?'
  local expires = tonumber(active[i + 1])
  if jobs[c] == nil then
    jobs[c] = 0
    order[#order + 1] = c
  end
  jobs[c] = jobs[c] + 1
  if lease[c] == nil or expires < lease[c] then lease[c] = expires end
end
local out, listed = {}, {}
local function add(c, seen)
  if listed[c] or #out >= 4 * top then return end
  listed[c] = true
  out[#out + 1] = c
  out[#out + 1] = seen
  out[#out + 1] = jobs[c] or 0
  out[#out + 1] = num(lease[c] or -1)
end
for _, c in ipairs(order) do add(c, redis.call('ZSCORE', K.consumers, c) or '-1') end
local seen = redis.call('ZREVRANGE', K.consumers, 0, top - 1, 'WITHSCORES')
for i = 1, #seen, 2 do add(seen[i], seen[i + 1]) end
return {num(now), out}
""",
    ),
    "remove": _Script(
        "Forget a job in any state; its current token (if any) becomes stale.",
        (_Arg("id", "string", "job id"),),
        "1 if it was known, else 0",
        """
local jk = JOB .. id
local v = redis.call('HMGET', jk, 'state', 'owner')
local state = v[1]
if state == 'dead' then
  unbury(id)
  return 1
end
if state == 'waiting' then unwait(id, v[2] or '')
elseif state == 'delayed' then redis.call('ZREM', K.delayed, id)
elseif state == 'active' then redis.call('ZREM', K.active, id)
end
return redis.call('DEL', jk)
""",
    ),
    "pause": _Script(
        "Stop handing out jobs; enqueues and sweeps go on.",
        (),
        "1",
        """
redis.call('SET', K.paused, '1')
return 1
""",
    ),
    "resume": _Script(
        "Hand out jobs again and wake workers for the waiting ones.",
        (),
        "1",
        """
redis.call('DEL', K.paused)
if has_work() then wake(math.max(1, redis.call('ZCARD', K.since))) end
return 1
""",
    ),
    "peek": _Script(
        "For wait_for_job: is there claimable work now, else when is the next delayed job"
        " due. Clears stale markers so BLPOP only returns on new work.",
        (_Arg("cap", "number", "global in-flight cap, 0 = none"),),
        "{1 if ready else 0, ms until the next delayed job is due or -1}",
        """
if redis.call('EXISTS', K.paused) == 1
   or (cap > 0 and redis.call('ZCARD', K.active) >= cap) then
  redis.call('DEL', K.marker)
  return {0, -1}
end
if has_work() then return {1, 0} end
redis.call('DEL', K.marker)
local first = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
if first[2] == nil then return {0, -1} end
return {0, num(tonumber(first[2]) - now)}
""",
    ),
    "stats": _Script(
        "Counts per state, oldest waiting age, consumers, and per-owner counts (read only).",
        (_Arg("top", "number", "most owners and consumers listed"),),
        "{waiting, delayed, active, dead, paused, oldest age or -1, consumers seen,"
        " {consumer, seen, ...}, owners waiting, {owner, waiting, ...},"
        " {owner, active, ...}, dead bytes, dangling}",
        """
local oldest = redis.call('ZRANGE', K.since, 0, 0, 'WITHSCORES')
local age = -1
if oldest[2] ~= nil then age = math.max(0, now - tonumber(oldest[2])) end
local waiting = {}
for _, owner in ipairs(redis.call('ZRANGE', K.ring, 0, top - 1)) do
  waiting[#waiting + 1] = owner
  waiting[#waiting + 1] = redis.call('ZCARD', wait_key(owner))
end
local counts, active = {}, {}
for _, id in ipairs(redis.call('ZRANGE', K.active, 0, 999)) do
  local owner = redis.call('HGET', JOB .. id, 'owner') or ''
  counts[owner] = (counts[owner] or 0) + 1
end
for owner, n in pairs(counts) do
  if #active < 2 * top then
    active[#active + 1] = owner
    active[#active + 1] = n
  end
end
return {redis.call('ZCARD', K.since), redis.call('ZCARD', K.delayed),
        redis.call('ZCARD', K.active), redis.call('ZCARD', K.dead),
        redis.call('EXISTS', K.paused), num(age), redis.call('ZCARD', K.consumers),
        redis.call('ZREVRANGE', K.consumers, 0, top - 1, 'WITHSCORES'),
        redis.call('ZCARD', K.ring), waiting, active,
        tonumber(redis.call('GET', K.deadbytes) or '0'), redis.call('ZCARD', K.dangling)}
""",
    ),
    "raise_token_floor": _Script(
        "Never issue a token at or below `floor` (the system of record's largest token).",
        (_Arg("floor", "string", "a token (decimal digits)"),),
        "the last token issued after the raise",
        """
local last = tonumber(redis.call('GET', K.token) or '0')
local wanted = tonumber(floor)
if wanted > last then
  redis.call('SET', K.token, floor)
  return floor
end
return num(last)
""",
    ),
    "admit": _Script(
        "May this owner submit a job now? Refuses while it has max_waiting jobs waiting,"
        " else takes a token from its bucket (refused when empty).",
        (
            _Arg("owner", "string", "the submitting owner"),
            _Arg("rate", "number", "tokens refilled per ms"),
            _Arg("burst", "number", "bucket size"),
            _Arg("max_waiting", "number", "most waiting jobs per owner, 0 = no cap"),
            _Arg("busy_ms", "number", "retry hint when at max_waiting"),
        ),
        "{'', 0} when admitted, else {code, retry after ms}",
        """
if max_waiting > 0 and redis.call('ZCARD', wait_key(owner)) >= max_waiting then
  return {'too_many_waiting', busy_ms}
end
local wait = bucket(PREFIX .. 'rate:' .. owner, rate, burst, 1)
if wait > 0 then return {'rate_limited', wait} end
return {'', 0}
""",
    ),
    "sign_in": _Script(
        "Failed sign-ins of one client, a token bucket: 'check' reads it, 'fail' takes one.",
        (
            _Arg("client", "string", "client id (source address)"),
            _Arg("rate", "number", "failures forgiven per ms"),
            _Arg("burst", "number", "failures allowed in a row"),
            _Arg("cost", "number", "0 = check only, 1 = record a failure"),
        ),
        "0 when sign-ins are allowed, else ms until the next is",
        """
return bucket(PREFIX .. 'signin:' .. client, rate, burst, cost)
""",
    ),
}

_CONSTANTS = {
    "__MARKER_MAX__": str(MARKER_MAX),
    "__MAX_ERROR_CHARS__": str(MAX_ERROR_CHARS),
    "__ERROR_HISTORY__": str(ERROR_HISTORY),
    "__SEQ_SPAN__": str(2**42),
    "__MAX_PRIORITY__": str(MAX_PRIORITY),
    "__PROMOTE_ON_CLAIM__": str(PROMOTE_ON_CLAIM),
    "__DANGLING_MAX__": str(DANGLING_MAX),
    "__DANGLING_PER_CLAIM__": str(DANGLING_PER_CLAIM),
    "__DEAD_RECORD_OVERHEAD__": str(DEAD_RECORD_OVERHEAD),
}


def _header(name: str, script: _Script) -> str:
    """The opening comment and the named locals of a script: purpose, KEYS, ARGV, returns."""
    lines = [f"-- {name}: {script.purpose}", "-- KEYS (bound to K.<name>):"]
    lines += [
        f"--   KEYS[{i}] {key}: {what}" for i, (key, what) in enumerate(_KEY_NAMES.items(), 1)
    ]
    lines.append("-- ARGV:")
    argv = (*_COMMON_ARGV, *script.argv)
    for i, arg in enumerate(argv, 1):
        more = "..." if arg.kind == "strings" else ""
        lines.append(f"--   ARGV[{i}]{more} {arg.name} ({arg.kind}): {arg.meaning}")
    lines.append(f"-- Returns: {script.returns}")
    keys = ", ".join(f"{key} = KEYS[{i}]" for i, key in enumerate(_KEY_NAMES, 1))
    lines.append(f"local K = {{{keys}}}")
    for i, arg in enumerate(argv, 1):
        if arg.kind == "string":
            lines.append(f"local {arg.name} = ARGV[{i}]")
        elif arg.kind == "number":
            lines.append(f"local {arg.name} = tonumber(ARGV[{i}])")
        else:
            lines.append(f"local {arg.name} = {{}}")
            lines.append(f"for i = {i}, #ARGV do {arg.name}[#{arg.name} + 1] = ARGV[i] end")
    return "\n".join(lines) + "\n"


# What each helper defines (a helper is pulled in when one of these names is used).
_DEFINES: dict[str, tuple[str, ...]] = {"home": ("known", "HOME")}


def _uses(source: str) -> set[str]:
    source = re.sub(r"--[^\n]*", "", source)  # comments name no helper
    return {
        h
        for h in _HELPERS
        if any(re.search(rf"\b{name}\b", source) for name in _DEFINES.get(h, (h,)))
    }


def _lua(name: str, script: _Script) -> str:
    used = _uses(script.body)
    for helper in reversed(_HELPERS):  # helpers calling earlier helpers pull them in
        if helper in used:
            used |= _uses(_HELPERS[helper]) - {helper}
    source = (
        _header(name, script)
        + _CLOCK
        + "".join(src for h, src in _HELPERS.items() if h in used)
        + script.body
    )
    for placeholder, value in _CONSTANTS.items():
        source = source.replace(placeholder, value)
    return source


_SOURCES: dict[str, str] = {name: _lua(name, script) for name, script in _SCRIPTS.items()}
_SHAS: dict[str, str] = {
    name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
    for name, src in _SOURCES.items()
}
_ARG_NAMES: dict[str, tuple[str, ...]] = {
    name: tuple(a.name for a in script.argv) for name, script in _SCRIPTS.items()
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_list(values: Sequence[Any]) -> list[str]:
    return [_text(v) for v in values]


def _opt_int(value: str | None) -> int | None:
    return None if value is None else int(float(value))


def _pairs(flat: Sequence[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(float(_text(flat[i + 1]))) for i in range(0, len(flat), 2)}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or any(c in name for c in "{} \n"):
        raise ValueError(
            f"queue name {name!r} is invalid: 1-64 characters, no braces or whitespace"
        )
    return name


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not 1 <= len(job_id) <= MAX_JOB_ID_LENGTH:
        raise ValueError(f"job id must be a string of 1-{MAX_JOB_ID_LENGTH} characters")
    return job_id


def _owner_field(owner: str | None) -> str:
    """The owner as the scripts store it: '' is the shared tenant of `owner=None`."""
    if owner is None:
        return ""
    if not isinstance(owner, str) or not 1 <= len(owner) <= MAX_OWNER_LENGTH:
        raise ValueError(f"owner must be None or a string of 1-{MAX_OWNER_LENGTH} characters")
    return owner


def _check_int(value: int, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be <= {high}, got {value!r}")
    return value


def _check_consumer(consumer_id: str) -> str:
    if not isinstance(consumer_id, str) or not consumer_id:
        raise ValueError("consumer_id must be a non-empty string")
    return consumer_id


def _per_ms(per_minute: float, what: str) -> float:
    if not (isinstance(per_minute, int | float) and math.isfinite(per_minute) and per_minute > 0):
        raise ValueError(f"{what} must be a positive number per minute, got {per_minute!r}")
    return per_minute / 60_000


class Queue:
    """One named queue on one Redis. Cheap to build; the server is checked on first use."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        max_attempts: int = 3,
        max_stalls: int = 3,
        max_in_flight: int | None = None,
        backoff_base_ms: int = 1000,
        backoff_max_ms: int = 300_000,
        max_dead: int = 10_000,
        max_dead_bytes: int = 32 * 1024 * 1024,
        consumer_ttl_ms: int = 24 * 3600 * 1000,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.name = _check_name(name)
        self.max_attempts = _check_int(max_attempts, "max_attempts", 1)
        self.max_stalls = _check_int(max_stalls, "max_stalls", 1)
        self.max_in_flight = (
            None if max_in_flight is None else _check_int(max_in_flight, "max_in_flight", 1)
        )
        self.backoff_base_ms = _check_int(backoff_base_ms, "backoff_base_ms", 0)
        self.backoff_max_ms = _check_int(backoff_max_ms, "backoff_max_ms", 0)
        self.max_dead = _check_int(max_dead, "max_dead", 1)
        self.max_dead_bytes = _check_int(max_dead_bytes, "max_dead_bytes", 64 * 1024)
        self.consumer_ttl_ms = _check_int(consumer_ttl_ms, "consumer_ttl_ms", 1)
        self.jitter = jitter
        # Added to the Redis clock inside every script. Tests move time with it.
        self.time_offset_ms = 0
        prefix = f"sq:{{{name}}}:"
        self._prefix = prefix
        self.keys = {k: prefix + k for k in _KEY_NAMES}
        self._job_prefix = prefix + "job:"
        # EVALSHA sha numkeys KEYS... prefix: encoded once, it is the same for every call
        self._head = [
            len(self.keys),
            *(k.encode() for k in self.keys.values()),
            prefix.encode(),
        ]
        self._checked = False

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> Queue:
        """The queue every component must agree on: name and limits from the environment."""
        return cls(
            client,
            settings.queue_name,
            max_attempts=settings.max_attempts,
            max_stalls=settings.max_stalls,
            max_in_flight=settings.max_in_flight,
        )

    def job_key(self, job_id: str) -> str:
        return self._job_prefix + job_id

    def wait_key(self, owner: str | None) -> str:
        """The ZSET of `owner`'s waiting jobs."""
        return self._prefix + "w:" + _owner_field(owner)

    def _run(self, script: str, **args: Any) -> Any:
        """One EVALSHA with ARGV in the script's declared order; loads the script if needed."""
        names = _ARG_NAMES[script]
        if set(args) != set(names):
            raise TypeError(f"script {script} takes {names}, got {tuple(args)}")
        argv: list[Any] = []
        for name in names:
            value = args[name]
            if isinstance(value, list | tuple):
                argv.extend(value)
            else:
                argv.append(value)
        sha = _SHAS[script]
        try:
            return self.client.execute_command(
                "EVALSHA", sha, *self._head, self.time_offset_ms, *argv
            )
        except NoScriptError:
            self.client.script_load(_SOURCES[script])
            return self.client.execute_command(
                "EVALSHA", sha, *self._head, self.time_offset_ms, *argv
            )

    def _ensure_checked(self) -> None:
        if not self._checked:
            self.check_server()

    def check_server(self) -> dict[str, str]:
        """Refuse a Redis that may evict keys (jobs would vanish) or is older than 6.2.

        Reads INFO, not CONFIG, because managed Redis (ElastiCache, Upstash) disables CONFIG.
        """
        info = self.client.info()
        version = str(info.get("redis_version", "0"))
        policy = info.get("maxmemory_policy")
        if policy != "noeviction":
            self._checked = False
            raise QueueConfigError(
                f"Redis maxmemory-policy is {policy!r}; the job queue needs 'noeviction' "
                "(an evicting Redis silently drops jobs). Set maxmemory-policy to noeviction "
                "(ElastiCache: in the parameter group)."
            )
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            raise QueueConfigError(f"Redis {version} is too old; the job queue needs 6.2 or newer")
        self._checked = True
        return {
            "redis_version": version,
            "run_id": str(info.get("run_id", "")),
            "maxmemory_policy": policy,
        }

    # --- jobs ----------------------------------------------------------------------------

    def enqueue(
        self, job_id: str, priority: int = 0, delay_ms: int = 0, owner: str | None = None
    ) -> bool:
        """Add a job unless it is already waiting, delayed or active (a dead one starts afresh).

        `priority` (-1000..1000) orders `owner`'s own jobs; owners take turns
        regardless of priority. `owner=None` is one shared tenant.
        """
        _check_job_id(job_id)
        _check_int(priority, "priority", MIN_PRIORITY, MAX_PRIORITY)
        _check_int(delay_ms, "delay_ms", 0)
        owner_field = _owner_field(owner)
        self._ensure_checked()
        return bool(
            self._run("enqueue", id=job_id, owner=owner_field, priority=priority, delay_ms=delay_ms)
        )

    def claim(self, consumer_id: str, lease_ms: int, count: int = 1) -> list[Claim]:
        """Lease up to `count` jobs, owners in turn; nothing while paused or at the cap.

        `lease_ms` is 1 ms .. MAX_LEASE_MS (one hour; `extend` renews a lease).
        """
        _check_consumer(consumer_id)
        _check_int(lease_ms, "lease_ms", 1, MAX_LEASE_MS)
        _check_int(count, "count", 1, 1000)
        self._ensure_checked()
        flat = self._run(
            "claim",
            consumer=consumer_id,
            lease_ms=lease_ms,
            count=count,
            cap=self.max_in_flight or 0,
        )
        return [
            Claim(_text(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    def extend(self, job_id: str, token: int, lease_ms: int) -> bool:
        """Renew the lease from now; False if `token` is no longer the job's current one."""
        _check_int(lease_ms, "lease_ms", 1, MAX_LEASE_MS)
        return bool(self._run("extend", id=job_id, token=int(token), lease_ms=lease_ms))

    def ack(self, job_id: str, token: int) -> bool:
        """Forget a finished job; False (and no effect) for a stale token."""
        return bool(self._run("ack", id=job_id, token=int(token), cap=self.max_in_flight or 0))

    def ack_and_claim(
        self, job_id: str, token: int, consumer_id: str, lease_ms: int
    ) -> tuple[bool, Claim | None]:
        """Ack a finished job and lease the next one, in one round trip.

        Returns (acked, next claim or None). A stale token acks nothing (False) but the
        claim still happens: the caller is done with that job either way.
        """
        _check_consumer(consumer_id)
        _check_int(lease_ms, "lease_ms", 1, MAX_LEASE_MS)
        self._ensure_checked()
        done, flat = self._run(
            "ack_and_claim",
            id=job_id,
            token=int(token),
            consumer=consumer_id,
            lease_ms=lease_ms,
            cap=self.max_in_flight or 0,
        )
        claim = Claim(_text(flat[0]), int(flat[1]), int(flat[2])) if flat else None
        return bool(done), claim

    def ack_many(self, pairs: Sequence[tuple[str, int]]) -> list[bool]:
        """Ack many finished jobs in one round trip; one bool per (job_id, token), in order."""
        if not pairs:
            return []
        flat = [v for job_id, token in pairs for v in (job_id, int(token))]
        done = self._run("ack_many", cap=self.max_in_flight or 0, acks=flat)
        return [bool(d) for d in done]

    def fail(self, job_id: str, token: int, error: str, retryable: bool) -> FailOutcome:
        """Record a failure: retry with backoff, or dead (not retryable, or out of attempts)."""
        state, due, attempt = self._run(
            "fail",
            id=job_id,
            token=int(token),
            message=str(error)[:MAX_ERROR_CHARS],
            retryable=1 if retryable else 0,
            max_attempts=self.max_attempts,
            base_ms=self.backoff_base_ms,
            max_ms=self.backoff_max_ms,
            jitter=min(max(float(self.jitter()), 0.0), 1.0),
            max_dead=self.max_dead,
            max_dead_bytes=self.max_dead_bytes,
            cap=self.max_in_flight or 0,
        )
        due = int(due)
        return FailOutcome(_text(state), due if due >= 0 else None, int(attempt))  # type: ignore[arg-type]

    def sweep(self, budget_s: float = 10.0) -> SweepResult:
        """Promote due delayed jobs and reclaim expired leases until none is left or
        `budget_s` seconds have passed (batches of SWEEP_BATCH, one round trip each);
        then re-check the server's eviction policy.
        """
        deadline = time.monotonic() + budget_s
        promoted: list[str] = []
        reclaimed: list[str] = []
        dead: list[str] = []
        dropped: list[str] = []
        while True:
            p, r, d, gone, more = self._run(
                "sweep",
                max_stalls=self.max_stalls,
                max_dead=self.max_dead,
                max_dead_bytes=self.max_dead_bytes,
                ttl_ms=self.consumer_ttl_ms,
                batch=SWEEP_BATCH,
            )
            promoted += _text_list(p)
            reclaimed += _text_list(r)
            dead += _text_list(d)
            dropped += _text_list(gone)
            complete = not int(more)
            if complete or time.monotonic() >= deadline:
                break
        try:
            self.check_server()
            problem = None
        except QueueConfigError as exc:
            problem = str(exc)
        return SweepResult(promoted, reclaimed, dead, dropped, problem, complete)

    def raise_token_floor(self, floor: int) -> int:
        """Issue no token at or below `floor` from now on; returns the last token issued.

        The system of record (Postgres) calls this with the largest token it holds, so
        a Redis that restarted empty on a clock running behind cannot issue tokens
        below ones Postgres already accepted.
        """
        _check_int(floor, "floor", 0)
        return int(self._run("raise_token_floor", floor=str(floor)))

    def states(self, job_ids: list[str]) -> dict[str, str | None]:
        """Each job's state ("waiting", "delayed", "active", "dead"), None if unknown; one trip."""
        if not job_ids:
            return {}
        found = self._run("states", ids=list(job_ids))
        return {
            job_id: None if state is None else _text(state)
            for job_id, state in zip(job_ids, found, strict=True)
        }

    def inspect(self, job_ids: Sequence[str]) -> tuple[int, dict[str, JobView]]:
        """(server time ms, what the queue holds for each id it knows), in one trip."""
        if not job_ids:
            return int(time.time() * 1000), {}
        now, found = self._run("inspect", ids=list(job_ids))
        views: dict[str, JobView] = {}
        for job_id, row in zip(job_ids, found, strict=True):
            if not row:
                continue
            state, consumer, lease, due, attempt = (None if v is None else _text(v) for v in row)
            views[job_id] = JobView(
                state=state or "",
                consumer=consumer,
                lease_until_ms=_opt_int(lease),
                due_ms=_opt_int(due),
                attempt=_opt_int(attempt),
            )
        return int(now), views

    def consumers(self, top: int = 100) -> tuple[int, list[ConsumerView]]:
        """(server time ms, consumers): those holding leases first, then the most recently
        seen, up to `top`; each with its jobs in flight and its soonest lease expiry."""
        now, flat = self._run("consumers", top=_check_int(top, "top", 1, 1000))
        found = []
        for i in range(0, len(flat), 4):
            lease = int(float(_text(flat[i + 3])))
            seen = int(float(_text(flat[i + 1])))
            found.append(
                ConsumerView(
                    consumer=_text(flat[i]),
                    last_seen_ms=seen if seen >= 0 else None,
                    jobs=int(flat[i + 2]),
                    lease_until_ms=lease if lease >= 0 else None,
                )
            )
        return int(now), found

    def remove(self, job_id: str) -> bool:
        """Forget a job in any state; its current token (if any) becomes stale."""
        return bool(self._run("remove", id=job_id))

    def delete_all(self) -> int:
        """Delete every key of this queue, jobs included; how many went.

        For throwaway queues (a demo on shared Redis, benches, tests that stand in
        for a FLUSHALL), not for production: it scans, so it is not one atomic step.
        """
        keys = list(self.client.scan_iter(match=self._prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])
        return len(keys)

    def pause(self) -> None:
        """Stop handing out jobs; enqueues and sweeps go on."""
        self._run("pause")

    def resume(self) -> None:
        self._run("resume")

    def is_paused(self) -> bool:
        return bool(self.client.exists(self.keys["paused"]))

    def wait_for_job(self, timeout: float) -> bool:
        """Block until work may be claimable, or `timeout` seconds; True if woken early.

        An enqueue pushes one marker, which wakes one blocked worker. The block never
        outlasts the next delayed job's due time, including a job put off to later
        while this worker blocks (that wakes it to re-plan). The client's
        socket_timeout, if set, must exceed `timeout`.
        """
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        deadline = time.monotonic() + timeout
        while True:
            ready, due_in_ms = self._run("peek", cap=self.max_in_flight or 0)
            if int(ready):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            due_in = int(due_in_ms)
            block = left if due_in < 0 else min(left, due_in / 1000)
            if block <= 0:
                return True
            self.client.blpop([self.keys["marker"]], timeout=max(block, 0.001))

    # --- limits --------------------------------------------------------------------------

    def admit(
        self,
        owner: str | None,
        *,
        per_minute: float,
        burst: int,
        max_waiting: int | None,
        busy_retry_ms: int = 10_000,
    ) -> Admission:
        """May `owner` submit one more job now? One round trip; takes a token if so.

        Refuses "too_many_waiting" while the owner has `max_waiting` jobs waiting
        (retry hint `busy_retry_ms`), else "rate_limited" when its token bucket
        (`burst` tokens, refilled at `per_minute`) is empty, with the ms until a
        token is back. Other owners are unaffected.
        """
        code, wait_ms = self._run(
            "admit",
            owner=_owner_field(owner),
            rate=repr(_per_ms(per_minute, "per_minute")),
            burst=_check_int(burst, "burst", 1),
            max_waiting=0 if max_waiting is None else _check_int(max_waiting, "max_waiting", 1),
            busy_ms=_check_int(busy_retry_ms, "busy_retry_ms", 1),
        )
        code = _text(code)
        return Admission(True) if not code else Admission(False, code, int(wait_ms))

    def sign_in_wait_ms(
        self, client_id: str, *, per_minute: float, burst: int, failed: bool = False
    ) -> int:
        """Failed sign-ins of one client: 0 if it may try (again), else ms until it may.

        `failed=True` records a failure first. A client may fail `burst` times in a
        row; the bucket forgives `per_minute` failures a minute.
        """
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("client_id must be a non-empty string")
        return int(
            self._run(
                "sign_in",
                client=client_id[:200],
                rate=repr(_per_ms(per_minute, "per_minute")),
                burst=_check_int(burst, "burst", 1),
                cost=1 if failed else 0,
            )
        )

    # --- inspection ----------------------------------------------------------------------

    def stats(self, top: int = 100) -> dict[str, Any]:
        """Counts per state, oldest waiting age, consumers seen, per-owner counts; one trip.

        `owners` lists up to `top` owners with waiting jobs (next turn first) and their
        waiting and active counts; the shared tenant (owner None) is "".
        """
        (
            waiting,
            delayed,
            active,
            dead,
            paused,
            age,
            n_consumers,
            consumers,
            n_owners,
            owner_waiting,
            owner_active,
            dead_bytes,
            dangling,
        ) = self._run("stats", top=top)
        by_wait = _pairs(owner_waiting)
        by_active = _pairs(owner_active)
        owners = {
            o: {"waiting": by_wait.get(o, 0), "active": by_active.get(o, 0)}
            for o in [*by_wait, *(o for o in by_active if o not in by_wait)]
        }
        return {
            "name": self.name,
            "waiting": int(waiting),
            "delayed": int(delayed),
            "active": int(active),
            "dead": int(dead),
            "deadBytes": int(dead_bytes),
            "dangling": int(dangling),
            "paused": bool(int(paused)),
            "oldestWaitingAgeMs": int(age) if int(age) >= 0 else None,
            "consumers": _pairs(consumers),
            "consumersSeen": int(n_consumers),
            "ownersWaiting": int(n_owners),
            "owners": owners,
            "maxInFlight": self.max_in_flight,
        }

    def job_info(self, job_id: str) -> dict[str, Any] | None:
        """A job's queue record for inspection: attempts, stalls, failures, error history."""
        raw = self.client.hgetall(self.job_key(job_id))
        if not raw:
            return None
        h = {_text(k): _text(v) for k, v in raw.items()}

        def opt_int(field: str) -> int | None:
            return int(h[field]) if field in h else None

        return {
            "jobId": job_id,
            "state": h.get("state"),
            "owner": h.get("owner") or None,
            "priority": int(h.get("prio", 0)),
            "attempts": int(h.get("attempt", 0)),
            "failures": int(h.get("failures", 0)),
            "stalls": int(h.get("stalls", 0)),
            "token": opt_int("token"),
            "consumer": h.get("consumer"),
            "leaseUntilMs": opt_int("lease"),
            "createdMs": opt_int("created"),
            "errors": json.loads(h.get("errors", "[]")) or [],
        }
