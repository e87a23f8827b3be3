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

import math
from typing import Any

import numpy as np
from scipy.signal import butter, sosfilt

LOW_END_HZ = 150.0
LOW_END_ORDER = 4
DECIMATE = 8  # the low-end filter runs at 1/8 of the rate (5.5 kHz at 44.1 kHz)
FILTER_BATCH = 1 << 18  # frames (at the full rate) low-passed at once


def correlation(ll: float, rr: float, lr: float) -> float | None:
    if ll <= 0.0 or rr <= 0.0:
        return None
    return max(-1.0, min(1.0, float(lr / math.sqrt(ll * rr))))


class CorrelationAccumulator:
    """Feed (left, right) pairs of blocks in order with add(); result() gives the series
    and the low-end correlation."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._second = np.zeros(3)  # LL, RR, LR of the unfinished second
        self._total = np.zeros(3)  # ... of the finished ones
        self._filled = 0  # its frames
        self._series: list[tuple[int, float | None]] = []
        self._low = np.zeros(3)
        self._sos = butter(
            LOW_END_ORDER, LOW_END_HZ, btype="low", fs=sample_rate / DECIMATE, output="sos"
        )
        self._rest = np.zeros((2, 0))
        self._reduced: list[np.ndarray] = []  # reduced blocks not yet filtered
        self._pending = 0  # their frames at the full rate
        self._zi = np.zeros((self._sos.shape[0], 2, 2))  # sections, channels, state

    def add(self, left: np.ndarray, right: np.ndarray) -> None:
        pair = np.stack([np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)])
        self.add_pair(pair)

    def add_pair(self, pair: np.ndarray) -> None:
        """The next block of the pair, float64 shaped (2, n) (rows may be views)."""
        n = pair.shape[1]
        if n == 0:
            return
        left, right = pair[0], pair[1]
        # Sums per second: einsum over each second's slice, no products stored (not
        # BLAS: on a busy machine each call costs milliseconds of thread wake-up).
        done = 0
        while done < n:
            take = min(n - done, self.sample_rate - self._filled)
            a, b = left[done : done + take], right[done : done + take]
            self._second += (_dot(a, a), _dot(b, b), _dot(a, b))
            self._filled += take
            done += take
            if self._filled == self.sample_rate:
                self._finish_second()
                self._filled = 0
        self._low_end(pair)

    def _low_end(self, pair: np.ndarray) -> None:
        """The low end at 1/DECIMATE of the rate: mean of each DECIMATE samples (a
        boxcar: its nulls fall on the frequencies that would alias below 150 Hz), then
        the low-pass; a remainder waits for the next block."""
        offset = 0
        if self._rest.shape[1]:
            offset = min(DECIMATE - self._rest.shape[1], pair.shape[1])
            self._rest = np.concatenate([self._rest, pair[:, :offset]], axis=1)
            if self._rest.shape[1] < DECIMATE:
                return
            self._reduced.append(_boxcar(self._rest))
        whole = (pair.shape[1] - offset) // DECIMATE * DECIMATE
        self._rest = pair[:, offset + whole :].copy()
        if whole:
            self._reduced.append(_boxcar(pair[:, offset : offset + whole]))
        self._pending += whole
        if self._pending >= FILTER_BATCH:
            self._filter()

    def _filter(self) -> None:
        """Low-pass what was reduced (several blocks at once: a sosfilt call has a
        fixed cost) and add its products."""
        if not self._reduced:
            return
        reduced = np.concatenate(self._reduced, axis=1)
        self._reduced, self._pending = [], 0
        low, self._zi = sosfilt(self._sos, reduced, axis=-1, zi=self._zi)
        self._low += (_dot(low[0], low[0]), _dot(low[1], low[1]), _dot(low[0], low[1]))

    def _finish_second(self) -> None:
        t = len(self._series) + 1
        self._series.append((t, correlation(*self._second)))
        self._total += self._second
        self._second = np.zeros(3)

    def sums(self) -> tuple[float, float, float]:
        """LL, RR and LR over everything added so far."""
        ll, rr, lr = self._total + self._second
        return float(ll), float(rr), float(lr)

    def result(self) -> dict[str, Any]:
        """{correlationSeries: [{t, correlation}], lowEndCorrelation}."""
        self._filter()
        series = list(self._series)
        if self._filled >= self.sample_rate // 2:
            series.append((len(series) + 1, correlation(*self._second)))
        return {
            "correlationSeries": [
                {"t": t, "correlation": None if c is None else round(c, 3) + 0.0} for t, c in series
            ],
            "lowEndCorrelation": _round(correlation(*self._low)),
        }


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def _boxcar(x: np.ndarray) -> np.ndarray:
    """Means of each DECIMATE (a power of two) consecutive samples of x (2, n), n a
    multiple of DECIMATE: pairwise sums, each step one pass over half the data."""
    width = 1
    while width < DECIMATE:
        x = x[:, 0::2] + x[:, 1::2]
        width *= 2
    return x * (1.0 / DECIMATE)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3) + 0.0
