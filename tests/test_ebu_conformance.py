"""EBU Tech 3341 cases 1-6, 9, 12, 15-19 and Tech 3342 cases 1-4 at 44.1, 48 and 96 kHz.

Tolerances are the EBU's: +-0.1 LU for loudness, +0.2/-0.4 dB for true peak,
+-1 LU for the loudness range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chalicelib.analysis import truepeak
from chalicelib.analysis.loudness import k_weighting_sos, loudness_of
from tests import ebu_signals as ebu


def _true_peak_db(samples: np.ndarray, rate: int) -> float:
    return 20.0 * math.log10(truepeak.true_peak_of(samples, rate))


def test_k_weighting_at_48k_is_the_bs1770_table() -> None:
    """BS.1770-4 Tables 1 and 2 give the 48 kHz coefficients; the design must match."""
    expected = [
        [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241,
         0.73248077421585],
        [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
    ]  # fmt: skip
    np.testing.assert_allclose(k_weighting_sos(48000), expected, atol=1e-7)


@pytest.mark.parametrize("rate", ebu.RATES)
@pytest.mark.parametrize("case", sorted(ebu.TECH_3341_TONES))
def test_tech_3341_integrated(case: int, rate: int) -> None:
    segments, expected = ebu.TECH_3341_TONES[case]
    result = loudness_of(ebu.tones(segments, rate), rate)
    assert result.integrated == pytest.approx(expected, abs=0.1)
    if case in (1, 2):  # M, S and I all read the tone's level
        assert result.momentary_max == pytest.approx(expected, abs=0.1)
        assert result.short_term_max == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("rate", ebu.RATES)
def test_tech_3341_case_6_five_channels(rate: int) -> None:
    result = loudness_of(ebu.per_channel_tone(ebu.TECH_3341_CASE_6, 20.0, rate), rate)
    assert result.integrated == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize("rate", ebu.RATES)
def test_tech_3341_case_6_as_5_1_ignores_the_lfe(rate: int) -> None:
    five = ebu.per_channel_tone(ebu.TECH_3341_CASE_6, 20.0, rate)
    lfe = ebu.per_channel_tone((-6.0,), 20.0, rate)  # a loud LFE must not count
    six = np.concatenate([five[:, :3], lfe, five[:, 3:]], axis=1)
    assert loudness_of(six, rate).integrated == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize("rate", ebu.RATES)
def test_tech_3341_case_9_short_term_constant_after_3s(rate: int) -> None:
    short_term = loudness_of(ebu.tones(ebu.TECH_3341_CASE_9, rate), rate).short_term
    # short_term[j] is the window ending at (j + 30) / 10 s: all of them end after 3 s.
    assert len(short_term) > 100
    assert np.all(np.abs(short_term - -23.0) <= 0.1)


@pytest.mark.parametrize("rate", ebu.RATES)
def test_tech_3341_case_12_momentary_constant_after_1s(rate: int) -> None:
    momentary = loudness_of(ebu.tones(ebu.TECH_3341_CASE_12, rate), rate).momentary
    after_1s = momentary[6:]  # window j ends at (j + 4) / 10 s
    assert len(after_1s) > 80
    assert np.all(np.abs(after_1s - -23.0) <= 0.1)


@pytest.mark.parametrize("rate", ebu.RATES)
@pytest.mark.parametrize("case", sorted(ebu.TECH_3341_TRUE_PEAK))
def test_tech_3341_true_peak(case: int, rate: int) -> None:
    fraction, amplitude, phase, expected = ebu.TECH_3341_TRUE_PEAK[case]
    measured = _true_peak_db(ebu.true_peak_tone(fraction, amplitude, phase, rate), rate)
    assert expected - 0.4 <= measured <= expected + 0.2


@pytest.mark.parametrize("rate", ebu.RATES)
@pytest.mark.parametrize("case", sorted(ebu.TECH_3342))
def test_tech_3342_loudness_range(case: int, rate: int) -> None:
    levels, expected = ebu.TECH_3342[case]
    samples = ebu.tones([(level, 20.0) for level in levels], rate)
    assert loudness_of(samples, rate).range_lu == pytest.approx(expected, abs=1.0)


def test_true_peak_without_oversampling_would_fail_case_16() -> None:
    """Guards the oversampling itself: case 16's samples sit 3 dB under the true peak."""
    samples = ebu.true_peak_tone(1 / 4, 0.5, 45.0, 48000)
    sample_peak = 20.0 * math.log10(float(np.abs(samples).max()))
    assert sample_peak < -8.5
    assert _true_peak_db(samples, 48000) == pytest.approx(-6.0, abs=0.05)
