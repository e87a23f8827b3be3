"""Random interleavings of queue operations and clock moves, checked against invariants.

Whatever happens, a job the queue was given and did not finish is in exactly one
state (never lost, never in two places), its hash agrees with the set holding it,
only the newest token of an active job is live, tokens only grow, and the cap holds.
Owners: a waiting job sits in its own owner's set and nowhere else, the ring holds
exactly the owners with waiting jobs, and no owner with waiting jobs sees more than
(owners - 1) jobs handed to others before its own turn (fairness). Limits: an owner
at its waiting cap is refused, one below is never refused for it, and the token
bucket admits no more than its model allows. Dead bytes equal the dead jobs' sizes.
"""

from __future__ import annotations

import os
import uuid

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chalicelib.queue import Queue

JOBS = [f"j{i}" for i in range(5)]
OWNERS = ["A", "B", None]
STATES = ("waiting", "delayed", "active", "dead")
CAP = 3
WAITING_CAP = 2  # admit's cap on one owner's waiting jobs
RATE_PER_MINUTE = 1.0  # admit's token bucket: one token a minute...
BURST = 2  # ...up to two
SLACK = 0.05  # tokens the real milliseconds of a run may add to the model's count
# Time moves only by `time_offset_ms`, in steps of 10 s; durations are chosen so that
# no deadline ever falls within 5 s of "now", so the few real milliseconds a run
# takes never change an outcome and every example replays exactly.
LEASE = 105_000
MAX_ATTEMPTS = 3
# weights: how often each operation is picked
OPS = [
    *["enqueue"] * 3,
    *["claim"] * 3,
    *["ack"] * 2,
    "ack_and_claim",
    "ack_many",
    *["admit"] * 2,
    "extend",
    *["fail"] * 2,
    *["sweep"] * 2,
    *["time_passes"] * 2,
    "remove",
    "pause",
    *["resume"] * 2,
]


class QueueMachine(RuleBasedStateMachine):
    client: redis.Redis

    def __init__(self) -> None:
        super().__init__()
        self.q = Queue(
            self.client,
            f"p-{uuid.uuid4().hex[:12]}",
            max_attempts=MAX_ATTEMPTS,
            max_stalls=2,
            max_in_flight=CAP,
            backoff_base_ms=10_000,
            backoff_max_ms=100_000,
        )
        self.held: set[str] = set()  # given to the queue, neither acked nor removed
        self.tokens: dict[str, list[int]] = {}  # every token issued, per job, in order
        self.last_token = 0
        self.paused = False
        self.skipped = {self._field_owner(o): 0 for o in OWNERS}  # jobs to others meanwhile
        self.bucket = {self._field_owner(o): float(BURST) for o in OWNERS}
        self.bucket_at = 0  # time_offset_ms the buckets were last brought up to

    @staticmethod
    def _field_owner(owner: str | None) -> str:
        return owner or ""

    def teardown(self) -> None:
        self.q.delete_all()

    def _field(self, job: str, field: str) -> str | None:
        value = self.client.hget(self.q.job_key(job), field)
        return None if value is None else value.decode()

    def _live_token(self, job: str) -> int | None:
        state, token = self.client.hmget(self.q.job_key(job), ["state", "token"])
        return int(token) if token is not None and state == b"active" else None

    def _issued(self) -> list[tuple[str, int]]:
        return [(job, token) for job, tokens in self.tokens.items() for token in tokens]

    @initialize(
        jobs=st.lists(
            st.tuples(st.sampled_from(JOBS), st.sampled_from(OWNERS)), unique_by=lambda t: t[0]
        )
    )
    def some_jobs(self, jobs: list[tuple[str, str | None]]) -> None:
        for job, owner in jobs:
            assert self.q.enqueue(job, owner=owner)
            self.held.add(job)

    @rule(op=st.sampled_from(OPS), data=st.data())
    def step(self, op: str, data: st.DataObject) -> None:
        """One operation; a weighted pick so claims, acks and failures are common."""
        if op in ("ack", "extend", "fail", "ack_and_claim", "ack_many") and not self.tokens:
            op = "claim"
        getattr(self, op)(data)

    def enqueue(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(JOBS), label="job")
        owner = data.draw(st.sampled_from(OWNERS), label="owner")
        priority = data.draw(st.integers(-2, 2), label="priority")
        delay = data.draw(st.sampled_from([0, 0, 55_000, 305_000]), label="delay_ms")
        before = self.q.states([job])[job]
        assert self.q.enqueue(job, priority, delay, owner=owner) == (before in (None, "dead"))
        self.held.add(job)

    def _took(self, claims: list, jobs: dict[str, dict[str, str | None]], count: int) -> None:
        """Check claims against the jobs as they were just before, and keep the model."""
        before = {job: record["state"] for job, record in jobs.items()}
        attempts = {job: int(record["attempt"] or 0) for job, record in jobs.items()}
        active = sum(1 for s in before.values() if s == "active")
        assert len(claims) <= count and active + len(claims) <= CAP
        if self.paused:
            assert claims == []
        waiting_owners = {r["owner"] for r in jobs.values() if r["state"] == "waiting"}
        for c in claims:
            assert before[c.job_id] in ("waiting", "delayed")
            assert c.attempt == attempts[c.job_id] + 1
            assert c.token > self.last_token
            self.last_token = c.token
            self.tokens.setdefault(c.job_id, []).append(c.token)
            served = jobs[c.job_id]["owner"] or ""
            for owner in waiting_owners - {served}:
                self.skipped[owner or ""] += 1
            self.skipped[served] = 0
        still = {r["owner"] or "" for r in self._jobs().values() if r["state"] == "waiting"}
        for owner in self.skipped:
            if owner not in still:
                self.skipped[owner] = 0
        assert max(self.skipped.values()) <= len(OWNERS) - 1, self.skipped

    def claim(self, data: st.DataObject) -> None:
        consumer = data.draw(st.sampled_from(["a", "b"]), label="consumer")
        count = data.draw(st.integers(1, 3), label="count")
        jobs = self._jobs()
        self._took(self.q.claim(consumer, LEASE, count), jobs, count)

    def ack_and_claim(self, data: st.DataObject) -> None:
        job, token, live = self._pick_token(data)
        jobs = self._jobs()
        done, claim = self.q.ack_and_claim(job, token, "a", LEASE)
        assert done == (token == live)
        if done:
            self.held.discard(job)
            jobs[job] = dict.fromkeys(jobs[job])  # acked before the claim, in the same script
        self._took([claim] if claim else [], jobs, 1)

    def ack_many(self, data: st.DataObject) -> None:
        picks = [self._pick_token(data) for _ in range(data.draw(st.integers(1, 3), label="n"))]
        done = self.q.ack_many([(job, token) for job, token, _ in picks])
        acked: set[str] = set()
        for (job, token, live), ok in zip(picks, done, strict=True):
            assert ok == (token == live and job not in acked)
            if ok:
                acked.add(job)
                self.held.discard(job)

    def admit(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(OWNERS), label="owner")
        key = owner or ""
        waiting = self.client.zcard(self.q.wait_key(owner))
        elapsed = self.q.time_offset_ms - self.bucket_at
        for o in self.bucket:
            self.bucket[o] = min(BURST, self.bucket[o] + elapsed * RATE_PER_MINUTE / 60_000)
        self.bucket_at = self.q.time_offset_ms
        result = self.q.admit(
            owner, per_minute=RATE_PER_MINUTE, burst=BURST, max_waiting=WAITING_CAP
        )
        if waiting >= WAITING_CAP:
            assert (result.allowed, result.code) == (False, "too_many_waiting")
        elif result.allowed:
            assert self.bucket[key] >= 1 - SLACK, self.bucket
            self.bucket[key] = max(0.0, self.bucket[key] - 1)
        else:
            assert result.code == "rate_limited" and result.retry_after_ms > 0
            assert self.bucket[key] < 1 + SLACK, self.bucket

    def _pick_token(self, data: st.DataObject) -> tuple[str, int, int | None]:
        newest = [(job, tokens[-1]) for job, tokens in self.tokens.items()]
        pool = newest if data.draw(st.booleans(), label="newest token") else self._issued()
        job, token = data.draw(st.sampled_from(pool), label="job, token")
        return job, token, self._live_token(job)

    def ack(self, data: st.DataObject) -> None:
        job, token, live = self._pick_token(data)
        done = self.q.ack(job, token)
        assert done == (token == live)
        if done:
            self.held.discard(job)

    def extend(self, data: st.DataObject) -> None:
        job, token, live = self._pick_token(data)
        lease = data.draw(st.sampled_from([5_000, 205_000]), label="lease_ms")
        assert self.q.extend(job, token, lease) == (token == live)

    def fail(self, data: st.DataObject) -> None:
        job, token, live = self._pick_token(data)
        retryable = data.draw(st.sampled_from([True, True, True, False]), label="retryable")
        jitter = data.draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]), label="jitter")
        self.q.jitter = lambda: jitter
        failures = int(self._field(job, "failures") or 0)
        outcome = self.q.fail(job, token, "boom", retryable)
        if token != live:
            assert outcome.state == "stale"
        elif retryable and failures + 1 < MAX_ATTEMPTS:
            assert outcome.state == "delayed" and outcome.retry_at_ms is not None
        else:
            assert outcome.state == "dead"

    def sweep(self, data: st.DataObject) -> None:
        before = self.q.states(JOBS)
        result = self.q.sweep()
        assert all(before[j] == "delayed" for j in result.promoted)
        assert all(before[j] == "active" for j in result.reclaimed + result.dead)
        assert not set(result.reclaimed) & set(result.dead)

    def time_passes(self, data: st.DataObject) -> None:
        self.q.time_offset_ms += data.draw(st.sampled_from([10_000, 60_000, 200_000]), label="ms")

    def remove(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(JOBS), label="job")
        assert self.q.remove(job) == (job in self.held)
        self.held.discard(job)

    def pause(self, data: st.DataObject) -> None:
        self.q.pause()
        self.paused = True
        assert self.q.is_paused()

    def resume(self, data: st.DataObject) -> None:
        self.q.resume()
        self.paused = False
        assert not self.q.is_paused()

    def _jobs(self) -> dict[str, dict[str, str | None]]:
        """state, token, attempt and failures of every job, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        fields = ("state", "token", "attempt", "failures", "owner", "size")
        for job in JOBS:
            pipe.hmget(self.q.job_key(job), fields)
        return {
            job: {f: None if v is None else v.decode() for f, v in zip(fields, values, strict=True)}
            for job, values in zip(JOBS, pipe.execute(), strict=True)
        }

    @invariant()
    def every_held_job_is_in_exactly_one_state(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in ("since", "delayed", "active", "dead"):
            pipe.zrange(self.q.keys[key], 0, -1)
        for owner in OWNERS:
            pipe.zrange(self.q.wait_key(owner), 0, -1)
        pipe.zrange(self.q.keys["ring"], 0, -1)
        pipe.get(self.q.keys["deadbytes"])
        *found, ring, dead_bytes = pipe.execute()
        sets = [{m.decode() for m in f} for f in found]
        members = dict(zip(STATES, sets[:4], strict=True))
        by_owner = dict(zip([o or "" for o in OWNERS], sets[4:], strict=True))
        since = members["waiting"]
        assert set().union(*by_owner.values()) == since
        assert sum(len(s) for s in by_owner.values()) == len(since)  # one owner's set each
        assert {m.decode() for m in ring} == {o for o, s in by_owner.items() if s}
        jobs = self._jobs()
        sizes = [int(r["size"] or 0) for r in jobs.values() if r["state"] == "dead"]
        assert int(dead_bytes or 0) == sum(sizes) and all(sizes)
        for job, record in jobs.items():
            if record["state"] == "waiting":
                assert job in by_owner[record["owner"] or ""]
            places = [state for state in STATES if job in members[state]]
            state = record["state"]
            if job in self.held:
                assert places == [state], (job, places, state)
            else:
                assert places == [] and state is None, (job, places, state)
            assert (job in since) == (state == "waiting")
            if state == "active":
                assert record["token"] is not None
                assert int(record["token"]) == self.tokens[job][-1]
            else:
                assert record["token"] is None
        assert len(members["active"]) <= CAP


def test_random_interleavings_keep_the_invariants(redis_client: redis.Redis) -> None:
    """SOUNDCHECK_QUEUE_EXAMPLES=2000 runs it longer than CI does."""
    QueueMachine.client = redis_client
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=int(os.environ.get("SOUNDCHECK_QUEUE_EXAMPLES", "40")),
            stateful_step_count=40,
            deadline=None,
            database=None,
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
