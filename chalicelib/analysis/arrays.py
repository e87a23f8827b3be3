"""Input arrays: validation and conversion to float32 frames."""

from __future__ import annotations

import numpy as np

from chalicelib.analysis.errors import AnalysisError

_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int8): 2.0**7}


def as_frames(samples: object) -> np.ndarray:
    """A float32 array shaped (frames, channels) from what callers pass.

    1-D arrays are mono. Integer PCM is scaled to [-1, 1) the way soundfile and
    libsndfile do (int16 / 32768); float64 is narrowed to float32, which keeps
    24-bit audio exact.
    """
    if not isinstance(samples, np.ndarray):
        raise AnalysisError("invalid_input", "samples must be a numpy array")
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    if samples.ndim != 2:
        raise AnalysisError(
            "invalid_input", f"samples must be shaped (frames, channels), not {samples.shape}"
        )
    if samples.dtype in _INT_SCALE:
        return (samples / np.float32(_INT_SCALE[samples.dtype])).astype(np.float32)
    if samples.dtype == np.uint8:  # 8-bit WAV is offset binary
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if samples.dtype.kind != "f":
        raise AnalysisError("invalid_input", f"unsupported sample type {samples.dtype}")
    return np.asarray(samples, dtype=np.float32)
