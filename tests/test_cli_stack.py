"""The first ten minutes with the local stack: two stacks, the CLI from anywhere, messages.

Every test runs the real `soundcheck` command in a subprocess against a real
`soundcheck dev` (chalice's server, Redis, Postgres), from a directory that is
not the repository's, with the run's own per-user state dir (conftest).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from chalicelib.client import Client
from chalicelib.local.stack import read_state
from chalicelib.local.state import STARTING, StackInfo, record_path, running_stacks, write_atomic
from tests.pipeline_support import own_schema, wav_bytes
from tests.test_pipeline import start_stack, stop, wait_for_state

REPO = Path(__file__).resolve().parent.parent
# -o: never rebuild the venv from a test (a newer requirements file would make `make
# demo` reinstall everything first)
MAKE_DEMO = ["make", "-s", "--no-print-directory", "-o", ".venv/.installed-stamp", "demo"]
UPLOAD_LIMIT = 2 * 1024 * 1024


def soundcheck(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a subprocess, from `cwd`, without the test's API key."""
    base = {k: v for k, v in os.environ.items() if k != "SOUNDCHECK_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    info: StackInfo
    data_dir: Path


@pytest.fixture(scope="module")
def stack(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A stack with no consumers (jobs stay queued) and a 2 MB upload limit."""
    data_dir = tmp_path_factory.mktemp("clistack")
    with own_schema(database_url) as schema:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "SOUNDCHECK_DB_SCHEMA": schema,
            "QUEUE_NAME": f"cli-{uuid.uuid4().hex[:8]}",
            "SOUNDCHECK_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        }
        env.pop("SOUNDCHECK_API_KEY", None)
        process = start_stack(data_dir, env, consumers=0)
        try:
            info = wait_for_state(process, data_dir)
            yield Running(process, info, data_dir)
        finally:
            assert stop(process) == 0


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A music folder: not the repository, not the stack's data dir."""
    folder = tmp_path / "Music folder"
    folder.mkdir()
    (folder / "mix.wav").write_bytes(wav_bytes(0.5))
    return folder


def test_the_cli_finds_the_running_stack_from_any_directory(
    stack: Running, elsewhere: Path
) -> None:
    submitted = soundcheck("submit", "mix.wav", "--timeout", "0.3", cwd=elsewhere)
    assert "submitted mix.wav as job" in submitted.stderr, submitted.stderr
    listed = soundcheck("jobs", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert "mix.wav" in listed.stdout and "queued" in listed.stdout
    as_json = json.loads(soundcheck("jobs", "--json", cwd=elsewhere).stdout)
    assert as_json[0]["fileName"] == "mix.wav"


def test_a_timeout_says_the_job_keeps_running_and_how_to_follow_it(
    stack: Running, elsewhere: Path
) -> None:
    done = soundcheck("submit", "mix.wav", "--timeout", "0.3", cwd=elsewhere)
    assert done.returncode == 2
    job_id = done.stderr.split("as job ", 1)[1].split()[0]
    assert f"keeps running; `soundcheck status {job_id}` shows it" in done.stderr
    assert f"`soundcheck status {job_id} --wait`" in done.stderr
    shown = soundcheck("status", job_id, "--json", cwd=elsewhere)
    assert json.loads(shown.stdout)["status"] == "queued"


def test_ctrl_c_during_submit_stops_cleanly_and_names_the_job(
    stack: Running, elsewhere: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "submit", "mix.wav"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # "submitted mix.wav as job ID", then it follows
    assert "as job" in first, first
    job_id = first.split("as job ", 1)[1].strip()
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=30) == 130
    assert "Traceback" not in rest
    assert f"`soundcheck status {job_id}`" in rest and "keeps running" in rest
    assert Client(stack.info.url, stack.info.api_key).job(job_id)["status"] == "queued"


def test_api_key_option_and_a_wrong_key(stack: Running, elsewhere: Path) -> None:
    good = soundcheck(
        "jobs", "--api", stack.info.url, "--api-key", stack.info.api_key, cwd=elsewhere
    )
    assert good.returncode == 0, good.stderr
    bad = soundcheck("jobs", "--api-key", "sck_wrong", cwd=elsewhere)
    assert bad.returncode == 2
    assert "refused the API key" in bad.stderr and "401" not in bad.stderr
    assert "--api-key" in bad.stderr


def test_no_key_and_no_stack_say_what_to_do(stack: Running, elsewhere: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    gone = soundcheck("submit", "mix.wav", "--api", nobody, cwd=elsewhere)
    assert gone.returncode == 2
    assert f"no soundcheck at {nobody} - start it with `soundcheck dev`" in gone.stderr
    assert "Errno" not in gone.stderr and "Traceback" not in gone.stderr
    # a reachable API that is not the local stack: the CLI has no key for it
    keyless = soundcheck("jobs", "--api", stack.info.url + "/", cwd=elsewhere)
    assert keyless.returncode == 0, keyless.stderr  # the same stack: its key is found
    record = record_path(stack.data_dir)
    saved = record.read_text()
    record.unlink()  # as if the API were someone else's
    try:
        nokey = soundcheck("jobs", "--api", stack.info.url, cwd=elsewhere)
    finally:
        write_atomic(record, saved)
    assert nokey.returncode == 2
    assert "no API key" in nokey.stderr and "--api-key KEY" in nokey.stderr
    assert "soundcheck keys create" in nokey.stderr


def test_sizes_in_mb_and_the_setting_that_raises_the_limit(stack: Running, elsewhere: Path) -> None:
    big = elsewhere / "long mix.wav"
    with big.open("wb") as handle:
        handle.write(wav_bytes(0.1))
        handle.truncate(3 * 1024 * 1024)
    done = soundcheck("submit", "long mix.wav", cwd=elsewhere)
    assert done.returncode == 2
    assert "the file is 3.0 MB; the limit is 2.0 MB" in done.stderr, done.stderr
    assert "SOUNDCHECK_MAX_UPLOAD_BYTES" in done.stderr
    assert "413" not in done.stderr and "3145728" not in done.stderr


def test_the_cli_waits_for_a_stack_that_is_still_starting(
    stack: Running, elsewhere: Path, tmp_path: Path
) -> None:
    """A record in `starting` state (as `soundcheck dev` writes before its workers are up),
    at another spelling of the running stack's URL so it answers once "ready"."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    data_dir = tmp_path / "starting"
    url = stack.info.url.replace("127.0.0.1", "localhost")
    starting = replace(
        stack.info, url=url, pid=sleeper.pid, status=STARTING, data_dir=str(data_dir)
    )
    write_atomic(record_path(data_dir), starting.to_json())
    client = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "jobs", "--api", url],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stderr is not None
        assert "waiting for soundcheck dev" in client.stderr.readline()
        assert client.poll() is None  # still waiting, not failed
        write_atomic(record_path(data_dir), replace(starting, status="ready").to_json())
        assert client.wait(timeout=30) == 0
    finally:
        client.kill()
        sleeper.kill()
        sleeper.wait()
        record_path(data_dir).unlink(missing_ok=True)


def run_dev(data_dir: Path, port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`soundcheck dev` expected to refuse: it returns by itself."""
    argv = ["dev", "--port", str(port), "--consumers", "0", "--data-dir", str(data_dir)]
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_stack_coexists_and_the_same_data_dir_is_refused(tmp_root: Path) -> None:
    """On embedded servers, the case that broke: the second stack used to shut down the
    first one's Redis and delete its state. (Not under pytest's tmp_path: a concurrent
    pytest run resets /tmp/pytest-of-USER to mode 0700, which embedded Postgres, run as
    its own user, then cannot enter.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.pop("SOUNDCHECK_API_KEY", None)
    base = tmp_root / f"coexist-{uuid.uuid4().hex[:8]}"
    first_dir, second_dir = base / "one", base / "two"
    first_dir.mkdir(parents=True)
    second_dir.mkdir()
    first = start_stack(first_dir, env, consumers=0)
    try:
        info = wait_for_state(first, first_dir)
        port = int(info.url.rsplit(":", 1)[1])
        same_dir = run_dev(first_dir, 0, env)
        assert same_dir.returncode == 1
        assert f"another soundcheck dev (pid {first.pid}, {info.url})" in same_dir.stderr
        assert "--data-dir" in same_dir.stderr and "Traceback" not in same_dir.stderr
        same_port = run_dev(second_dir, port, env)
        assert same_port.returncode == 1
        assert f"port {port}" in same_port.stderr and "--port" in same_port.stderr
        # the first stack is untouched: its state file and its servers
        assert (first_dir / "dev.json").exists()
        first_client = Client(info.url, info.api_key)
        assert first_client.request("GET", "/health/ready")[0] == 200
        assert first_client.request("GET", "/api/jobs")[0] == 200

        second = start_stack(second_dir, env, consumers=0)
        try:
            other = wait_for_state(second, second_dir)
            assert other.url != info.url and other.api_key != info.api_key
            assert Client(other.url, other.api_key).request("GET", "/health/ready")[0] == 200
            assert {s.url for s in running_stacks()} >= {info.url, other.url}
        finally:
            assert stop(second) == 0
        assert first_client.request("GET", "/health/ready")[0] == 200
        assert first_client.request("GET", "/api/jobs")[0] == 200
    finally:
        assert stop(first) == 0
    assert running_stacks() == [] or info.url not in {s.url for s in running_stacks()}


def test_a_mistyped_genre_is_refused_before_anything_starts(tmp_path: Path) -> None:
    track = tmp_path / "mix.wav"
    track.write_bytes(wav_bytes(0.2))
    demo = soundcheck("demo", str(track), "--genre", "tehcno", cwd=tmp_path, timeout=30)
    assert demo.returncode == 2
    assert "unknown genre 'tehcno'" in demo.stderr and "soundcheck genres" in demo.stderr
    assert not (tmp_path / ".soundcheck").exists()  # no stack was started
    submit = soundcheck("submit", str(track), "--genre", "tehcno", cwd=tmp_path, timeout=30)
    assert submit.returncode == 2 and "unknown genre" in submit.stderr


@pytest.mark.parametrize(
    "name", ["My Mix v2.wav", "Song (Master).wav", 'It\'s "final" café.wav', "a;b & c|d.wav"]
)
def test_make_demo_takes_any_file_name(name: str, tmp_path: Path) -> None:
    """The name must reach `soundcheck demo` whole: here a missing file, so it stops at once
    and echoes what it got (no stack starts)."""
    if not (REPO / ".venv" / "bin" / "soundcheck").exists():
        pytest.skip("make demo needs the project's .venv (make venv)")
    missing = tmp_path / name
    done = subprocess.run(
        [*MAKE_DEMO, f"FILE={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"demo: no such file: {missing}" in done.stderr, done.stderr
    genre = subprocess.run(
        [*MAKE_DEMO, f"FILE={missing}", "GENRE=hip hop?"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "unknown genre 'hip hop?'" in genre.stderr, genre.stderr


def test_a_midi_file_is_refused_before_it_is_uploaded(stack: Running, elsewhere: Path) -> None:
    (elsewhere / "song.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0")
    uploads = Path(stack.data_dir) / "objects"
    before = sorted(p for p in uploads.rglob("*") if p.is_file()) if uploads.exists() else []
    done = soundcheck("submit", "song.mid", cwd=elsewhere)
    assert done.returncode == 2
    assert "MIDI" in done.stderr and "Accepted: WAV" in done.stderr and "FLAC" in done.stderr
    assert "[unsupported_format]" in done.stderr and "Traceback" not in done.stderr
    after = sorted(p for p in uploads.rglob("*") if p.is_file()) if uploads.exists() else []
    assert after == before


def test_ctrl_c_during_the_demo_stops_it_cleanly_and_names_the_job(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """Ctrl-C in a terminal reaches the demo and its stack (one process group). The
    demo's queue is paused, so the job is still waiting when Ctrl-C comes."""
    import redis

    from chalicelib.queue import Queue

    queue_name = f"demo-cc-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    queue = Queue(client, queue_name)
    queue.pause()
    try:
        with own_schema(database_url) as schema:
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "REDIS_URL": redis_url,
                "DATABASE_URL": database_url,
                "QUEUE_NAME": queue_name,
                "SOUNDCHECK_DB_SCHEMA": schema,
            }
            demo = subprocess.Popen(
                [sys.executable, "-m", "chalicelib.cli", "demo"],
                cwd=tmp_path,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert demo.stderr is not None
            seen = []
            for line in demo.stderr:
                seen.append(line)
                if "as job" in line:
                    break
            assert seen and "as job" in seen[-1], "".join(seen)
            job_id = seen[-1].split("as job ", 1)[1].strip()
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            rest = demo.stderr.read()
            assert demo.wait(timeout=120) == 130, rest
            assert "Traceback" not in rest
            assert "demo: stopped (Ctrl-C)" in rest and f"`soundcheck status {job_id}`" in rest
            assert "demo: stack stopped" in rest
            assert read_state(tmp_path / ".soundcheck" / "demo") is None
    finally:
        queue.delete_all()
        client.close()


def test_the_stacks_key_is_an_admin_key_kept_out_of_its_log(
    stack: Running, elsewhere: Path
) -> None:
    """`soundcheck dev` under a log file: the key is in its 0600 file, not in the log,
    and it is an admin key, so the local operator still reads queue statistics."""
    import stat

    key_file = stack.data_dir / "api-key"
    assert key_file.read_text().strip() == stack.info.api_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((stack.data_dir / "dev.json").stat().st_mode) == 0o600
    log = (stack.data_dir / "stack.log").read_text()
    assert "soundcheck dev is up" in log and stack.info.api_key not in log
    stats = soundcheck("queue", "stats", cwd=elsewhere, env={"REDIS_URL": ""})
    assert stats.returncode == 0, stats.stderr
    assert '"waiting"' in stats.stdout
