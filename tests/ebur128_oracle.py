"""libebur128 (PyPI `pyebur128`) as the oracle: integrated loudness, true peak and the
10 Hz loudness range. Tests only, never chalicelib.

libebur128's own LRA steps short-term windows by 1 s (the pre-2016 rule), so the
LRA here is Tech 3342 v3's: libebur128's short-term loudness read every 100 ms
from the 3 s mark, then the -70 LUFS and -20 LU gates and the 10th/95th
percentiles, written out here independently of the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyebur128

_STEP_SECONDS = 0.1


@dataclass(frozen=True)
class Oracle:
    integrated: float
    true_peak_db: float
    range_lu: float | None


def measure(samples: np.ndarray, rate: int, channel_types: list[int] | None = None) -> Oracle:
    """libebur128's figures for float samples shaped (frames, channels)."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, np.newaxis] if x.ndim == 1 else x
    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_S
    mode |= pyebur128.MeasurementMode.MODE_TRUE_PEAK
    state = pyebur128.R128State(x.shape[1], rate, mode)
    for c, kind in enumerate(channel_types or []):
        state.set_channel(c, kind)
    short_term: list[float] = []
    step = round(rate * _STEP_SECONDS)
    for k, start in enumerate(range(0, len(x), step), start=1):
        part = np.ascontiguousarray(x[start : start + step]).reshape(-1)
        state.add_frames(part, len(part) // x.shape[1])
        if k >= 30 and start + step <= len(x):  # a complete 3 s window ends here
            short_term.append(pyebur128.get_loudness_shortterm(state))
    peak = max(pyebur128.get_true_peak(state, c) for c in range(x.shape[1]))
    integrated = pyebur128.get_loudness_global(state)
    return Oracle(integrated, 20.0 * math.log10(peak), _range(short_term))


def _range(short_term: list[float]) -> float | None:
    values = np.array([v for v in short_term if v > -70.0])
    if len(values) == 0:
        return None
    gate = 10.0 * math.log10(np.mean(10.0 ** (values / 10.0))) - 20.0
    kept = np.sort(values[values >= gate])
    low, high = (kept[math.floor((len(kept) - 1) * p + 0.5)] for p in (0.10, 0.95))
    return float(high - low)
