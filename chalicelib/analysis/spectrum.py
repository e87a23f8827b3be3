"""Spectral balance: energy in seven bands and the spectral centroid.

A long-term average power spectrum from Hann-windowed frames of about 6 Hz
resolution, laid end to end (no overlap: a long-term average needs no time
resolution, and it halves the work). Powers are scaled so that they add up to
the mean square of the signal, which makes band energies dBFS in the same sense
as the RMS: a full-scale sine in a band gives -3.01 dB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from chalicelib.analysis.bands import BANDS

LOWEST_HZ, HIGHEST_HZ = BANDS[0][1], BANDS[-1][2]
FRAMES_PER_FFT = 64  # frames transformed at once: bounds the temporary memory


def frame_length(sample_rate: int) -> int:
    """Smallest power of two giving bins of at most 6 Hz (8192 at 48 kHz)."""
    return 1 << max(4, int(np.ceil(np.log2(sample_rate / 6.0))))


def power_spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, mean-square power per bin) of one channel (1-D, any stride);
    the bins add up to the channel's mean square."""
    size = frame_length(sample_rate)
    n = len(x)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    if n < size:  # one zero-padded frame; a window on a handful of samples is noise
        window = np.hanning(n + 2)[1:-1].astype(np.float32) if n >= 16 else np.ones(n, np.float32)
        groups = [x[np.newaxis, :]]
    else:
        window = np.hanning(size + 2)[1:-1].astype(np.float32)
        frames = x[: n // size * size].reshape(-1, size)  # a view: frames end to end
        groups = [frames[i : i + FRAMES_PER_FFT] for i in range(0, len(frames), FRAMES_PER_FFT)]
        if n % size:  # the tail, overlapping its neighbour
            groups.append(x[np.newaxis, n - size :])
    total = np.zeros(len(freqs))
    count = 0
    buffer = np.empty((len(groups[0]), len(window)), dtype=np.float32)
    for group in groups:
        windowed = np.multiply(group, window, out=buffer[: len(group)])
        spectrum = scipy.fft.rfft(windowed, n=size, axis=1)
        total += (spectrum.real**2 + spectrum.imag**2).sum(axis=0, dtype=np.float64)
        count += len(group)
    scale = np.full(len(freqs), 2.0)
    scale[0] = 1.0
    if size % 2 == 0:
        scale[-1] = 1.0
    power = total * scale / (size * float(np.sum(window.astype(np.float64) ** 2)) * count)
    return freqs, power


@dataclass(frozen=True)
class Band:
    name: str
    low_hz: float
    high_hz: float
    power: float  # mean square of the band (0 for silence or above Nyquist)
    share_percent: float | None  # of the 20 Hz - 20 kHz total; None for silence


@dataclass(frozen=True)
class Spectrum:
    bands: list[Band]
    centroid_hz: float | None


def measure_spectrum(freqs: np.ndarray, power: np.ndarray) -> Spectrum:
    """Band energies and centroid from a power spectrum (channels already averaged)."""
    audible = (freqs >= LOWEST_HZ) & (freqs < HIGHEST_HZ)
    total = float(power[audible].sum())
    bands = []
    for name, low, high in BANDS:
        inside = (freqs >= low) & (freqs < high)
        band_power = float(power[inside].sum())
        share = 100.0 * band_power / total if total > 0.0 else None
        bands.append(Band(name, low, high, band_power, share))
    centroid = float((freqs[audible] * power[audible]).sum() / total) if total > 0.0 else None
    return Spectrum(bands, centroid)
