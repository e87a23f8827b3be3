"""The Redis job queue: leases, fencing tokens, retries, priorities; redis-py + Lua only.

Redis only says what to do next; Postgres is the truth about jobs. So the queue
keeps nothing once a job is acked, and every state change is one Lua script (one
round trip, atomic), timed by the Redis server's clock so consumers agree.

Key layout (every key of a queue shares the hash tag ``{<name>}``, so the scripts
run on Redis Cluster; job keys are built inside the scripts from a prefix and hash
to the same slot):

``sq:{name}:wait``       ZSET waiting job ids; score = (MAX_PRIORITY - priority) * 2**42 + seq,
                         so ZPOPMIN takes the highest priority first, FIFO within one
``sq:{name}:delayed``    ZSET job ids not yet due; score = due time (ms)
``sq:{name}:active``     ZSET claimed job ids; score = lease expiry (ms)
``sq:{name}:dead``       ZSET dead job ids; score = time of death (ms); trimmed to ``max_dead``
``sq:{name}:since``      ZSET waiting job ids; score = when they became waiting (oldest age)
``sq:{name}:seq``        STRING enqueue counter (FIFO order within a priority)
``sq:{name}:token``      STRING last fencing token issued
``sq:{name}:paused``     STRING present while the queue is paused
``sq:{name}:consumers``  ZSET consumer id -> last seen (ms); idle ones dropped by sweep
``sq:{name}:marker``     LIST wake-up markers for ``wait_for_job`` (BLPOP), at most 1024
``sq:{name}:job:<id>``   HASH state, prio, order, created, attempt, failures, stalls,
                         token, consumer, lease, errors (JSON list, last 10)

Scripts (each is one EVALSHA):

enqueue   new id (or a dead one, which starts afresh) -> wait (+1 marker) or delayed
claim     records the consumer; unless paused: promotes due delayed jobs, pops up to
          ``count`` (fewer at the in-flight cap) from wait into active with a lease
          and a new token each
extend    current token only: pushes the lease expiry out
ack       current token only: forgets the job (removes it from active, deletes its hash)
ack_and_claim   ack, then claim one (one round trip per job for a busy worker)
ack_many  ack a batch of (id, token) pairs
fail      current token only: records the error; retryable and failures < max_attempts
          -> delayed with full-jitter exponential backoff, else -> dead
sweep     promotes due delayed jobs; moves expired leases back to wait counting a
          stall, or to dead at ``max_stalls``; drops consumers idle past their TTL
states    the state of each given id (read only)
remove    forgets a job in any state
pause / resume   set / clear the paused flag (resume wakes waiting workers)
peek      for ``wait_for_job``: is there claimable work now, else when is the next
          delayed job due; clears stale markers so BLPOP only returns on new work
stats     counts per state, oldest waiting age, consumers last seen (read only)

Fencing tokens only grow across the whole queue, even if Redis loses its data: a
claim never issues a token below the server time in microseconds (~1.8e15, so a
Postgres bigint). A lease that has run out still belongs to its token until a sweep
reclaims the job; from then on that token can neither extend, ack nor fail it.

Waking: an enqueue (and a resume, a sweep that frees jobs, an ack or death under
the in-flight cap) pushes markers; each blocked ``wait_for_job`` BLPOP takes one, so
one new job wakes one worker. Retried and reclaimed jobs keep their original place
in the wait order.

The server is checked (``maxmemory-policy`` must be ``noeviction``, Redis >= 6.2) on
a Queue's first enqueue or claim; ``check_server()`` does it up front.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis
from redis.exceptions import NoScriptError

from chalicelib.errors import QueueConfigError

if TYPE_CHECKING:
    from chalicelib.settings import Settings

MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
MAX_JOB_ID_LENGTH = 200
MAX_ERROR_CHARS = 2000
ERROR_HISTORY = 10
MARKER_MAX = 1024
SWEEP_BATCH = 1000
PROMOTE_ON_CLAIM = 100
MIN_REDIS_VERSION = (6, 2)

_KEY_NAMES = (
    "wait",
    "delayed",
    "active",
    "dead",
    "since",
    "seq",
    "token",
    "paused",
    "consumers",
    "marker",
)


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
    """Ids a sweep moved: due delayed -> wait, expired lease -> wait, stalled too often -> dead."""

    promoted: list[str]
    reclaimed: list[str]
    dead: list[str]


# Shared by every script. KEYS are the queue's keys in _KEY_NAMES order; ARGV[1] is
# the job key prefix, ARGV[2] the clock offset (ms, tests only); the rest is per script.
# Numbers going back to Redis pass through num(): Lua would print them with 14 digits.
_PRELUDE = """
local K = {wait = KEYS[1], delayed = KEYS[2], active = KEYS[3], dead = KEYS[4],
           since = KEYS[5], seq = KEYS[6], token = KEYS[7], paused = KEYS[8],
           consumers = KEYS[9], marker = KEYS[10]}
local JOB = ARGV[1]
local clock = redis.call('TIME')
local offset = tonumber(ARGV[2])
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + offset
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2]) + offset * 1000

local function num(x) return string.format('%.0f', x) end
"""

# Helpers, in dependency order; a script carries only those it calls (less work per call).
_HELPERS: dict[str, str] = {
    "to_wait": """
local function to_wait(id, jk, order)
  redis.call('HSET', jk, 'state', 'waiting')
  redis.call('ZADD', K.wait, order, id)
  redis.call('ZADD', K.since, num(now), id)
end
""",
    "has_work": """
local function has_work()
  if redis.call('ZCARD', K.wait) > 0 then return true end
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
    "bury": """
local function bury(id, jk, max_dead)
  redis.call('HSET', jk, 'state', 'dead')
  redis.call('HDEL', jk, 'token', 'consumer', 'lease')
  redis.call('ZADD', K.dead, num(now), id)
  local extra = redis.call('ZCARD', K.dead) - max_dead
  if extra > 0 then
    local old = redis.call('ZPOPMIN', K.dead, extra)
    for i = 1, #old, 2 do redis.call('DEL', JOB .. old[i]) end
  end
end
""",
    "promote": """
local function promote(limit)
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', num(now), 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local jk = JOB .. id
    redis.call('ZREM', K.delayed, id)
    to_wait(id, jk, redis.call('HGET', jk, 'order'))
  end
  return due
end
""",
    "current": """
local function current(jk, token)
  local v = redis.call('HMGET', jk, 'state', 'token', 'attempt')
  return v[1] == 'active' and v[2] == token, tonumber(v[3] or '0')
end
""",
    "take": """
local function take(consumer, lease, count, cap)
  redis.call('ZADD', K.consumers, num(now), consumer)
  if redis.call('EXISTS', K.paused) == 1 then return {} end
  promote(__PROMOTE_ON_CLAIM__)
  local n = count
  if cap > 0 then n = math.min(n, cap - redis.call('ZCARD', K.active)) end
  if n <= 0 then return {} end
  local popped = redis.call('ZPOPMIN', K.wait, n)
  if #popped == 0 then return {} end
  local expires = num(now + lease)
  local out = {}
  for i = 1, #popped, 2 do
    local id = popped[i]
    local jk = JOB .. id
    redis.call('ZREM', K.since, id)
    if redis.call('HGET', jk, 'state') == 'waiting' then
      local token = redis.call('INCR', K.token)
      if token < now_us then  -- never below the clock: tokens outgrow a lost or stale counter
        token = now_us
        redis.call('SET', K.token, num(token))
      end
      local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
      redis.call('HSET', jk, 'state', 'active', 'token', num(token), 'consumer', consumer,
                 'lease', expires)
      redis.call('ZADD', K.active, expires, id)
      out[#out + 1] = id
      out[#out + 1] = token
      out[#out + 1] = attempt
    end
  end
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
}


_SCRIPTS: dict[str, str] = {
    # ARGV: id, priority, delay_ms
    "enqueue": """
local id, prio, delay = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local jk = JOB .. id
local state = redis.call('HGET', jk, 'state')
if state and state ~= 'dead' then return 0 end
if state == 'dead' then
  redis.call('ZREM', K.dead, id)
  redis.call('DEL', jk)
end
local seq = redis.call('INCR', K.seq) % __SEQ_SPAN__
local order = num((__MAX_PRIORITY__ - prio) * __SEQ_SPAN__ + seq)
redis.call('HSET', jk, 'prio', ARGV[4], 'order', order, 'created', num(now),
           'attempt', 0, 'failures', 0, 'stalls', 0)
if delay > 0 then
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('ZADD', K.delayed, num(now + delay), id)
else
  to_wait(id, jk, order)
  wake(1)
end
return 1
""",
    # ARGV: consumer, lease_ms, count, cap (0 = none)
    "claim": """
local consumer, lease, count, cap = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
return take(consumer, lease, count, cap)
""",
    # ARGV: id, token, lease_ms
    "extend": """
local id = ARGV[3]
local jk = JOB .. id
if not current(jk, ARGV[4]) then return 0 end
local expires = num(now + tonumber(ARGV[5]))
redis.call('HSET', jk, 'lease', expires)
redis.call('ZADD', K.active, expires, id)
return 1
""",
    # ARGV: id, token, cap
    "ack": """
local done = finish(ARGV[3], ARGV[4])
if done == 1 and tonumber(ARGV[5]) > 0 and has_work() then wake(1) end
return done
""",
    # ARGV: id, token, consumer, lease_ms, cap. Returns {acked, {id, token, attempt} or {}}.
    "ack_and_claim": """
local done = finish(ARGV[3], ARGV[4])
return {done, take(ARGV[5], tonumber(ARGV[6]), 1, tonumber(ARGV[7]))}
""",
    # ARGV: cap, then id, token pairs. Returns 1/0 per pair.
    "ack_many": """
local out, freed = {}, 0
for i = 4, #ARGV, 2 do
  out[#out + 1] = finish(ARGV[i], ARGV[i + 1])
  freed = freed + out[#out]
end
if freed > 0 and tonumber(ARGV[3]) > 0 and has_work() then wake(freed) end
return out
""",
    # ARGV: id, token, error, retryable, max_attempts, base_ms, max_ms, jitter, max_dead, cap
    "fail": """
local id = ARGV[3]
local jk = JOB .. id
local ok, attempt = current(jk, ARGV[4])
if not ok then return {'stale', -1, attempt} end
local failures = redis.call('HINCRBY', jk, 'failures', 1)
record(jk, 'error', attempt, ARGV[5])
redis.call('ZREM', K.active, id)
if ARGV[6] == '1' and failures < tonumber(ARGV[7]) then
  local ceiling = math.min(tonumber(ARGV[9]), tonumber(ARGV[8]) * 2 ^ (failures - 1))
  local due = now + math.floor(tonumber(ARGV[10]) * ceiling)
  redis.call('HSET', jk, 'state', 'delayed')
  redis.call('HDEL', jk, 'token', 'consumer', 'lease')
  redis.call('ZADD', K.delayed, num(due), id)
  return {'delayed', due, attempt}
end
bury(id, jk, tonumber(ARGV[11]))
if tonumber(ARGV[12]) > 0 and has_work() then wake(1) end
return {'dead', -1, attempt}
""",
    # ARGV: max_stalls, max_dead, consumer_ttl_ms
    "sweep": """
local max_stalls, max_dead, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local promoted = promote(__SWEEP_BATCH__)
local reclaimed, dead = {}, {}
local expired = redis.call('ZRANGEBYSCORE', K.active, '-inf', '(' .. num(now),
                           'LIMIT', 0, __SWEEP_BATCH__)
for _, id in ipairs(expired) do
  local jk = JOB .. id
  redis.call('ZREM', K.active, id)
  local stalls = redis.call('HINCRBY', jk, 'stalls', 1)
  local v = redis.call('HMGET', jk, 'attempt', 'consumer', 'order')
  record(jk, 'stall', tonumber(v[1] or '0'), 'lease expired (consumer ' .. (v[2] or '?') .. ')')
  if stalls >= max_stalls then
    bury(id, jk, max_dead)
    dead[#dead + 1] = id
  else
    redis.call('HDEL', jk, 'token', 'consumer', 'lease')
    to_wait(id, jk, v[3])
    reclaimed[#reclaimed + 1] = id
  end
end
redis.call('ZREMRANGEBYSCORE', K.consumers, '-inf', '(' .. num(now - ttl))
wake(#promoted + #reclaimed)
return {promoted, reclaimed, dead}
""",
    # ARGV: ids...
    "states": """
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = redis.call('HGET', JOB .. ARGV[i], 'state') or false
end
return out
""",
    # ARGV: id
    "remove": """
local id = ARGV[3]
local jk = JOB .. id
local state = redis.call('HGET', jk, 'state')
if not state then return 0 end
if state == 'waiting' then
  redis.call('ZREM', K.wait, id)
  redis.call('ZREM', K.since, id)
elseif state == 'delayed' then redis.call('ZREM', K.delayed, id)
elseif state == 'active' then redis.call('ZREM', K.active, id)
elseif state == 'dead' then redis.call('ZREM', K.dead, id)
end
redis.call('DEL', jk)
return 1
""",
    "pause": """
redis.call('SET', K.paused, '1')
return 1
""",
    "resume": """
redis.call('DEL', K.paused)
if has_work() then wake(math.max(1, redis.call('ZCARD', K.wait))) end
return 1
""",
    # ARGV: cap. Returns {ready, ms until the next delayed job is due or -1}.
    "peek": """
local cap = tonumber(ARGV[3])
if redis.call('EXISTS', K.paused) == 1 then
  redis.call('DEL', K.marker)
  return {0, -1}
end
if cap > 0 and redis.call('ZCARD', K.active) >= cap then
  redis.call('DEL', K.marker)
  return {0, -1}
end
if has_work() then return {1, 0} end
redis.call('DEL', K.marker)
local first = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
if first[2] == nil then return {0, -1} end
return {0, tonumber(first[2]) - now}
""",
    "stats": """
local oldest = redis.call('ZRANGE', K.since, 0, 0, 'WITHSCORES')
local age = -1
if oldest[2] ~= nil then age = math.max(0, now - tonumber(oldest[2])) end
return {redis.call('ZCARD', K.wait), redis.call('ZCARD', K.delayed),
        redis.call('ZCARD', K.active), redis.call('ZCARD', K.dead),
        redis.call('EXISTS', K.paused), age, redis.call('ZCARD', K.consumers),
        redis.call('ZREVRANGE', K.consumers, 0, 99, 'WITHSCORES')}
""",
}

_CONSTANTS = {
    "__MARKER_MAX__": str(MARKER_MAX),
    "__MAX_ERROR_CHARS__": str(MAX_ERROR_CHARS),
    "__ERROR_HISTORY__": str(ERROR_HISTORY),
    "__SEQ_SPAN__": str(2**42),
    "__MAX_PRIORITY__": str(MAX_PRIORITY),
    "__PROMOTE_ON_CLAIM__": str(PROMOTE_ON_CLAIM),
    "__SWEEP_BATCH__": str(SWEEP_BATCH),
}


def _lua(body: str) -> str:
    used = {name for name in _HELPERS if re.search(rf"\b{name}\(", body)}
    for name in reversed(_HELPERS):  # helpers calling earlier helpers pull them in
        if name in used:
            used |= {n for n in _HELPERS if re.search(rf"\b{n}\(", _HELPERS[name])}
    source = _PRELUDE + "".join(src for name, src in _HELPERS.items() if name in used) + body
    for placeholder, value in _CONSTANTS.items():
        source = source.replace(placeholder, value)
    return source


_SOURCES: dict[str, str] = {name: _lua(body) for name, body in _SCRIPTS.items()}
_SHAS: dict[str, str] = {
    name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
    for name, src in _SOURCES.items()
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_list(values: Sequence[Any]) -> list[str]:
    return [_text(v) for v in values]


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


def _check_int(value: int, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be <= {high}, got {value!r}")
    return value


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
        self.consumer_ttl_ms = _check_int(consumer_ttl_ms, "consumer_ttl_ms", 1)
        self.jitter = jitter
        # Added to the Redis clock inside every script. Tests move time with it.
        self.time_offset_ms = 0
        prefix = f"sq:{{{name}}}:"
        self._prefix = prefix
        self.keys = [prefix + k for k in _KEY_NAMES]
        self._job_prefix = prefix + "job:"
        self._marker_key = prefix + "marker"
        # EVALSHA sha numkeys KEYS... job-prefix: encoded once, it is the same for every call
        self._head = [len(self.keys), *(k.encode() for k in self.keys), self._job_prefix.encode()]
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

    def _run(self, script: str, *args: Any) -> Any:
        """One EVALSHA; loads the script when the server does not know it (first use, restart)."""
        sha = _SHAS[script]
        try:
            return self.client.execute_command(
                "EVALSHA", sha, *self._head, self.time_offset_ms, *args
            )
        except NoScriptError:
            self.client.script_load(_SOURCES[script])
            return self.client.execute_command(
                "EVALSHA", sha, *self._head, self.time_offset_ms, *args
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

    def enqueue(self, job_id: str, priority: int = 0, delay_ms: int = 0) -> bool:
        """Add a job unless it is already waiting, delayed or active (a dead one starts afresh)."""
        _check_job_id(job_id)
        _check_int(priority, "priority", MIN_PRIORITY, MAX_PRIORITY)
        _check_int(delay_ms, "delay_ms", 0)
        self._ensure_checked()
        return bool(self._run("enqueue", job_id, priority, delay_ms))

    def claim(self, consumer_id: str, lease_ms: int, count: int = 1) -> list[Claim]:
        """Lease up to `count` jobs, highest priority first; nothing while paused or at the cap."""
        if not isinstance(consumer_id, str) or not consumer_id:
            raise ValueError("consumer_id must be a non-empty string")
        _check_int(lease_ms, "lease_ms", 1)
        _check_int(count, "count", 1, 1000)
        self._ensure_checked()
        flat = self._run("claim", consumer_id, lease_ms, count, self.max_in_flight or 0)
        return [
            Claim(_text(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    def extend(self, job_id: str, token: int, lease_ms: int) -> bool:
        """Renew the lease from now; False if `token` is no longer the job's current one."""
        _check_int(lease_ms, "lease_ms", 1)
        return bool(self._run("extend", job_id, int(token), lease_ms))

    def ack(self, job_id: str, token: int) -> bool:
        """Forget a finished job; False (and no effect) for a stale token."""
        return bool(self._run("ack", job_id, int(token), self.max_in_flight or 0))

    def ack_and_claim(
        self, job_id: str, token: int, consumer_id: str, lease_ms: int
    ) -> tuple[bool, Claim | None]:
        """Ack a finished job and lease the next one, in one round trip.

        Returns (acked, next claim or None). A stale token acks nothing (False) but the
        claim still happens: the caller is done with that job either way.
        """
        if not isinstance(consumer_id, str) or not consumer_id:
            raise ValueError("consumer_id must be a non-empty string")
        _check_int(lease_ms, "lease_ms", 1)
        self._ensure_checked()
        done, flat = self._run(
            "ack_and_claim", job_id, int(token), consumer_id, lease_ms, self.max_in_flight or 0
        )
        claim = Claim(_text(flat[0]), int(flat[1]), int(flat[2])) if flat else None
        return bool(done), claim

    def ack_many(self, pairs: Sequence[tuple[str, int]]) -> list[bool]:
        """Ack many finished jobs in one round trip; one bool per (job_id, token), in order."""
        if not pairs:
            return []
        args = [v for job_id, token in pairs for v in (job_id, int(token))]
        return [bool(done) for done in self._run("ack_many", self.max_in_flight or 0, *args)]

    def fail(self, job_id: str, token: int, error: str, retryable: bool) -> FailOutcome:
        """Record a failure: retry with backoff, or dead (not retryable, or out of attempts)."""
        state, due, attempt = self._run(
            "fail",
            job_id,
            int(token),
            str(error)[:MAX_ERROR_CHARS],
            1 if retryable else 0,
            self.max_attempts,
            self.backoff_base_ms,
            self.backoff_max_ms,
            min(max(float(self.jitter()), 0.0), 1.0),
            self.max_dead,
            self.max_in_flight or 0,
        )
        due = int(due)
        return FailOutcome(_text(state), due if due >= 0 else None, int(attempt))  # type: ignore[arg-type]

    def sweep(self) -> SweepResult:
        """Promote due delayed jobs and reclaim expired leases (up to 1000 of each per call)."""
        promoted, reclaimed, dead = self._run(
            "sweep", self.max_stalls, self.max_dead, self.consumer_ttl_ms
        )
        return SweepResult(_text_list(promoted), _text_list(reclaimed), _text_list(dead))

    def states(self, job_ids: list[str]) -> dict[str, str | None]:
        """Each job's state ("waiting", "delayed", "active", "dead"), None if unknown; one trip."""
        if not job_ids:
            return {}
        found = self._run("states", *job_ids)
        return {
            job_id: None if state is None else _text(state)
            for job_id, state in zip(job_ids, found, strict=True)
        }

    def remove(self, job_id: str) -> bool:
        """Forget a job in any state; its current token (if any) becomes stale."""
        return bool(self._run("remove", job_id))

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
        return bool(self.client.exists(self.keys[_KEY_NAMES.index("paused")]))

    def wait_for_job(self, timeout: float) -> bool:
        """Block until work may be claimable, or `timeout` seconds; True if woken early.

        An enqueue pushes one marker, which wakes one blocked worker. The block never
        outlasts the next delayed job's due time (claim promotes due jobs). The client's
        socket_timeout, if set, must exceed `timeout`.
        """
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        ready, due_in_ms = self._run("peek", self.max_in_flight or 0)
        if int(ready):
            return True
        block = timeout
        if int(due_in_ms) >= 0:
            block = min(timeout, int(due_in_ms) / 1000)
        if block <= 0:
            return True
        popped = self.client.blpop([self._marker_key], timeout=max(block, 0.001))
        return popped is not None or block < timeout

    def stats(self) -> dict[str, Any]:
        """Counts per state, oldest waiting age, consumers seen (latest 100); one round trip."""
        waiting, delayed, active, dead, paused, age, n_consumers, consumers = self._run("stats")
        pairs = _text_list(consumers)
        return {
            "name": self.name,
            "waiting": int(waiting),
            "delayed": int(delayed),
            "active": int(active),
            "dead": int(dead),
            "paused": bool(int(paused)),
            "oldestWaitingAgeMs": int(age) if int(age) >= 0 else None,
            "consumers": {pairs[i]: int(float(pairs[i + 1])) for i in range(0, len(pairs), 2)},
            "consumersSeen": int(n_consumers),
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
