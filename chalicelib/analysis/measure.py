"""Every measurement of one track, assembled into the result's blocks.

The only module that walks the channels: each channel (a strided view, never a
copy) goes to the peak, true-peak, K-weighting and spectrum code in turn, and
each of those works in chunks, so the memory high-water mark is the decoded
array plus a few megabytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chalicelib.analysis import dynamics, loudness, spectrum, stereo, truepeak
from chalicelib.analysis.arrays import as_frames, dot
from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.limits import Limits

SCHEMA_VERSION = 1


def measure(
    samples: np.ndarray,
    sample_rate: int,
    *,
    file_info: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The result dict of DESIGN.md without its `comparison` block."""
    x = as_frames(samples)
    frames, channels = x.shape
    full_scale = dynamics.clip_level(
        (file_info or {}).get("subtype"), getattr(samples, "dtype", None)
    )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise AnalysisError("invalid_input", f"sample_rate must be an integer, not {sample_rate!r}")
    sample_rate = int(sample_rate)
    (limits or Limits()).check(frames, channels, sample_rate)

    peaks = [truepeak.block_peaks(x[:, c]) for c in range(channels)]
    if not all(np.isfinite(p).all() for p in peaks):  # max() propagates NaN into the peaks
        bad = sum(int(np.count_nonzero(~np.isfinite(x[:, c]))) for c in range(channels))
        raise AnalysisError("invalid_samples", f"{bad:,} samples are NaN or infinite")
    sample_peak = max(float(p.max()) for p in peaks)

    weights = loudness.channel_weights(channels)
    sos = loudness.k_weighting_sos(sample_rate)
    energies: list[loudness.ChannelEnergy] = []
    used_weights: list[float] = []
    freqs, power = np.zeros(0), np.zeros(0)
    sum_squares, clipped, true_peak = 0.0, 0, 0.0
    # Loudest channel first: its peak lets the others skip most of their blocks.
    for c in sorted(range(channels), key=lambda ch: -float(peaks[ch].max())):
        column = x[:, c]  # a strided view: every step below copies only small chunks
        sum_squares += dot(column, column)
        clipped += dynamics.clipped_samples(column, peaks[c], truepeak.BLOCK, full_scale)
        true_peak = truepeak.true_peak(column, sample_rate, peaks[c], floor=true_peak)
        if weights[c] > 0.0:
            energies.append(loudness.channel_energy(column, sample_rate, sos))
            used_weights.append(weights[c])
        freqs, channel_power = spectrum.power_spectrum(column, sample_rate)
        power = channel_power if len(power) == 0 else power + channel_power

    loud = loudness.measure_loudness(energies, tuple(used_weights), frames, sample_rate)
    spec = spectrum.measure_spectrum(freqs, power / channels)
    image = stereo.measure_stereo(x[:, 0], x[:, 1]) if channels >= 2 else None

    reasons = {f"loudness.{name}": why for name, why in loud.reasons.items()}
    true_peak_db = dynamics.amplitude_db(true_peak)
    sample_peak_db = dynamics.amplitude_db(sample_peak)
    rms_db = dynamics.db(sum_squares / (frames * channels))
    if sample_peak_db is None:
        for name in ("peaks.truePeakDbtp", "peaks.samplePeakDbfs", "dynamics.rmsDbfs"):
            reasons[name] = "silence: every sample is zero"
    plr = dynamics.difference(true_peak_db, loud.integrated)
    psr = dynamics.difference(true_peak_db, loud.short_term_max)
    if plr is None:
        reasons["dynamics.plrDb"] = "needs the integrated loudness and the true peak"
    if psr is None:
        reasons["dynamics.psrDb"] = "needs the short-term maximum and the true peak"
    if image is None:
        reasons["stereo"] = "mono: a single channel has no stereo image"
    elif image.correlation is None:
        reasons["stereo.correlation"] = "a channel of the front pair is silent"
    nyquist = sample_rate / 2.0
    if spec.centroid_hz is None:
        reasons["spectrum"] = "silence: no energy between 20 Hz and 20 kHz"
    for band in spec.bands:
        if band.low_hz >= nyquist:
            reasons[f"spectrum.{band.name}"] = (
                f"above the Nyquist frequency ({nyquist:g} Hz) of a {sample_rate} Hz file"
            )

    info = {"format": None, "subtype": None, **(file_info or {})}
    return {
        "schemaVersion": SCHEMA_VERSION,
        "file": {
            "format": info["format"],
            "subtype": info["subtype"],
            "sampleRate": sample_rate,
            "channels": channels,
            "layout": loudness.layout_name(channels),
            "frames": frames,
            "durationSeconds": round(frames / sample_rate, 3),
        },
        "loudness": {
            "integratedLufs": _r(loud.integrated),
            "rangeLu": _r(loud.range_lu),
            "momentaryMaxLufs": _r(loud.momentary_max),
            "shortTermMaxLufs": _r(loud.short_term_max),
            "shortTermSeries": [{"t": t, "lufs": _r(v)} for t, v in loud.short_term_series],
        },
        "peaks": {
            "truePeakDbtp": _r(true_peak_db),
            "samplePeakDbfs": _r(sample_peak_db),
            "clippedSamples": clipped,
            "oversampling": truepeak.oversampling_factor(sample_rate),
        },
        "dynamics": {
            "rmsDbfs": _r(rms_db),
            "crestFactorDb": _r(dynamics.difference(sample_peak_db, rms_db)),
            "plrDb": _r(plr),
            "psrDb": _r(psr),
        },
        "stereo": None
        if image is None
        else {
            "correlation": _r(image.correlation, 3),
            "widthPercent": _r(image.width_percent, 1),
            "balanceDb": _r(image.balance_db),
        },
        "spectrum": {
            "bands": [
                {
                    "name": band.name,
                    "lowHz": band.low_hz,
                    "highHz": band.high_hz,
                    "energyDb": _r(dynamics.db(band.power)),
                    "sharePercent": _r(band.share_percent),
                }
                for band in spec.bands
            ],
            "centroidHz": _r(spec.centroid_hz, 1),
        },
        "reasons": reasons,
    }


def _r(value: float | None, digits: int = 2) -> float | None:
    """A JSON-safe rounded float: None stays None, and so does anything not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits) + 0.0  # + 0.0: no negative zero
