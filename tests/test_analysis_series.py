"""Schema 2's series and curves, on signals whose answers are known.

waveform, loudness.momentarySeries, peaks.clipRegions, spectrum.curve (with a
genre's corridor), stereo.correlationSeries and stereo.lowEndCorrelation, and the
reference overlay. Each accumulator is also fed in blocks of odd sizes: the answer
must not depend on where the blocks fall.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from chalicelib.analysis import analyze, targets
from chalicelib.analysis.clips import MAX_REGIONS, ClipRegionAccumulator
from chalicelib.analysis.stereo_series import CorrelationAccumulator
from chalicelib.analysis.waveform import MAX_POINTS, WaveformAccumulator

RATE = 48_000


def sine(seconds: float, hz: float = 997.0, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def stereo(left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
    return np.stack([left, left if right is None else right], axis=1)


def feed(acc: Any, x: np.ndarray, block: int, pair: bool = False) -> dict[str, Any]:
    """Give an accumulator x (frames, channels) in channel-major blocks of `block` frames."""
    for start in range(0, len(x), block):
        part = np.ascontiguousarray(x[start : start + block].T)
        if pair:
            acc.add(part[0], part[1])
        else:
            acc.add(part)
    return acc.result()


# --- waveform ------------------------------------------------------------------------


def test_waveform_peaks_land_where_they_are_and_blocks_do_not_matter() -> None:
    x = np.zeros((RATE * 90, 2), dtype=np.float32)
    x[RATE * 30, 0] = 0.9
    x[RATE * 60 + 7, 1] = -0.5
    results = [feed(WaveformAccumulator(RATE, 2), x, block) for block in (999, 4096, len(x))]
    assert all(r == results[0] for r in results[1:])
    wave = results[0]
    assert MAX_POINTS // 2 <= wave["points"] <= MAX_POINTS
    step = wave["secondsPerPoint"]
    assert wave["points"] * step == pytest.approx(90.0, abs=step)
    left_max = np.array(wave["channels"][0]["max"])
    right_min = np.array(wave["channels"][1]["min"])
    assert left_max.max() == 0.9 and int(np.argmax(left_max)) == int(30 // step)
    assert right_min.min() == -0.5 and int(np.argmin(right_min)) == int((60 + 7 / RATE) // step)
    assert np.array(wave["channels"][1]["max"]).max() == 0.0


def test_a_short_file_keeps_every_bin() -> None:
    wave = feed(WaveformAccumulator(RATE, 1), sine(0.01)[:, None], 100)
    assert wave["points"] == math.ceil(480 / 64) and wave["secondsPerPoint"] == round(64 / RATE, 6)


# --- clipped regions -----------------------------------------------------------------


def test_clip_regions_are_the_runs_at_full_scale_and_add_up_to_clipped_samples() -> None:
    # A 100 Hz sine at 1.5x full scale, hard-clipped: two flat runs per cycle.
    x = np.clip(sine(0.05, hz=100.0, amplitude=1.5), -1.0, 1.0)
    result = analyze(stereo(x, np.zeros_like(x)), RATE)
    clips = result["peaks"]["clipRegions"]
    assert result["peaks"]["clipRegionsTotal"] == 10 == len(clips)
    assert {c["channel"] for c in clips} == {0}
    assert sum(c["lengthSamples"] for c in clips) == result["peaks"]["clippedSamples"]
    # Clipping starts where sin reaches 1/1.5: asin(2/3) / (2 pi 100) s into each cycle.
    first = math.asin(2 / 3) / (2 * math.pi * 100)
    assert clips[0]["startSeconds"] == pytest.approx(first, abs=1.5 / RATE)
    assert clips[1]["startSeconds"] == pytest.approx(first + 0.005, abs=1.5 / RATE)


def test_clip_regions_are_capped_with_the_total_and_cross_block_boundaries() -> None:
    x = np.clip(sine(2.0, hz=100.0, amplitude=1.5), -1.0, 1.0)
    frames = stereo(x)
    results = [
        feed(ClipRegionAccumulator(RATE, 2, 0.999), frames, block) for block in (1, 777, len(x))
    ]
    assert all(r == results[0] for r in results[1:])
    assert results[0]["total"] == 2 * 2 * 200 and len(results[0]["regions"]) == MAX_REGIONS
    starts = [r["startSeconds"] for r in results[0]["regions"]]
    assert starts == sorted(starts) and starts[-1] < 0.26


# --- loudness over time ----------------------------------------------------------------


def test_momentary_series_every_half_second_follows_a_level_step() -> None:
    quiet, loud = sine(5.0, amplitude=10 ** (-30 / 20)), sine(5.0, amplitude=10 ** (-20 / 20))
    result = analyze(stereo(np.concatenate([quiet, loud])), RATE)
    series = result["loudness"]["momentarySeries"]
    assert [p["t"] for p in series[:3]] == [0.5, 1.0, 1.5] and series[-1]["t"] == 10.0
    by_t = {p["t"]: p["lufs"] for p in series}
    # A stereo 997 Hz sine at A dBFS peak reads A LUFS (BS.1770); windows end at t.
    assert by_t[4.5] == pytest.approx(-30.0, abs=0.05)
    assert by_t[5.5] == pytest.approx(-20.0, abs=0.05)
    assert by_t[5.0] == pytest.approx(-30.0, abs=0.05)  # the window 4.6-5.0 s, still quiet
    json.dumps(result, allow_nan=False)


# --- spectrum curve ------------------------------------------------------------------


def test_a_1khz_sine_puts_its_energy_in_the_1khz_band() -> None:
    curve = analyze(stereo(sine(5.0, hz=1000.0)), RATE)["spectrum"]["curve"]
    assert 55 <= len(curve) <= 62
    assert curve[0]["hz"] == pytest.approx(22.1, abs=0.1) and curve[-1]["hz"] < 20000
    peak = max(curve, key=lambda p: p["db"] if p["db"] is not None else -999)
    assert peak["hz"] == 1000.0 and peak["db"] == pytest.approx(0.0, abs=0.1)
    far = [p["db"] for p in curve if p["hz"] < 500 or p["hz"] > 2000]
    assert max(v for v in far if v is not None) < -40


def test_pink_noise_is_flat_and_white_noise_rises_3_db_per_octave() -> None:
    rng = np.random.default_rng(7)
    white = rng.standard_normal(RATE * 20)
    spectrum_ = np.fft.rfft(white)
    f = np.fft.rfftfreq(len(white), 1 / RATE)
    spectrum_[1:] /= np.sqrt(f[1:])
    pink = np.fft.irfft(spectrum_, n=len(white))
    for signal, slope in ((pink, 0.0), (white, 3.0)):
        x = (0.1 * signal / np.std(signal)).astype(np.float32)
        curve = analyze(stereo(x), RATE)["spectrum"]["curve"]
        mid = [p for p in curve if 50 <= p["hz"] <= 12000]
        fit = np.polyfit([math.log2(p["hz"]) for p in mid], [p["db"] for p in mid], 1)
        assert fit[0] == pytest.approx(slope, abs=0.25)
        residual = [p["db"] - np.polyval(fit, math.log2(p["hz"])) for p in mid]
        assert max(abs(r) for r in residual) < 1.5


def test_a_genre_adds_its_corridor_on_the_same_grid_and_a_destination_none() -> None:
    x = stereo(sine(4.0, hz=200.0))
    pop = analyze(x, RATE, genre="pop")["spectrum"]["curve"]
    assert all(p["highDb"] - p["lowDb"] == pytest.approx(8.0, abs=2.01) for p in pop)
    sub = next(p for p in pop if p["hz"] < 60)
    assert sub["highDb"] - sub["lowDb"] == pytest.approx(10.0)  # the sub band's +-5 dB
    # The corridor's centre is the model: its 1/6-octave shares add up to the band's.
    mid = [p for p in pop if 500 <= p["hz"] < 2000]
    centre = 10 * math.log10(sum(10 ** ((p["lowDb"] + p["highDb"]) / 20) for p in mid))
    assert centre == pytest.approx(targets.load("pop").targets["band.mid"].target, abs=0.6)
    plain = analyze(x, RATE)["spectrum"]["curve"]
    assert "lowDb" not in plain[0]


# --- stereo correlation --------------------------------------------------------------


def test_correlation_series_flips_when_the_right_channel_is_inverted() -> None:
    rng = np.random.default_rng(3)
    left = (0.1 * rng.standard_normal(RATE * 6)).astype(np.float32)
    right = left.copy()
    right[RATE * 3 :] *= -1
    x = stereo(left, right)
    results = [
        feed(CorrelationAccumulator(RATE), x, block, pair=True) for block in (1000, 65536, len(x))
    ]
    assert all(r == results[0] for r in results[1:])
    series = results[0]["correlationSeries"]
    assert [p["t"] for p in series] == [1, 2, 3, 4, 5, 6]
    assert [p["correlation"] for p in series] == [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]


def test_unrelated_channels_read_zero_and_silence_reads_none() -> None:
    rng = np.random.default_rng(4)
    x = (0.1 * rng.standard_normal((RATE * 3, 2))).astype(np.float32)
    x[RATE * 2 :, 1] = 0.0
    series = feed(CorrelationAccumulator(RATE), x, 4096, pair=True)["correlationSeries"]
    assert abs(series[0]["correlation"]) < 0.02 and series[2]["correlation"] is None


def test_low_end_correlation_sees_a_bass_in_anti_phase_under_wide_highs() -> None:
    rng = np.random.default_rng(5)
    bass = sine(4.0, hz=50.0, amplitude=0.3)
    highs = rng.standard_normal((len(bass), 2)).astype(np.float32)
    highs = np.diff(highs, axis=0, prepend=0) * 0.1  # mostly above 1 kHz, unrelated L/R
    phase = analyze(stereo(bass + highs[:, 0], -bass + highs[:, 1]), RATE)["stereo"]
    assert phase["lowEndCorrelation"] == pytest.approx(-1.0, abs=0.02)
    mono_bass = analyze(stereo(bass + highs[:, 0], bass + highs[:, 1]), RATE)["stereo"]
    assert mono_bass["lowEndCorrelation"] == pytest.approx(1.0, abs=0.02)
    assert mono_bass["correlation"] < 0.9  # the whole mix is wider than its low end


def test_mono_has_no_stereo_series() -> None:
    result = analyze(sine(2.0), RATE)
    assert result["stereo"] is None and result["waveform"]["points"] > 0


# --- reference overlay ---------------------------------------------------------------


def test_a_reference_result_carries_the_references_series_for_the_overlay() -> None:
    reference = analyze(stereo(sine(5.0, amplitude=0.3)), RATE)
    result = analyze(stereo(sine(5.0, amplitude=0.1)), RATE, reference=reference)
    overlay = result["reference"]
    assert overlay["loudness"]["shortTermSeries"] == reference["loudness"]["shortTermSeries"]
    assert overlay["spectrum"]["curve"] == reference["spectrum"]["curve"]
    assert overlay["stereo"]["correlationSeries"] == reference["stereo"]["correlationSeries"]
    assert "reference" not in analyze(stereo(sine(1.0)), RATE)
