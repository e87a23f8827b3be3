"""The waveform view: min/max sample per channel over ~2,000 equal slices of the track.

Block-wise without knowing the length in advance: samples are reduced into bins of
`bin_frames`; whenever more than 2 x MAX_POINTS bins exist, neighbouring bins are
merged in pairs (the bin doubles), so memory stays at 2 x MAX_POINTS bins per
channel. The result holds MAX_POINTS / 2 to MAX_POINTS points, each bin starting at
`index * secondsPerPoint`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chalicelib.analysis.blockwise import SUB_BLOCK, Block, Context, Result

MAX_POINTS = 2000
FIRST_BIN_FRAMES = 64
DIGITS = 4


class WaveformAccumulator:
    """Feed channel-major (channels, frames) blocks in order with add(); result() gives
    the block."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.bin_frames = FIRST_BIN_FRAMES
        # The closed bins' minima and maxima, rows [0, _bins) of storage kept between
        # blocks (a block's bins are written in place, not concatenated).
        self._lows = np.zeros((2 * MAX_POINTS + 1, channels))
        self._highs = np.zeros_like(self._lows)
        self._bins = 0
        # The unfinished bin: its min, max and how many frames it holds so far.
        self._part_min = np.full(channels, np.inf)
        self._part_max = np.full(channels, -np.inf)
        self._part_frames = 0

    @property
    def _min(self) -> np.ndarray:
        return self._lows[: self._bins]

    @property
    def _max(self) -> np.ndarray:
        return self._highs[: self._bins]

    def add(self, block: np.ndarray) -> None:
        self._add(block, block, 1)

    def add_extremes(self, lows: np.ndarray, highs: np.ndarray, unit: int) -> bool:
        """The next frames given as the minima and maxima (channels, k) of each `unit`
        frames (Block.extremes): the same bins, without reading every sample. Only
        while bins and the open bin are whole units; False (nothing added) otherwise."""
        if self.bin_frames % unit or self._part_frames % unit:
            return False
        self._add(lows, highs, unit)
        return True

    def _add(self, lows: np.ndarray, highs: np.ndarray, unit: int) -> None:
        """Columns of (lows, highs) each cover `unit` frames; bins are whole units."""
        n = lows.shape[1]
        per_bin = self.bin_frames // unit
        start = min(n, (self.bin_frames - self._part_frames) // unit)
        if start:
            self._extend_part(lows[:, :start], highs[:, :start], unit)
        if self._part_frames == self.bin_frames:
            self._close_part()
        whole = (n - start) // per_bin * per_bin
        if whole:
            count = whole // per_bin
            rows = self._grow(count)
            shape = (self.channels, count, per_bin)
            lows[:, start : start + whole].reshape(shape).min(axis=2, out=self._lows[rows].T)
            highs[:, start : start + whole].reshape(shape).max(axis=2, out=self._highs[rows].T)
        if n > start + whole:
            self._extend_part(lows[:, start + whole :], highs[:, start + whole :], unit)
        while self._bins > 2 * MAX_POINTS:
            self._halve()

    def _grow(self, count: int) -> slice:
        """Rows for `count` more closed bins (the storage doubles when full)."""
        end = self._bins + count
        if end > len(self._lows):
            size = max(end, 2 * len(self._lows))
            for name in ("_lows", "_highs"):
                grown = np.zeros((size, self.channels))
                grown[: self._bins] = getattr(self, name)[: self._bins]
                setattr(self, name, grown)
        rows = slice(self._bins, end)
        self._bins = end
        return rows

    def _extend_part(self, lows: np.ndarray, highs: np.ndarray, unit: int) -> None:
        np.minimum(self._part_min, lows.min(axis=1), out=self._part_min)
        np.maximum(self._part_max, highs.max(axis=1), out=self._part_max)
        self._part_frames += lows.shape[1] * unit

    def _close_part(self) -> None:
        row = self._grow(1)
        self._lows[row] = self._part_min
        self._highs[row] = self._part_max
        self._part_min.fill(np.inf)
        self._part_max.fill(-np.inf)
        self._part_frames = 0

    def _halve(self) -> None:
        even = self._bins // 2 * 2
        if even < self._bins:  # the odd last bin becomes the start of the open one
            np.minimum(self._part_min, self._lows[even], out=self._part_min)
            np.maximum(self._part_max, self._highs[even], out=self._part_max)
            self._part_frames += self.bin_frames
        half = even // 2
        self._lows[:half] = self._lows[:even].reshape(-1, 2, self.channels).min(axis=1)
        self._highs[:half] = self._highs[:even].reshape(-1, 2, self.channels).max(axis=1)
        self._bins = half
        self.bin_frames *= 2

    def result(self) -> dict[str, Any]:
        """{secondsPerPoint, points, channels: [{min: [...], max: [...]}]} in sample
        values (full scale 1.0); the last, partial bin is included."""
        while len(self._min) + (self._part_frames > 0) > MAX_POINTS:
            self._halve()
        lows, highs = self._min, self._max
        if self._part_frames:
            lows = np.concatenate([lows, self._part_min[np.newaxis]])
            highs = np.concatenate([highs, self._part_max[np.newaxis]])
        return {
            "secondsPerPoint": round(self.bin_frames / self.sample_rate, 6),
            "points": len(lows),
            "channels": [
                {
                    "min": [round(float(v), DIGITS) + 0.0 for v in lows[:, c]],
                    "max": [round(float(v), DIGITS) + 0.0 for v in highs[:, c]],
                }
                for c in range(self.channels)
            ],
        }


class WaveformMeter:
    """The `waveform` block, as a meter of measure.METERS."""

    def __init__(self, context: Context) -> None:
        self._waveform = WaveformAccumulator(context.sample_rate, context.channels)

    def add(self, block: Block) -> None:
        lows, highs = block.extremes
        if block.frames % SUB_BLOCK or not self._waveform.add_extremes(lows, highs, SUB_BLOCK):
            self._waveform.add(block.samples)

    def finish(self, result: Result) -> None:
        result.put("waveform", self._waveform.result(), digits=None)
