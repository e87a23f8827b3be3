"""The local stack's numbers, through real HTTP: pick-up latency and throughput.

1. Submit -> processing start, with an idle local consumer: jobs one at a time
   (each waits for the previous to finish), latency = the job's startedAt minus
   the moment the client sent POST /api/audio/analyze. p50 / p99.
2. Throughput: 2 consumers, N five-second stereo tracks submitted at once;
   jobs/s = N / (last completedAt - first submit).

Uses REDIS_URL / DATABASE_URL when set (a queue and schema of its own), else
embedded servers under .soundcheck/bench. Prints numbers; asserts nothing. Run with
`python -P` (as `make bench-pipeline` does): bench/queue.py would shadow the
standard library's `queue` if this folder led sys.path.

    .venv/bin/python -P bench/pipeline.py [--latency-jobs 100] [--throughput-jobs 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile

from chalicelib.client import Client
from chalicelib.local.background import BackgroundStack


def track(path: Path, seconds: float, seed: int = 1) -> Path:
    """Stereo noise shaped like music (louder lows), 44.1 kHz, 16-bit."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * 44_100)
    noise = rng.standard_normal((frames, 2)).astype(np.float32)
    shaped = np.cumsum(noise, axis=0) * 0.02 + noise * 0.05
    shaped -= shaped.mean(axis=0)
    shaped /= np.abs(shaped).max() * 1.25
    soundfile.write(str(path), shaped, 44_100, subtype="PCM_16")
    return path


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_all(client: Client, job_ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    done: dict[str, dict] = {}
    while pending:
        for job_id in list(pending):
            job = client.job(job_id)
            if job["status"] in ("completed", "failed"):
                done[job_id] = job
                pending.discard(job_id)
        if pending:
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(pending)} jobs unfinished after {timeout}s")
            time.sleep(0.05)
    return [done[j] for j in job_ids]


def latency(work: Path, jobs: int) -> None:
    stack = BackgroundStack(work / "latency", consumers=1, purpose="bench")
    info = stack.start()
    try:
        client = Client(info.url, info.api_key)
        file_key = client.upload(track(work / "short.wav", 1.0))
        client.wait(client.submit(file_key)["jobId"])  # warm: first request, first job
        pickup, queued = [], []
        for _ in range(jobs):
            sent = time.time()
            job_id = client.submit(file_key)["jobId"]
            job = client.wait(job_id, timeout=60)
            assert job["status"] == "completed", job
            pickup.append((epoch(job["startedAt"]) - sent) * 1000)
            queued.append((epoch(job["startedAt"]) - epoch(job["createdAt"])) * 1000)
    finally:
        stack.stop()
    print(f"submit -> processing start, 1 idle consumer, {jobs} jobs one at a time:")
    print(
        f"  client send -> startedAt   p50 {percentile(pickup, 50):6.1f} ms"
        f"   p99 {percentile(pickup, 99):6.1f} ms   max {max(pickup):6.1f} ms"
    )
    print(
        f"  createdAt  -> startedAt    p50 {percentile(queued, 50):6.1f} ms"
        f"   p99 {percentile(queued, 99):6.1f} ms   (inside the service)"
    )


def throughput(work: Path, jobs: int, seconds: float) -> None:
    stack = BackgroundStack(work / "throughput", consumers=2, purpose="bench")
    info = stack.start()
    try:
        client = Client(info.url, info.api_key)
        keys = [client.upload(track(work / f"t{i}.wav", seconds, seed=i)) for i in range(4)]
        client.wait(client.submit(keys[0])["jobId"])  # warm
        started = time.time()
        job_ids = [client.submit(keys[i % len(keys)])["jobId"] for i in range(jobs)]
        submitted = time.time()
        done = wait_all(client, job_ids, timeout=600)
    finally:
        stack.stop()
    failed = [j for j in done if j["status"] != "completed"]
    last = max(epoch(j["completedAt"]) for j in done)
    busy = [(epoch(j["completedAt"]) - epoch(j["startedAt"])) * 1000 for j in done]
    print(f"throughput, 2 consumers, {jobs} x {seconds:.0f} s stereo 44.1 kHz tracks:")
    print(f"  submitting all took {submitted - started:.2f} s; failed: {len(failed)}")
    elapsed = last - started
    print(f"  {jobs / elapsed:.1f} jobs/s  ({elapsed:.2f} s from first submit to last result)")
    print(
        f"  per job start -> result: median {statistics.median(busy):.0f} ms,"
        f" p99 {percentile(busy, 99):.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--throughput-jobs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="track length for throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soundcheck-bench-") as tmp:
        work = Path(tmp)
        latency(work, args.latency_jobs)
        throughput(work, args.throughput_jobs, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
