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

from chalicelib.analysis import channels
from chalicelib.analysis.blockwise import Block, Context, Result

LOW_END_HZ = 150.0
LOW_END_ORDER = 4
DECIMATE = 8  # the low-end filter runs at 1/8 of the rate (5.5 kHz at 44.1 kHz)


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
        self._filled = 0  # its frames
        self._series: list[tuple[int, float | None]] = []
        self._low = np.zeros(3)
        self._sos = butter(
            LOW_END_ORDER, LOW_END_HZ, btype="low", fs=sample_rate / DECIMATE, output="sos"
        )
        self._rest = np.zeros((2, 0))
        self._zi = np.zeros((self._sos.shape[0], 2, 2))  # sections, channels, state

    def add(self, left: np.ndarray, right: np.ndarray) -> None:
        pair = np.stack([np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)])
        self.add_pair(pair)

    def add_pair(self, pair: np.ndarray) -> None:
        """The next block of the pair, float64 shaped (2, n)."""
        n = pair.shape[1]
        if n == 0:
            return
        left, right = pair[0], pair[1]
        # Sums per second with one reduceat per product: no BLAS call per second (on
        # a busy machine each costs milliseconds of thread wake-up) and no copies.
        closes = np.arange(self.sample_rate - self._filled, n + 1, self.sample_rate)
        starts = np.concatenate([[0], closes[closes < n]]).astype(np.intp)
        sums = np.stack(
            [
                np.add.reduceat(left * left, starts),
                np.add.reduceat(right * right, starts),
                np.add.reduceat(left * right, starts),
            ]
        )
        for i in range(len(starts)):
            self._second += sums[:, i]
            if i < len(starts) - 1 or (len(closes) and closes[-1] == n):
                self._finish_second()
        self._filled = n - int(closes[-1]) if len(closes) else self._filled + n
        # The low end at 1/DECIMATE of the rate: mean of each DECIMATE samples (a
        # boxcar: its nulls fall on the frequencies that would alias below 150 Hz),
        # then the low-pass; a remainder waits for the next block.
        if self._rest.shape[1]:
            pair = np.concatenate([self._rest, pair], axis=1)
        whole = pair.shape[1] // DECIMATE * DECIMATE
        self._rest = pair[:, whole:].copy()
        if whole == 0:
            return
        reduced = pair[:, :whole].reshape(2, -1, DECIMATE).mean(axis=2)
        low, self._zi = sosfilt(self._sos, reduced, axis=-1, zi=self._zi)
        self._low += (
            np.einsum("i,i->", low[0], low[0]),
            np.einsum("i,i->", low[1], low[1]),
            np.einsum("i,i->", low[0], low[1]),
        )

    def _finish_second(self) -> None:
        t = len(self._series) + 1
        self._series.append((t, correlation(*self._second)))
        self._second = np.zeros(3)

    def result(self) -> dict[str, Any]:
        """{correlationSeries: [{t, correlation}], lowEndCorrelation}."""
        series = list(self._series)
        if self._filled >= self.sample_rate // 2:
            series.append((len(series) + 1, correlation(*self._second)))
        return {
            "correlationSeries": [
                {"t": t, "correlation": None if c is None else round(c, 3) + 0.0} for t, c in series
            ],
            "lowEndCorrelation": _round(correlation(*self._low)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3) + 0.0


class CorrelationMeter:
    """`stereo.correlationSeries` and `stereo.lowEndCorrelation` of the front pair (FL/FR,
    else the first two channels), as a meter of measure.METERS; nothing for mono (the
    stereo meter puts `stereo: null`)."""

    def __init__(self, context: Context) -> None:
        self._pair = channels.front_pair(context.positions)
        self._series = CorrelationAccumulator(context.sample_rate)

    def add(self, block: Block) -> None:
        if self._pair is not None:
            self._series.add_pair(block.wide[list(self._pair)])

    def finish(self, result: Result) -> None:
        if self._pair is None:
            return
        found = self._series.result()
        result.put("stereo.correlationSeries", found["correlationSeries"], digits=None)
        result.put(
            "stereo.lowEndCorrelation",
            found["lowEndCorrelation"],
            digits=3,
            reason="a channel of the front pair has nothing below 150 Hz",
        )
