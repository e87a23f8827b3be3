"""The whole local stack over real HTTP: `soundcheck dev`, its workers, Redis and Postgres.

Workers are killed with SIGKILL mid-job and Redis is flushed mid-run; every job
still completes, exactly once. Moments are made deterministic with Postgres row
locks (a worker blocks inside `JobStore.start` until the test lets go), never with
sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from chalicelib.client import Client, ClientError
from chalicelib.db import connect
from chalicelib.local.stack import read_state
from chalicelib.queue import Queue
from tests.conftest import _LOCK_KEY, RUN_ID
from tests.pipeline_support import log_events, own_schema, wav_bytes
from tests.waiting import wait_until

LEASE_S = 2.0


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    client: Client
    data_dir: Path
    log: Path
    queue: Queue
    schema: str
    database_url: str
    redis_url: str

    def events(self, name: str, job_id: str | None = None) -> list[dict[str, Any]]:
        found = log_events(self.log.read_text(errors="replace"))
        return [e for e in found if e["event"] == name and job_id in (None, e.get("jobId"))]

    def submit(self, data: bytes, name: str = "mix.wav") -> str:
        path = self.data_dir / f"upload-{uuid.uuid4().hex[:8]}-{name}"
        path.write_bytes(data)
        file_key = self.client.upload(path)
        return str(self.client.submit(file_key, file_name=name)["jobId"])

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.job(job_id)


def start_stack(data_dir: Path, env: dict[str, str], consumers: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "stack.log").open("wb")
    try:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "chalicelib.cli", "dev", "--port", "0"),
                *("--consumers", str(consumers), "--data-dir", str(data_dir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()


def wait_for_state(process: subprocess.Popen[bytes], data_dir: Path) -> Any:
    def up() -> Any:
        assert process.poll() is None, (data_dir / "stack.log").read_text()[-3000:]
        state = read_state(data_dir)
        return state if state is not None and state.pid == process.pid else None

    return wait_until(up, timeout=120, interval=0.1, what="soundcheck dev to be ready")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@contextmanager
def running_stack(
    redis_url: str,
    database_url: str,
    service_url: str,
    data_dir: Path,
    queue_name: str,
    **settings: str,
) -> Iterator[Stack]:
    """`soundcheck dev` with two workers on a migrated schema of its own, until exit.

    The stack talks to Postgres at `service_url` (`database_url` itself or a pooler's)
    and sweeps every 0.2 s; `settings` (environment names to strings) go on top. On
    exit it is stopped with SIGINT and must exit 0.
    """
    with own_schema(database_url) as schema:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": service_url,
            "SOUNDCHECK_DB_SCHEMA": schema,
            "QUEUE_NAME": queue_name,
            "SOUNDCHECK_SWEEP_SECONDS": "0.2",
            "SOUNDCHECK_API_KEY": f"sck_test_{uuid.uuid4().hex}",
            **settings,
        }
        process = start_stack(data_dir, env, consumers=2)
        try:
            state = wait_for_state(process, data_dir)
            client = redis.Redis.from_url(redis_url)
            yield Stack(
                process=process,
                client=Client(state.url, state.api_key, timeout=30),
                data_dir=data_dir,
                log=data_dir / "stack.log",
                queue=Queue(client, queue_name),
                schema=schema,
                database_url=database_url,
                redis_url=redis_url,
            )
            client.close()
        finally:
            assert stop(process) == 0


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    database_url: str,
    service_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    queue_name = f"e2e-{uuid.uuid4().hex[:8]}"
    with running_stack(
        redis_url,
        database_url,
        service_database_url,
        data_dir,
        queue_name,
        SOUNDCHECK_LEASE_SECONDS=str(LEASE_S),
    ) as stack:
        yield stack


@contextmanager
def row_locked(stack: Stack, job_ids: list[str]) -> Iterator[None]:
    """Hold row locks on jobs: a consumer that claims one blocks in JobStore.start."""
    conn = connect(stack.database_url, stack.schema)
    try:
        conn.run("BEGIN")
        conn.run("SELECT id FROM jobs WHERE id = ANY(CAST(:ids AS uuid[])) FOR UPDATE", ids=job_ids)
        yield
        conn.run("ROLLBACK")
    finally:
        conn.close()


def blocked_starts(stack: Stack) -> int:
    """How many sessions wait on a row lock inside JobStore.start."""
    conn = connect(stack.database_url)
    try:
        rows = conn.run(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'UPDATE jobs SET status = ''processing''%'"
        )
        return int(rows[0][0])
    finally:
        conn.close()


def workers_ready(stack: Stack, count: int = 2) -> bool:
    """Every worker of the stack (a restarted one too) has warmed up and polled the queue."""
    workers = psutil.Process(stack.process.pid).children()
    seen = {name.rsplit(":", 1)[-1] for name in stack.queue.stats()["consumers"]}
    return len(workers) == count and {str(w.pid) for w in workers} <= seen


def wait_done(stack: Stack, job_ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]] | None:
        jobs = {j: stack.job(j) for j in job_ids}
        finished = all(j["status"] in ("completed", "failed") for j in jobs.values())
        return jobs if finished else None

    return wait_until(done, timeout=timeout, interval=0.1, what=f"jobs {job_ids} to finish")


# --- through HTTP -------------------------------------------------------------------


def test_a_track_goes_through_the_whole_stack(stack: Stack) -> None:
    _, ready = stack.client.request("GET", "/health/ready")
    assert ready["queue"]["name"] == stack.queue.name
    job_id = stack.submit(wav_bytes(2.0))
    (job,) = wait_done(stack, [job_id]).values()
    assert (job["status"], job["progress"], job["attempts"]) == ("completed", 100, 1)
    assert job["result"]["schemaVersion"] == 2
    assert job["result"]["file"]["channels"] == 2
    assert job["startedAt"] and job["completedAt"]
    assert len(stack.events("completed", job_id)) == 1


def test_bad_audio_fails_fast_with_its_code(stack: Stack) -> None:
    job_id = stack.submit(b"RIFF but not really a wave file", "broken.wav")
    (job,) = wait_done(stack, [job_id]).values()
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error"]["code"] in ("unsupported_format", "corrupt_file")
    assert stack.events("retried", job_id) == []


def test_other_keys_see_nothing_over_http(stack: Stack) -> None:
    job_id = stack.submit(wav_bytes(0.5))
    stranger = Client(stack.client.base_url, "sck_unknown")
    with pytest.raises(ClientError) as info:
        stranger.job(job_id)
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    wait_done(stack, [job_id])


# --- failures -------------------------------------------------------------------------


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes_once(stack: Stack) -> None:
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    stack.queue.pause()  # so the row lock is in place before any worker sees the job
    job_id = stack.submit(wav_bytes(2.0))
    with row_locked(stack, [job_id]):
        stack.queue.resume()
        wait_until(lambda: blocked_starts(stack) == 1, timeout=20, what="a worker to claim")
        info = stack.queue.job_info(job_id)
        assert info is not None and info["state"] == "active"
        victim = int(info["consumer"].rsplit(":", 1)[-1])
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not _alive(victim), timeout=10, what="the worker to die")
    (job,) = wait_done(stack, [job_id], timeout=60).values()
    assert job["status"] == "completed"
    assert job["attempts"] == 2  # the killed claim, then the one after its lease expired
    completed = stack.events("completed", job_id)
    assert len(completed) == 1 and not completed[0]["consumer"].endswith(f":{victim}")
    assert stack.events("reclaimed", job_id)
    exited = [e for e in stack.events("process_exited") if e["pid"] == victim]
    assert exited and exited[0]["code"] == -signal.SIGKILL
    # the supervisor started a replacement
    wait_until(lambda: len(stack.events("process_started")) >= 3, what="a replacement worker")


def test_flushdb_mid_run_loses_no_job(stack: Stack, redis_url: str) -> None:
    wait_until(lambda: workers_ready(stack), timeout=60, what="both workers to be ready")
    stack.queue.pause()
    job_ids = [stack.submit(wav_bytes(1.0)) for _ in range(6)]
    with row_locked(stack, job_ids[:2]):
        stack.queue.resume()
        # both workers are now stuck in the middle of a job, four jobs wait in Redis
        wait_until(
            lambda: blocked_starts(stack) == 2, timeout=20, what=f"both workers busy {stack.tail()}"
        )
        client = redis.Redis.from_url(redis_url)
        try:
            client.flushdb()
            client.set(_LOCK_KEY, RUN_ID, ex=6 * 3600)  # the test run's claim on this db
        finally:
            client.close()
    jobs = wait_done(stack, job_ids, timeout=90)
    assert {j["status"] for j in jobs.values()} == {"completed"}, jobs
    for job_id in job_ids:
        assert len(stack.events("completed", job_id)) == 1, (job_id, stack.tail())
    requeued = {e["jobId"] for e in stack.events("requeued")}
    assert requeued >= set(job_ids[2:]), (job_ids, requeued)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- start and stop ----------------------------------------------------------------------


def test_ctrl_c_stops_everything_the_stack_started(tmp_root: Path) -> None:
    """On embedded servers: workers, Redis and Postgres are all gone after SIGINT.

    Its data dir is not under pytest's tmp_path: a concurrent pytest run resets
    /tmp/pytest-of-USER to 0700, which embedded Postgres (its own user) cannot enter."""
    tmp_path = tmp_root / f"ctrl-c-{uuid.uuid4().hex[:8]}"
    tmp_path.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["SOUNDCHECK_API_KEY"] = f"sck_test_{uuid.uuid4().hex}"
    process = start_stack(tmp_path, env, consumers=1)
    try:
        state = wait_for_state(process, tmp_path)
    except BaseException:
        process.kill()
        raise
    assert set(state.embedded) == {"redis", "postgres"}
    assert set(state.pids) == {"worker-1", "redis", "postgres"}
    started = [pid for pid in state.pids.values() if _alive(pid)]
    assert len(started) == 3
    assert stop(process) == 0
    assert [pid for pid in started if _alive(pid)] == []
    assert read_state(tmp_path) is None


# --- the command line against the running stack ----------------------------------------


def soundcheck(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SOUNDCHECK_API_KEY": stack.client.api_key or "", **env},
        cwd=stack.data_dir,
    )


def test_soundcheck_submit_prints_the_report_or_the_json(stack: Stack) -> None:
    track = stack.data_dir / "cli-mix.wav"
    track.write_bytes(wav_bytes(1.5))
    shown = soundcheck(
        stack, "submit", str(track), "--genre", "techno", "--api", stack.client.base_url
    )
    assert shown.returncode == 0, shown.stderr
    assert "cli-mix.wav" in shown.stdout and "Techno" in shown.stdout
    assert "completed" in shown.stderr  # the progress, on stderr
    raw = soundcheck(stack, "submit", str(track), "--json", "--api", stack.client.base_url)
    assert raw.returncode == 0, raw.stderr
    result = json.loads(raw.stdout)
    assert result["schemaVersion"] == 2 and result["file"]["durationSeconds"] == 1.5


def test_soundcheck_submit_exit_codes(stack: Stack) -> None:
    broken = stack.data_dir / "broken.wav"
    broken.write_bytes(b"no audio here")
    failed = soundcheck(stack, "submit", str(broken), "--api", stack.client.base_url)
    assert failed.returncode == 1
    assert "unsupported_format" in failed.stderr
    refused = soundcheck(
        stack, "submit", str(broken), "--api", stack.client.base_url, SOUNDCHECK_API_KEY="sck_no"
    )
    assert refused.returncode == 2 and "refused the API key" in refused.stderr
    missing = soundcheck(stack, "submit", "nope.wav", "--api", stack.client.base_url)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_soundcheck_status_and_queue_stats(stack: Stack) -> None:
    job_id = stack.submit(wav_bytes(0.5))
    wait_done(stack, [job_id])
    status = soundcheck(stack, "status", job_id, "--json", "--api", stack.client.base_url)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "completed"
    stats = soundcheck(
        stack,
        "queue",
        "stats",
        REDIS_URL=stack.redis_url,
        QUEUE_NAME=stack.queue.name,
        DATABASE_URL=stack.database_url,
        SOUNDCHECK_DB_SCHEMA=stack.schema,
    )
    assert stats.returncode == 0, stats.stderr
    body = json.loads(stats.stdout)
    assert body["queue"]["name"] == stack.queue.name
    assert len(body["queue"]["consumers"]) >= 2
    assert body["jobs"]["completed"] >= 1
