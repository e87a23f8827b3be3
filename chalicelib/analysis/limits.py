"""What the analysis accepts: duration, channels, sample rate and total samples.

The memory limit is by total samples (frames x channels) because that, not the
duration alone, decides the size of the decoded float32 array: 20 minutes of
8-channel 384 kHz audio would need 14.7 GB. The analysis works in chunks on the
decoded array, so a process peaks at the decoded size plus about 110 MB of
Python, numpy and scipy: 555 MB for the default of 115.2 million samples (20
minutes of stereo at 48 kHz, 461 MB decoded; `bench/analysis.py --max-samples`),
well inside a 2 GB Lambda. Longer or wider files are refused, from the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.analysis.errors import AnalysisError

DEFAULT_MAX_SAMPLES = 20 * 60 * 48_000 * 2


@dataclass(frozen=True)
class Limits:
    max_duration_seconds: float = 1200.0
    max_channels: int = 8
    min_sample_rate: int = 8000
    max_sample_rate: int = 384_000
    max_samples: int = DEFAULT_MAX_SAMPLES

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Limits from chalicelib.settings.Settings (fields of the same names)."""
        return cls(
            max_duration_seconds=float(settings.max_duration_seconds),
            max_channels=int(settings.max_channels),
            min_sample_rate=int(settings.min_sample_rate),
            max_sample_rate=int(settings.max_sample_rate),
            max_samples=int(settings.max_samples),
        )

    def check(self, frames: int, channels: int, sample_rate: int) -> None:
        """Raise AnalysisError if audio of this shape must not be decoded or analysed.

        Called on the header before decoding, so a 2-hour file is refused in
        milliseconds without reading its samples.
        """
        if not self.min_sample_rate <= sample_rate <= self.max_sample_rate:
            raise AnalysisError(
                "unsupported_sample_rate",
                f"sample rate {sample_rate} Hz is outside {self.min_sample_rate}-"
                f"{self.max_sample_rate} Hz",
            )
        if channels < 1:
            raise AnalysisError("empty_audio", "the file has no channels")
        if channels > self.max_channels:
            raise AnalysisError(
                "too_many_channels", f"{channels} channels; at most {self.max_channels} accepted"
            )
        if frames <= 0:
            raise AnalysisError("empty_audio", "the file holds no audio frames")
        duration = frames / sample_rate
        if duration > self.max_duration_seconds:
            raise AnalysisError(
                "too_long",
                f"{_minutes(duration)} long; at most {_minutes(self.max_duration_seconds)} "
                "accepted",
            )
        if frames * channels > self.max_samples:
            raise AnalysisError(
                "too_large",
                f"{frames * channels:,} samples ({channels} channels at {sample_rate} Hz for "
                f"{_minutes(duration)}); at most {self.max_samples:,} fit in memory",
            )


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d} min" if minutes else f"{seconds:.1f} s"
