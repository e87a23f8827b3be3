"""The admin console's routes against a jobs table of N rows: latency, and the plans.

Fills a fresh Postgres schema with `--jobs` jobs (default 10,000) of `--owners` owners
through the real trigger (inserted queued, then started with a lease token, then most
completed and some failed or left running, a few cancelled: so owner_usage,
job_metrics and job_attempts are what production would hold), then times each console
route through the app (chalice's test client, real Redis, real Postgres) and prints
p50 / p95 over `--runs` calls, and the plan of the list query.

Uses REDIS_URL / DATABASE_URL (required); its schema and queue are deleted after.
Prints numbers; asserts nothing.

    .venv/bin/python -P bench/console.py [--jobs 10000] [--owners 100] [--runs 30]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

from chalice.test import Client

from app import app
from chalicelib import deps
from chalicelib.db import drop_schema
from chalicelib.jobs import JobStore
from chalicelib.keys import KeyStore, Role
from chalicelib.settings import load

# The jobs are written as production writes them: a few per transaction (one row of
# each owner's usage and of each metrics shard changes a few times per transaction, not
# thousands: a bulk UPDATE of 10,000 jobs in one transaction makes the trigger walk
# thousands of versions of the same rows).
BATCH = 100
FILL = """
INSERT INTO jobs (id, owner, mode, file_key, request_hash, created_at, updated_at)
SELECT gen_random_uuid(), 'owner-' || (i % :owners), 'genre', 'k/' || i, 'h',
       now() - make_interval(secs => (:n - i) * 5.0), now() - make_interval(secs => (:n - i) * 5.0)
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS i
"""
START = """
UPDATE jobs SET status = 'processing', attempts = 1, lease_token = 1000000 + n,
       consumer = 'lambda:' || (n % 7), started_at = now(), updated_at = now()
FROM (SELECT id AS jid, row_number() OVER (ORDER BY created_at, id) AS n FROM jobs) AS t
WHERE id = jid AND n BETWEEN :lo AND :hi
"""
FINISH = """
UPDATE jobs SET
  status = CASE WHEN lease_token % 10 = 0 THEN 'failed'
                WHEN lease_token % 97 = 0 THEN 'processing'
                WHEN lease_token % 89 = 0 THEN 'cancelled' ELSE 'completed' END,
  error_code = CASE WHEN lease_token % 10 = 0 THEN
               (CASE WHEN lease_token % 20 = 0 THEN 'corrupt_file' ELSE 'internal_error' END) END,
  error_message = CASE WHEN lease_token % 10 = 0 THEN 'bench failure' END,
  result = CASE WHEN lease_token % 10 <> 0 THEN '{"file": {"durationSeconds": 180.0}}'::jsonb END,
  completed_at = now(), updated_at = now()
WHERE lease_token % 97 <> 0 AND lease_token - 1000000 BETWEEN :lo AND :hi
"""
# One job's complete(), as a consumer writes it: the trigger's cost per state change.
COMPLETE = """
UPDATE jobs SET status = 'completed', result = CAST(:result AS jsonb), completed_at = now(),
       updated_at = now() WHERE id = CAST(:id AS uuid) AND status = 'processing'
"""


def write_cost_ms(store: JobStore, runs: int, trigger: bool) -> float:
    """Median ms of one complete() of a processing job, with the console trigger or without."""
    switch = "ENABLE" if trigger else "DISABLE"
    store._rows(f"ALTER TABLE jobs {switch} TRIGGER jobs_console_update")
    ids = [
        row["id"]
        for row in store._rows(
            "SELECT CAST(id AS text) AS id FROM jobs WHERE status = 'processing' LIMIT :n", n=runs
        )
    ]
    samples = []
    for job_id in ids:
        started = time.perf_counter()
        store._rows(COMPLETE, id=job_id, result='{"file": {"durationSeconds": 60.0}}')
        samples.append((time.perf_counter() - started) * 1000)
    store._rows("ALTER TABLE jobs ENABLE TRIGGER jobs_console_update")
    return statistics.median(samples)


def timed(http: Any, path: str, headers: dict[str, str], runs: int) -> tuple[float, float, int]:
    """p50 and p95 in ms of GET path, and the response's size in bytes."""
    samples = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = http.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.body
        size = len(response.body)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    schema = f"sc_bench_{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": os.environ["REDIS_URL"],
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "SOUNDCHECK_DB_SCHEMA": schema,
        "QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
        "SOUNDCHECK_STORAGE_DIR": tempfile.mkdtemp(prefix="bench-console-"),
        "SOUNDCHECK_UPLOAD_SECRET": "bench-upload-secret-0123456789abcdef",
    }
    d = deps.Deps.from_settings(load(env))
    deps.override(d)
    try:
        d.jobs.migrate()
        filler = JobStore(env["DATABASE_URL"], schema, timeout=3600)
        fill_s = []
        for sql in (FILL, START, FINISH):
            started = time.perf_counter()
            for lo in range(1, args.jobs + 1, BATCH):
                hi = min(args.jobs, lo + BATCH - 1)
                params = {"n": args.jobs, "owners": args.owners} if sql is FILL else {}
                filler._rows(sql, lo=lo, hi=hi, **params)
            fill_s.append(round(time.perf_counter() - started, 1))
        rows = d.jobs._rows(
            "SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM job_attempts)"
            " AS attempts, (SELECT count(*) FROM owner_usage) AS owners,"
            " (SELECT count(*) FROM job_metrics) AS metric_rows"
        )[0]
        print(f"insert / start / finish through the trigger: {fill_s} s; {rows}")
        d.jobs._rows("ANALYZE jobs; ANALYZE job_attempts; ANALYZE owner_usage")
        key = KeyStore(d.jobs).create("bench-admin", role=Role.ADMIN)
        headers = {"Authorization": f"Bearer {key}"}
        with Client(app, project_dir=tempfile.mkdtemp()) as client:
            http = client.http
            first = http.get("/api/admin/jobs?limit=50", headers=headers)
            cursor = first.json_body["next"]
            routes = [
                "/api/admin/overview",
                "/api/admin/jobs?limit=50",
                f"/api/admin/jobs?limit=50&cursor={cursor}",
                "/api/admin/jobs?state=dead&limit=50",
                "/api/admin/jobs?state=failed&limit=200",
                "/api/admin/jobs?state=active&limit=50",
                "/api/admin/jobs?owner=owner-7&limit=50",
                "/api/admin/jobs?code=corrupt_file&limit=50",
                "/api/admin/owners?limit=200",
                "/api/queue/stats",
            ]
            print(f"{'route':58} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>8}")
            for path in routes:
                p50, p95, size = timed(http, path, headers, args.runs)
                shown = (
                    path if "cursor=" not in path else "/api/admin/jobs?limit=50&cursor=<page 2>"
                )
                print(f"{shown:58} {p50:8.1f} {p95:8.1f} {size:8d}")
        plan = d.jobs._rows(
            "EXPLAIN ANALYZE SELECT id FROM jobs WHERE status = 'failed'"
            " AND COALESCE(error_code = ANY(CAST(:codes AS text[])), false)"
            " ORDER BY created_at DESC, id DESC LIMIT 51",
            codes=["internal_error", "stalled"],
        )
        print("plan of ?state=dead:")
        for line in plan:
            print("   ", line["QUERY PLAN"])
        plan = d.jobs._rows(
            "EXPLAIN SELECT id FROM jobs ORDER BY created_at DESC, id DESC LIMIT 51"
        )
        print("plan of the unfiltered list:", plan[1]["QUERY PLAN"].strip())
        # the trigger's cost per job state change, and the processing jobs it needs
        filler._rows(START.replace("AND n BETWEEN :lo AND :hi", "AND n % 10 = 1"))
        with_trigger = write_cost_ms(filler, 100, trigger=True)
        without = write_cost_ms(filler, 100, trigger=False)
        print(
            f"complete() of one job: {with_trigger:.2f} ms with the console trigger,"
            f" {without:.2f} ms without"
        )
        filler.close()
    finally:
        deps.override(None)
        d.queue.delete_all()
        d.close()
        drop_schema(env["DATABASE_URL"], schema)


if __name__ == "__main__":
    main()
