"""The stereo kernel (kernels/stereo.c) against a plain numpy/scipy oracle.

The oracle takes the whole pair at once in float64: the sums of each whole second,
of everything, and of the low end (mean of each 8 samples, scipy's sosfilt with the
same Butterworth sections). The accumulator gets the same pair block by block in
float32 and must agree to float64 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from chalicelib.analysis import stereo_series
from chalicelib.analysis.blockwise import Context, Result, blocks_of
from chalicelib.analysis.stereo import StereoMeter
from chalicelib.analysis.stereo_series import CorrelationAccumulator
from tests.music import music_like


def oracle(x: np.ndarray, rate: int) -> dict:
    """Sums per whole second, over all, and of the low end of x (frames, 2)."""
    wide = np.asarray(x, dtype=np.float64)
    left, right = wide[:, 0], wide[:, 1]
    seconds = len(x) // rate
    per = lambda a, b: (a[: seconds * rate] * b[: seconds * rate]).reshape(-1, rate).sum(1)  # noqa: E731
    rows = np.stack([per(left, left), per(right, right), per(left, right)], axis=1)
    total = (float(left @ left), float(right @ right), float(left @ right))
    groups = len(x) // stereo_series.DECIMATE * stereo_series.DECIMATE
    reduced = wide[:groups].reshape(-1, stereo_series.DECIMATE, 2).mean(axis=1)
    sos = butter(4, 150.0, btype="low", fs=rate / stereo_series.DECIMATE, output="sos")
    low = sosfilt(sos, reduced, axis=0)
    low_sums = (low[:, 0] @ low[:, 0], low[:, 1] @ low[:, 1], low[:, 0] @ low[:, 1])
    return {"seconds": rows, "total": total, "low": low_sums}


def fed(x: np.ndarray, rate: int, size: int) -> CorrelationAccumulator:
    acc = CorrelationAccumulator(rate)
    for block in blocks_of(x, size):
        acc.add(block.samples[0], block.samples[1])
    return acc


def check(x: np.ndarray, rate: int, size: int) -> None:
    want = oracle(x, rate)
    acc = fed(x, rate, size)
    assert acc.sums() == pytest.approx(want["total"], rel=1e-9, abs=0.0)
    assert tuple(acc._low) == pytest.approx(want["low"], rel=1e-9, abs=0.0)
    got = [c for _, c in acc._series]
    expected = [stereo_series.correlation(*row) for row in want["seconds"]]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g is None and e is None) or g == pytest.approx(e, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("rate", [44100, 48000, 96000, 192000])
def test_music_and_a_limited_master(rate: int) -> None:
    music = music_like(3.5, rate, seed=3)
    for x in (music, (np.tanh(music * 6.0) * 0.89).astype(np.float32)):
        for size in (65536, 4099):
            check(x, rate, size)


@pytest.mark.parametrize("size", [1, 3, 7, 8, 9, 1000])
def test_any_block_size_carries_the_state(size: int) -> None:
    """Seconds, groups of 8 and the filter memory all straddle the blocks."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2 * 4000 + 5, 2)) * 0.2).astype(np.float32)
    x[:, 1] += 0.5 * x[:, 0]
    check(x, 4000, size)


@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_levels_far_from_full_scale(scale: float) -> None:
    x = (music_like(2.2, 48000, seed=6) * scale).astype(np.float32)
    check(x, 48000, 4099)
    assert stereo_series.correlation(*fed(x, 48000, 4099).sums()) == pytest.approx(
        stereo_series.correlation(*oracle(x, 48000)["total"]), rel=1e-9
    )


def test_silence_and_a_silent_channel_give_no_correlation() -> None:
    x = np.zeros((48000 * 2, 2), dtype=np.float32)
    check(x, 48000, 65536)
    assert fed(x, 48000, 65536).result()["lowEndCorrelation"] is None
    x[:, 0] = music_like(2.0, 48000, channels=1, seed=1)[:, 0]
    check(x, 48000, 65536)
    found = fed(x, 48000, 65536).result()
    assert [p["correlation"] for p in found["correlationSeries"]] == [None, None]
    assert found["lowEndCorrelation"] is None


def test_the_meter_reads_the_front_pair_of_a_surround_file() -> None:
    """5.1 (FL FR FC LFE BL BR): the image is of rows 0 and 1; a layout whose front
    pair is not first reads those rows."""
    rate = 48000
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((rate * 2, 3)) * 0.1).astype(np.float32)
    x[:, 2] = -x[:, 0]
    context = Context(rate, 3, ("FC", "FR", "FL"))  # FL is row 2: FL = -FC
    meter = StereoMeter(context)
    for block in blocks_of(x, 65536):
        meter.add(block)
    result = Result(context, len(x))
    meter.finish(result)
    want = oracle(x[:, [2, 1]], rate)["total"]
    assert result.value("stereo.correlation") == pytest.approx(
        want[2] / math.sqrt(want[0] * want[1]), rel=1e-9
    )


def test_silence_after_music_leaves_no_denormal_filter_state() -> None:
    """The low-pass state is set to zero once it decays below 1e-150 (denormals,
    further down, run about 100 times slower on x86); what it read stays."""
    rate = 48000
    x = np.zeros((rate * 3, 2), dtype=np.float32)
    x[:rate] = music_like(1.0, rate, seed=12)
    acc = fed(x, rate, 65536)
    assert not acc._zi.any()
    assert tuple(acc._low) == pytest.approx(oracle(x, rate)["low"], rel=1e-9)
