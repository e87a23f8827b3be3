"""The waveform view against a direct computation, however the blocks fall.

Whatever the block sizes (and whether the meter reads samples or Block.extremes),
point i is the min and max of frames [i * bin, (i + 1) * bin) of the whole track,
bin = secondsPerPoint * rate, rounded to DIGITS: the bins are closed in place and
halved as the track grows, and must still be exactly those.
"""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.analysis.blockwise import Block, Context
from chalicelib.analysis.waveform import DIGITS, MAX_POINTS, WaveformAccumulator, WaveformMeter
from tests.music import music_like

RATE = 48_000


def reference(x: np.ndarray, bin_frames: int) -> list[dict[str, list[float]]]:
    """Per channel, min/max of each bin_frames frames of x (frames, channels)."""
    starts = np.arange(0, len(x), bin_frames)
    lows = np.minimum.reduceat(x, starts, axis=0)
    highs = np.maximum.reduceat(x, starts, axis=0)
    return [
        {
            "min": [round(float(v), DIGITS) + 0.0 for v in lows[:, c]],
            "max": [round(float(v), DIGITS) + 0.0 for v in highs[:, c]],
        }
        for c in range(x.shape[1])
    ]


def through_meter(x: np.ndarray, block: int) -> dict:
    meter = WaveformMeter(Context(RATE, x.shape[1], ("FC",) * x.shape[1]))
    for start in range(0, len(x), block):
        meter.add(Block(np.ascontiguousarray(x[start : start + block].T), start))
    return meter._waveform.result()


def through_samples(x: np.ndarray, block: int) -> dict:
    waveform = WaveformAccumulator(RATE, x.shape[1])
    for start in range(0, len(x), block):
        waveform.add(np.ascontiguousarray(x[start : start + block].T))
    return waveform.result()


@pytest.mark.parametrize(("seconds", "channels"), [(0.5, 1), (7.0, 2), (40.0, 3)])
@pytest.mark.parametrize("block", [777, 65_536, 1 << 22])
def test_points_are_the_bins_of_the_whole_track(seconds: float, channels: int, block: int) -> None:
    x = music_like(seconds, RATE, channels, seed=channels)
    for feed in (through_meter, through_samples):
        wave = feed(x, block)
        bin_frames = round(wave["secondsPerPoint"] * RATE)
        assert MAX_POINTS // 2 <= wave["points"] <= MAX_POINTS or seconds < 1.0
        assert wave["points"] == -(-len(x) // bin_frames)
        assert wave["channels"] == reference(x, bin_frames)
