"""The C kernels (chalicelib/analysis/native.py, kernels/*.c): their build and loading,
and the K-weighting and sum-of-squares kernels against scipy and numpy as oracles."""

from __future__ import annotations

import ctypes
import itertools
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import sosfilt

from chalicelib.analysis import channels, dynamics, native
from chalicelib.analysis.blockwise import Block, Context
from chalicelib.analysis.loudness import (
    KWeighting,
    LoudnessMeter,
    k_weighting_sos,
    sub_block_bounds,
)
from tests.music import music_like

SURROUND = ("FL", "FR", "FC", "LFE", "BL", "BR")


# --- build and load ---------------------------------------------------------------


def test_the_library_is_built_and_carries_the_digest_of_the_sources() -> None:
    lib = native.library()  # fails with "make venv" in the message when it is missing
    path = native.KERNELS / native.LIBRARY
    assert native.library_name() == native.LIBRARY
    assert path.is_file(), f"{path} is missing: run `make venv`"
    assert native.digest().encode() in path.read_bytes()
    digest = lib["soundcheck_sources"]
    digest.restype = ctypes.c_char_p
    assert digest().decode() == native.digest()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of kernels/ that native.py takes for its own, and no layer on sys.path."""
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for source in native.sources():
        shutil.copy(source, kernels)
    monkeypatch.setattr(native, "KERNELS", kernels)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    return kernels


def test_build_compiles_every_source_into_one_library(sandbox: Path, tmp_path: Path) -> None:
    out = native.build(tmp_path / "out", compiler=("cc",), machine="testmachine")
    assert out == tmp_path / "out" / "_soundcheck_dsp.testmachine.so"
    lib = ctypes.CDLL(str(out))
    for name in ("soundcheck_kweighting", "soundcheck_sum_squares", "soundcheck_sources"):
        assert lib[name]
    assert not list((tmp_path / "out").glob(".*.tmp")), "the partial file is left behind"


def test_a_failing_compiler_raises_with_its_output(sandbox: Path, tmp_path: Path) -> None:
    (sandbox / "broken.c").write_text("int broken(void) { return nope; }\n")
    with pytest.raises(native.BuildError, match="nope"):
        native.build(tmp_path / "out")
    with pytest.raises(native.BuildError, match="cannot run the C compiler"):
        native.build(tmp_path / "out", compiler=("/nonexistent/cc",))
    assert native.main(["build", "--out", str(tmp_path / "out")]) == 1


def test_the_command_line_builds_with_the_given_compiler(sandbox: Path, tmp_path: Path) -> None:
    assert native.main(["build", "--out", str(tmp_path / "cli"), "--cc", "cc -O1"]) == 0
    assert (tmp_path / "cli" / native.LIBRARY).is_file()


def test_a_missing_library_says_how_to_build_it(sandbox: Path) -> None:
    with pytest.raises(RuntimeError, match="make venv"):
        native._find()


def test_a_development_build_from_older_sources_is_rebuilt(sandbox: Path) -> None:
    native.build(sandbox)
    old = (sandbox / native.LIBRARY).read_bytes()
    with (sandbox / "levels.c").open("a") as source:
        source.write("\n/* changed after the build */\n")
    lib = native._find()
    new = (sandbox / native.LIBRARY).read_bytes()
    assert new != old and native.digest().encode() in new
    digest = lib["soundcheck_sources"]
    digest.restype = ctypes.c_char_p
    assert digest().decode() == native.digest()


def test_a_stale_development_build_that_cannot_be_rebuilt_is_refused(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native.build(sandbox)
    with (sandbox / "levels.c").open("a") as source:
        source.write("\n/* changed after the build */\n")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(RuntimeError, match="rebuilding it failed"):
        native._find()


def test_a_layer_library_from_other_sources_is_refused(sandbox: Path, tmp_path: Path) -> None:
    layer = tmp_path / "site" / native.LAYER_FOLDER
    native.build(layer)
    assert native._find()  # built from these sources: used
    with (sandbox / "levels.c").open("a") as source:
        source.write("\n/* changed after the layer was built */\n")
    with pytest.raises(RuntimeError, match="other sources"):
        native._find()


def test_the_layer_library_is_used_when_the_development_build_is_stale_and_cannot_be_rebuilt(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native.build(sandbox)
    with (sandbox / "levels.c").open("a") as source:
        source.write("\n/* changed */\n")
    native.build(tmp_path / "site" / native.LAYER_FOLDER)  # from the new sources
    monkeypatch.setenv("CC", "/nonexistent/cc")  # as in Lambda: no compiler
    assert native._find()


# --- K-weighting against scipy --------------------------------------------------


def oracle_energies(x: np.ndarray, rate: int, gains: list[float]) -> np.ndarray:
    """Sub-block energies from scipy's sosfilt over the whole signal (frames, channels)."""
    y = sosfilt(k_weighting_sos(rate), x.astype(np.float64).T, axis=-1)
    power = np.einsum("c,cn->n", np.array(gains), y * y)
    count = int((sub_block_bounds(len(x) * 10 // rate + 1, rate)[1:] <= len(x)).sum())
    bounds = sub_block_bounds(count, rate)
    return np.array([power[a:b].sum() for a, b in itertools.pairwise(bounds)])


def meter_energies(x: np.ndarray, rate: int, positions: tuple[str, ...], size: int) -> np.ndarray:
    meter = LoudnessMeter(Context(rate, x.shape[1], positions))
    for start in range(0, len(x), size):
        meter.add(Block(np.ascontiguousarray(x[start : start + size].T), start))
    return meter.energies()[0]


def assert_energies_equal(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("rate", [8000, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("size", [65536, 4801, 1000])
def test_k_weighted_energies_equal_scipy_music(rate: int, size: int) -> None:
    x = music_like(2.5, rate, seed=rate % 7)
    ours = meter_energies(x, rate, ("FL", "FR"), size)
    assert len(ours) == 25
    assert_energies_equal(ours, oracle_energies(x, rate, [1.0, 1.0]))


def test_one_sample_blocks_carry_the_state() -> None:
    x = music_like(0.35, 44100, seed=3)
    assert_energies_equal(
        meter_energies(x, 44100, ("FL", "FR"), 1), oracle_energies(x, 44100, [1, 1])
    )


@pytest.mark.parametrize("channel_count", [1, 2, 3, 6])
def test_random_noise_any_channel_count(channel_count: int) -> None:
    x = np.random.default_rng(channel_count).standard_normal((48000, channel_count))
    x = x.astype(np.float32)
    positions = SURROUND if channel_count == 6 else channels_for(channel_count)
    gains = channels.weights(positions)
    ours = meter_energies(x, 48000, positions, 777)
    assert_energies_equal(ours, oracle_energies(x, 48000, list(gains)))


def channels_for(count: int) -> tuple[str, ...]:
    return {1: ("FC",), 2: ("FL", "FR"), 3: ("FL", "FR", "FC")}[count]


def test_the_lfe_is_not_measured() -> None:
    x = music_like(1.0, 48000, channels=6, seed=5)
    loud_lfe = x.copy()
    loud_lfe[:, 3] *= 1000.0
    quiet = meter_energies(x, 48000, SURROUND, 65536)
    assert_energies_equal(meter_energies(loud_lfe, 48000, SURROUND, 65536), quiet)
    gains = channels.weights(SURROUND)
    assert gains[3] == 0.0 and gains[4] == gains[5] > 1.4
    assert_energies_equal(quiet, oracle_energies(x, 48000, list(gains)))


@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_levels_far_from_full_scale(scale: float) -> None:
    x = (music_like(1.0, 48000, seed=2).astype(np.float64) * scale).astype(np.float32)
    ours = meter_energies(x, 48000, ("FL", "FR"), 4096)
    assert np.isfinite(ours).all() and (ours > 0).all()
    assert_energies_equal(ours, oracle_energies(x, 48000, [1.0, 1.0]))


def test_silence_is_zero_energy() -> None:
    x = np.zeros((48000, 2), dtype=np.float32)
    ours = meter_energies(x, 48000, ("FL", "FR"), 65536)
    assert len(ours) == 10 and (ours == 0.0).all()


def test_a_silent_tail_decays_like_scipy_and_then_to_zero() -> None:
    """Music, then digital silence: the filter's ringing is measured as scipy has it
    while it matters, and ends at an exact zero instead of denormals."""
    x = music_like(1.0, 48000, seed=4)
    x = np.concatenate([x, np.zeros((10 * 48000, 2), dtype=np.float32)])
    ours = meter_energies(x, 48000, ("FL", "FR"), 65536)
    theirs = oracle_energies(x, 48000, [1.0, 1.0])
    audible = theirs > 1e-250  # where a flushed state (< 1e-150) cannot matter
    np.testing.assert_allclose(ours[audible], theirs[audible], rtol=1e-9)
    assert (np.abs(ours[~audible] - theirs[~audible]) < 1e-280).all()
    denormal = (theirs > 0.0) & (theirs < np.finfo(np.float64).tiny)
    assert denormal.any(), "scipy's filter rings down through the denormal range"
    assert not ((ours > 0.0) & (ours < np.finfo(np.float64).tiny)).any(), "ours does not"
    assert ours[-1] == 0.0


def _cpu_seconds(x: np.ndarray, repeats: int = 3) -> float:
    """Least CPU time of a few runs of the kernel over x (channels, n), 65536 at a time."""
    best = float("inf")
    for _ in range(repeats):
        kw = KWeighting(48000, [1.0] * x.shape[0])
        start = time.process_time()
        for i in range(0, x.shape[1], 65536):
            block = np.ascontiguousarray(x[:, i : i + 65536])
            kw.energies(block, np.arange(4800, block.shape[1] + 1, 4800))
        best = min(best, time.process_time() - start)
    return best


def test_tiny_levels_and_silent_tails_run_at_full_speed() -> None:
    """Denormal arithmetic runs up to ~100x slower on some x86 cores; the kernel keeps
    away from it (float64 throughout, states flushed to zero below 1e-150)."""
    music = np.ascontiguousarray(music_like(20.0, 48000, seed=6).T)
    tail = music.copy()
    tail[:, 48000:] = 0.0  # 1 s of music, then 19 s of decay towards zero
    tiny = (music.astype(np.float64) * 1e-30).astype(np.float32)
    normal = _cpu_seconds(music)
    assert _cpu_seconds(tail) < 3 * normal
    assert _cpu_seconds(tiny) < 3 * normal


# --- wrong arrays raise, never crash --------------------------------------------


def test_wrong_arrays_raise() -> None:
    kw, x, ends = KWeighting(48000, [1.0, 1.0]), np.zeros((2, 100), np.float32), np.array([50])
    with pytest.raises(ctypes.ArgumentError, match="float32"):
        kw.energies(x.astype(np.float64), ends)
    with pytest.raises(ctypes.ArgumentError, match="C_CONTIGUOUS"):
        kw.energies(np.zeros((100, 2), np.float32).T, ends)
    with pytest.raises(ctypes.ArgumentError, match="int64"):
        kw.energies(x, ends.astype(np.int32))
    with pytest.raises(ValueError, match="shaped"):
        kw.energies(np.zeros((1, 100), np.float32), ends)
    with pytest.raises(ValueError, match="shaped"):
        kw.energies(np.zeros(100, np.float32), ends)
    with pytest.raises(ValueError, match="segment ends"):
        kw.energies(x, np.array([101]))
    with pytest.raises(ValueError, match="segment ends"):
        kw.energies(x, np.array([60, 50]))
    with pytest.raises(ValueError, match="segment ends"):
        kw.energies(x, np.array([-1]))
    kw.state.flags.writeable = False
    with pytest.raises(ctypes.ArgumentError, match="WRITEABLE"):
        kw.energies(x, ends)
    with pytest.raises(ctypes.ArgumentError, match="numpy array"):
        _call_sum([1.0, 2.0])
    with pytest.raises(ctypes.ArgumentError):
        dynamics.sum_squares(np.zeros(10))
    with pytest.raises(ctypes.ArgumentError):
        dynamics.sum_squares(np.zeros(20, dtype=np.float32)[::2])
    with pytest.raises(ctypes.ArgumentError):
        dynamics.sum_squares(np.zeros((4, 4), dtype=np.float32)[:, :2])


def _call_sum(value: object) -> None:
    dynamics._SUM_SQUARES(value, 2)


def test_read_only_and_empty_arrays_are_passed() -> None:
    x = np.arange(10, dtype=np.float32)
    x.flags.writeable = False
    assert dynamics.sum_squares(x) == float(np.sum(np.arange(10.0) ** 2))
    assert dynamics.sum_squares(np.zeros(0, np.float32)) == 0.0
    kw = KWeighting(48000, [1.0, 0.0])  # the second channel not measured
    assert kw.energies(np.zeros((2, 0), np.float32), np.zeros(0, np.int64)).tolist() == [0.0]


# --- sum of squares --------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e19, 1e-30])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100_003])
def test_sum_squares_equals_numpy_in_float64(scale: float, n: int) -> None:
    x = (np.random.default_rng(n).standard_normal(n) * scale).astype(np.float32)
    expected = float(np.sum(x.astype(np.float64) ** 2))
    assert dynamics.sum_squares(x) == pytest.approx(expected, rel=1e-12, abs=0.0)
    two_d = np.ascontiguousarray(np.stack([x, -x]))
    assert dynamics.sum_squares(two_d) == pytest.approx(2 * expected, rel=1e-12, abs=0.0)
