"""Stereo correlation over time (one value per second) and of the low end (< 150 Hz).

Correlation is the normalised cross product of the front pair, as in stereo.py:
LR / sqrt(LL * RR), +1 mono, 0 unrelated, -1 out of phase; None where a channel is
silent. Per second: the sums over each whole second [t-1, t), reported at t (a
last partial second of at least 0.5 s too). Low end: both channels through a
4th-order Butterworth low-pass at 150 Hz (filter state carried across blocks), the
correlation of what passes: bass that is not near +1 collapses in mono and on
club systems that sum the sub.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np
from scipy.signal import butter

from chalicelib.analysis import native

LOW_END_HZ = 150.0
LOW_END_ORDER = 4
DECIMATE = 8  # the low-end filter runs at 1/8 of the rate (5.5 kHz at 44.1 kHz); kernels/stereo.c


def correlation(ll: float, rr: float, lr: float) -> float | None:
    if ll <= 0.0 or rr <= 0.0:
        return None
    return max(-1.0, min(1.0, float(lr / math.sqrt(ll * rr))))


class CorrelationAccumulator:
    """Feed (left, right) pairs of blocks in order with add(); result() gives the series
    and the low-end correlation.

    The sums are made in C (kernels/stereo.c, through native.py) in one pass over the
    float32 rows, in float64: per second; and of the low end, at 1/DECIMATE of the
    rate, the mean of each DECIMATE samples (a boxcar: its nulls fall on the
    frequencies that would alias below 150 Hz), then the low-pass (scipy's design,
    run as sosfilt runs it). State (the unfinished second, an incomplete group, the
    filter's memory) is carried between blocks.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._second = np.zeros(3)  # LL, RR, LR of the unfinished second
        self._total = np.zeros(3)  # ... of the finished ones
        self._filled = ctypes.c_int64(0)  # its frames
        self._series: list[tuple[int, float | None]] = []
        self._low = np.zeros(3)
        self._sos = np.ascontiguousarray(
            butter(LOW_END_ORDER, LOW_END_HZ, btype="low", fs=sample_rate / DECIMATE, output="sos"),
            dtype=np.float64,
        )
        self._zi = np.zeros((self._sos.shape[0], 2, 2))  # sections, channels, state
        self._rest = np.zeros(
            (2, DECIMATE), dtype=np.float32
        )  # an incomplete group of DECIMATE samples
        self._rest_n = ctypes.c_int64(0)  # ... its count

    def add(self, left: np.ndarray, right: np.ndarray) -> None:
        """The next block of the pair: two rows of n samples (float32; others are
        converted)."""
        left = np.ascontiguousarray(left, dtype=np.float32)
        right = np.ascontiguousarray(right, dtype=np.float32)
        n = len(left)
        if len(right) != n:
            raise ValueError(f"left has {n} samples, right {len(right)}")
        if n == 0:
            return
        finished = np.empty((n // self.sample_rate + 1, 3))
        count = _BLOCK(
            left,
            right,
            n,
            self.sample_rate,
            ctypes.byref(self._filled),
            self._second,
            finished,
            DECIMATE,
            self._sos,
            len(self._sos),
            self._zi,
            self._rest,
            ctypes.byref(self._rest_n),
            self._low,
        )
        if count < 0:
            raise ValueError(f"the stereo kernel takes DECIMATE 8 and 2 sections, not {DECIMATE}")
        for sums in finished[:count]:
            self._series.append((len(self._series) + 1, correlation(*sums)))
            self._total += sums

    def sums(self) -> tuple[float, float, float]:
        """LL, RR and LR over everything added so far."""
        ll, rr, lr = self._total + self._second
        return float(ll), float(rr), float(lr)

    def result(self) -> dict[str, Any]:
        """{correlationSeries: [{t, correlation}], lowEndCorrelation}."""
        series = list(self._series)
        if self._filled.value >= self.sample_rate // 2:
            series.append((len(series) + 1, correlation(*self._second)))
        return {
            "correlationSeries": [
                {"t": t, "correlation": None if c is None else round(c, 3) + 0.0} for t, c in series
            ],
            "lowEndCorrelation": _round(correlation(*self._low)),
        }


# kernels/stereo.c
_BLOCK = native.Function(
    "soundcheck_stereo_block",
    ctypes.c_int64,
    native.array(np.float32),  # left (n,)
    native.array(np.float32),  # right (n,)
    ctypes.c_int64,  # n
    ctypes.c_int64,  # frames a second
    ctypes.POINTER(ctypes.c_int64),  # frames of the unfinished second
    native.array(np.float64, writeable=True),  # its LL, RR, LR
    native.array(np.float64, 2, writeable=True),  # (n // rate + 1, 3) seconds finished
    ctypes.c_int64,  # DECIMATE
    native.array(np.float64, 2),  # sos (2, 6)
    ctypes.c_int64,  # sections
    native.array(np.float64, 3, writeable=True),  # zi (2, 2, 2)
    native.array(np.float32, 2, writeable=True),  # rest (2, DECIMATE)
    ctypes.POINTER(ctypes.c_int64),  # samples in rest
    native.array(np.float64, writeable=True),  # low-end LL, RR, LR
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3) + 0.0
