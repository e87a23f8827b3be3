"""Music-like test signals: drums, bass, a pad and noise, in sections of varying level.

Random but reproducible (seeded), so loudness, LRA and peaks are those of something
closer to a mix than a sine, without any audio file.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def music_like(seconds: float, rate: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """float32 (frames, channels) at about -20 LUFS with 3-6 LU of loudness range."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    beat = 0.5  # seconds
    phase = (t % beat) / beat
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-phase * 20)) * t) * np.exp(-phase * 8)
    bass_hz = rng.choice([41.2, 55.0, 61.7, 73.4], size=int(seconds / 2) + 1)
    bass = 0.4 * np.sin(2 * np.pi * bass_hz[(t // 2).astype(int)] * t)
    # Brownish noise for the "band", white bursts for hats.
    band = lfilter([1.0], [1.0, -0.97], rng.standard_normal((n, channels)), axis=0) * 0.03
    hats = rng.standard_normal((n, channels)) * np.exp(-((t % (beat / 2)) * 60))[:, None] * 0.15
    # Sections: every 8 s the level moves by up to +-6 dB.
    sections = 10 ** (rng.uniform(-6, 0, size=int(seconds / 8) + 1) / 20)
    level = sections[(t // 8).astype(int)]
    mono = (0.5 * kick + bass) * level
    mix = mono[:, None] + (band + hats) * level[:, None]
    return (0.35 * mix).astype(np.float32)
