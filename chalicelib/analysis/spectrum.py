"""Spectral balance: energy in seven bands, the spectral centroid, a lossy file's bandwidth.

A long-term average power spectrum from Hann-windowed frames of about 6 Hz
resolution, laid end to end across blocks (no overlap: a long-term average needs
no time resolution, and it halves the work). Powers are scaled so that they add
up to the mean square of the signal, which makes band energies dBFS in the same
sense as the RMS: a full-scale sine in a band gives -3.01 dB.

Each block's frames are scaled by a power of two (from the block's peak, which
the block keeps anyway) before the float32 FFT (exact, and neither a 1e19 float
file overflows nor a 1e-30 one underflows), and the powers are summed in float64.
The windowed frames are written into a scratch buffer kept between blocks.

A band the file cannot contain is not measured: one whose geometric centre lies
above the Nyquist frequency or above a lossy encoder's low-pass. The low-pass is
found in the spectrum itself: the lowest frequency above 2 kHz where the median
level of the 2 kHz below is at least 40 dB over everything above (encoders drop
every coefficient above their cut-off; music rolls off far more gently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from chalicelib.analysis import dynamics
from chalicelib.analysis.bands import BANDS
from chalicelib.analysis.blockwise import Block, Context, Result

LOWEST_HZ, HIGHEST_HZ = BANDS[0][1], BANDS[-1][2]
ROWS_PER_FFT = 16  # frames transformed at once: 512 KiB of float32 at 48 kHz
CLIFF_DB = 40.0
CLIFF_GROUP_HZ = 100.0
CLIFF_SPAN_HZ = 2000.0
_SAFE_EXPONENT = 120  # 2**±120 and the scaled window stay finite float32


def frame_length(sample_rate: int) -> int:
    """Smallest power of two giving bins of at most 6 Hz (8192 at 48 kHz)."""
    return 1 << max(4, int(np.ceil(np.log2(sample_rate / 6.0))))


def _window(n: int) -> np.ndarray:
    if n < 16:  # a window on a handful of samples is noise
        return np.ones(n, dtype=np.float32)
    return np.hanning(n + 2)[1:-1].astype(np.float32)


def _top(x: np.ndarray) -> float:
    """Largest |sample| of an array (0.0 for an empty one)."""
    return float(max(x.max(), -x.min())) if x.size else 0.0


class SpectrumMeter:
    """Accumulates the power spectrum of every channel over frames laid end to end;
    the samples after the last complete frame make one more frame with the ones
    before them (the tail overlaps its neighbour)."""

    def __init__(self, context: Context) -> None:
        self._rate = context.sample_rate
        self._size = frame_length(context.sample_rate)
        self._window = _window(self._size)
        self._context = context
        self._total = np.zeros(self._size // 2 + 1)
        self._count = 0  # frames summed, per channel
        self._carry = np.zeros((context.channels, 0), dtype=np.float32)
        self._last = np.zeros((context.channels, 0), dtype=np.float32)  # last `size` samples
        self._scaled: tuple[int, np.ndarray, np.ndarray] = (0, self._window, self._window)
        self._buffer = np.zeros((0, self._size), dtype=np.float32)  # windowed frames

    def add(self, block: Block) -> None:
        x, size = block.samples, self._size
        self._last = (
            x[:, -size:].copy()
            if x.shape[1] >= size
            else np.concatenate((self._last, x), axis=1)[:, -size:]
        )
        offset = 0
        if self._carry.shape[1]:
            need = size - self._carry.shape[1]
            if x.shape[1] < need:
                self._carry = np.concatenate((self._carry, x), axis=1)
                return
            frame = np.concatenate((self._carry, x[:, :need]), axis=1)
            self._frames(frame[:, np.newaxis], _top(frame))
            offset = need
        full = (x.shape[1] - offset) // size
        if full:
            frames = x[:, offset : offset + full * size].reshape(x.shape[0], full, size)
            self._frames(frames, float(block.peaks.max()))  # the block's peak bounds theirs
        self._carry = x[:, offset + full * size :].copy()

    def _frames(self, frames: np.ndarray, top: float, window: np.ndarray | None = None) -> None:
        """Add the power of frames shaped (channels, count, m), m <= size, zero-padded to
        size. `top` bounds their largest |sample| (the scale only keeps float32 in range:
        a power of two is exact, so which bound does not change the result)."""
        self._count += frames.shape[1]
        if top == 0.0:
            return
        exponent = math.frexp(top)[1]
        scaled = self._scaled_window(exponent, self._window if window is None else window)
        channels, count, length = frames.shape
        per = max(1, ROWS_PER_FFT // channels)  # frames of every channel at once
        for first in range(0, count, per):
            part = frames[:, first : first + per]
            rows = self._buffer_of(channels * part.shape[1], scaled.dtype)
            windowed = rows.reshape(channels, part.shape[1], self._size)
            np.multiply(part, scaled, out=windowed[..., :length])
            windowed[..., length:] = 0.0  # a short frame is zero-padded
            spectrum = scipy.fft.rfft(rows, axis=-1)
            # |X|^2 summed over rows: (re, im) pairs as columns of reals.
            pairs = spectrum.view(scaled.dtype)
            power = np.einsum("ij,ij->j", pairs, pairs).reshape(-1, 2).sum(axis=1)
            self._total += power.astype(np.float64) * 4.0**exponent

    def _scaled_window(self, exponent: int, window: np.ndarray) -> np.ndarray:
        """window * 2**-exponent: float32, or float64 where float32 would not hold it."""
        cached_exponent, cached_window, scaled = self._scaled
        if cached_exponent != exponent or cached_window is not window:
            dtype = np.float64 if abs(exponent) > _SAFE_EXPONENT else np.float32
            scaled = window.astype(dtype) * dtype(2.0**-exponent)
            self._scaled = (exponent, window, scaled)
        return scaled

    def _buffer_of(self, rows: int, dtype: np.dtype) -> np.ndarray:
        """(rows, size) scratch of `dtype`, kept between blocks (float32) for reuse."""
        if dtype != np.float32:
            return np.empty((rows, self._size), dtype=dtype)
        if len(self._buffer) < rows:
            self._buffer = np.empty((rows, self._size), dtype=np.float32)
        return self._buffer[:rows]

    def power(self) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies, mean-square power per bin, averaged over the channels)."""
        if self._count == 0 and self._carry.shape[1]:  # shorter than one frame
            window = _window(self._carry.shape[1])
            self._frames(self._carry[:, np.newaxis], _top(self._carry), window)
        else:
            if self._carry.shape[1]:
                self._frames(self._last[:, np.newaxis], _top(self._last))
            window = self._window
        self._carry = self._carry[:, :0]
        freqs = np.fft.rfftfreq(self._size, 1.0 / self._rate)
        scale = np.full(len(freqs), 2.0)
        scale[0] = 1.0
        scale[-1] = 1.0  # the size is even: the last bin is Nyquist's
        norm = self._size * float(np.sum(window.astype(np.float64) ** 2))
        norm *= max(self._count, 1) * self._context.channels
        return freqs, self._total * scale / norm

    def finish(self, result: Result) -> None:
        freqs, power = self.power()
        result.keep("spectrum.freqs", freqs)
        result.keep("spectrum.power", power)
        nyquist = self._rate / 2.0
        limit, why = (
            nyquist,
            f"above the Nyquist frequency ({nyquist:g} Hz) of a {self._rate} Hz file",
        )
        if self._context.lossy:
            cutoff = encoder_lowpass(freqs, power)
            result.put(
                "file.bandwidthHz",
                cutoff,
                digits=0,
                reason="too little high-frequency content to find the encoder's low-pass",
            )
            if cutoff is not None and cutoff < nyquist:
                limit = cutoff
                why = f"above the lossy encoder's low-pass ({cutoff / 1000:.1f} kHz)"
        else:
            result.put("file.bandwidthHz", nyquist, digits=0)
        spec = measure_spectrum(freqs, power, limit)
        bands = []
        for band in spec.bands:
            bands.append(
                {
                    "name": band.name,
                    "lowHz": band.low_hz,
                    "highHz": band.high_hz,
                    "energyDb": _rounded(dynamics.db(band.power)),
                    "sharePercent": _rounded(band.share_percent),
                }
            )
            if band.power is None:
                result.explain(f"spectrum.{band.name}", why + ": not measured, not scored")
        result.put("spectrum.bands", bands, digits=None)
        silence = "silence: no energy between 20 Hz and 20 kHz"
        result.put("spectrum.centroidHz", spec.centroid_hz, digits=1, reason=silence)
        if spec.centroid_hz is None:
            result.explain("spectrum", silence)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2) + 0.0


@dataclass(frozen=True)
class Band:
    name: str
    low_hz: float
    high_hz: float
    power: float | None  # mean square of the band; None where the file cannot hold it
    share_percent: float | None  # of the measured bands' total; None for silence


@dataclass(frozen=True)
class Spectrum:
    bands: list[Band]
    centroid_hz: float | None


def measure_spectrum(freqs: np.ndarray, power: np.ndarray, limit_hz: float) -> Spectrum:
    """Band energies and centroid from a power spectrum (channels already averaged).

    Only frequencies below `limit_hz` (Nyquist, or a lossy encoder's low-pass)
    count; a band whose geometric centre is above it is not measured (None).
    """
    top = min(limit_hz, HIGHEST_HZ)
    powers: dict[str, float | None] = {}
    for name, low, high in BANDS:
        inside = (freqs >= low) & (freqs < min(high, top))
        powers[name] = float(power[inside].sum()) if math.sqrt(low * high) <= top else None
    total = sum(p for p in powers.values() if p is not None)
    bands = [
        Band(
            name,
            low,
            high,
            powers[name],
            None if powers[name] is None or total <= 0.0 else 100.0 * powers[name] / total,
        )
        for name, low, high in BANDS
    ]
    audible = (freqs >= LOWEST_HZ) & (freqs < top)
    weight = float(power[audible].sum())
    centroid = float((freqs[audible] * power[audible]).sum() / weight) if weight > 0.0 else None
    return Spectrum(bands, centroid)


def encoder_lowpass(freqs: np.ndarray, power: np.ndarray) -> float | None:
    """The cut-off of a lossy encoder's low-pass in a power spectrum, in Hz, or None.

    In groups of about 100 Hz: the lowest group edge above 2 kHz where the median
    level of the 2 kHz below is CLIFF_DB over the loudest group above. Without
    such a cliff: Nyquist if the top 2 kHz hold content (within CLIFF_DB of the
    median level), else None (too little high-frequency content to tell).
    """
    step = float(freqs[1] - freqs[0])
    group = max(1, round(CLIFF_GROUP_HZ / step))
    count = len(power) // group
    span = max(1, round(CLIFF_SPAN_HZ / (group * step)))
    if count <= span + 1:
        return None
    grouped = power[: count * group].reshape(count, group).sum(axis=1)
    floor = max(float(grouped.max()), 1e-300) * 1e-20
    level = 10.0 * np.log10(grouped + floor)
    above = np.maximum.accumulate(level[::-1])[::-1]  # loudest group at or above each edge
    below = np.median(np.lib.stride_tricks.sliding_window_view(level[:-1], span), axis=1)
    edges = np.arange(span, count)  # group edge j: below = groups j-span .. j-1
    cliff = (below - above[edges] >= CLIFF_DB) & (edges * group * step >= CLIFF_SPAN_HZ)
    found = np.flatnonzero(cliff)
    if len(found):
        return float(round(edges[found[0]] * group * step, -1))
    if above[count - span] >= float(np.median(level)) - CLIFF_DB:
        return float(freqs[-1])  # content up to Nyquist: no low-pass below it
    return None
