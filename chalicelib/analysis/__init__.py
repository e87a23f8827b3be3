"""The analysis engine: measure a track the way mastering engineers do, then score it.

    result = analyze_file("mix.wav", genre="trap")
    result = analyze(samples, 48000, reference=earlier_result)

Importing this package is cheap: numpy, scipy and soundfile load on the first
analyze() / analyze_file() call, so the API functions can use AnalysisError,
Limits and genres() without the analysis layer's cold-start cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.analysis import targets as _targets
from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.limits import Limits

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AnalysisError", "Limits", "analyze", "analyze_file", "genres"]


def genres() -> list[str]:
    """Available target names: genres and destinations (`genre+destination` also works)."""
    return _targets.names()


def analyze(
    samples: np.ndarray,
    sample_rate: int,
    genre: str | None = None,
    reference: dict[str, Any] | None = None,
    *,
    file_info: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The full result for samples shaped (frames, channels) or (frames,) for mono.

    With `reference` (an earlier result) the comparison is against it and `genre`
    is ignored; otherwise against the genre's targets (None: "streaming").
    Raises AnalysisError (never retryable) for bad input.
    """
    from chalicelib.analysis.compare import check_reference
    from chalicelib.analysis.measure import measure

    _validate_target(genre, reference, check_reference)
    result = measure(samples, sample_rate, file_info=file_info, limits=limits)
    return judge(result, genre, reference)


def analyze_file(
    path: str | Path,
    genre: str | None = None,
    reference: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Decode `path` (WAV, FLAC, OGG, MP3, AIFF...) and analyze() it.

    The genre, the reference and the header are checked before any sample is
    decoded, so bad requests and over-long files fail fast.
    """
    from chalicelib.analysis.compare import check_reference
    from chalicelib.analysis.decode import open_audio
    from chalicelib.analysis.measure import measure_stream

    _validate_target(genre, reference, check_reference)
    with open_audio(path, limits) as stream:
        result = measure_stream(stream, limits)
    return judge(result, genre, reference)


def judge(
    result: dict[str, Any], genre: str | None, reference: dict[str, Any] | None
) -> dict[str, Any]:
    """What follows the measurement, pure Python on the result: the streaming
    platforms, the comparison, and for the charts the genre's spectrum corridor or
    (reference mode) the reference's series."""
    from chalicelib.analysis.compare import compare
    from chalicelib.analysis.platforms import platforms_block

    result["platforms"] = platforms_block(result)
    result["comparison"] = compare(result, genre, reference)
    if reference is None:
        add_corridor(result, genre)
    else:
        result["reference"] = overlay(reference)
    return result


def add_corridor(result: dict[str, Any], genre: str | None) -> None:
    """The genre's target corridor on spectrum.curve's points (lowDb, highDb), if it has one."""
    from chalicelib.analysis.spectrum_curve import band_edges

    curve = (result.get("spectrum") or {}).get("curve")
    if not curve:
        return
    bands = [(p["hz"], *band_edges(p["hz"])) for p in curve]
    corridor = _targets.spectrum_corridor(genre, bands)
    if corridor is None:
        return
    for point, (low, high) in zip(curve, corridor, strict=True):
        point["lowDb"], point["highDb"] = round(low, 2), round(high, 2)


def overlay(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference track's series, carried in a reference-mode result for the charts."""

    def pick(block: str, *fields: str) -> dict[str, Any]:
        source = reference.get(block) if isinstance(reference.get(block), dict) else {}
        return {name: source[name] for name in fields if name in source}

    return {
        "loudness": pick("loudness", "integratedLufs", "shortTermSeries", "momentarySeries"),
        "spectrum": pick("spectrum", "curve"),
        "stereo": pick("stereo", "correlationSeries", "lowEndCorrelation"),
    }


def _validate_target(genre: str | None, reference: Any, check_reference: Any) -> None:
    if reference is not None:
        check_reference(reference)
    else:
        _targets.load(genre)
