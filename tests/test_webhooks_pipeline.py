"""Callbacks end to end: `soundcheck dev` over real HTTP, its worker, Redis, Postgres and a
receiver on 127.0.0.1 that verifies what it gets with the snippet docs/api.md shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.client import Client, ClientError
from tests.pipeline_support import own_schema, wav_bytes
from tests.test_pipeline import start_stack, stop, wait_for_state
from tests.waiting import wait_until
from tests.webhook_receiver import documented_verify, receiver

verify_signature = documented_verify()


@pytest.fixture(scope="module")
def api(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Client, Path]]:
    data_dir = tmp_path_factory.mktemp("hooks")
    with own_schema(database_url) as schema:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "SOUNDCHECK_DB_SCHEMA": schema,
            "QUEUE_NAME": f"hooks-{uuid.uuid4().hex[:8]}",
            "SOUNDCHECK_SWEEP_SECONDS": "0.2",
            "SOUNDCHECK_API_KEY": f"sck_test_{uuid.uuid4().hex}",
            "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK": "1",  # the receiver is on 127.0.0.1
            "SOUNDCHECK_WEBHOOK_BACKOFF_SECONDS": "0.1",
            "SOUNDCHECK_WEBHOOK_TIMEOUT_SECONDS": "2",
        }
        process = start_stack(data_dir, env, consumers=1)
        try:
            state = wait_for_state(process, data_dir)
            yield Client(state.url, state.api_key, timeout=30), data_dir
        finally:
            assert stop(process) == 0


def _submit(client: Client, data_dir: Path, callback: str, data: bytes) -> str:
    path = data_dir / f"mix-{uuid.uuid4().hex[:8]}.wav"
    path.write_bytes(data)
    return str(client.submit(client.upload(path), callback_url=callback)["jobId"])


def _callback(client: Client, job_id: str) -> dict[str, Any]:
    return client.job(job_id)["callback"]


def test_a_completed_job_is_signed_and_delivered_after_a_failed_attempt(
    api: tuple[Client, Path],
) -> None:
    client, data_dir = api
    with receiver(500, 200) as hook:
        job_id = _submit(client, data_dir, hook.url, wav_bytes(1.0))
        wait_until(
            lambda: _callback(client, job_id)["state"] == "delivered",
            timeout=120,
            what="the callback to be delivered",
        )
        got = list(hook.requests)
    job = client.job(job_id)
    assert job["status"] == "completed"
    secret = client.request("GET", "/api/webhooks/secret")[1]["secret"]
    assert len(got) == 2 and got[0].body == got[1].body
    for request in got:
        assert verify_signature(secret, request.body, request.headers["soundcheck-signature"])
    event = got[1].event()
    assert event["type"] == "job.completed" and event["data"]["jobId"] == job_id
    assert event["data"]["score"] == job["result"]["comparison"]["score"]
    callback = job["callback"]
    assert callback["attempts"] == 2 and callback["lastStatus"] == 200
    assert callback["eventId"] == event["id"]


def test_a_failed_job_sends_job_failed(api: tuple[Client, Path]) -> None:
    client, data_dir = api
    with receiver(200) as hook:
        job_id = _submit(client, data_dir, hook.url, b"RIFF this is not audio at all" * 10)
        wait_until(
            lambda: _callback(client, job_id)["state"] == "delivered",
            timeout=120,
            what="the callback to be delivered",
        )
        [got] = hook.requests
    event = got.event()
    assert event["type"] == "job.failed" and event["data"]["status"] == "failed"
    assert event["data"]["error"]["code"] == client.job(job_id)["error"]["code"]


def test_the_local_stack_refuses_private_callbacks(api: tuple[Client, Path]) -> None:
    client, data_dir = api
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(ClientError) as refused:
            _submit(client, data_dir, url, wav_bytes(0.2))
        assert refused.value.code == "callback_url_forbidden"


def _cli_submit(client: Client, path: Path, callback: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "chalicelib.cli", "submit", str(path), "--json"]
    argv += ["--api", client.base_url, "--api-key", client.api_key, "--callback-url", callback]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


def test_soundcheck_submit_takes_a_callback_url(api: tuple[Client, Path]) -> None:
    client, data_dir = api
    path = data_dir / "cli-mix.wav"
    path.write_bytes(wav_bytes(0.5))
    with receiver(200) as hook:
        done = _cli_submit(client, path, hook.url)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)  # --json prints the result
        wait_until(lambda: hook.requests, timeout=60, what="the CLI job's event")
        event = hook.requests[0].event()
        assert event["type"] == "job.completed"
        assert event["data"]["score"] == result["comparison"]["score"]
    refused = _cli_submit(client, path, "http://169.254.169.254/latest/")
    assert refused.returncode == 2
    assert "169.254.169.254" in refused.stderr and "Traceback" not in refused.stderr
