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
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.local.stack import read_state

if TYPE_CHECKING:
    import numpy as np

STACK_START_TIMEOUT_S = 180.0  # a first run initialises an embedded Postgres cluster
JOB_TIMEOUT_S = 300.0


def synth_mix(seconds: float = 8.0, sample_rate: int = 44_100, seed: int = 7) -> np.ndarray:
    """A little stereo mix (kick, bass, chords, hats) as float32 (frames, 2) in [-1, 1].

    Deterministic, so every `make demo` prints the same numbers; loud and bright
    enough that the report has something to say.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate), dtype=np.float32) / sample_rate
    beat = 60.0 / 120.0  # 120 BPM
    phase = np.mod(t, beat)
    kick = np.sin(2 * np.pi * (45 + 90 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 9)
    bar = np.floor(t / (4 * beat)).astype(int) % 4
    roots = np.array([55.0, 43.65, 49.0, 41.2], dtype=np.float32)[bar]
    bass = np.tanh(2.5 * np.sin(2 * np.pi * roots * t)) * 0.5
    chord = sum(
        np.sign(np.sin(2 * np.pi * roots * 4 * ratio * t)) for ratio in (1.0, 1.26, 1.5)
    ) * (0.06 + 0.04 * np.sin(2 * np.pi * 0.25 * t))
    eighth = np.mod(t, beat / 2)
    hats = rng.standard_normal(t.size).astype(np.float32) * np.exp(-eighth * 60) * 0.25
    hats = np.diff(hats, prepend=0.0)  # crude high-pass
    left = kick * 0.9 + bass + chord * 1.1 + hats * 0.7
    right = kick * 0.9 + bass + chord * 0.9 + np.roll(hats, 40) * 1.0
    mix = np.stack([left, right], axis=1).astype(np.float32)
    mix /= float(np.max(np.abs(mix))) / 0.97
    return np.tanh(mix * 1.6).astype(np.float32) * 0.9


def write_demo_track(path: Path, seconds: float = 8.0) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), synth_mix(seconds), 44_100, subtype="PCM_24")
    return path


def _start_stack(data_dir: Path, log_path: Path, consumers: int) -> subprocess.Popen[bytes]:
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
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
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
    process = _start_stack(data_dir, log_path, consumers=1)
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
        if code != 0:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        if stopped not in (0, -signal.SIGINT) and code == 0:
            code = 1
    return code
