"""What the web app's meters (issue 9) cost beside measure's own, on one core and all.

A 3-minute stereo 44.1 kHz music-like track through `measure()`: measure's five meters
alone, then with each of the web app's views added, best of N runs. Prints numbers;
asserts nothing. `.venv/bin/python -P bench/meters.py [--runs 5]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.analysis import measure as measuring
from tests.music import music_like

# measure's loudness, peak, level, stereo and spectrum meters come first (the stereo
# meter also makes the web app's correlation series and low-end correlation).
OWN = 5


def best(samples, meters, workers, runs: int) -> float:  # type: ignore[no-untyped-def]
    measuring.METERS = meters
    fastest = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        measuring.measure(samples, 44_100, workers=workers)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    samples = music_like(args.seconds, 44_100, seed=2)
    every = measuring.METERS
    own = every[:OWN]
    for workers in (1, None):
        base = best(samples, own, workers, args.runs)
        full = best(samples, every, workers, args.runs)
        print(
            f"{args.seconds:.0f} s stereo, workers={workers or 'all'}: measure's meters"
            f" {base:.2f} s, with the web app's {full:.2f} s ({100 * (full / base - 1):+.0f} %)"
        )
    base = best(samples, own, 1, args.runs)
    for extra in every[OWN:]:
        added = best(samples, (*own, extra), 1, args.runs) - base
        print(f"  + {extra.__module__.rsplit('.', 1)[-1]}.{extra.__name__}: {added:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
