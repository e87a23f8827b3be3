"""A submission storm through HTTP, on direct Postgres and through PgBouncer (issue 13).

N submissions from C concurrent clients, each an owner with its own API key (each
request its own TCP connection, as many browsers or scripts would make) to
`soundcheck dev` with K consumers, once with the stack on Postgres directly and
once through a real PgBouncer in transaction pooling (pool 10, as managed Postgres
pools for Lambda). Prints per way:
accepted / refused / errors (connection resets), submit latency p50 / p99 / max,
then completed / failed / lost (an accepted job not completed by the deadline, or
with no row) and the drain time (first submit to last job finished).

Uses REDIS_URL / DATABASE_URL when set (a queue and schema of its own), else
embedded servers. Prints numbers; asserts nothing. Run with `python -P`.

    .venv/bin/python -P bench/storm.py [--jobs 300] [--clients 64] [--consumers 2]
                                       [--via direct,pgbouncer]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import soundfile

from chalicelib.client import Client, ClientError
from chalicelib.db import connect
from chalicelib.jobs import JobStore
from chalicelib.local.background import BackgroundStack
from chalicelib.local.pgbouncer import MISSING, find_pgbouncer, start_pgbouncer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def short_track(path: Path) -> Path:
    """Half a second of a stereo tone mix, 44.1 kHz 16-bit: real audio, quick to analyse."""
    t = np.arange(22_050, dtype=np.float32) / 44_100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)
    out = io.BytesIO()
    soundfile.write(out, np.stack([tone, tone * 0.9], axis=1), 44_100, format="WAV")
    path.write_bytes(out.getvalue())
    return path


def statuses(database_url: str, schema: str, job_ids: list[str]) -> Counter[str]:
    """Status counts of these jobs, read from Postgres directly; 'missing' for no row."""
    conn = connect(database_url)
    try:
        conn.run("BEGIN")
        conn.run(f'SET LOCAL search_path TO "{schema}"')
        rows = conn.run(
            "SELECT status, count(*) FROM jobs"
            " WHERE id = ANY(CAST(:ids AS uuid[])) GROUP BY status",
            ids=job_ids,
        )
        conn.run("COMMIT")
    finally:
        conn.close()
    counts: Counter[str] = Counter({status: int(n) for status, n in rows})
    counts["missing"] = len(job_ids) - sum(counts.values())
    return counts


def storm(work: Path, via: str, direct_url: str, jobs: int, clients: int, consumers: int) -> None:
    with ExitStack() as cleanup:
        env = {"DATABASE_URL": direct_url}
        if via == "pgbouncer":
            bouncer = start_pgbouncer(direct_url, pool_size=10)
            cleanup.callback(bouncer.stop)
            env["DATABASE_URL"] = bouncer.url
        stack = BackgroundStack(work / via, consumers=consumers, purpose="storm", extra_env=env)
        cleanup.callback(stack.stop)
        info = stack.start()
        schema = stack.env["SOUNDCHECK_DB_SCHEMA"]
        # One owner (API key) per client, as many tenants would be: each stays within
        # the per-owner submission limits (issue 13's item 3) that one key would hit.
        store = JobStore(direct_url, schema)
        keys = [store.create_api_key(f"storm-{n}") for n in range(clients)]
        store.close()
        uploads = {}
        for key in keys:
            owner_client = Client(info.url, key, timeout=60)
            uploads[key] = owner_client.upload(short_track(work / f"{via}.wav"))
        warm = Client(info.url, keys[0], timeout=60)
        warm.wait(warm.submit(uploads[keys[0]])["jobId"], timeout=120)

        accepted: list[str] = []
        refused: Counter[str] = Counter()
        latencies: list[float] = []
        lock = threading.Lock()

        def submit(n: int) -> None:
            key = keys[n % clients]
            mine = Client(info.url, key, timeout=60)
            sent = time.perf_counter()
            try:
                job_id = str(mine.submit(uploads[key])["jobId"])
            except ClientError as exc:
                with lock:
                    refused[f"{exc.status} {exc.code}: {exc.message[:60]}"] += 1
                return
            finally:
                elapsed = (time.perf_counter() - sent) * 1000
                with lock:
                    latencies.append(elapsed)
            with lock:
                accepted.append(job_id)

        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(submit, range(jobs)))
        submitted = time.monotonic() - started

        deadline = time.monotonic() + max(120.0, jobs * 0.5)
        while True:
            counts = statuses(direct_url, schema, accepted)
            unfinished = counts["queued"] + counts["processing"]
            if unfinished == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drain = time.monotonic() - started
        lost = len(accepted) - counts["completed"] - counts["failed"]

    print(f"{via:>9}: {jobs} submissions from {clients} clients, {consumers} consumers")
    print(
        f"           accepted {len(accepted)}   refused {sum(refused.values())}"
        f"   submit p50 {percentile(latencies, 50):.0f} ms  p99 {percentile(latencies, 99):.0f} ms"
        f"  max {max(latencies, default=float('nan')):.0f} ms   ({submitted:.1f} s to submit)"
    )
    for reason, n in refused.most_common(5):
        print(f"             {n} x {reason}")
    print(
        f"           completed {counts['completed']}   failed {counts['failed']}"
        f"   lost {lost} (missing rows {counts['missing']})   drain {drain:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--via", default="direct,pgbouncer")
    args = parser.parse_args()
    ways = [w.strip() for w in args.via.split(",") if w.strip()]
    if "pgbouncer" in ways and find_pgbouncer() is None:
        print(f"pgbouncer row skipped: {MISSING}")
        ways.remove("pgbouncer")
    with tempfile.TemporaryDirectory(prefix="soundcheck-storm-") as tmp, ExitStack() as cleanup:
        work = Path(tmp)
        direct_url = os.environ.get("DATABASE_URL")
        if not direct_url:
            from chalicelib.local.embedded import start_postgres

            server = start_postgres(work / "pg")
            cleanup.callback(server.stop)
            direct_url = server.url
        for via in ways:
            storm(work, via, direct_url, args.jobs, args.clients, args.consumers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
