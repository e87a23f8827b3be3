"""Target sets: what a genre or a destination expects of a master, read from JSON.

Each `<name>.json` here is one genre (`"kind": "genre"`) or destination
(`"kind": "destination"`); `_base.json` holds what every mix should do whatever
its style and is merged under both. A name may combine a genre and a
destination, `trap+streaming`: the genre's targets with the destination's
loudness and peak. Every number carries a `why` in its file; README.md there
explains the sources. Pure Python (json and math): the API imports this module
to validate genre names without loading numpy.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chalicelib.analysis.bands import BANDS
from chalicelib.analysis.errors import AnalysisError
from chalicelib.errors import shown

TARGETS_DIR = Path(__file__).parent
DEFAULT_TARGET = "streaming"
KINDS = ("range", "max", "min")

# The spectral model (see README.md): energy per octave, in dB, as a function of
# frequency: flat below KNEE_HZ then sloping by `tilt` dB per octave, plus a bass
# shelf, a high-pass at `highpassHz` and a gentle roll-off above 16 kHz.
KNEE_HZ = 200.0
BASS_SHELF_HZ = 120.0
ROLL_OFF_HZ = 16000.0


@dataclass(frozen=True)
class Target:
    """One metric's expectation: `range` is target +- tolerance, `max` and `min` are
    one-sided (anything below/above target + tolerance is fine)."""

    metric: str
    kind: str
    target: float
    tolerance: float
    falloff: float  # how far beyond the tolerance the metric's score halves
    weight: float
    why: str


@dataclass(frozen=True)
class TargetSet:
    name: str
    title: str
    description: str
    targets: dict[str, Target]


@cache
def names() -> list[str]:
    """Every genre and destination name (combinations `genre+destination` also work)."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.json") if not p.stem.startswith("_"))


@cache
def aliases() -> dict[str, str]:
    """Other spellings people type ("hip-hop", "r&b", "dnb", "ebu") -> the file's name."""
    return {_normal(alias): name for name in names() for alias in _read(name).get("aliases", [])}


def _normal(part: str) -> str:
    """Case, spaces and hyphens do not matter: "Drum and Bass" is drum_and_bass."""
    return re.sub(r"[\s\-]+", "_", part.strip().lower())


def canonical(part: str) -> str | None:
    """The target file a typed name means, or None."""
    normal = _normal(part)
    return normal if normal in names() else aliases().get(normal)


def catalogue() -> list[dict[str, str]]:
    """Every name with its title, kind (genre or destination) and description, for pickers."""
    return [
        {
            "name": name,
            "title": _read(name)["title"],
            "kind": _read(name)["kind"],
            "description": _read(name).get("description", ""),
        }
        for name in names()
    ]


def load(name: str | None) -> TargetSet:
    """The merged targets for a name: base, then genre, then destination."""
    typed = (name or DEFAULT_TARGET).strip()
    found = [canonical(p) for p in typed.split("+")]
    if len(found) > 2 or None in found:
        guess: list[str] = []
        if len(typed) <= 40:  # a guess costs len(typed) * len(names): only for typos
            guess = difflib.get_close_matches(_normal(typed), [*names(), *aliases()], n=1)
        hint = f" (did you mean {canonical(guess[0])}?)" if guess else ""
        raise AnalysisError(
            "unknown_genre", f"unknown genre {shown(typed)!r}{hint}; known: {', '.join(names())}"
        )
    parts = [p for p in found if p is not None]
    name = "+".join(parts)
    files = [_read(p) for p in parts]
    kinds = [f["kind"] for f in files]
    if len(files) == 2 and kinds != ["genre", "destination"]:
        raise AnalysisError(
            "unknown_genre",
            f"{shown(name)!r}: combine a genre with a destination, as 'trap+streaming'",
        )
    merged: dict[str, Target] = {}
    for data in [_read("_base"), *files]:
        merged.update(_targets(data))
    return TargetSet(
        name=name,
        title=" + ".join(f["title"] for f in files),
        description=" ".join(f["description"] for f in files),
        targets=merged,
    )


def load_reference(
    reference: dict[str, Any], value_of: Callable[[dict[str, Any], str], float | None]
) -> TargetSet:
    """Targets that are the reference track's own values, with `_reference.json`'s
    tolerances, capped by the standards.

    Metrics the reference lacks (stereo of a mono file) are left out. A spec's
    `ceiling` caps a one-sided limit (a reference that peaks at +0.4 dBTP does not
    make +0.4 dBTP acceptable: the limit stays -1 dBTP); a spec's own `target` is
    used whatever the reference does (clipped samples: none). A band where the
    reference has almost no energy (`emptyBelowDb` under the whole mix: a lossy or
    low-sample-rate reference above its bandwidth) gives no target.
    """
    data = _read("_reference")
    specs = dict(data["metrics"])
    specs.update({f"band.{band}": data["bands"] for band, _, _ in BANDS})
    found = {}
    for metric, spec in specs.items():
        value = float(spec["target"]) if "target" in spec else value_of(reference, metric)
        if value is None:
            continue
        if "emptyBelowDb" in spec and value < float(spec["emptyBelowDb"]):
            continue
        tolerance = float(spec["tolerance"])
        why = spec["why"]
        ceiling = spec.get("ceiling")
        if ceiling is not None and spec["kind"] == "max" and value + tolerance > ceiling["limit"]:
            value, tolerance = float(ceiling["limit"]), 0.0
            why = f"{why} Capped: {ceiling['why']}"
        found[metric] = Target(
            metric=metric,
            kind=spec["kind"],
            target=value,
            tolerance=tolerance,
            falloff=float(spec["falloff"]),
            weight=float(spec["weight"]),
            why=why,
        )
    return TargetSet("reference", data["title"], data["description"], found)


@cache
def _read(stem: str) -> dict[str, Any]:
    with (TARGETS_DIR / f"{stem}.json").open(encoding="utf-8") as handle:
        return json.load(handle)


def _targets(data: dict[str, Any]) -> dict[str, Target]:
    found = {
        metric: Target(
            metric=metric,
            kind=spec.get("kind", "range"),
            target=float(spec["target"]),
            tolerance=float(spec.get("tolerance", 0.0)),
            falloff=float(spec["falloff"]),
            weight=float(spec.get("weight", 1.0)),
            why=spec["why"],
        )
        for metric, spec in data.get("metrics", {}).items()
    }
    model = data.get("spectrum")
    if model:
        for band, level in band_levels(
            model["tiltDbPerOctave"], model["bassDb"], model["highpassHz"]
        ).items():
            found[f"band.{band}"] = Target(
                metric=f"band.{band}",
                kind="range",
                target=round(level, 1),
                tolerance=float(model["tolerance"].get(band, model["tolerance"]["default"])),
                falloff=float(model["falloff"]),
                weight=float(model["weight"]),
                why=model["why"],
            )
    return found


def model_density(f: float, tilt: float, bass_db: float, highpass_hz: float) -> float:
    """The spectral model's energy per octave at f Hz, in dB (README: the spectral model)."""
    return (
        tilt * math.log2(max(f, KNEE_HZ) / KNEE_HZ)
        + bass_db / (1.0 + (f / BASS_SHELF_HZ) ** 2)
        - 10.0 * math.log10(1.0 + (highpass_hz / f) ** 4)
        - 10.0 * math.log10(1.0 + (f / ROLL_OFF_HZ) ** 4)
    )


_STEPS = 48  # integration steps per octave


def _model_energy(low: float, high: float, model: tuple[float, float, float]) -> float:
    """The model's energy from low to high Hz, in steps of 1/48 octave (relative units)."""
    count = max(1, round(math.log2(high / low) * _STEPS))
    return sum(
        10.0 ** (model_density(low * 2.0 ** ((i + 0.5) / _STEPS), *model) / 10.0)
        for i in range(count)
    )


def band_levels(tilt: float, bass_db: float, highpass_hz: float) -> dict[str, float]:
    """Each band's share of the 20 Hz - 20 kHz energy, in dB, under the spectral model."""
    model = (tilt, bass_db, highpass_hz)
    energy = {band: _model_energy(low, high, model) for band, low, high in BANDS}
    total = sum(energy.values())
    return {band: 10.0 * math.log10(e / total) for band, e in energy.items()}


def spectrum_corridor(
    name: str | None, bands: list[tuple[float, float, float]]
) -> list[tuple[float, float]] | None:
    """The genre's target corridor on any grid of bands (centre, low, high Hz): the
    model's share of the 20 Hz - 20 kHz energy in each band, in dB, minus/plus the
    tolerance of the seven-band target the centre falls in. None when the name has no
    spectral model (a destination alone, such as the default `streaming`)."""
    genre = canonical((name or DEFAULT_TARGET).split("+")[0])
    if genre is None:
        return None
    spec = _read(genre).get("spectrum")
    if not spec:
        return None
    model = (spec["tiltDbPerOctave"], spec["bassDb"], spec["highpassHz"])
    total = sum(_model_energy(low, high, model) for _, low, high in BANDS)
    corridor = []
    for centre, low, high in bands:
        band = next((b for b, lo, hi in BANDS if lo <= centre < hi), BANDS[-1][0])
        tolerance = float(spec["tolerance"].get(band, spec["tolerance"]["default"]))
        level = 10.0 * math.log10(_model_energy(low, high, model) / total)
        corridor.append((level - tolerance, level + tolerance))
    return corridor
