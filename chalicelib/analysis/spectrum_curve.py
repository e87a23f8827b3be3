"""The long-term spectrum at 1/6 octave, 20 Hz - 20 kHz, for the spectrum chart.

Centres are the base-2 1/6-octave series through 1 kHz (1000 * 2^(k/6)), 60 of them
from 20.2 Hz to 17.96 kHz; each band spans centre * 2^(+-1/12). A band's level is
its share of the 20 Hz - 20 kHz energy in dB, the scale of the comparison's band
metrics (so a genre's corridor can be drawn on the same axis). The FFT bins (about
6 Hz apart) are narrower than the upper bands but wider than the lowest ones, so
energy is integrated from the cumulative spectrum with each bin spread evenly over
its width: a band narrower than a bin gets its fair share instead of 0 or a whole bin.
"""

from __future__ import annotations

import math

import numpy as np

from chalicelib.analysis.blockwise import Block, Context, Result

LOWEST_HZ, HIGHEST_HZ = 20.0, 20000.0
STEPS_PER_OCTAVE = 6


def centres() -> list[float]:
    """The 1/6-octave centre frequencies whose bands lie within 20 Hz - 20 kHz."""
    first = math.ceil(STEPS_PER_OCTAVE * math.log2(LOWEST_HZ / 1000.0) + 0.5)
    last = math.floor(STEPS_PER_OCTAVE * math.log2(HIGHEST_HZ / 1000.0) - 0.5)
    return [1000.0 * 2.0 ** (k / STEPS_PER_OCTAVE) for k in range(first, last + 1)]


def band_edges(centre: float) -> tuple[float, float]:
    half = 2.0 ** (1.0 / (2 * STEPS_PER_OCTAVE))
    return centre / half, centre * half


def curve(freqs: np.ndarray, power: np.ndarray) -> list[dict[str, float | None]]:
    """[{hz, db}] for each centre: the band's energy relative to the 20 Hz - 20 kHz total
    in dB, None for silence or a band above the Nyquist frequency.

    `freqs`, `power`: a one-sided power spectrum with equally spaced bins from 0 Hz
    (spectrum.power_spectrum's output).
    """
    points = centres()
    if len(freqs) < 2:
        return [{"hz": round(c, 1), "db": None} for c in points]
    width = float(freqs[1] - freqs[0])
    edges = np.concatenate([freqs - width / 2.0, [freqs[-1] + width / 2.0]])
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(power, dtype=np.float64))])

    def energy(low: float, high: float) -> float:
        return float(np.interp(high, edges, cumulative) - np.interp(low, edges, cumulative))

    total = energy(LOWEST_HZ, HIGHEST_HZ)
    nyquist = float(freqs[-1])
    out: list[dict[str, float | None]] = []
    for centre in points:
        low, high = band_edges(centre)
        value = energy(low, high)
        level = (
            10.0 * math.log10(value / total)
            if total > 0.0 and value > 0.0 and high <= nyquist
            else None
        )
        out.append({"hz": round(centre, 1), "db": None if level is None else round(level, 2)})
    return out


class SpectrumCurveMeter:
    """`spectrum.curve` from the spectrum meter's power spectrum (run after it)."""

    def __init__(self, context: Context) -> None:
        pass

    def add(self, block: Block) -> None:
        pass  # the spectrum meter accumulates the power spectrum

    def finish(self, result: Result) -> None:
        freqs, power = result.kept("spectrum.freqs"), result.kept("spectrum.power")
        if freqs is not None and power is not None:
            result.put("spectrum.curve", curve(freqs, power), digits=None)
