"""How fast and how lean the analysis is, next to ffmpeg and pyloudnorm, in one run.

Synthesises a 3-minute stereo 48 kHz track (the music-like signal of the tests,
written as 24-bit WAV) and prints, side by side:

- analyze_file(): the full analysis (decode, loudness, LRA, true peak, dynamics,
  stereo, spectrum, score), warm, best of 3;
- ffmpeg -af ebur128=peak=true on the same file (integrated, LRA and true peak),
  best of 3: the usual command-line reference;
- pyloudnorm's integrated loudness alone (on the decoded array), best of 3;
- the peak RSS of a fresh process that imports the engine and runs analyze_file()
  once, and of one that only imports it (the baseline).

Two tracks: "dynamic" (sections, transients) and "limited" (driven into a soft
clipper so nearly every block sits near the peak: the true-peak pruning's worst
case). --minutes changes the length; --max-samples analyses a track of exactly
the SOUNDCHECK_MAX_SAMPLES default (20 minutes of stereo 48 kHz) for memory.
Prints numbers; asserts nothing.

    python bench/analysis.py [--minutes 3] [--max-samples]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from chalicelib.analysis import analyze_file  # noqa: E402
from tests.music import music_like  # noqa: E402

RATE = 48000
# VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the forked copy of
# this (large) bench process from before exec.
RSS_SCRIPT = """
import re, sys
from chalicelib.analysis import analyze_file
if sys.argv[1] != "-":
    analyze_file(sys.argv[1])
else:
    import numpy, scipy.signal, soundfile  # what analyze_file loads
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def track(kind: str, minutes: float) -> np.ndarray:
    samples = music_like(minutes * 60.0, RATE, seed=1)
    if kind == "limited":
        samples = np.tanh(samples * 6.0) * 0.89  # loud, every block near the ceiling
    return samples.astype(np.float32)


def ffmpeg_ebur128(path: Path) -> tuple[float, str]:
    """Seconds (best of 3) and ffmpeg's summary line (I, LRA, true peak)."""
    command = ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-af",
               "ebur128=peak=true", "-f", "null", "-"]  # fmt: skip
    output = ""

    def run() -> None:
        nonlocal output
        output = subprocess.run(command, capture_output=True, text=True, check=True).stderr

    seconds = best_of(3, run)
    summary = output[output.rfind("Summary:") :]
    found = {
        name: re.search(pattern, summary)
        for name, pattern in [
            ("I", r"I:\s+(-?[\d.]+) LUFS"),
            ("LRA", r"LRA:\s+(-?[\d.]+) LU"),
            ("TP", r"Peak:\s+(-?[\d.]+) dBFS"),
        ]
    }
    return seconds, "  ".join(f"{k} {m.group(1)}" for k, m in found.items() if m)


def peak_rss_mb(path: Path | None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path) if path else "-"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def bench_track(kind: str, minutes: float, folder: Path) -> None:
    samples = track(kind, minutes)
    path = folder / f"{kind}.wav"
    soundfile.write(path, samples, RATE, subtype="PCM_24")
    decoded = soundfile.read(path, dtype="float32")[0]
    del samples

    analyze_file(path)  # warm: imports, caches, page cache
    ours = best_of(3, lambda: analyze_file(path))
    result = analyze_file(path)
    loud, peaks = result["loudness"], result["peaks"]
    print(f"\n{kind} track: {minutes:g} min stereo {RATE} Hz, 24-bit WAV")
    numbers = f"I {loud['integratedLufs']}  LRA {loud['rangeLu']}  TP {peaks['truePeakDbtp']}"
    print(f"  analyze_file (full, warm, best of 3)  {ours:7.3f} s   {numbers}")

    if shutil.which("ffmpeg"):
        seconds, summary = ffmpeg_ebur128(path)
        print(f"  ffmpeg ebur128=peak=true (best of 3)  {seconds:7.3f} s   {summary}")
        print(f"  -> analyze_file is {seconds / ours:.1f}x faster than ffmpeg")
    else:
        print("  ffmpeg: not installed (make bench-analysis installs it from Debian)")

    try:
        import pyloudnorm

        meter = pyloudnorm.Meter(RATE, filter_class="DeMan")
        data = decoded.astype(np.float64)
        value = 0.0

        def integrated() -> None:
            nonlocal value
            value = meter.integrated_loudness(data)

        seconds = best_of(3, integrated)
        print(f"  pyloudnorm integrated only (best of 3) {seconds:7.3f} s   I {value:.2f}")
    except ImportError:
        print("  pyloudnorm: not installed")

    print(f"  peak RSS, fresh process running analyze_file: {peak_rss_mb(path):6.1f} MB "
          f"(decoded audio {decoded.nbytes / 2**20:.0f} MB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--max-samples", action="store_true",
                        help="also measure memory on a 20-minute stereo 48 kHz track")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soundcheck-bench-") as folder:
        print(f"baseline RSS (python + numpy/scipy/soundfile imported): {peak_rss_mb(None):.1f} MB")
        for kind in ("dynamic", "limited"):
            bench_track(kind, args.minutes, Path(folder))
        if args.max_samples:
            path = Path(folder) / "max.wav"
            soundfile.write(path, track("dynamic", 20.0), RATE, subtype="PCM_16")
            started = time.perf_counter()
            rss = peak_rss_mb(path)
            print(f"\n20 min stereo 48 kHz (the default max-samples): peak RSS {rss:.0f} MB, "
                  f"fresh process {time.perf_counter() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
