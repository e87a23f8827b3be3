"""The one exception the analysis raises for bad audio, with a stable code.

A branch of chalicelib.errors' tree (pure Python: no numpy is loaded by importing it).

Bad audio fails the same way on every attempt, so `retryable` is False: the
consumer fails such a job at once instead of burning retries on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from chalicelib.errors import ErrorFamily

# code -> what it means; the codes are part of the API (job `error.code`).
CODES: dict[str, str] = {
    "file_not_found": "the file does not exist",
    "unsupported_format": "not an audio file, no audio stream in it, or a codec not decoded",
    "corrupt_file": "the file is damaged or truncated, or decoding it overran its time limit",
    "empty_audio": "the file holds no audio frames",
    "too_long": "longer than the duration limit",
    "too_large": "more samples (duration x channels x rate) than the limit allows",
    "too_many_channels": "more channels than the limit",
    "unsupported_sample_rate": "sample rate outside the accepted range",
    "invalid_samples": "NaN or infinite sample values",
    "invalid_input": "an array that is not audio samples (wrong shape or type)",
    "unknown_genre": "no target set of that name",
    "invalid_reference": "the reference is not an analysis result",
}


class AnalysisError(ErrorFamily):
    """Bad input audio (or a bad genre/reference): HTTP 400, never worth retrying.

    Raise as AnalysisError(code, message) with a code from CODES.
    """

    # too_large means one thing everywhere: 413, as for an upload over the size limit
    codes: ClassVar[Mapping[str, int]] = {**dict.fromkeys(CODES, 400), "too_large": 413}
    status = 400
    retryable = False
