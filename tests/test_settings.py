from pathlib import Path

import pytest

from chalicelib.settings import Settings, SettingsError, load


def test_defaults_match_design() -> None:
    s = load({})
    assert s.queue_name == "audio"
    assert s.lease_seconds == 120
    assert s.sweep_seconds == 5
    assert s.max_attempts == 3
    assert s.storage_bucket is None
    assert s.storage_dir == Path(".soundcheck/objects")


def test_values_are_parsed() -> None:
    s = load(
        {
            "REDIS_URL": "rediss://user:pw@cache.example:6380/0",
            "QUEUE_NAME": "audio-prod",
            "SOUNDCHECK_LEASE_SECONDS": "30.5",
            "SOUNDCHECK_MAX_IN_FLIGHT": "8",
            "SOUNDCHECK_LOG_LEVEL": "debug",
        }
    )
    assert s.redis_url == "rediss://user:pw@cache.example:6380/0"
    assert s.queue_name == "audio-prod"
    assert s.lease_seconds == 30.5
    assert s.max_in_flight == 8
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SOUNDCHECK_LEASE_SECONDS", "abc", "SOUNDCHECK_LEASE_SECONDS='abc' is invalid"),
        ("SOUNDCHECK_MAX_ATTEMPTS", "0", "greater than zero"),
        ("REDIS_URL", "http://x", "redis://"),
        ("DATABASE_URL", "mysql://x", "postgres://"),
        ("QUEUE_NAME", "a{b}", "QUEUE_NAME"),
        ("SOUNDCHECK_DB_SCHEMA", "Robert'); DROP", "SOUNDCHECK_DB_SCHEMA"),
        ("SOUNDCHECK_LOG_LEVEL", "loud", "one of"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment.replace("(", r"\(").replace("{", r"\{")):
        load({name: value})


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        load({"SOUNDCHECK_MAX_UPLOAD_BYTES": "x", "SOUNDCHECK_API_KEY": "k"})
    assert "SOUNDCHECK_MAX_UPLOAD_BYTES" in str(info.value)
    # A bad value of a secret setting itself is named, never shown.
    with pytest.raises(SettingsError) as info:
        load({"SOUNDCHECK_UPLOAD_SECRET": "hunter2-short"})
    assert "SOUNDCHECK_UPLOAD_SECRET" in str(info.value)
    assert "hunter2" not in str(info.value)
    # Nor is the password of a bad URL.
    with pytest.raises(SettingsError) as info:
        load({"DATABASE_URL": "mysql://app:pg-pw-123@db.example.com/app"})
    assert "DATABASE_URL" in str(info.value) and "db.example.com" in str(info.value)
    assert "pg-pw-123" not in str(info.value)


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="REDIS_URL is not set"):
        Settings().require("redis_url")
    assert Settings(redis_url="redis://h").require("redis_url") == "redis://h"


def test_sample_rate_bounds_are_consistent() -> None:
    with pytest.raises(SettingsError, match="MIN_SAMPLE_RATE"):
        load({"SOUNDCHECK_MIN_SAMPLE_RATE": "96000", "SOUNDCHECK_MAX_SAMPLE_RATE": "48000"})


def test_retention_days_default_and_zero_keeps_forever() -> None:
    s = load({})
    assert (s.upload_retention_days, s.result_retention_days) == (30, 365)
    s = load({"SOUNDCHECK_UPLOAD_RETENTION_DAYS": "0", "SOUNDCHECK_RESULT_RETENTION_DAYS": "7"})
    assert (s.upload_retention_days, s.result_retention_days) == (0, 7)


@pytest.mark.parametrize("value", ["-1", "1.5", "30d", "abc", "inf", "١٢", "36501"])
@pytest.mark.parametrize(
    "name", ["SOUNDCHECK_UPLOAD_RETENTION_DAYS", "SOUNDCHECK_RESULT_RETENTION_DAYS"]
)
def test_bad_retention_days_are_a_settings_error(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}=.* is invalid: must be"):
        load({name: value})
