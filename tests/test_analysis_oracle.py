"""Cross-check with pyloudnorm ("DeMan" filter) and libebur128, the oracles: tests only.

pyloudnorm (lfilter) and libebur128 agree with the engine's integrated loudness
within 0.01 LU at every rate. The LRA oracle is libebur128's short-term loudness
read every 100 ms (tests/ebur128_oracle.py): pyloudnorm's LRA appends 1.5 s of
silence, the rule Tech 3342 v3 dropped.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from chalicelib.analysis import analyze
from chalicelib.analysis.loudness import loudness_of
from tests import ebur128_oracle
from tests.music import music_like


@pytest.mark.parametrize(
    ("rate", "channels", "seed"),
    [(8000, 2, 1), (44100, 2, 2), (48000, 2, 3), (48000, 1, 4), (48000, 5, 5), (96000, 2, 6)],
)
def test_integrated_and_range_match_the_oracles(rate: int, channels: int, seed: int) -> None:
    samples = music_like(30.0, rate, channels, seed)
    meter = pyloudnorm.Meter(rate, filter_class="DeMan")
    reference = samples.astype(np.float64)
    ours = loudness_of(samples, rate)
    oracle = ebur128_oracle.measure(samples, rate)
    assert ours.integrated == pytest.approx(meter.integrated_loudness(reference), abs=0.01)
    assert ours.integrated == pytest.approx(oracle.integrated, abs=0.01)
    assert ours.range_lu == pytest.approx(oracle.range_lu, abs=0.01)


def test_the_result_reports_the_same_integrated_loudness() -> None:
    samples = music_like(20.0, 44100, 2, seed=7)
    expected = pyloudnorm.Meter(44100, filter_class="DeMan").integrated_loudness(
        samples.astype(np.float64)
    )
    result = analyze(samples, 44100)
    assert result["loudness"]["integratedLufs"] == pytest.approx(expected, abs=0.01)
