"""Peak memory and time of a long track through decode + measure, next to ffmpeg's meter.

Writes a stereo 44.1 kHz 16-bit WAV of --hours (default 2: 1.27 GB) a minute at a
time (music-like, sections of varying level), then in a fresh process runs
analyze_file() on it with the default limits and prints:

- the peak RSS of that Python process (VmHWM) and of its ffmpeg decoder child
  (ru_maxrss of the reaped child), and their sum: what a Lambda must hold;
- the wall time, and ffmpeg's `ebur128=peak=true` on the same file as the peer.

Prints numbers; asserts nothing.

    python -P bench/long_file.py [--hours 2] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from chalicelib.analysis import ffmpeg  # noqa: E402
from tests.music import music_like  # noqa: E402

RATE = 44100
RUN = """
import json, re, resource, sys, time
from chalicelib.analysis import analyze_file
started = time.monotonic()
result = analyze_file(sys.argv[1])
elapsed = time.monotonic() - started
status = open("/proc/self/status").read()
print(json.dumps({
    "python_mb": int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024,
    "decoder_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "seconds": elapsed,
    "duration": result["file"]["durationSeconds"],
    "lufs": result["loudness"]["integratedLufs"],
    "lra": result["loudness"]["rangeLu"],
    "tp": result["peaks"]["truePeakDbtp"],
}))
"""


def write_long_wav(path: Path, hours: float) -> None:
    minutes = round(hours * 60)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for minute in range(minutes):
            x = music_like(60.0, RATE, seed=minute % 7)
            out.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the WAV here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soundcheck-long-") as tmp:
        path = args.keep or Path(tmp) / "long.wav"
        if not path.exists():
            started = time.monotonic()
            write_long_wav(path, args.hours)
            print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in "
                  f"{time.monotonic() - started:.0f} s")  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", RUN, str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        started = time.monotonic()
        subprocess.run(
            [str(ffmpeg.binary()), "-nostdin", "-hide_banner", "-nostats", "-i", str(path),
             "-af", "ebur128=peak=true", "-f", "null", "-"],
            capture_output=True, check=True,
        )  # fmt: skip
        peer = time.monotonic() - started
    hours = seen["duration"] / 3600
    print(f"{hours:.2f} h stereo {RATE} Hz WAV through analyze_file (default limits):")
    total = seen["python_mb"] + seen["decoder_mb"]
    print(f"  peak RSS  python {seen['python_mb']:7.1f} MB + ffmpeg decoder "
          f"{seen['decoder_mb']:6.1f} MB = {total:7.1f} MB")  # fmt: skip
    print(f"  time      {seen['seconds']:7.1f} s  (ffmpeg ebur128=peak=true: {peer:.1f} s, "
          f"ratio {peer / seen['seconds']:.2f}x)")  # fmt: skip
    print(f"  result    I {seen['lufs']} LUFS, LRA {seen['lra']} LU, TP {seen['tp']} dBTP")


if __name__ == "__main__":
    main()
