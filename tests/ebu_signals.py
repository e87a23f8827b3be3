"""EBU Tech 3341 / 3342 minimum-requirement test signals, synthesised (never downloaded).

Levels are per-channel peak levels in dBFS of a 1 kHz sine, as in the EBU tables;
segments follow each other in continuous phase.
"""

from __future__ import annotations

import numpy as np

RATES = (44100, 48000, 96000)

# Tech 3341 Table 1: case -> (segments [(dBFS, seconds)], expected integrated LUFS)
TECH_3341_TONES: dict[int, tuple[list[tuple[float, float]], float]] = {
    1: ([(-23.0, 20.0)], -23.0),
    2: ([(-33.0, 20.0)], -33.0),
    3: ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
    4: ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
    5: ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
}
# Case 6, 5.0 channels in the order L R C Ls Rs, 20 s.
TECH_3341_CASE_6 = (-28.0, -28.0, -24.0, -30.0, -30.0)
# Case 9: (1.34 s at -20, 1.66 s at -30) x 5; S = -23 after 3 s.
TECH_3341_CASE_9 = [(-20.0, 1.34), (-30.0, 1.66)] * 5
# Case 12: (0.18 s at -20, 0.22 s at -30) x 25; M = -23 after 1 s.
TECH_3341_CASE_12 = [(-20.0, 0.18), (-30.0, 0.22)] * 25
# Cases 15-19: (frequency as a fraction of fs, amplitude, phase in degrees, expected dBTP)
TECH_3341_TRUE_PEAK: dict[int, tuple[float, float, float, float]] = {
    15: (1 / 4, 0.50, 0.0, -6.0),
    16: (1 / 4, 0.50, 45.0, -6.0),
    17: (1 / 6, 0.50, 60.0, -6.0),
    18: (1 / 8, 0.50, 67.5, -6.0),
    19: (1 / 4, 1.41, 45.0, 3.0),
}
# Tech 3342 Table 1: case -> (segments of 20 s each [dBFS], expected LRA)
TECH_3342: dict[int, tuple[list[float], float]] = {
    1: ([-20.0, -30.0], 10.0),
    2: ([-20.0, -15.0], 5.0),
    3: ([-40.0, -20.0], 20.0),
    4: ([-50.0, -35.0, -20.0, -35.0, -50.0], 15.0),
}


def tones(
    segments: list[tuple[float, float]], sample_rate: int, channels: int = 2, hz: float = 1000.0
) -> np.ndarray:
    """1 kHz sine segments [(peak dBFS, seconds)] on every channel: float32 (frames, ch)."""
    counts = [round(seconds * sample_rate) for _, seconds in segments]
    gains = np.repeat([10.0 ** (level / 20.0) for level, _ in segments], counts)
    t = np.arange(sum(counts)) / sample_rate
    mono = (gains * np.sin(2.0 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(mono[:, np.newaxis], channels, axis=1)


def per_channel_tone(levels: tuple[float, ...], seconds: float, sample_rate: int) -> np.ndarray:
    """A 1 kHz sine at a different peak level in each channel."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    mono = np.sin(2.0 * np.pi * 1000.0 * t)
    gains = np.array([10.0 ** (level / 20.0) for level in levels])
    return (mono[:, np.newaxis] * gains).astype(np.float32)


def true_peak_tone(
    fraction: float, amplitude: float, phase_degrees: float, sample_rate: int, seconds: float = 1.0
) -> np.ndarray:
    """Stereo sine at fraction*fs with the given phase, 10 ms fade-in and fade-out."""
    n = round(seconds * sample_rate)
    k = np.arange(n)
    wave = amplitude * np.sin(2.0 * np.pi * fraction * k + np.deg2rad(phase_degrees))
    fade = round(0.010 * sample_rate)
    ramp = np.linspace(0.0, 1.0, fade)
    wave[:fade] *= ramp
    wave[-fade:] *= ramp[::-1]
    return np.repeat(wave.astype(np.float32)[:, np.newaxis], 2, axis=1)
