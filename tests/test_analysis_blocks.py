"""Block.of_frames (the C block-prep kernel) against the numpy path it replaces.

Decoded frames (n, channels) become channel-major samples and each SUB_BLOCK
frames' minimum and maximum in one pass: the same arrays, bit for bit, as
transposing in numpy and reducing there, for any channel count, any length (a
partial last sub-block, a single frame), NaN (the sub-block's extremes NaN),
infinities (ordinary values), and the levels a float file can hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.analysis.blockwise import SUB_BLOCK, Block, blocks_of


def numpy_block(frames: np.ndarray, start: int) -> Block:
    return Block(np.ascontiguousarray(frames.T, dtype=np.float32), start)


def assert_same(got: Block, want: Block) -> None:
    assert got.start == want.start and got.frames == want.frames
    assert got.samples.flags.c_contiguous and got.samples.dtype == np.float32
    np.testing.assert_array_equal(got.samples, want.samples)
    for mine, theirs in zip(got.extremes, want.extremes, strict=True):
        assert mine.dtype == np.float32
        np.testing.assert_array_equal(mine, theirs)  # NaN where NaN
    np.testing.assert_array_equal(got.peaks, want.peaks)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
@pytest.mark.parametrize("n", [1, SUB_BLOCK - 1, SUB_BLOCK, SUB_BLOCK + 1, 5000, 65_536])
def test_the_kernel_gives_the_numpy_block(channels: int, n: int) -> None:
    rng = np.random.default_rng(n * 10 + channels)
    frames = (rng.standard_normal((n, channels)) * 0.3).astype(np.float32)
    assert_same(Block.of_frames(frames, 17), numpy_block(frames, 17))


@pytest.mark.parametrize("level", [1e19, 3e38, 1e-30, 1e-44])
def test_far_from_full_scale(level: float) -> None:
    rng = np.random.default_rng(1)
    frames = (rng.uniform(-1.0, 1.0, (1000, 2)) * level).astype(np.float32)
    assert_same(Block.of_frames(frames, 0), numpy_block(frames, 0))


def test_nan_and_infinity_in_sub_blocks() -> None:
    rng = np.random.default_rng(2)
    frames = rng.standard_normal((5 * SUB_BLOCK + 9, 3)).astype(np.float32)
    frames[3, 0] = np.nan  # first sub-block of channel 0
    frames[SUB_BLOCK + 5, 1] = np.inf
    frames[2 * SUB_BLOCK + 7, 1] = -np.inf
    frames[3 * SUB_BLOCK, 2] = np.nan  # a sub-block's first sample
    frames[-1, 2] = np.nan  # the partial last sub-block
    frames[4 * SUB_BLOCK + 1, 0] = np.nan  # NaN and infinity in one sub-block
    frames[4 * SUB_BLOCK + 2, 0] = np.inf
    got = Block.of_frames(frames, 0)
    assert_same(got, numpy_block(frames, 0))
    lows, highs = got.extremes
    assert np.isnan(lows[0, 0]) and np.isnan(highs[0, 0]) and np.isnan(highs[0, 4])
    assert highs[1, 1] == np.inf and lows[1, 2] == -np.inf
    assert np.isnan(lows[2, 3]) and np.isnan(highs[2, -1])
    assert np.isfinite(lows[0, 1:4]).all()  # NaN stays in its own sub-block


def test_other_dtypes_and_layouts_are_converted() -> None:
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((3000, 2))  # float64
    assert_same(Block.of_frames(wide, 5), numpy_block(wide.astype(np.float32), 5))
    strided = np.asfortranarray(wide.astype(np.float32))
    assert_same(Block.of_frames(strided, 5), numpy_block(strided, 5))


def test_blocks_of_cuts_an_array_into_kernel_blocks() -> None:
    x = np.random.default_rng(4).standard_normal((10_000, 2)).astype(np.float32)
    got = list(blocks_of(x, 4096))
    assert [b.start for b in got] == [0, 4096, 8192]
    for block in got:
        assert_same(block, numpy_block(x[block.start : block.start + 4096], block.start))
