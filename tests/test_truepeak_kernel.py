"""The true-peak kernel (kernels/truepeak.c) against a plain numpy oracle.

The oracle oversamples every instant of the whole signal at once in float64
(np.correlate of each phase of the interpolator); PeakMeter feeds the same signal
block by block, prunes sub-blocks and sums in float32, and must agree to float32
rounding whatever the rate, the block size and the level.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chalicelib.analysis import truepeak
from chalicelib.analysis.blockwise import Context, Result, blocks_of
from tests.music import music_like


def oracle(x: np.ndarray, rate: int) -> float:
    """Largest |sample| and |interpolated value| of x (frames, channels), every
    instant whose 12 samples are all in x."""
    top = float(np.abs(x).max()) if x.size else 0.0
    factor = truepeak.oversampling_factor(rate)
    if factor == 1:
        return top
    phases = truepeak.interpolator(factor).astype(np.float64)
    for channel in np.asarray(x, dtype=np.float64).T:
        if len(channel) < truepeak.TAPS_PER_PHASE:
            continue
        for row in phases:
            top = max(top, float(np.abs(np.correlate(channel, row, mode="valid")).max()))
    return top


def metered(x: np.ndarray, rate: int, size: int, lossy: bool = False) -> truepeak.PeakMeter:
    meter = truepeak.PeakMeter(Context(rate, x.shape[1], ("FL", "FR")[: x.shape[1]], lossy))
    for block in blocks_of(x, size):
        meter.add(block)
    return meter


def limited(seconds: float, rate: int, seed: int = 1) -> np.ndarray:
    """A loud master: every sub-block near the peak, none can be skipped."""
    return (np.tanh(music_like(seconds, rate, seed=seed) * 6.0) * 0.89).astype(np.float32)


@pytest.mark.parametrize("rate", [44100, 48000, 96000, 192000])
@pytest.mark.parametrize("kind", ["music", "limited", "noise"])
def test_block_by_block_equals_oversampling_everything(rate: int, kind: str) -> None:
    if kind == "music":
        x = music_like(4.0, rate, seed=2)
    elif kind == "limited":
        x = limited(4.0, rate)
    else:
        x = (np.random.default_rng(3).standard_normal((rate * 2, 2)) * 0.3).astype(np.float32)
    expected = oracle(x, rate)
    for size in (65536, 4099):
        assert metered(x, rate, size).true_peak == pytest.approx(expected, rel=2e-6)


@pytest.mark.parametrize("size", [1, 2, 7, 11, 12, 13, 127, 128, 129, 1000])
def test_any_block_size_carries_the_history(size: int) -> None:
    """Blocks shorter than the interpolator, and windows across several blocks."""
    for x in (music_like(0.3, 48000, seed=7), limited(0.3, 48000, seed=8)):
        assert metered(x, 48000, size).true_peak == pytest.approx(oracle(x, 48000), rel=2e-6)


def test_the_peak_between_two_blocks_is_found() -> None:
    """An inter-sample peak straddling a block boundary, in a quiet track: only the
    windows across the boundary can see it."""
    rate = 48000
    n = np.arange(rate)
    x = np.zeros((rate, 2), dtype=np.float32)
    burst = slice(65536 // 2 - 40, 65536 // 2 + 40)  # blocks of 32768 below
    x[burst, 1] = 0.5 * np.cos(2 * np.pi * 0.25 * (n[burst] - 65536 // 2 + 0.5))
    for size in (32768, 32768 - 3, 32768 + 5):
        meter = metered(x, rate, size)
        assert meter.true_peak == pytest.approx(oracle(x, rate), rel=2e-6)
        assert meter.true_peak > meter.sample_peak * 1.2


@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_levels_far_from_full_scale(scale: float) -> None:
    x = (music_like(1.0, 44100, seed=4) * scale).astype(np.float32)
    assert metered(x, 44100, 4099).true_peak == pytest.approx(oracle(x, 44100), rel=2e-6)


def test_silence_and_one_silent_channel() -> None:
    x = np.zeros((10000, 2), dtype=np.float32)
    assert metered(x, 48000, 999).true_peak == 0.0
    x[:, 1] = music_like(10000 / 48000, 48000, channels=1, seed=9)[:, 0]
    assert metered(x, 48000, 999).true_peak == pytest.approx(oracle(x, 48000), rel=2e-6)


@pytest.mark.parametrize("frames", [1, 5, 11, 12, 23])
def test_a_few_samples(frames: int) -> None:
    x = limited(frames / 48000 + 1e-9, 48000)[:frames]
    for size in (1, 3, frames):
        meter = metered(x, 48000, size)
        assert meter.true_peak == pytest.approx(oracle(x, 48000), rel=2e-6)
        assert meter.sample_peak == float(np.abs(x).max())


def test_a_cosine_starting_on_its_crest_reads_its_level() -> None:
    """Issue 8, case 5: a 10 kHz cosine at -1 dBFS from its crest reads -1.00 dBTP."""
    rate = 48000
    n = np.arange(rate)
    tone = (10 ** (-1 / 20) * np.cos(2 * np.pi * 10000 / rate * n)).astype(np.float32)
    meter = metered(np.stack([tone, tone], axis=1), rate, 65536)
    assert 20 * math.log10(meter.true_peak) == pytest.approx(-1.0, abs=0.01)


def test_clipped_and_overshoot_counts() -> None:
    x = limited(1.0, 48000) * np.float32(1.2)
    meter = metered(x, 48000, 4099)
    clipped = int(np.count_nonzero(np.abs(x) >= 1.0 - 2.0**-15))
    assert clipped > 0 and meter._clipped == clipped
    lossy = metered(x, 48000, 4099, lossy=True)
    over = int(np.count_nonzero(np.abs(x) > 1.0))
    assert lossy._overshoot == over and lossy._clipped == clipped - over
    result = Result(Context(48000, 2, ("FL", "FR")), len(x))
    meter.finish(result)
    assert result.document["peaks"]["samplePeakDbfs"] == round(
        20 * math.log10(float(np.abs(x).max())), 2
    )


def test_the_unpruned_kernel_reads_every_instant() -> None:
    """_interpolated_max (what the other tests compare with) against the oracle."""
    channel = limited(0.5, 44100)[:, 0]
    phases = truepeak.interpolator(4)
    value = max(truepeak._interpolated_max(channel, phases), float(np.abs(channel).max()))
    assert value == pytest.approx(oracle(channel[:, None], 44100), rel=2e-6)
    assert truepeak._interpolated_max(channel[:11], phases) == 0.0
    for wrong in (phases[:, :6], phases[:, :, None], np.zeros((4, 12), np.float32)):
        with pytest.raises(ValueError, match="phases"):  # never read past the taps
            truepeak._interpolated_max(channel, wrong)


@pytest.mark.parametrize("factor", [2, 4])
def test_the_avx_copy_gives_the_baseline_to_the_bit(factor: int) -> None:
    """Where the CPU has AVX the kernel runs a copy compiled for it (no fused
    multiply-add): the same operations, so the same float32 values. Elsewhere
    both calls run the baseline code."""
    phases = truepeak.interpolator(factor)
    for x in (limited(0.7, 48000)[:, 0], music_like(0.7, 44100, seed=3)[:, 1] * 1e-30):
        for n in (12, 100, 139, len(x)):
            wide = truepeak._interpolated_max(x[:n], phases, wide=True)
            assert wide == truepeak._interpolated_max(x[:n], phases, wide=False) and wide > 0


@pytest.mark.parametrize("rate", [48000, 96000])
@pytest.mark.parametrize("huge", [[3.0e38], [-3.0e38, 3.0e38], [1.0e38] * 40, [3.4e38] * 3])
@pytest.mark.parametrize("at", [5, 20000, 65530])
def test_samples_near_the_float32_limit_have_a_finite_true_peak(
    rate: int, huge: list[float], at: int
) -> None:
    """A float file may hold samples up to 3.4e38, where float32 sums of taps overflow:
    the true peak is still the oracle's (a number, never inf: inf reads as n/a)."""
    x = (np.random.default_rng(4).standard_normal((70000, 2)) * 0.01).astype(np.float32)
    x[at : at + len(huge), 0] = huge
    expected = oracle(x, rate)
    for size in (65536, 4099):
        assert metered(x, rate, size).true_peak == pytest.approx(expected, rel=2e-6)
