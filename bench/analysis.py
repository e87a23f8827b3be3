"""How fast and how lean the analysis is, next to ffmpeg, in one run.

Synthesises a 3-minute stereo 48 kHz track (the music-like signal of the tests,
written as 24-bit WAV) and prints, side by side:

- the full analysis (decode through the ffmpeg child, loudness, LRA, true peak,
  dynamics, stereo, spectrum, score) as analyze_file() runs it, warm, best of 3:
  on one core (this process and its decoder pinned to one CPU, meters in the
  calling thread) and on all cores (meters in threads); wall time and CPU time
  (all threads and the decoder child: steadier than wall time on a busy machine),
  each as a ratio to ffmpeg's wall time and (CPU ...x) to ffmpeg's CPU time;
- ffmpeg -af ebur128=peak=true on the same file (integrated, LRA and true peak),
  best of 3: the usual command-line reference, and the ratio to it;
- the peak RSS of a fresh process that runs analyze_file() once (and of one that
  only imports the engine: the baseline), with its decoder child's.

Two tracks: "dynamic" (sections, transients) and "limited" (driven into a soft
clipper so nearly every block sits near the peak: the true-peak pruning's worst
case). --minutes changes the length; bench/long_file.py measures a 2-hour file.
Prints numbers; asserts nothing.

    python -P bench/analysis.py [--minutes 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from chalicelib.analysis.compare import compare  # noqa: E402
from chalicelib.analysis.decode import open_audio  # noqa: E402
from chalicelib.analysis.measure import measure_stream  # noqa: E402
from tests.music import music_like  # noqa: E402

RATE = 48000
# VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the forked copy of
# this (large) bench process from before exec.
RSS_SCRIPT = """
import re, resource, sys
from chalicelib.analysis import analyze_file
if sys.argv[1] != "-":
    analyze_file(sys.argv[1])
else:
    import numpy, scipy.signal  # what analyze_file loads
status = open("/proc/self/status").read()
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), child)
"""


def best_of(runs: int, action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `runs` runs; CPU counts this process's
    threads and the children it waited for (the decoder, ffmpeg)."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        before = _cpu()
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        best = min(best, (wall, _cpu() - before))
    return best


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def cores(count: int | None) -> Iterator[None]:
    """Pin this process (and the decoder children it starts) to `count` CPUs."""
    every = os.sched_getaffinity(0)
    if count is not None:
        os.sched_setaffinity(0, set(sorted(every)[:count]))
    try:
        yield
    finally:
        os.sched_setaffinity(0, every)


def analyse(path: Path, workers: int | None) -> dict:
    with open_audio(path) as stream:
        result = measure_stream(stream, workers=workers)
    result["comparison"] = compare(result, None, None)
    return result


def track(kind: str, minutes: float, rate: int = RATE, seed: int = 1) -> np.ndarray:
    samples = music_like(minutes * 60.0, rate, seed=seed)
    if kind == "limited":
        samples = np.tanh(samples * 6.0) * 0.89  # loud, every block near the ceiling
    return samples.astype(np.float32)


def ffmpeg_ebur128(path: Path) -> tuple[tuple[float, float], str]:
    """(wall, CPU) seconds (best of 3) and ffmpeg's summary line (I, LRA, true peak)."""
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


def peak_rss_mb(path: Path | None) -> tuple[float, float]:
    """(this process's, its decoder child's) peak RSS in MB for analysing `path`."""
    out = subprocess.run(
        [sys.executable, "-P", "-c", RSS_SCRIPT, str(path) if path else "-"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    own, child = out.stdout.strip().splitlines()[-1].split()
    return int(own) / 1024.0, int(child) / 1024.0


def bench_track(kind: str, minutes: float, folder: Path) -> None:
    samples = track(kind, minutes)
    path = folder / f"{kind}.wav"
    soundfile.write(path, samples, RATE, subtype="PCM_24")
    del samples
    load = os.getloadavg()[0]
    print(f"\n{kind} track: {minutes:g} min stereo {RATE} Hz, 24-bit WAV (load average {load:.1f})")
    analyse(path, None)  # warm: imports, caches, page cache
    found = shutil.which("ffmpeg")
    (ff_wall, ff_cpu), summary = ffmpeg_ebur128(path) if found else ((0.0, 0.0), "")
    for label, count, workers in (("one core", 1, 1), ("all cores", None, None)):
        with cores(count):
            wall, cpu = best_of(3, lambda w=workers: analyse(path, w))
        result = analyse(path, None)
        loud, peaks = result["loudness"], result["peaks"]
        numbers = f"I {loud['integratedLufs']}  LRA {loud['rangeLu']}  TP {peaks['truePeakDbtp']}"
        ratio = f" {ff_wall / wall:4.1f}x ffmpeg (CPU {ff_cpu / cpu:4.1f}x)" if found else ""
        print(f"  analysis, {label:<9} {wall:6.3f} s (CPU {cpu:5.2f} s){ratio}   {numbers}")
    if found:
        print(f"  ffmpeg ebur128=peak=true {ff_wall:6.3f} s (CPU {ff_cpu:5.2f} s)   {summary}")
    else:
        print("  ffmpeg: not installed (apt-get install ffmpeg)")
    own, child = peak_rss_mb(path)
    print(f"  peak RSS, fresh process running analyze_file: {own:6.1f} MB (decoder {child:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="soundcheck-bench-") as folder:
        own, _ = peak_rss_mb(None)
        print(f"baseline RSS (python + numpy/scipy imported): {own:.1f} MB")
        for kind in ("dynamic", "limited"):
            bench_track(kind, args.minutes, Path(folder))


if __name__ == "__main__":
    main()
