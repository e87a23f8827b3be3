"""The seven spectral bands, shared by the measurement and the targets (no numpy)."""

from __future__ import annotations

# (name, low Hz, high Hz): a band holds frequencies low <= f < high.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("sub", 20.0, 60.0),
    ("bass", 60.0, 150.0),
    ("lowMid", 150.0, 500.0),
    ("mid", 500.0, 2000.0),
    ("highMid", 2000.0, 5000.0),
    ("presence", 5000.0, 10000.0),
    ("air", 10000.0, 20000.0),
)
LABELS: dict[str, str] = {
    "sub": "sub (20-60 Hz)",
    "bass": "bass (60-150 Hz)",
    "lowMid": "low-mid (150-500 Hz)",
    "mid": "mid (500 Hz-2 kHz)",
    "highMid": "high-mid (2-5 kHz)",
    "presence": "presence (5-10 kHz)",
    "air": "air (10-20 kHz)",
}
