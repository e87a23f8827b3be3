"""`make demo`: one track through the real pipeline on a fresh machine.

Starts the local stack in a child process (`soundcheck dev`, its logs in a file),
makes a short synthetic mix unless a file is given, uploads and submits it over
HTTP, waits for the consumer to analyse it, prints the report and stops the
stack. Exit code 0 only if all of that worked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.local.stack import read_state

if TYPE_CHECKING:
    import numpy as np

STACK_START_TIMEOUT_S = 180.0  # a first run initialises an embedded Postgres cluster
JOB_TIMEOUT_S = 300.0


def synth_mix(seconds: float = 8.0, sample_rate: int = 44_100, seed: int = 7) -> np.ndarray:
    """A little stereo mix (kick, bass, chords, lead, hats) as float32 (frames, 2).

    Deterministic, so every `make demo` prints the same numbers; mastered a bit
    hot (soft-clipped) so the report has something to say.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate), dtype=np.float64) / sample_rate
    beat = 60.0 / 124.0
    phase = np.mod(t, beat)
    kick = np.sin(2 * np.pi * (50 + 120 * np.exp(-phase * 40)) * phase) * np.exp(-phase * 14)
    bar = np.floor(t / (4 * beat)).astype(int) % 4
    roots = np.array([55.0, 43.65, 49.0, 41.2])[bar]
    bass = np.tanh(1.5 * np.sin(2 * np.pi * roots * t)) * np.exp(-np.mod(t, beat / 2) * 3)

    def chord(detune: float) -> np.ndarray:
        voices = [np.sin(2 * np.pi * roots * 8 * r * detune * t) for r in (1.0, 1.26, 1.5, 2.0)]
        saw = sum(v + 0.5 * np.sign(v) * 0.3 for v in voices)
        return saw * (0.5 + 0.5 * np.sin(2 * np.pi * 0.125 * t) ** 2)

    notes = np.array([880.0, 987.8, 1046.5, 1174.7, 1318.5, 1174.7, 1046.5, 987.8])
    lead = np.sin(2 * np.pi * notes[np.floor(t / (beat / 2)).astype(int) % 8] * t)
    lead *= np.exp(-np.mod(t, beat / 2) * 4)
    noise = rng.standard_normal((t.size, 2))
    hats = np.diff(noise, n=2, axis=0, prepend=np.zeros((2, 2)))  # a crude high-pass
    hats *= np.exp(-np.mod(t, beat / 4) * 50)[:, None]
    left = 0.9 * kick + 0.5 * bass + 0.12 * chord(1.0) + 0.18 * lead + 0.05 * hats[:, 0]
    right = 0.9 * kick + 0.5 * bass + 0.12 * chord(1.004) + 0.12 * lead + 0.05 * hats[:, 1]
    mix = np.stack([left, right], axis=1)
    mix /= np.max(np.abs(mix))
    return (np.tanh(mix * 2.0) * 0.95).astype(np.float32)


def write_demo_track(path: Path, seconds: float = 8.0) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), synth_mix(seconds), 44_100, subtype="PCM_24")
    return path


def _isolated_env() -> dict[str, str]:
    """On shared servers (REDIS_URL / DATABASE_URL set), a queue and schema of the demo's own.

    Another stack on the same Redis db and queue would claim the demo's job and
    look for its file in another directory.
    """
    env = dict(os.environ)
    if env.get("REDIS_URL") and not env.get("QUEUE_NAME"):
        env["QUEUE_NAME"] = f"demo-{uuid.uuid4().hex[:8]}"
    if env.get("DATABASE_URL") and not env.get("SOUNDCHECK_DB_SCHEMA"):
        env["SOUNDCHECK_DB_SCHEMA"] = "soundcheck_demo"
    return env


def _forget_queue(env: dict[str, str]) -> None:
    """Delete the keys of a queue made for this demo run (a shared Redis stays tidy)."""
    if env.get("QUEUE_NAME", "").startswith("demo-") and not os.environ.get("QUEUE_NAME"):
        from chalicelib.deps import redis_client

        client = redis_client(env["REDIS_URL"])
        try:
            keys = list(client.scan_iter(f"sq:{{{env['QUEUE_NAME']}}}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def _start_stack(
    data_dir: Path, log_path: Path, consumers: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "chalicelib.cli_stack",
        "dev",
        "--port",
        "0",
        "--consumers",
        str(consumers),
        "--data-dir",
        str(data_dir),
    ]
    log = log_path.open("wb")
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        log.close()


def _stop_stack(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    return process.returncode


def run(
    file: Path | None,
    *,
    data_dir: Path = Path(".soundcheck/demo"),
    genre: str | None = None,
    as_json: bool = False,
) -> int:
    """Start the stack, push one track through it, print the report, stop the stack."""
    from chalicelib.local import submit as submitting

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "stack.log"
    if file is None:
        file = write_demo_track(data_dir / "demo-mix.wav")
        print(f"demo: made a synthetic 8 s mix at {file}", file=sys.stderr)
    elif not file.is_file():
        print(f"demo: no such file: {file}", file=sys.stderr)
        return 2
    where = "REDIS_URL/DATABASE_URL" if os.environ.get("REDIS_URL") else "embedded servers"
    print(f"demo: starting the local stack on {where} (log: {log_path})", file=sys.stderr)
    started = time.monotonic()
    env = _isolated_env()
    process = _start_stack(data_dir, log_path, consumers=1, env=env)
    code = 1
    try:
        info = None
        while info is None or info.pid != process.pid:
            if process.poll() is not None:
                print("demo: the stack failed to start; its log:", file=sys.stderr)
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                return 1
            if time.monotonic() - started > STACK_START_TIMEOUT_S:
                print("demo: the stack did not come up in time", file=sys.stderr)
                return 1
            time.sleep(0.1)
            info = read_state(data_dir)
        print(f"demo: stack up at {info.url} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        code = submitting.run(
            file,
            api=info.url,
            api_key=info.api_key,
            genre=genre,
            as_json=as_json,
            timeout=JOB_TIMEOUT_S,
        )
    finally:
        stopped = _stop_stack(process)
        print(f"demo: stack stopped (exit {stopped})", file=sys.stderr)
        _forget_queue(env)
        if code != 0:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        if stopped not in (0, -signal.SIGINT) and code == 0:
            code = 1
    return code
