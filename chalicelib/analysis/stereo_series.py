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
        sos = butter(
            LOW_END_ORDER, LOW_END_HZ, btype="low", fs=sample_rate / DECIMATE, output="sos"
        )
        self._sos = np.ascontiguousarray(sos, dtype=np.float64)  # (2, 6)
        # The kernel's state, kept here: float64 LL, RR, LR of the unfinished second,
        # of the low end, and the filter's memory (sections, channels, 2); the frames
        # of the unfinished second and of an incomplete group of DECIMATE; the group.
        self._state = np.zeros(6 + self._sos.size // 6 * 4)
        self._second = self._state[0:3]
        self._low = self._state[3:6]
        self._zi = self._state[6:].reshape(-1, 2, 2)
        self._counts = np.zeros(2, dtype=np.int64)
        self._rest = np.zeros((2, DECIMATE), dtype=np.float32)
        self._finished = np.zeros((2, 3))  # the sums of the seconds a block completes
        self._total = np.zeros(3)  # LL, RR, LR of the finished seconds
        self._series: list[tuple[int, float | None]] = []
        # Addresses passed to C: each array is this object's and never moves (a
        # numpy argument costs microseconds of checks a call).
        self._fixed = (
            self._sos.ctypes.data,
            self._state.ctypes.data,
            self._counts.ctypes.data,
            self._rest.ctypes.data,
        )
        self._finished_at = self._finished.ctypes.data

    def add(self, left: np.ndarray, right: np.ndarray) -> None:
        """The next block of the pair: two rows of n samples (float32; others are
        converted)."""
        pair = np.stack([np.asarray(left, dtype=np.float32), np.asarray(right, dtype=np.float32)])
        self.add_rows(pair, 0, 1)

    def add_rows(self, samples: np.ndarray, left: int, right: int) -> None:
        """The next block: rows `left` and `right` of samples, float32 (channels, n)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        channels, n = samples.shape
        if not (0 <= left < channels and 0 <= right < channels):
            raise ValueError(f"rows {left} and {right} of {channels}")
        if n == 0:
            return
        if len(self._finished) < n // self.sample_rate + 1:
            self._finished = np.zeros((n // self.sample_rate + 1, 3))
            self._finished_at = self._finished.ctypes.data
        sos, state, counts, rest = self._fixed
        count = _BLOCK(
            samples.ctypes.data,
            n,
            left,
            right,
            self.sample_rate,
            DECIMATE,
            sos,
            len(self._sos),
            state,
            counts,
            rest,
            self._finished_at,
        )
        if count < 0:
            raise ValueError(f"the stereo kernel takes DECIMATE 8 and 2 sections, not {DECIMATE}")
        for sums in self._finished[:count]:
            self._series.append((len(self._series) + 1, correlation(*sums)))
            self._total += sums

    def sums(self) -> tuple[float, float, float]:
        """LL, RR and LR over everything added so far."""
        ll, rr, lr = self._total + self._second
        return float(ll), float(rr), float(lr)

    def result(self) -> dict[str, Any]:
        """{correlationSeries: [{t, correlation}], lowEndCorrelation}."""
        series = list(self._series)
        if self._counts[0] >= self.sample_rate // 2:
            series.append((len(series) + 1, correlation(*self._second)))
        return {
            "correlationSeries": [
                {"t": t, "correlation": None if c is None else round(c, 3) + 0.0} for t, c in series
            ],
            "lowEndCorrelation": _round(correlation(*self._low)),
        }


# kernels/stereo.c; pointers are checked by CorrelationAccumulator
_BLOCK = native.Function(
    "soundcheck_stereo_block",
    ctypes.c_int64,
    ctypes.c_void_p,  # samples, float32 (channels, n)
    ctypes.c_int64,  # n
    ctypes.c_int64,  # the left row
    ctypes.c_int64,  # the right row
    ctypes.c_int64,  # frames a second
    ctypes.c_int64,  # DECIMATE
    ctypes.c_void_p,  # sos, float64 (2, 6)
    ctypes.c_int64,  # sections
    ctypes.c_void_p,  # state, float64 (14,)
    ctypes.c_void_p,  # counts, int64 (2,)
    ctypes.c_void_p,  # rest, float32 (2, DECIMATE)
    ctypes.c_void_p,  # the seconds finished, float64 (n // rate + 1, 3)
)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3) + 0.0
