"""Waking the consumer Lambda after a submit, against moto's Lambda in server mode."""

from __future__ import annotations

import io
import json
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from chalice.local import LambdaContext
from chalice.test import Client

from app import app
from chalicelib import consumer, deps, wake
from chalicelib.deps import Deps
from chalicelib.jobs import JobSpec
from chalicelib.keys import KeyStore, Role
from tests.pipeline_support import (
    build_deps,
    closed_port,
    log_events,
    new_owner,
    put_upload,
    settings_for,
)


@pytest.fixture(scope="module")
def lambda_endpoint(moto_server: str) -> str:
    """moto's Lambda without Docker: invocations are accepted and answered, not executed."""
    request = urllib.request.Request(
        f"{moto_server}/moto-api/config",
        data=json.dumps({"lambda": {"use_docker": False}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server


@pytest.fixture
def function_name(lambda_endpoint: str) -> str:
    iam = boto3.client("iam", endpoint_url=lambda_endpoint)
    name = f"soundcheck-test-consumer-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def consumer(event, context):\n    return {}\n")
    boto3.client("lambda", endpoint_url=lambda_endpoint).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.consumer",
        Code={"ZipFile": code.getvalue()},
    )
    return name


@pytest.fixture
def lambda_client(lambda_endpoint: str) -> Any:
    return boto3.client("lambda", endpoint_url=lambda_endpoint)


def test_wake_invokes_the_consumer_asynchronously(lambda_client: Any, function_name: str) -> None:
    assert wake.wake(function_name, "submit", client=lambda_client) == "invoked"


def test_a_failed_wake_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    assert wake.wake("soundcheck-consumer", "submit", client=unreachable) == "failed"
    (event,) = [e for e in log_events(capsys.readouterr().out) if e["event"] == "wake_failed"]
    assert event["function"] == "soundcheck-consumer"
    assert "EndpointConnectionError" in event["error"]


def test_without_a_function_name_waking_is_left_to_the_queue() -> None:
    assert wake.wake(None) == "skipped"
    assert wake.wake("") == "skipped"


@pytest.fixture
def service(
    make_env: Callable[..., dict[str, str]],
    database_url: str,
    function_name: str,
    lambda_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deps]:
    """A deployment whose CONSUMER_FUNCTION_NAME is the moto function; boto3 goes to moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", lambda_endpoint)
    monkeypatch.setattr(wake, "_clients", {})  # the process-wide client, rebuilt for moto
    env = make_env(database_url, CONSUMER_FUNCTION_NAME=function_name)
    d = build_deps(settings_for(env))
    previous = deps.override(d)
    yield d
    deps.override(previous)
    d.close()


def test_submit_wakes_the_consumer_function(
    service: Deps, tmp_path: Path, function_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = new_owner()
    key = service.jobs.create_api_key(owner)
    file_key = put_upload(service, owner, b"x")
    with Client(app, project_dir=str(tmp_path)) as client:
        response = client.http.post(
            "/api/audio/analyze",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            body=json.dumps({"fileKey": file_key}),
        )
    assert response.status_code == 202
    woke = [e for e in log_events(capsys.readouterr().out) if e["event"] == "woke"]
    assert [(e["function"], e["reason"]) for e in woke] == [(function_name, "submit")]


def test_a_redrive_wakes_as_many_consumers_as_may_run_not_one_per_job(
    service: Deps, tmp_path: Path, function_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """POST /api/admin/jobs/retry of 3 jobs: one wake (SOUNDCHECK_MAX_IN_FLIGHT unset),
    as the sweeper does; it used to invoke the consumer once per job (up to 100)."""
    owner = new_owner()
    admin = KeyStore(service.jobs).create(f"ops-{owner}", role=Role.ADMIN)
    for _ in range(3):
        job, _ = service.jobs.create(
            JobSpec(owner, "genre", None, put_upload(service, owner, b"x"), None, None, None)
        )
        assert service.jobs.start(job.id, 1, 1) is not None
        assert service.jobs.fail(job.id, 1, "corrupt_file", "bad", final=True)
    capsys.readouterr()
    with Client(app, project_dir=str(tmp_path)) as client:
        response = client.http.post(
            "/api/admin/jobs/retry",
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            body=json.dumps({"state": "failed", "owner": owner}),
        )
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["retried"] == 3
    woke = [e for e in log_events(capsys.readouterr().out) if e["event"] == "woke"]
    assert [(e["function"], e["reason"]) for e in woke] == [(function_name, "admin_retry")]
    assert service.queue.stats()["waiting"] == 3


def test_the_scheduled_sweeper_wakes_consumers_for_waiting_work(
    service: Deps, capsys: pytest.CaptureFixture[str]
) -> None:
    context = LambdaContext("sweeper", 256, max_runtime_ms=60_000)
    idle = consumer.run_sweeper(service, context)
    assert (idle["waiting"], idle["woke"]) == (0, [])
    for _ in range(3):
        service.queue.enqueue(str(uuid.uuid4()))
    busy = consumer.run_sweeper(service, context)
    # SOUNDCHECK_MAX_IN_FLIGHT unset: one consumer at a time is woken
    assert (busy["waiting"], busy["woke"]) == (3, ["invoked"])
    gauges = [e for e in log_events(capsys.readouterr().out) if "QueueDepth" in e]
    assert [g["QueueDepth"] for g in gauges] == [0, 3]


def test_the_deployed_sweeper_handler_runs_on_a_schedule_event(
    service: Deps, tmp_path: Path
) -> None:
    service.queue.enqueue(str(uuid.uuid4()))
    previous = deps.override(service)
    try:
        with Client(app, project_dir=str(tmp_path)) as client:
            event = client.events.generate_cw_event(
                source="aws.events",
                detail_type="Scheduled Event",
                detail={},
                resources=["arn:aws:events:us-east-1:123456789012:rule/soundcheck-sweeper"],
            )
            response = client.lambda_.invoke("sweeper", event)
    finally:
        deps.override(previous)
    assert response.payload["waiting"] == 1
    assert response.payload["woke"] == ["invoked"]
    assert response.payload["sweep"] is not None
