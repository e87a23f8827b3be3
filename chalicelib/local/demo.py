"""`make demo`: one track through the real pipeline on a fresh machine.

Starts the local stack in a child process (`soundcheck dev`, its log in a file),
makes a short synthetic mix unless a file is given, uploads and submits it over
HTTP, waits for the consumer to analyse it, prints the report and stops the
stack. Exit code 0 only if all of that worked.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.local.background import BackgroundStack, StackFailed
from chalicelib.local.submit import INTERRUPTED

if TYPE_CHECKING:
    import numpy as np

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


def run(
    file: Path | None,
    *,
    data_dir: Path = Path(".soundcheck/demo"),
    genre: str | None = None,
    as_json: bool = False,
) -> int:
    """Start the stack, push one track through it, print the report, stop the stack."""
    from chalicelib.local import submit as submitting

    if file is not None and not file.is_file():
        print(f"demo: no such file: {file}", file=sys.stderr)
        return 2
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if file is None:
        file = write_demo_track(data_dir / "demo-mix.wav")
        print(f"demo: made a synthetic 8 s mix at {file}", file=sys.stderr)
    where = "REDIS_URL/DATABASE_URL" if os.environ.get("REDIS_URL") else "embedded servers"
    stack = BackgroundStack(data_dir, consumers=1, purpose="demo")
    print(f"demo: starting the local stack on {where} (log: {stack.log_path})", file=sys.stderr)
    started = time.monotonic()
    code = 1
    try:
        info = stack.start()
        print(f"demo: stack up at {info.url} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        code = submitting.run(
            file,
            api=info.url,
            api_key=info.api_key,
            genre=genre,
            as_json=as_json,
            timeout=JOB_TIMEOUT_S,
            command="demo",
            on_interrupt_hint=False,
        )
    except StackFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        left = _left_behind(getattr(interrupt, "job_id", None), stack, data_dir)
        print(f"\ndemo: stopped (Ctrl-C); {left}", file=sys.stderr)
        code = INTERRUPTED
    finally:
        stopped = stack.stop()
        print(f"demo: stack stopped (exit {stopped})", file=sys.stderr)
        if stopped not in (0, -2) and code == 0:
            code = 1
    if code not in (0, INTERRUPTED):
        print(f"demo: the stack's log ends with:\n{stack.tail()}", file=sys.stderr)
    return code


def _left_behind(job_id: str | None, stack: BackgroundStack, data_dir: Path) -> str:
    """What becomes of the demo's job now that its stack stops with the demo."""
    if job_id is None:
        return "no job was submitted."
    if stack.throwaway:
        return f"job {job_id} goes with the demo's own schema, dropped as the demo stops."
    if os.environ.get("DATABASE_URL"):
        return (
            f"job {job_id} stays queued on REDIS_URL/DATABASE_URL: a `soundcheck dev` or "
            f"worker there finishes it, and `soundcheck status {job_id}` then shows it."
        )
    return (
        f"job {job_id} stays queued in the demo's data dir: `soundcheck dev --data-dir "
        f"{data_dir}` finishes it, and `soundcheck status {job_id}` then shows it."
    )
