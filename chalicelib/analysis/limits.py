"""What the analysis accepts: duration, channels, sample rate, total samples, decode time.

Audio is decoded and measured block by block, so memory does not grow with
length; what grows is work. The duration limit (default 4 hours: DJ sets,
albums, podcasts) and the total-samples limit (frames x channels, default 4 hours
of stereo 48 kHz) bound that work; both are enforced on what is decoded, as it is
decoded, because a header's frame count is only an estimate (decode.py). An
uncompressed file whose header already shows it too long is refused before decoding.

The decoder runs under a time budget: `decode_grace_seconds` plus one second per
`decode_min_rate` samples delivered. A decoder that stops delivering (a loop in C
on a malformed file) or crawls fails the job `corrupt_file` instead of holding a
consumer; the time a consumer spends measuring is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.analysis.errors import AnalysisError

DEFAULT_MAX_DURATION_SECONDS = 4 * 3600.0
DEFAULT_MAX_SAMPLES = 4 * 3600 * 48_000 * 2


@dataclass(frozen=True)
class Limits:
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    max_channels: int = 8
    min_sample_rate: int = 8000
    max_sample_rate: int = 384_000
    max_samples: int = DEFAULT_MAX_SAMPLES
    # The decoder may wait this long for its first audio, then must deliver at least
    # decode_min_rate samples (frames x channels) per second of waiting: ffmpeg decodes
    # AAC/MP3 at 20-100 million samples/s on one core, so 1 million leaves a wide margin.
    decode_grace_seconds: float = 20.0
    decode_min_rate: float = 1_000_000.0

    def decode_budget(self, samples: int) -> float:
        """Seconds the decoder may have taken to deliver `samples` samples."""
        return self.decode_grace_seconds + samples / self.decode_min_rate

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
        """Raise AnalysisError if audio of this shape must not be analysed (whole arrays)."""
        self.check_format(channels, sample_rate)
        if frames <= 0:
            raise AnalysisError("empty_audio", "the file holds no audio frames")
        self.check_length(frames, channels, sample_rate)

    def check_format(self, channels: int, sample_rate: int) -> None:
        """Raise AnalysisError for a sample rate or channel count outside the limits."""
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

    def check_length(
        self, frames: int, channels: int, sample_rate: int, *, so_far: bool = False
    ) -> None:
        """Raise AnalysisError if `frames` frames are over the duration or sample limits.

        `so_far`: called while decoding, with the frames decoded until now.
        """
        duration = frames / sample_rate
        more = "more than " if so_far else ""
        if duration > self.max_duration_seconds:
            raise AnalysisError(
                "too_long",
                f"{more}{_minutes(duration)} long; at most {_minutes(self.max_duration_seconds)} "
                "accepted",
            )
        if frames * channels > self.max_samples:
            raise AnalysisError(
                "too_large",
                f"{more}{frames * channels:,} samples ({channels} channels at {sample_rate} Hz for "
                f"{_minutes(duration)}); at most {self.max_samples:,} accepted",
            )


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d} h"
    return f"{minutes}:{rest:02d} min" if minutes else f"{seconds:.1f} s"
