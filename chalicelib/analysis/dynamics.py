"""Level and dynamics: RMS, crest factor, PLR, PSR, clipped samples.

dBFS here is relative to a full-scale square wave: a full-scale sine has an RMS
of -3.01 dBFS (the AES17 convention would call it 0 dBFS; loudness meters and
most DAWs do not).
"""

from __future__ import annotations

import math

import numpy as np

# The largest positive 16-bit sample: a sample at or beyond it is at full scale in
# every PCM format (24-bit full scale is above it) and in float files.
CLIP_LEVEL = 1.0 - 2.0**-15
_EIGHT_BIT = {"PCM_S8", "PCM_U8"}


def clip_level(subtype: str | None, dtype: np.dtype | None = None) -> float:
    """Full scale as the format can store it: 8-bit PCM tops out at 127/128, below
    the 16-bit level, so a clipped 8-bit file would otherwise count no positive clip."""
    eight_bit = subtype in _EIGHT_BIT or (dtype is not None and np.dtype(dtype).itemsize == 1)
    return 1.0 - 2.0**-7 if eight_bit else CLIP_LEVEL


def clipped_samples(x: np.ndarray, peaks: np.ndarray, block: int, level: float = CLIP_LEVEL) -> int:
    """Samples of one channel at full scale; only blocks whose peak gets there are read."""
    count = 0
    for b in np.flatnonzero(peaks >= level):
        part = x[int(b) * block : (int(b) + 1) * block]
        count += int(np.count_nonzero(part >= level) + np.count_nonzero(part <= -level))
    return count


def db(power_ratio: float | None) -> float | None:
    """10*log10 of a power ratio; None for zero (silence), never -inf."""
    if power_ratio is None or power_ratio <= 0.0 or not math.isfinite(power_ratio):
        return None
    return 10.0 * math.log10(power_ratio)


def amplitude_db(value: float) -> float | None:
    return db(value * value)


def difference(a: float | None, b: float | None) -> float | None:
    """a - b, or None when either is missing (PLR, PSR, crest factor)."""
    if a is None or b is None:
        return None
    return a - b
