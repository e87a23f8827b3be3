"""On AWS the secrets come from SSM Parameter Store, never from the Lambda configuration.

Runs against moto's server mode: real HTTP, real boto3 pagination and decryption.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest

from chalicelib import settings

REDIS = "rediss://default:redis-pw-123@cache.example.com:6380/0"
DATABASE = "postgresql://app:db-pw-456@db.example.com:5432/soundcheck?sslmode=require"


@pytest.fixture
def ssm(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    yield boto3.client("ssm", endpoint_url=moto_server)


@pytest.fixture
def path(ssm: object) -> str:
    """A parameter path of this test's own (moto's state is shared by the session)."""
    return f"/soundcheck-test/{uuid.uuid4().hex[:10]}"


def put(client: object, name: str, value: str) -> None:
    client.put_parameter(Name=name, Value=value, Type="SecureString")  # type: ignore[attr-defined]


def test_secrets_fill_unset_settings(ssm: object, path: str) -> None:
    put(ssm, f"{path}/REDIS_URL", REDIS)
    put(ssm, f"{path}/DATABASE_URL", DATABASE)
    put(ssm, f"{path}-sibling/QUEUE_NAME", "not-this-one")
    loaded = settings.load({"SOUNDCHECK_SSM_PATH": path, "QUEUE_NAME": "audio"})
    assert loaded.redis_url == REDIS
    assert loaded.database_url == DATABASE
    assert loaded.queue_name == "audio"
    assert loaded.ssm_path == path


def test_trailing_slash_and_more_than_one_page(ssm: object, path: str) -> None:
    stored = {
        "REDIS_URL": REDIS,
        "DATABASE_URL": DATABASE,
        "QUEUE_NAME": "audio-prod",
        "STORAGE_BUCKET": "bucket",
        "SOUNDCHECK_DB_SCHEMA": "sc",
        "SOUNDCHECK_STORAGE_PREFIX": "up",
        "SOUNDCHECK_LEASE_SECONDS": "60",
        "SOUNDCHECK_MAX_ATTEMPTS": "5",
        "SOUNDCHECK_MAX_STALLS": "4",
        "SOUNDCHECK_MAX_CHANNELS": "2",
        "SOUNDCHECK_LOG_LEVEL": "debug",
        "SOUNDCHECK_MAX_IN_FLIGHT": "9",
    }  # 12: more than one page (10), so pagination must follow NextToken
    for name, value in stored.items():
        put(ssm, f"{path}/{name}", value)
    loaded = settings.load({"SOUNDCHECK_SSM_PATH": path + "/"})
    assert (loaded.redis_url, loaded.database_url) == (REDIS, DATABASE)
    assert (loaded.queue_name, loaded.storage_bucket, loaded.db_schema) == (
        "audio-prod",
        "bucket",
        "sc",
    )
    assert (loaded.max_attempts, loaded.max_stalls, loaded.max_channels) == (5, 4, 2)
    assert (loaded.lease_seconds, loaded.log_level, loaded.max_in_flight) == (60.0, "DEBUG", 9)
    assert loaded.storage_prefix == "up"


def test_environment_wins_over_a_parameter(ssm: object, path: str) -> None:
    put(ssm, f"{path}/REDIS_URL", REDIS)
    loaded = settings.load({"SOUNDCHECK_SSM_PATH": path, "REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert loaded.redis_url == "redis://127.0.0.1:6379/3"


def test_a_parameter_naming_no_setting_is_an_error(ssm: object, path: str) -> None:
    put(ssm, f"{path}/REDIS_ULR", REDIS)
    with pytest.raises(settings.SettingsError, match="REDIS_ULR"):
        settings.load({"SOUNDCHECK_SSM_PATH": path})


def test_a_bad_secret_is_reported_without_its_password(ssm: object, path: str) -> None:
    put(ssm, f"{path}/REDIS_URL", "https://default:redis-pw-123@cache.example.com")
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"SOUNDCHECK_SSM_PATH": path})
    assert "REDIS_URL" in str(caught.value)
    assert "redis-pw-123" not in str(caught.value)


def test_unreachable_ssm_is_a_clear_settings_error(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(settings.SettingsError, match="cannot read settings from SSM"):
        settings.load({"SOUNDCHECK_SSM_PATH": "/soundcheck/prod"})


def test_a_malformed_path_is_rejected_before_any_call() -> None:
    with pytest.raises(settings.SettingsError, match="SOUNDCHECK_SSM_PATH"):
        settings.load({"SOUNDCHECK_SSM_PATH": "soundcheck/prod"})


def test_no_path_means_no_aws_call() -> None:
    assert settings.load({"REDIS_URL": REDIS}).redis_url == REDIS
