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
        self._min = np.zeros((0, channels))
        self._max = np.zeros((0, channels))
        # The unfinished bin: its min, max and how many frames it holds so far.
        self._part_min = np.full(channels, np.inf)
        self._part_max = np.full(channels, -np.inf)
        self._part_frames = 0

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
            shape = (self.channels, -1, per_bin)
            self._min = np.concatenate(
                [self._min, lows[:, start : start + whole].reshape(shape).min(axis=2).T]
            )
            self._max = np.concatenate(
                [self._max, highs[:, start : start + whole].reshape(shape).max(axis=2).T]
            )
        if n > start + whole:
            self._extend_part(lows[:, start + whole :], highs[:, start + whole :], unit)
        while len(self._min) > 2 * MAX_POINTS:
            self._halve()

    def _extend_part(self, lows: np.ndarray, highs: np.ndarray, unit: int) -> None:
        self._part_min = np.minimum(self._part_min, lows.min(axis=1))
        self._part_max = np.maximum(self._part_max, highs.max(axis=1))
        self._part_frames += lows.shape[1] * unit

    def _close_part(self) -> None:
        self._min = np.concatenate([self._min, self._part_min[np.newaxis]])
        self._max = np.concatenate([self._max, self._part_max[np.newaxis]])
        self._part_min = np.full(self.channels, np.inf)
        self._part_max = np.full(self.channels, -np.inf)
        self._part_frames = 0

    def _halve(self) -> None:
        even = len(self._min) // 2 * 2
        if even < len(self._min):  # the odd last bin becomes the start of the open one
            self._part_min = np.minimum(self._part_min, self._min[-1])
            self._part_max = np.maximum(self._part_max, self._max[-1])
            self._part_frames += self.bin_frames
        self._min = self._min[:even].reshape(-1, 2, self.channels).min(axis=1)
        self._max = self._max[:even].reshape(-1, 2, self.channels).max(axis=1)
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
