"""Level and dynamics: RMS, crest factor, PLR, PSR, clipped samples.

dBFS here is relative to a full-scale square wave: a full-scale sine has an RMS
of -3.01 dBFS (the AES17 convention would call it 0 dBFS; loudness meters and
most DAWs do not).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from chalicelib.analysis import native
from chalicelib.analysis.blockwise import Block, Context, Result

# The largest positive 16-bit sample: a sample at or beyond it is at full scale in
# every PCM format (24-bit full scale is above it) and in float files.
CLIP_LEVEL = 1.0 - 2.0**-15
_EIGHT_BIT = {"PCM_S8", "PCM_U8"}


def clip_level(subtype: str | None, dtype: np.dtype | None = None) -> float:
    """Full scale as the format can store it: 8-bit PCM tops out at 127/128, below
    the 16-bit level, so a clipped 8-bit file would otherwise count no positive clip."""
    eight_bit = subtype in _EIGHT_BIT or (dtype is not None and np.dtype(dtype).itemsize == 1)
    return 1.0 - 2.0**-7 if eight_bit else CLIP_LEVEL


_SUM_SQUARES = native.Function(
    "soundcheck_sum_squares", ctypes.c_double, native.array(np.float32), ctypes.c_int64
)


def sum_squares(samples: np.ndarray) -> float:
    """Sum of the squares of float32 samples (any shape, C-contiguous), summed in
    float64 (C kernel, `kernels/levels.c`): no overflow at 1e19, no underflow at
    1e-30. Raises ctypes.ArgumentError for another dtype or a non-contiguous array."""
    flat = samples.reshape(-1) if samples.flags.c_contiguous else samples
    return float(_SUM_SQUARES(flat, flat.size))


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


class LevelMeter:
    """RMS over every channel (sums of squares in float64), then the ratios that
    need the peaks and the loudness: crest factor, PLR, PSR."""

    def __init__(self, context: Context) -> None:
        self._sum_squares = 0.0
        self._samples = 0

    def add(self, block: Block) -> None:
        self._sum_squares += sum_squares(block.samples)
        self._samples += block.samples.size

    def finish(self, result: Result) -> None:
        rms_db = db(self._sum_squares / max(self._samples, 1))
        sample_peak_db = result.value("peaks.samplePeakDbfs")
        true_peak_db = result.value("peaks.truePeakDbtp")
        silence = "silence: every sample is zero"
        result.put("dynamics.rmsDbfs", rms_db, reason=silence)
        result.put("dynamics.crestFactorDb", difference(sample_peak_db, rms_db), reason=silence)
        plr = difference(true_peak_db, result.value("loudness.integratedLufs"))
        psr = difference(true_peak_db, result.value("loudness.shortTermMaxLufs"))
        result.put("dynamics.plrDb", plr, reason="needs the integrated loudness and the true peak")
        result.put("dynamics.psrDb", psr, reason="needs the short-term maximum and the true peak")
