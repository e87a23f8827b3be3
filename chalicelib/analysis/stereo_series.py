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
        self._sos = butter(LOW_END_ORDER, LOW_END_HZ, btype="low", fs=sample_rate, output="sos")
        self._zi = np.zeros((2, self._sos.shape[0], 2))

    def add(self, left: np.ndarray, right: np.ndarray) -> None:
        left = np.asarray(left, dtype=np.float64)
        right = np.asarray(right, dtype=np.float64)
        n = len(left)
        if n == 0:
            return
        # Products per sample, summed per second from their running sums: no BLAS call
        # per second (on a busy machine each costs milliseconds of thread wake-up).
        products = np.stack([left * left, right * right, left * right])
        running = np.concatenate([np.zeros((3, 1)), np.cumsum(products, axis=1)], axis=1)
        closes = np.arange(self.sample_rate - self._filled, n + 1, self.sample_rate)
        edges = np.concatenate([[0], closes, [n]])
        for i in range(len(edges) - 1):
            self._second += running[:, edges[i + 1]] - running[:, edges[i]]
            if i < len(closes):  # this piece ends a second
                self._finish_second()
        self._filled = n - int(closes[-1]) if len(closes) else self._filled + n
        low_left, self._zi[0] = sosfilt(self._sos, left, zi=self._zi[0])
        low_right, self._zi[1] = sosfilt(self._sos, right, zi=self._zi[1])
        self._low += (
            np.sum(low_left * low_left),
            np.sum(low_right * low_right),
            np.sum(low_left * low_right),
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
            self._series.add(block.wide[self._pair[0]], block.wide[self._pair[1]])

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
