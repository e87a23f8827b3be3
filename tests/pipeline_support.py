"""Helpers shared by the pipeline's tests (API, consumer, local stack): real services only."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import socket
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from chalicelib.db import drop_schema
from chalicelib.deps import Deps
from chalicelib.jobs import JobStore
from chalicelib.queue import Queue
from chalicelib.settings import Settings, load
from chalicelib.storage import new_key

UPLOAD_SECRET = "test-upload-secret-0123456789abcdef"


def service_env(
    redis_url: str,
    database_url: str,
    schema: str,
    queue_name: str,
    storage_dir: Path,
    **extra: str,
) -> dict[str, str]:
    """The environment of one isolated soundcheck deployment inside a test run."""
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SOUNDCHECK_DB_SCHEMA": schema,
        "QUEUE_NAME": queue_name,
        "SOUNDCHECK_STORAGE_DIR": str(storage_dir),
        "SOUNDCHECK_PUBLIC_URL": "http://testserver",
        "SOUNDCHECK_UPLOAD_SECRET": UPLOAD_SECRET,
        **extra,
    }


@contextlib.contextmanager
def own_schema(database_url: str) -> Iterator[str]:
    """A migrated Postgres schema for one test, dropped after.

    Reconcile looks at every unfinished job in the schema, whatever its queue; a
    test that sweeps must not see (and enqueue) other tests' jobs.
    """
    schema = f"sc_t_{uuid.uuid4().hex[:12]}"
    store = JobStore(database_url, schema)
    store.migrate()
    store.close()
    try:
        yield schema
    finally:
        drop_schema(database_url, schema)


def settings_for(env: dict[str, str]) -> Settings:
    return load(env)


def build_deps(settings: Settings, *, backoff_ms: int | None = None) -> Deps:
    """Deps from settings; `backoff_ms` shortens retry backoff so retries run within a test."""
    deps = Deps.from_settings(settings)
    if backoff_ms is not None:
        deps.queue = Queue(
            deps.redis,
            settings.queue_name,
            max_attempts=settings.max_attempts,
            max_stalls=settings.max_stalls,
            max_in_flight=settings.max_in_flight,
            backoff_base_ms=backoff_ms,
            backoff_max_ms=backoff_ms,
        )
    return deps


def closed_port() -> int:
    """A localhost TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wav_bytes(
    seconds: float = 1.0, sample_rate: int = 44_100, channels: int = 2, amplitude: float = 0.3
) -> bytes:
    """A short tone mix as WAV bytes (real audio for the real analysis)."""
    t = np.arange(int(seconds * sample_rate), dtype=np.float32) / sample_rate
    tone = amplitude * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 1760 * t)) / 1.5
    frames = np.stack([tone * (1.0 - 0.1 * c) for c in range(channels)], axis=1)
    out = io.BytesIO()
    soundfile.write(out, frames, sample_rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def hanging_wav(seconds: float = 1.0, sample_rate: int = 44_100) -> bytes:
    """A stereo 16-bit WAV whose LIST/INFO sub-chunk claims 0xFFFFFFF4 bytes.

    libsndfile 1.2.2 loops forever (100 % CPU, in C) on opening it: the stuck job of
    issue 8, laid out as in /work/shared/cases/make_cases.py (LIST before data).
    """
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = np.round(0.1 * np.sin(2 * np.pi * 1000 * t) * 32767).astype("<i2")
    pcm = np.repeat(mono[:, None], 2, axis=1).tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, sample_rate, sample_rate * 4, 4, 16)
    info = b"INFO" + b"abcd" + struct.pack("<I", 0xFFFFFFF4) + bytes(8)
    lst = b"LIST" + struct.pack("<I", len(info)) + info
    body = b"WAVE" + fmt + lst + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def slow_flac() -> bytes:
    """A 2.4 MB FLAC holding 3 h 40 min of stereo 48 kHz silence: slow for its size.

    sox writes ten minutes, ffmpeg repeats its frames 22 times without re-encoding
    (-stream_loop, -c copy); STREAMINFO still says ten minutes (a header's count is
    an estimate) and the decoder reads all 220. Within the 4 h limit, it takes half
    a minute or more to analyse. Skips the test where sox or ffmpeg is missing.
    """
    import pytest

    for tool in ("sox", "ffmpeg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {tool}; .ci/run installs it)")
    return _slow_flac()


@functools.cache
def _slow_flac() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        ten = Path(tmp) / "ten-minutes.flac"  # a file, so sox writes the frame count in
        hours = Path(tmp) / "hours.flac"
        run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
        run(["sox", "-D", "-n", "-r", "48000", "-c", "2", "-b", "16", str(ten), "trim", "0", "600"])
        run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-stream_loop",
                "21",
                "-i",
                str(ten),
                "-c",
                "copy",
                str(hours),
            ]
        )
        return hours.read_bytes()


def put_upload(deps: Deps, owner: str, data: bytes, name: str = "mix.wav") -> str:
    """Store bytes where an upload by `owner` would land; return the key."""
    key = new_key(deps.settings.storage_prefix, owner, name)
    deps.storage.put_bytes(key, data)
    return key


@contextlib.contextmanager
def installed(env: dict[str, str], **build: Any) -> Iterator[Deps]:
    """Dependencies built from `env` and installed for the app's routes until exit."""
    from chalicelib import deps

    d = build_deps(settings_for(env), **build)
    previous = deps.override(d)
    try:
        yield d
    finally:
        deps.override(previous)
        d.close()


@contextlib.contextmanager
def app_http(project_dir: Path) -> Iterator[Any]:
    """chalice.test's HTTP client for the app; a project dir without .chalice/config.json
    keeps the stage's AWS settings out."""
    from chalice.test import Client

    from app import app

    with Client(app, project_dir=str(project_dir)) as client:
        yield client.http


def new_owner() -> str:
    return f"owner-{uuid.uuid4().hex[:10]}"


def json_body(response: Any) -> dict[str, Any]:
    return json.loads(response.body)


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured output."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events
