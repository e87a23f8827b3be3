"""Stereo image of the front pair: correlation, width and left/right balance.

From three sums over the whole track: LL, RR and LR. Correlation is the
normalised cross product (+1 mono, 0 unrelated, -1 out of phase). Width is the
side energy as a share of the total, scaled so that mono is 0 %, unrelated
channels 100 % and fully out-of-phase 200 % (it equals 100 * (1 - correlation)
when both sides are equally loud). Balance is the left/right energy ratio in dB,
positive when the left is louder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chalicelib.analysis.arrays import dot


@dataclass(frozen=True)
class Stereo:
    correlation: float | None
    width_percent: float | None
    balance_db: float | None


def measure_stereo(left: np.ndarray, right: np.ndarray) -> Stereo:
    ll, rr, lr = dot(left, left), dot(right, right), dot(left, right)
    both = ll + rr
    correlation = lr / math.sqrt(ll * rr) if ll > 0.0 and rr > 0.0 else None
    width = 100.0 * (both - 2.0 * lr) / both if both > 0.0 else None
    balance = 10.0 * math.log10(ll / rr) if ll > 0.0 and rr > 0.0 else None
    if correlation is not None:
        correlation = max(-1.0, min(1.0, correlation))
    if width is not None:
        width = max(0.0, min(200.0, width))
    return Stereo(correlation, width, balance)
