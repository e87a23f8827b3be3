"""The one exception the analysis raises for bad audio, with a stable code.

Bad audio fails the same way on every attempt, so `retryable` is False: the
consumer fails such a job at once instead of burning retries on it.
"""

from __future__ import annotations

# code -> what it means; the codes are part of the API (job `error.code`).
CODES: dict[str, str] = {
    "file_not_found": "the file does not exist",
    "unsupported_format": "not an audio file, no audio stream in it, or a codec not decoded",
    "corrupt_file": "the file is damaged or truncated, or decoding it overran its time limit",
    "empty_audio": "the file holds no audio frames",
    "too_long": "longer than the duration limit",
    "too_large": "more samples (duration x channels x rate) than the memory limit allows",
    "too_many_channels": "more channels than the limit",
    "unsupported_sample_rate": "sample rate outside the accepted range",
    "invalid_samples": "NaN or infinite sample values",
    "invalid_input": "an array that is not audio samples (wrong shape or type)",
    "unknown_genre": "no target set of that name",
    "invalid_reference": "the reference is not an analysis result",
}


class AnalysisError(Exception):
    """Bad input audio (or a bad genre/reference): never worth retrying."""

    retryable = False

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown analysis error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
