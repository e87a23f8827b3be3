"""Every environment variable soundcheck reads, parsed and validated in one place.

The API functions and the consumer import this same module, so they can never
disagree about which Redis, which queue name or which database they use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import TypeVar

from chalicelib.errors import SettingsError

T = TypeVar("T")

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_RETENTION_DAYS = 36500  # ~100 years; also keeps Postgres intervals in range
MAX_LEASE_SECONDS = 3600.0  # chalicelib.queue.MAX_LEASE_MS (not imported: it pulls in redis)


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    database_url: str | None = None
    db_schema: str = "public"
    queue_name: str = "audio"
    storage_bucket: str | None = None
    storage_dir: Path = Path(".soundcheck/objects")
    storage_prefix: str = "uploads"
    consumer_function_name: str | None = None
    lease_seconds: float = 120.0
    # A job's processing ceiling: past it the consumer stops the analysis and renewing the
    # lease, and the job counts a stall. Below the consumer Lambda's 900 s timeout minus the
    # drain's 15 s margin, so a job is stopped by us (and counted) before Lambda freezes it.
    max_job_seconds: float = 600.0
    sweep_seconds: float = 5.0
    max_attempts: int = 3
    max_stalls: int = 3
    max_in_flight: int | None = None
    submit_per_minute: float = 30.0
    submit_burst: int = 30
    max_waiting_per_owner: int = 100
    sign_in_failures_per_minute: float = 2.0
    sign_in_failure_burst: int = 10
    api_key: str | None = None
    public_url: str | None = None
    upload_secret: str | None = None
    max_upload_bytes: int = 500 * 1024 * 1024
    max_duration_seconds: float = 4 * 3600.0  # decoded and measured block by block
    max_channels: int = 8
    min_sample_rate: int = 8_000
    max_sample_rate: int = 384_000
    max_samples: int = 4 * 3600 * 48_000 * 2  # frames x channels: bounds the work, not memory
    log_level: str = "INFO"
    metrics_namespace: str = "soundcheck"
    ssm_path: str | None = None
    # Job callbacks (chalicelib.webhooks): http:// targets only where this says (the local
    # stack); loopback targets only in tests (refused on Lambda); other private, link-local
    # and reserved addresses never. A failed delivery is retried after backoff, 2x, 4x, ...
    # (with jitter) until it has had max_attempts: the defaults span about an hour.
    webhook_allow_http: bool = False
    webhook_allow_loopback: bool = False
    webhook_max_attempts: int = 6
    webhook_backoff_seconds: float = 120.0
    webhook_timeout_seconds: float = 10.0  # connect, and each read; a delivery twice at most
    # Retention (chalicelib/retention.py): days after a job ends; 0 keeps forever.
    upload_retention_days: int = 30
    result_retention_days: int = 365

    def require(self, name: str) -> str:
        """The value of an optional string setting that this code path cannot do without."""
        value = getattr(self, name)
        if value in (None, ""):
            raise SettingsError(f"{_ENV_NAMES[name]} is not set; this component needs it")
        return str(value)


# attribute -> environment variable
_ENV_NAMES: dict[str, str] = {
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "db_schema": "SOUNDCHECK_DB_SCHEMA",
    "queue_name": "QUEUE_NAME",
    "storage_bucket": "STORAGE_BUCKET",
    "storage_dir": "SOUNDCHECK_STORAGE_DIR",
    "storage_prefix": "SOUNDCHECK_STORAGE_PREFIX",
    "consumer_function_name": "CONSUMER_FUNCTION_NAME",
    "lease_seconds": "SOUNDCHECK_LEASE_SECONDS",
    "max_job_seconds": "SOUNDCHECK_MAX_JOB_SECONDS",
    "sweep_seconds": "SOUNDCHECK_SWEEP_SECONDS",
    "max_attempts": "SOUNDCHECK_MAX_ATTEMPTS",
    "max_stalls": "SOUNDCHECK_MAX_STALLS",
    "max_in_flight": "SOUNDCHECK_MAX_IN_FLIGHT",
    "submit_per_minute": "SOUNDCHECK_SUBMIT_PER_MINUTE",
    "submit_burst": "SOUNDCHECK_SUBMIT_BURST",
    "max_waiting_per_owner": "SOUNDCHECK_MAX_WAITING_PER_OWNER",
    "sign_in_failures_per_minute": "SOUNDCHECK_SIGN_IN_FAILURES_PER_MINUTE",
    "sign_in_failure_burst": "SOUNDCHECK_SIGN_IN_FAILURE_BURST",
    "api_key": "SOUNDCHECK_API_KEY",
    "public_url": "SOUNDCHECK_PUBLIC_URL",
    "upload_secret": "SOUNDCHECK_UPLOAD_SECRET",
    "max_upload_bytes": "SOUNDCHECK_MAX_UPLOAD_BYTES",
    "max_duration_seconds": "SOUNDCHECK_MAX_DURATION_SECONDS",
    "max_channels": "SOUNDCHECK_MAX_CHANNELS",
    "min_sample_rate": "SOUNDCHECK_MIN_SAMPLE_RATE",
    "max_sample_rate": "SOUNDCHECK_MAX_SAMPLE_RATE",
    "max_samples": "SOUNDCHECK_MAX_SAMPLES",
    "log_level": "SOUNDCHECK_LOG_LEVEL",
    "metrics_namespace": "SOUNDCHECK_METRICS_NAMESPACE",
    "ssm_path": "SOUNDCHECK_SSM_PATH",
    "webhook_allow_http": "SOUNDCHECK_WEBHOOK_ALLOW_HTTP",
    "webhook_allow_loopback": "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK",
    "webhook_max_attempts": "SOUNDCHECK_WEBHOOK_MAX_ATTEMPTS",
    "webhook_backoff_seconds": "SOUNDCHECK_WEBHOOK_BACKOFF_SECONDS",
    "webhook_timeout_seconds": "SOUNDCHECK_WEBHOOK_TIMEOUT_SECONDS",
    "upload_retention_days": "SOUNDCHECK_UPLOAD_RETENTION_DAYS",
    "result_retention_days": "SOUNDCHECK_RESULT_RETENTION_DAYS",
}
assert set(_ENV_NAMES) == {f.name for f in fields(Settings)}


def env_name(attribute: str) -> str:
    """The environment variable behind a settings attribute (for docs and errors)."""
    return _ENV_NAMES[attribute]


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError("must be greater than zero")
        if value == float("inf"):
            raise ValueError("must be finite")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _days(raw: str) -> int:
    """Whole days, 0 (keep forever) to MAX_RETENTION_DAYS."""
    if not raw.isascii() or not raw.isdigit():
        raise ValueError("must be a whole number of days (0 keeps forever)")
    value = int(raw)
    if value > MAX_RETENTION_DAYS:
        raise ValueError(f"must be at most {MAX_RETENTION_DAYS} days (0 keeps forever)")
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in schemes:
            raise ValueError(f"must start with one of {', '.join(s + '://' for s in schemes)}")
        return raw

    parse.__name__ = "URL"
    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"must be {what}")
        return raw

    parse.__name__ = what
    return parse


def _min_length(n: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw) < n:
            raise ValueError(f"must be at least {n} characters")
        return raw

    parse.__name__ = "secret"
    return parse


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.upper()

    parse.__name__ = "choice"
    return parse


def _flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1/true/yes/on or 0/false/no/off")


_flag.__name__ = "flag"


_PARSERS: dict[str, Callable[[str], object]] = {
    "redis_url": _url("redis", "rediss", "unix"),
    "database_url": _url("postgres", "postgresql"),
    "db_schema": _matching(_SCHEMA_NAME, "a lower-case SQL identifier"),
    "queue_name": _matching(_QUEUE_NAME, "1-64 characters of A-Z a-z 0-9 _ . : -"),
    "storage_bucket": str,
    "storage_dir": Path,
    "storage_prefix": _matching(re.compile(r"^[A-Za-z0-9_-]{1,32}$"), "a short folder name"),
    "consumer_function_name": str,
    "lease_seconds": _positive(float),
    "max_job_seconds": _positive(float),
    "sweep_seconds": _positive(float),
    "max_attempts": _positive(int),
    "max_stalls": _positive(int),
    "max_in_flight": _positive(int),
    "submit_per_minute": _positive(float),
    "submit_burst": _positive(int),
    "max_waiting_per_owner": _positive(int),
    "sign_in_failures_per_minute": _positive(float),
    "sign_in_failure_burst": _positive(int),
    "api_key": str,
    "public_url": _url("http", "https"),
    "upload_secret": _min_length(16),
    "max_upload_bytes": _positive(int),
    "max_duration_seconds": _positive(float),
    "max_channels": _positive(int),
    "min_sample_rate": _positive(int),
    "max_sample_rate": _positive(int),
    "max_samples": _positive(int),
    "log_level": _one_of(*_LOG_LEVELS),
    "metrics_namespace": _matching(
        re.compile(r"^(?!AWS/)[A-Za-z0-9_.\-/#: ]{1,255}$"), "a CloudWatch namespace"
    ),
    "ssm_path": _matching(re.compile(r"^(/[A-Za-z0-9_.-]+)+/?$"), "an SSM path like /app/prod"),
    "webhook_allow_http": _flag,
    "webhook_allow_loopback": _flag,
    "webhook_max_attempts": _positive(int),
    "webhook_backoff_seconds": _positive(float),
    "webhook_timeout_seconds": _positive(float),
    "upload_retention_days": _days,
    "result_retention_days": _days,
}


def _shown(name: str, raw: str) -> str:
    """A value fit for an error message: no secrets, no URL passwords."""
    if "KEY" in name or "SECRET" in name:
        return "<hidden>"
    return repr(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1<hidden>@", raw))


def with_ssm_parameters(env: Mapping[str, str]) -> Mapping[str, str]:
    """`env` plus the settings stored in SSM Parameter Store under SOUNDCHECK_SSM_PATH.

    On AWS the secrets (REDIS_URL and DATABASE_URL carry passwords) live there as
    SecureString parameters named like the variables, e.g. /soundcheck/prod/REDIS_URL:
    the Lambda configuration and the CloudFormation template hold only the path.
    A variable set in the environment wins over its parameter. One API call per cold
    start; boto3 is imported only when a path is set.
    """
    path = env.get("SOUNDCHECK_SSM_PATH", "").strip()
    if not path:
        return env
    try:
        path = str(_PARSERS["ssm_path"](path)).rstrip("/")
    except ValueError as exc:
        raise SettingsError(f"SOUNDCHECK_SSM_PATH={path!r} is invalid: {exc}") from None
    try:
        import boto3

        pages = boto3.client("ssm").get_paginator("get_parameters_by_path")
        stored = {
            p["Name"].rsplit("/", 1)[-1]: p["Value"]
            for page in pages.paginate(Path=path, Recursive=False, WithDecryption=True)
            for p in page["Parameters"]
        }
    except Exception as exc:  # no network, no permission, no region...
        raise SettingsError(
            f"cannot read settings from SSM under SOUNDCHECK_SSM_PATH={path!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    unknown = sorted(set(stored) - set(_ENV_NAMES.values()))
    if unknown:
        raise SettingsError(f"SSM parameters under {path} name no setting: {', '.join(unknown)}")
    return {**stored, **{k: v for k, v in env.items() if v.strip()}}


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping; raise SettingsError naming the culprit."""
    env = with_ssm_parameters(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for attribute, name in _ENV_NAMES.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        parser = _PARSERS[attribute]
        try:
            values[attribute] = parser(raw)
        except ValueError as exc:
            shown = _shown(
                name, raw
            )  # a parser's own message may quote the value: hide it there too
            reason = str(exc).replace(raw, shown)
            raise SettingsError(f"{name}={shown} is invalid: {reason}") from None
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.lease_seconds > MAX_LEASE_SECONDS:
        raise SettingsError(
            f"SOUNDCHECK_LEASE_SECONDS must be at most {MAX_LEASE_SECONDS:.0f} "
            "(a longer job renews its lease)"
        )
    if settings.webhook_allow_loopback and env.get("AWS_LAMBDA_FUNCTION_NAME"):
        raise SettingsError(
            "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK is for tests only: callbacks to loopback "
            "addresses are refused on Lambda"
        )
    if settings.min_sample_rate > settings.max_sample_rate:
        raise SettingsError(
            "SOUNDCHECK_MIN_SAMPLE_RATE must not exceed SOUNDCHECK_MAX_SAMPLE_RATE "
            f"({settings.min_sample_rate} > {settings.max_sample_rate})"
        )
    return settings


@cache
def get() -> Settings:
    """The process-wide settings, read from os.environ once."""
    return load()
