"""True peak per ITU-R BS.1770-4 Annex 2: the peak of the signal oversampled.

Oversampling is 4x below 96 kHz, 2x below 192 kHz and none above, as Annex 2
allows. The interpolator is a Kaiser-windowed sinc that passes every original
sample unchanged (a Nyquist filter: sinc zeros fall on the original instants),
so the true peak is never below the sample peak and only the L-1 in-between
phases need computing. 12 taps per phase, beta 6: at most 0.02 dB over-read for
tones up to 0.45 fs; the under-read is the sampling one of Annex 2, Attachment 1
(at most 0.55 dB at 0.45 fs for 4x).

Most of a track cannot hold the peak: an interpolated value is at most
`overshoot` (the largest sum of absolute taps of a phase) times the largest
nearby sample. Blocks are visited loudest first and skipped once that bound is
below the running maximum; the answer is the same as oversampling everything.
"""

from __future__ import annotations

from functools import cache

import numpy as np

TAPS_PER_PHASE = 12
KAISER_BETA = 6.0
BLOCK = 2048  # samples per candidate block
BATCH = 8  # blocks per matrix product: 16 k samples, 768 kB stacked, fits in L2


def oversampling_factor(sample_rate: int) -> int:
    if sample_rate < 96_000:
        return 4
    if sample_rate < 192_000:
        return 2
    return 1


@cache
def interpolator(factor: int) -> np.ndarray:
    """Coefficients (factor-1, TAPS_PER_PHASE) for the in-between phases.

    Row p-1 gives the value at n + p/factor from samples n-5 .. n+6. Each row is
    scaled to sum to 1 so DC and low frequencies read exactly.
    """
    half = TAPS_PER_PHASE // 2
    offsets = np.arange(-(half - 1), half + 1)  # sample offsets k
    span = half * factor  # window half-length in output samples
    rows = []
    for p in range(1, factor):
        m = p - offsets * factor  # distance in output samples, |m| < span
        window = np.kaiser(2 * span + 1, KAISER_BETA)[m + span]
        row = np.sinc(m / factor) * window
        rows.append(row / row.sum())
    return np.array(rows, dtype=np.float32)


def overshoot(factor: int) -> float:
    """Largest possible interpolated value for samples bounded by 1."""
    if factor == 1:
        return 1.0
    return float(np.abs(interpolator(factor)).sum(axis=1).max())


def block_peaks(x: np.ndarray) -> np.ndarray:
    """Largest |sample| of each BLOCK of a 1-D channel (last block may be short)."""
    n = len(x)
    full = n // BLOCK
    peaks = np.empty(full + (n % BLOCK > 0), dtype=np.float32)
    if full:
        blocks = x[: full * BLOCK].reshape(full, BLOCK)
        np.maximum(blocks.max(axis=1), -blocks.min(axis=1), out=peaks[:full])
    if n % BLOCK:
        tail = x[full * BLOCK :]
        peaks[full] = max(float(tail.max()), -float(tail.min()))
    return peaks


def true_peak(x: np.ndarray, sample_rate: int, peaks: np.ndarray, floor: float = 0.0) -> float:
    """Linear true peak of one channel (1-D float32), given its block_peaks().

    `floor` is a level already known to be reached (another channel's true peak):
    blocks that cannot exceed it are skipped. Returns max(floor, this channel's).
    """
    factor = oversampling_factor(sample_rate)
    best = max(floor, float(peaks.max()) if len(peaks) else 0.0)
    if factor == 1 or len(peaks) == 0:
        return best
    phases = interpolator(factor)
    # An interpolated value in block b depends on samples of blocks b-1 .. b+1.
    nearby = peaks.copy()
    nearby[1:] = np.maximum(nearby[1:], peaks[:-1])
    nearby[:-1] = np.maximum(nearby[:-1], peaks[1:])
    bound = nearby * overshoot(factor)
    for first, last, run_bound in _runs(bound, best):
        if run_bound <= best:
            break
        best = max(best, _interpolated_max(x, first * BLOCK, last * BLOCK, phases))
    return best


def _runs(bound: np.ndarray, level: float) -> list[tuple[int, int, float]]:
    """Runs [first, last) of consecutive blocks whose bound exceeds `level`, at most
    BATCH blocks each, loudest first."""
    candidates = np.flatnonzero(bound > level)
    if len(candidates) == 0:
        return []
    breaks = np.flatnonzero(np.diff(candidates) != 1) + 1
    runs = []
    for group in np.split(candidates, breaks):
        for start in range(0, len(group), BATCH):
            part = group[start : start + BATCH]
            runs.append((int(part[0]), int(part[-1]) + 1, float(bound[part].max())))
    runs.sort(key=lambda run: -run[2])
    return runs


def _interpolated_max(x: np.ndarray, lo: int, hi: int, phases: np.ndarray) -> float:
    """Largest |value| at the in-between instants after samples lo .. hi-1.

    Only instants between two real samples count: the file's first and last
    samples are held beyond its ends rather than stepping to zero, so a track
    that starts or stops at a high level shows no overshoot that is not in it.
    The taps are stacked as rows so one small matrix product computes every
    phase at once.
    """
    n = len(x)
    hi = min(hi, n - 1)
    if hi <= lo:
        return 0.0
    half = TAPS_PER_PHASE // 2
    start, stop = lo - (half - 1), hi + half
    if start < 0 or stop > n:
        inside = x[max(start, 0) : min(stop, n)]
        segment = np.pad(inside, (max(-start, 0), max(stop - n, 0)), mode="edge")
    else:
        segment = np.ascontiguousarray(x[start:stop])  # one strided copy, not twelve
    width = hi - lo
    stacked = np.empty((TAPS_PER_PHASE, width), dtype=np.float32)
    for k in range(TAPS_PER_PHASE):
        stacked[k] = segment[k : k + width]
    values = phases @ stacked
    return float(max(values.max(), -values.min()))
