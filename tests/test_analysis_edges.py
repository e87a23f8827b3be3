"""analyze() on awkward arrays: tiny, silent, DC, square, mono, 5.1, integers, NaN."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from chalicelib.analysis import AnalysisError, Limits, analyze, truepeak
from chalicelib.analysis.blockwise import Context, blocks_of
from tests.music import music_like

RATE = 48000


def _sine(seconds: float, hz: float = 1000.0, peak: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (peak * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _square(seconds: float, rate: int = RATE) -> np.ndarray:
    wave = np.sign(_sine(seconds, 1000.0, 1.0, rate))
    wave[wave == 0] = 1.0
    return np.stack([wave, wave], axis=1).astype(np.float32)


EDGE_CASES: dict[str, Any] = {
    "one sample": lambda: np.array([[0.5, -0.25]], dtype=np.float32),
    "300 ms": lambda: np.stack([_sine(0.3)] * 2, axis=1),
    "silence": lambda: np.zeros((RATE * 5, 2), dtype=np.float32),
    "dc": lambda: np.full((RATE * 5, 2), 0.5, dtype=np.float32),
    "full-scale square": lambda: _square(5.0),
    "mono": lambda: _sine(5.0),
    "5.1": lambda: np.stack([_sine(5.0)] * 6, axis=1),
    "8 kHz": lambda: music_like(5.0, 8000),
    "192 kHz": lambda: music_like(5.0, 192000),
}
RATES = {"8 kHz": 8000, "192 kHz": 192000}


@pytest.fixture(scope="module")
def edge_results() -> dict[str, dict[str, Any]]:
    return {name: analyze(make(), RATES.get(name, RATE)) for name, make in EDGE_CASES.items()}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_every_result_is_strict_json(edge_results: dict[str, dict[str, Any]], name: str) -> None:
    text = json.dumps(edge_results[name], allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text


def test_one_sample_gives_peaks_and_null_loudness_with_reasons(edge_results: dict) -> None:
    result = edge_results["one sample"]
    assert result["peaks"]["samplePeakDbfs"] == pytest.approx(-6.02, abs=0.01)
    assert result["peaks"]["truePeakDbtp"] == pytest.approx(-6.02, abs=0.01)
    assert result["loudness"]["integratedLufs"] is None
    assert "400 ms" in result["reasons"]["loudness.integratedLufs"]
    assert result["comparison"]["score"] is None


def test_shorter_than_a_gating_block(edge_results: dict) -> None:
    result = edge_results["300 ms"]
    assert result["loudness"]["integratedLufs"] is None
    assert result["loudness"]["momentaryMaxLufs"] is None
    assert result["loudness"]["shortTermSeries"] == []
    assert result["peaks"]["truePeakDbtp"] == pytest.approx(-6.02, abs=0.05)


def test_silence_is_null_with_a_reason_never_infinite(edge_results: dict) -> None:
    result = edge_results["silence"]
    assert result["loudness"]["integratedLufs"] is None
    assert "silence" in result["reasons"]["loudness.integratedLufs"]
    assert result["peaks"]["truePeakDbtp"] is None
    assert result["dynamics"]["rmsDbfs"] is None
    assert all(point["lufs"] is None for point in result["loudness"]["shortTermSeries"])
    assert result["comparison"]["score"] is None


def test_dc_is_not_loud_but_its_peak_and_rms_are_exact(edge_results: dict) -> None:
    result = edge_results["dc"]
    assert result["peaks"]["samplePeakDbfs"] == pytest.approx(-6.02, abs=0.01)
    assert result["peaks"]["truePeakDbtp"] == pytest.approx(-6.02, abs=0.01)
    assert result["dynamics"]["rmsDbfs"] == pytest.approx(-6.02, abs=0.01)
    assert result["dynamics"]["crestFactorDb"] == pytest.approx(0.0, abs=0.01)
    # K-weighting removes DC: only the switch-on click registers.
    assert result["loudness"]["integratedLufs"] < -20.0


def test_full_scale_square_clips_and_is_critical(edge_results: dict) -> None:
    result = edge_results["full-scale square"]
    assert result["peaks"]["samplePeakDbfs"] == pytest.approx(0.0, abs=0.001)
    assert result["peaks"]["clippedSamples"] == 2 * 5 * RATE
    assert result["peaks"]["truePeakDbtp"] > 0.5  # the overshoot between the samples
    rows = {row["metric"]: row for row in result["comparison"]["metrics"]}
    assert rows["truePeakDbtp"]["status"] == "critical"
    first = result["comparison"]["suggestions"][0]
    assert first["metric"] == "truePeakDbtp"
    assert "Lower the limiter ceiling by" in first["message"]


def test_mono_is_measured_as_mono(edge_results: dict) -> None:
    result = edge_results["mono"]
    assert result["file"]["channels"] == 1 and result["file"]["layout"] == "mono"
    assert result["stereo"] is None
    assert "mono" in result["reasons"]["stereo"]
    # One channel at -6.02 dBFS peak: 3.01 LU under the same tone on two channels.
    assert result["loudness"]["integratedLufs"] == pytest.approx(-6.02 - 3.01, abs=0.05)


def test_5_1_excludes_the_lfe_and_weights_the_surrounds(edge_results: dict) -> None:
    result = edge_results["5.1"]
    assert result["file"]["layout"] == "5.1"
    # L R C at 1.0, Ls Rs at 1.41, LFE 0: 10*log10(3 + 2.82) over one channel.
    one_channel = -6.02 - 3.01
    expected = one_channel + 10 * math.log10(3 + 2 * 1.41)
    assert result["loudness"]["integratedLufs"] == pytest.approx(expected, abs=0.05)
    assert result["stereo"]["correlation"] == pytest.approx(1.0)


def test_low_and_high_rates(edge_results: dict) -> None:
    low, high = edge_results["8 kHz"], edge_results["192 kHz"]
    assert low["peaks"]["oversampling"] == 4 and high["peaks"]["oversampling"] == 1
    assert low["loudness"]["integratedLufs"] is not None
    assert high["loudness"]["integratedLufs"] is not None
    air = next(b for b in low["spectrum"]["bands"] if b["name"] == "air")
    assert air["energyDb"] is None and "Nyquist" in low["reasons"]["spectrum.air"]
    assert truepeak.oversampling_factor(96000) == 2
    assert truepeak.oversampling_factor(95999) == 4


def test_integer_input_is_scaled_like_pcm() -> None:
    floats = np.stack([_sine(2.0), _sine(2.0, 500.0)], axis=1)
    as_int16 = np.round(floats * 32768).astype(np.int16)
    as_int32 = np.round(floats.astype(np.float64) * 2**31).astype(np.int32)
    expected = analyze(floats, RATE)["loudness"]["integratedLufs"]
    for pcm in (as_int16, as_int32):
        assert analyze(pcm, RATE)["loudness"]["integratedLufs"] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_samples_are_refused(bad: float) -> None:
    samples = np.stack([_sine(1.0)] * 2, axis=1)
    samples[RATE // 2, 1] = bad
    with pytest.raises(AnalysisError) as caught:
        analyze(samples, RATE)
    assert caught.value.code == "invalid_samples"
    assert caught.value.retryable is False
    assert "1 samples" in caught.value.message


@pytest.mark.parametrize(
    ("samples", "rate", "code"),
    [
        (np.zeros((10, 2, 2), np.float32), RATE, "invalid_input"),
        (np.array(["a", "b"]), RATE, "invalid_input"),
        ([0.0, 0.1], RATE, "invalid_input"),
        (np.zeros(100, np.float32), 44100.0, "invalid_input"),
        (np.zeros((0, 2), np.float32), RATE, "empty_audio"),
        (np.zeros((100, 9), np.float32), RATE, "too_many_channels"),
        (np.zeros(100, np.float32), 4000, "unsupported_sample_rate"),
        (np.zeros(100, np.float32), 400_000, "unsupported_sample_rate"),
    ],
)
def test_bad_arrays_get_a_code(samples: Any, rate: Any, code: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(samples, rate)
    assert caught.value.code == code


def test_limits_apply_to_arrays_too() -> None:
    samples = np.zeros((RATE * 3, 2), np.float32)
    with pytest.raises(AnalysisError) as caught:
        analyze(samples, RATE, limits=Limits(max_duration_seconds=2.0))
    assert caught.value.code == "too_long"
    with pytest.raises(AnalysisError) as caught:
        analyze(samples, RATE, limits=Limits(max_samples=RATE * 5))
    assert caught.value.code == "too_large"


def test_input_is_not_modified() -> None:
    samples = music_like(3.0, RATE)
    before = samples.copy()
    analyze(samples, RATE)
    np.testing.assert_array_equal(samples, before)


@pytest.mark.parametrize(
    ("right_of", "correlation", "width", "balance"),
    [
        (lambda left: left, 1.0, 0.0, 0.0),
        (lambda left: -left, -1.0, 200.0, 0.0),
        (lambda left: 0.5 * left, 1.0, 20.0, 6.02),
    ],
)
def test_stereo_image(right_of: Any, correlation: float, width: float, balance: float) -> None:
    left = music_like(3.0, RATE, channels=1)[:, 0]
    stereo = analyze(np.stack([left, right_of(left)], axis=1), RATE)["stereo"]
    assert stereo["correlation"] == pytest.approx(correlation, abs=0.001)
    assert stereo["widthPercent"] == pytest.approx(width, abs=0.1)
    assert stereo["balanceDb"] == pytest.approx(balance, abs=0.01)


def test_uncorrelated_channels_are_100_percent_wide() -> None:
    rng = np.random.default_rng(3)
    stereo = analyze(rng.standard_normal((RATE * 3, 2)).astype(np.float32) * 0.1, RATE)["stereo"]
    assert stereo["correlation"] == pytest.approx(0.0, abs=0.01)
    assert stereo["widthPercent"] == pytest.approx(100.0, abs=1.0)


def test_spectrum_puts_a_tone_in_its_band() -> None:
    result = analyze(np.stack([_sine(3.0, 1000.0, 0.5)] * 2, axis=1), RATE)
    bands = {band["name"]: band for band in result["spectrum"]["bands"]}
    assert bands["mid"]["sharePercent"] > 99.9
    assert bands["mid"]["energyDb"] == pytest.approx(-9.03, abs=0.05)  # 0.5 peak sine
    assert result["spectrum"]["centroidHz"] == pytest.approx(1000.0, rel=0.01)
    assert sum(b["sharePercent"] for b in bands.values()) == pytest.approx(100.0, abs=0.05)


def test_skipping_blocks_gives_the_same_true_peak_as_oversampling_everything() -> None:
    phases = truepeak.interpolator(4)
    for seed in range(3):
        channel = music_like(6.0, 44100, channels=1, seed=seed)[:, 0]
        everything = max(float(np.abs(channel).max()), truepeak._interpolated_max(channel, phases))
        assert truepeak.true_peak_of(channel, 44100) == pytest.approx(everything, rel=1e-6)


@pytest.mark.parametrize("size", [5, 11, 12, 139, 1000, 65536])
def test_the_true_peak_is_exact_whatever_the_block_size(size: int) -> None:
    """Windows straddling blocks, partial sub-blocks and blocks shorter than the
    interpolator all count; a soft-clipped track (every sub-block a candidate) too."""
    phases = truepeak.interpolator(4)
    music = music_like(3.0, 44100, channels=2, seed=5)
    for samples in (music, np.tanh(music * 6.0) * 0.89):
        x = samples.astype(np.float32)
        everything = max(
            max(float(np.abs(x[:, c]).max()), truepeak._interpolated_max(x[:, c].copy(), phases))
            for c in range(2)
        )
        meter = truepeak.PeakMeter(Context(44100, 2, ("FL", "FR")))
        for block in blocks_of(x, size):
            meter.add(block)
        assert meter.true_peak == everything


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16"])
def test_a_clipped_file_counts_both_polarities_at_its_own_full_scale(
    tmp_path: Any, subtype: str
) -> None:
    """8-bit PCM stores +127/128 at most: a clipped 8-bit file must still count its
    positive clips, not only the -1.0 ones."""
    import soundfile as sf

    from chalicelib.analysis import analyze_file

    path = tmp_path / f"square-{subtype}.wav"
    sf.write(path, _square(1.0), RATE, subtype=subtype)
    result = analyze_file(path)
    assert result["file"]["subtype"] == subtype
    assert result["peaks"]["clippedSamples"] == 2 * RATE


def test_an_int8_array_counts_its_positive_clips() -> None:
    wave = np.where(_square(1.0) > 0, 127, -128).astype(np.int8)
    assert analyze(wave, RATE)["peaks"]["clippedSamples"] == 2 * RATE
