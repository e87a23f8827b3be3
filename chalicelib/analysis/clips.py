"""Clipped regions: runs of consecutive samples at full scale, per channel.

A sample counts as clipped by the same rule as `peaks.clippedSamples` (|x| at the
format's full scale, dynamics.clip_level; on a lossy source, samples past 1.0 are
the codec's overshoot, not clipping), so the regions' lengths add up to that count.
A run that crosses a block boundary is carried over as one region. The list keeps
the first MAX_REGIONS regions in time order; `total` counts them all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chalicelib.analysis.blockwise import Block, Context, Result

MAX_REGIONS = 100


class ClipRegionAccumulator:
    """Feed channel-major (channels, frames) blocks in order with add(); result() gives
    the regions."""

    def __init__(self, sample_rate: int, channels: int, level: float, lossy: bool = False) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.level = level
        self.lossy = lossy  # past 1.0 is a codec's overshoot, not clipping (as clippedSamples)
        self.frames = 0  # frames seen before the current block
        self.total = 0
        self.regions: list[tuple[int, int, int]] = []  # (start frame, length, channel)
        self._open: list[tuple[int, int] | None] = [None] * channels  # run reaching block end

    def add(self, block: np.ndarray, peaks: np.ndarray | None = None) -> None:
        """`peaks`: the largest |sample| of each channel (or of parts of it, as
        Block.peaks): a channel whose peak is below the level is not searched."""
        n = block.shape[1]
        for c in range(self.channels):
            if peaks is not None and n and float(peaks[c].max()) < self.level:
                self._close(c)  # no hit: a run open at the last block's end ended there
                continue
            magnitude = np.abs(block[c])
            hit = magnitude >= self.level
            if self.lossy:
                hit &= magnitude <= 1.0
            if n and not hit[0]:
                self._close(c)  # the run open at the last block's end ended there
            if not hit.any():
                continue
            edges = np.diff(hit.astype(np.int8), prepend=0, append=0)
            starts = np.flatnonzero(edges == 1)
            ends = np.flatnonzero(edges == -1)  # exclusive
            for s, e in zip(starts, ends, strict=True):
                start, length = self.frames + int(s), int(e - s)
                carried = self._open[c]
                if s == 0 and carried is not None:  # continues the previous block's run
                    start, length = carried[0], carried[1] + length
                    self._open[c] = None
                if e == n:
                    self._open[c] = (start, length)
                else:
                    self._record(start, length, c)
        self.frames += n
        if len(self.regions) > 2 * MAX_REGIONS:
            # Later regions can only come after these (an open run is recorded late, but
            # a cut never drops anything earlier than MAX_REGIONS kept ones).
            self.regions = sorted(self.regions)[:MAX_REGIONS]

    def _close(self, channel: int) -> None:
        run = self._open[channel]
        if run is not None:
            self._record(run[0], run[1], channel)
        self._open[channel] = None

    def _record(self, start: int, length: int, channel: int) -> None:
        self.total += 1
        self.regions.append((start, length, channel))

    def result(self) -> dict[str, Any]:
        """{regions: [{startSeconds, lengthSamples, channel}], total}; channel is 0-based."""
        for c in range(self.channels):
            self._close(c)
        first = sorted(self.regions)[:MAX_REGIONS]
        return {
            "regions": [
                {
                    "startSeconds": round(start / self.sample_rate, 6),
                    "lengthSamples": length,
                    "channel": channel,
                }
                for start, length, channel in first
            ],
            "total": self.total,
        }


class ClipRegionMeter:
    """`peaks.clipRegions` and `peaks.clipRegionsTotal`, as a meter of measure.METERS."""

    def __init__(self, context: Context) -> None:
        self._clips = ClipRegionAccumulator(
            context.sample_rate, context.channels, context.full_scale, context.lossy
        )

    def add(self, block: Block) -> None:
        self._clips.add(block.samples, block.peaks)

    def finish(self, result: Result) -> None:
        found = self._clips.result()
        result.put("peaks.clipRegions", found["regions"], digits=None)
        result.put("peaks.clipRegionsTotal", found["total"])
