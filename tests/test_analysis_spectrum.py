"""SpectrumMeter against a plain float64 reference, however the blocks fall.

The reference lays Hann frames end to end over the whole array at once, adds one
frame of the last `size` samples when a partial frame is left (one zero-padded
short frame when the audio is shorter than a frame), and sums |rfft|^2 in float64.
The meter must give the same power per bin, to float32 rounding, for any block
sizes (shorter than a frame, odd, a frame and a bit), any channel count, and any
level a float file can hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.analysis import spectrum
from chalicelib.analysis.blockwise import Block, Context, Result
from tests.music import music_like

RATE = 48_000
SIZE = spectrum.frame_length(RATE)


def reference_power(x: np.ndarray, rate: int) -> np.ndarray:
    """Mean-square power per rfft bin of x (frames, channels), channels averaged."""
    size = spectrum.frame_length(rate)
    frames = len(x)
    if frames < size:
        length, starts = frames, [0]
    else:
        length = size
        starts = list(range(0, frames - size + 1, size))
        if frames % size:
            starts.append(frames - size)
    window = np.hanning(length + 2)[1:-1] if length >= 16 else np.ones(length)
    power = np.zeros(size // 2 + 1)
    for start in starts:
        part = x[start : start + length].astype(np.float64).T * window
        power += (np.abs(np.fft.rfft(part, n=size, axis=-1)) ** 2).sum(axis=0)
    power[1:-1] *= 2.0
    return power / (size * np.sum(window**2) * len(starts) * x.shape[1])


def meter_power(x: np.ndarray, rate: int, block: int) -> np.ndarray:
    channels = x.shape[1]
    meter = spectrum.SpectrumMeter(Context(rate, channels, ("FC",) * channels))
    for start in range(0, len(x), block):
        meter.add(Block(np.ascontiguousarray(x[start : start + block].T), start))
    return meter.power()[1]


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal to float32 rounding: relative in every bin above a millionth of the loudest,
    absolute (against the loudest) below."""
    top = float(want.max())
    assert top > 0.0 and np.isfinite(got).all()
    loud = want > top * 1e-6
    np.testing.assert_allclose(got[loud], want[loud], rtol=2e-4)
    np.testing.assert_allclose(got[~loud], want[~loud], rtol=0, atol=top * 1e-9)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
@pytest.mark.parametrize("block", [1000, SIZE + 100, 65_536])
def test_blocks_of_any_size_give_the_reference_spectrum(channels: int, block: int) -> None:
    x = music_like(4.3, RATE, channels, seed=channels)
    assert_close(meter_power(x, RATE, block), reference_power(x, RATE))


@pytest.mark.parametrize("frames", [10, 1000, SIZE, SIZE + 1, 3 * SIZE - 1])
def test_short_audio_and_a_partial_last_frame(frames: int) -> None:
    x = music_like(1.0, RATE, 2, seed=9)[:frames]
    for block in (7, 4096, frames):
        assert_close(meter_power(x, RATE, block), reference_power(x, RATE))


@pytest.mark.parametrize("level", [1e19, 1e30, 1e-30, 1e-40])
def test_far_from_full_scale_levels_are_measured_exactly_scaled(level: float) -> None:
    """A float file at 1e19 (squares past float32) or 1e-30 (squares below it), and a
    level whose samples are float32 subnormals: the power scales by level^2."""
    x = music_like(3.0, RATE, 2, seed=3)
    scaled = (x.astype(np.float64) * level).astype(np.float32)
    assert np.all(np.isfinite(scaled)) and np.count_nonzero(scaled) > 0
    unit = meter_power(scaled.astype(np.float64) / level, RATE, 65_536)
    got = meter_power(scaled, RATE, 65_536) / level**2
    # 1e-40 holds only the top bits of each sample: compare it to its own reference.
    want = reference_power(scaled, RATE) / level**2 if level < 1e-38 else unit
    assert_close(got, want)


def test_a_huge_sample_beside_tiny_ones_stays_finite() -> None:
    """The block's peak sets the scale of all its frames: one 1e30 sample among 1e-20
    ones neither overflows nor loses the huge frame."""
    x = (music_like(3.0, RATE, 2, seed=4) * 1e-20).astype(np.float32)
    x[70_000, 1] = 1e30
    got = meter_power(x, RATE, 65_536)
    assert_close(got, reference_power(x, RATE))


def test_silence_and_the_finished_fields() -> None:
    context = Context(RATE, 2, ("FL", "FR"))
    meter = spectrum.SpectrumMeter(context)
    meter.add(Block(np.zeros((2, 3 * SIZE + 5), np.float32), 0))
    result = Result(context, 3 * SIZE + 5)
    meter.finish(result)
    assert result.value("spectrum.centroidHz") is None
    assert "silence" in result.reasons["spectrum"]
    assert not np.any(result.kept("spectrum.power"))
