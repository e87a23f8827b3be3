"""Channel positions: BS.1770-4 weights, layout names and the front pair.

Positions are ffmpeg's channel names (FL FR FC LFE BL BR SL SR ...), taken from
the file's own layout (WAVE_FORMAT_EXTENSIBLE mask, the container's layout) or,
without one, from the channel count (`ffmpeg.positions(0, count)`).

BS.1770-4 Annex 1, Table 3 weights a channel by where its loudspeaker stands:
1.41 (+1.5 dB) at 60-120 degrees azimuth below 30 degrees elevation, 1.0
elsewhere (front, back, above); the LFE is not measured (weight 0). Azimuths
here are the nominal ones of ITU-R BS.775 / BS.2051: the back pair BL/BR is the
surround pair at 110 degrees in a 5.0/5.1 layout (centre present, no side pair:
ffmpeg's and the WAVE mask's usual 5.1), and at 135-150 degrees beside a side
pair (7.1) or without a centre (quad).
"""

from __future__ import annotations

# Nominal azimuth in degrees (absolute) of each horizontal position.
_AZIMUTH: dict[str, float] = {
    "FC": 0.0,
    "FL": 30.0,
    "FR": 30.0,
    "FLC": 15.0,
    "FRC": 15.0,
    "WL": 60.0,
    "WR": 60.0,
    "SL": 90.0,
    "SR": 90.0,
    "SDL": 90.0,
    "SDR": 90.0,
    "BL": 135.0,
    "BR": 135.0,
    "BC": 180.0,
}
_SURROUND_BACK_AZIMUTH = 110.0  # BL/BR as the only surround pair of a 5.x layout
_LFE = {"LFE", "LFE2", "LFE3", "LOW_FREQUENCY", "LOW_FREQUENCY_2"}
SURROUND_WEIGHT = 1.41

_LAYOUTS: dict[tuple[str, ...], str] = {
    ("FC",): "mono",
    ("FL", "FR"): "stereo",
    ("FL", "FR", "LFE"): "2.1",
    ("FL", "FR", "FC"): "3.0",
    ("FL", "FR", "FC", "LFE"): "3.1",
    ("FL", "FR", "FC", "BC"): "4.0",
    ("FL", "FR", "BL", "BR"): "quad",
    ("FL", "FR", "SL", "SR"): "quad(side)",
    ("FL", "FR", "FC", "BL", "BR"): "5.0",
    ("FL", "FR", "FC", "SL", "SR"): "5.0(side)",
    ("FL", "FR", "FC", "LFE", "BL", "BR"): "5.1",
    ("FL", "FR", "FC", "LFE", "SL", "SR"): "5.1(side)",
    ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"): "6.1",
    ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"): "7.1",
}


def weight(position: str, positions: tuple[str, ...]) -> float:
    """BS.1770-4 weight G of one channel at `position` within the layout `positions`."""
    name = position.upper()
    if name in _LFE:
        return 0.0
    if name.startswith("T"):  # top / height channels: 30 degrees elevation or more
        return 1.0
    azimuth = _AZIMUTH.get(name)
    if name in ("BL", "BR") and "FC" in positions and not {"SL", "SR"} & set(positions):
        azimuth = _SURROUND_BACK_AZIMUTH
    if azimuth is not None and 60.0 <= azimuth <= 120.0:
        return SURROUND_WEIGHT
    return 1.0


def weights(positions: tuple[str, ...]) -> tuple[float, ...]:
    """BS.1770-4 weights for every channel of a layout."""
    return tuple(weight(p, positions) for p in positions)


def layout_name(positions: tuple[str, ...]) -> str:
    """`mono`, `stereo`, `5.1` ... or `N channels` for layouts without a usual name."""
    return _LAYOUTS.get(tuple(p.upper() for p in positions), f"{len(positions)} channels")


def front_pair(positions: tuple[str, ...]) -> tuple[int, int] | None:
    """Indices of the front left/right pair the stereo image is measured on: FL and
    FR where named, else the first two channels; None for mono."""
    names = [p.upper() for p in positions]
    if "FL" in names and "FR" in names:
        return names.index("FL"), names.index("FR")
    return (0, 1) if len(names) >= 2 else None
