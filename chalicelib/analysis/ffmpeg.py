"""FFmpeg as the decoder: where the binary is, how it is called, and what its log says.

Every upload but a plain PCM WAVE or AIFF (read in process by pcm.py, to the same bits)
is decoded by an `ffmpeg` child process that writes float32 PCM in a WAVE
container to a pipe (decode.py reads it block by block). A child can be
killed, so no input can hold the consumer in a C-level loop (libsndfile 1.2.2
loops forever on a WAV whose LIST/INFO sub-chunk size is 0xFFFFFFF4), and one
program reads every container people upload: WAV/WAVEX/RF64/BW64, FLAC, AIFF/AIFC,
MP3, Ogg Vorbis, Opus, AAC/M4A and ALAC.

The binary is found here only: `IMAGEIO_FFMPEG_EXE` or the static build of the
`imageio-ffmpeg` wheel (in the Lambda layer and the dev virtualenv), else `ffmpeg`
on PATH.
"""

from __future__ import annotations

import functools
import re
import shutil
import struct
from dataclasses import dataclass

# Demuxers an upload may use. Everything else (playlists such as HLS or ffconcat
# that open other files or URLs, image and text "formats", devices) is refused.
DEMUXERS = (
    "wav,w64,flac,mp3,ogg,aiff,mov,mp4,m4a,matroska,webm,caf,aac,ac3,eac3,"
    "wv,ape,tta,dsf,au,asf,avi,mpc,mpc8,amr,amrnb,amrwb"
)

# ffmpeg codec name -> the `file.subtype` libsndfile would report for it.
_SUBTYPES = {
    "pcm_u8": "PCM_U8",
    "pcm_s8": "PCM_S8",
    "pcm_s16le": "PCM_16",
    "pcm_s16be": "PCM_16",
    "pcm_s24le": "PCM_24",
    "pcm_s24be": "PCM_24",
    "pcm_s32le": "PCM_32",
    "pcm_s32be": "PCM_32",
    "pcm_f32le": "FLOAT",
    "pcm_f32be": "FLOAT",
    "pcm_f64le": "DOUBLE",
    "pcm_f64be": "DOUBLE",
    "pcm_mulaw": "ULAW",
    "pcm_alaw": "ALAW",
    "adpcm_ima_wav": "IMA_ADPCM",
    "adpcm_ms": "MS_ADPCM",
    "mp3": "MPEG_LAYER_III",
    "mp2": "MPEG_LAYER_II",
    "vorbis": "VORBIS",
    "opus": "OPUS",
    "aac": "AAC",
    "ac3": "AC3",
    "eac3": "EAC3",
}
# Codecs whose subtype is their bit depth (libsndfile: FLAC "PCM_24", CAF "ALAC_24").
_DEPTH_PREFIX = {"flac": "PCM", "alac": "ALAC", "wavpack": "PCM", "tta": "PCM", "ape": "PCM"}
_LOSSLESS = {"flac", "alac", "wavpack", "tta", "ape", "truehd", "mlp", "wmalossless"}

# ffmpeg demuxer name (its first alias) -> `file.format`.
_FORMATS = {
    "wav": "WAV",
    "w64": "W64",
    "flac": "FLAC",
    "mp3": "MP3",
    "ogg": "OGG",
    "aiff": "AIFF",
    "mov": "MP4",
    "matroska": "MKV",
    "caf": "CAF",
    "aac": "AAC",
    "wv": "WAVPACK",
    "ape": "APE",
    "asf": "WMA",
}
# Formats named after their codec rather than their container (libsndfile calls an
# Ogg Opus file "OGG"; the issue and users call it Opus, and M4A by its codec).
_BY_CODEC = {"opus": "OPUS", "aac": "AAC", "alac": "ALAC"}

# WAVE_FORMAT_EXTENSIBLE dwChannelMask bits, in bit order, by ffmpeg's names.
MASK_POSITIONS = (
    "FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC",
    "SL", "SR", "TC", "TFL", "TFC", "TFR", "TBL", "TBC", "TBR",
)  # fmt: skip
# Positions of a file that names none: the WAVE (SMPTE/ITU) order for the count.
DEFAULT_POSITIONS: dict[int, tuple[str, ...]] = {
    1: ("FC",),
    2: ("FL", "FR"),
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}

_FLOAT_FORMAT = 3  # WAVE_FORMAT_IEEE_FLOAT
_EXTENSIBLE = 0xFFFE
_LEVEL = re.compile(r"\[(panic|fatal|error|warning|info)\] ?(.*)$")
_INPUT = re.compile(r"^Input #0, ([^ ]+), from ")
_AUDIO = re.compile(r"^\s*Stream #0:\d+\S*: Audio: (\w+)(.*)$")
_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_BITS = re.compile(r"\((\d+) bit\)")
_SAMPLE_FORMAT_BITS = {"u8": 8, "s16": 16, "s32": 32, "s64": 64, "flt": 32, "dbl": 64}
# Warnings that say the file ends before its own stream does (a cut-off upload).
_TRUNCATION_WARNINGS = ("filesize and duration do not match",)


@functools.cache
def binary() -> str | None:
    """Path of the ffmpeg to run, or None if there is none (the one place that decides)."""
    try:
        import imageio_ffmpeg  # the wheel's static build; honours IMAGEIO_FFMPEG_EXE

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def command(executable: str, path: str) -> list[str]:
    """The decode command: the first audio stream of `path` as float32 WAVE on stdout.

    `-guess_layout_max 0` keeps ffmpeg from inventing a layout for a file that
    names none (its guess for 3 channels is 2.1, which would drop a centre channel
    from the loudness as an LFE); decode.py applies the WAVE default order instead.
    Only local files and the demuxers above may be opened.
    """
    return [
        executable,
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "level+info",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        DEMUXERS,
        "-guess_layout_max",
        "0",
        "-i",
        f"file:{path}",
        "-map",
        "0:a:0",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-c:a",
        "pcm_f32le",
        "-f",
        "wav",
        "pipe:1",
    ]


@dataclass(frozen=True)
class WavHeader:
    """The float32 WAVE header ffmpeg writes before the samples."""

    channels: int
    sample_rate: int
    mask: int  # 0: the file named no layout
    data_offset: int  # bytes before the first sample


def parse_wav_header(head: bytes) -> WavHeader | None:
    """The header at the start of ffmpeg's output, or None if more bytes are needed.

    Raises ValueError if the bytes are not the float32 WAVE ffmpeg was asked for.
    Chunk sizes are placeholders on a pipe; only the chunk layout up to `data` is read.
    """
    if len(head) < 12:
        return None
    if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise ValueError("decoder output is not WAVE")
    offset, fmt = 12, None
    while True:
        if len(head) < offset + 8:
            return None
        chunk, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
        if chunk == b"data":
            break
        if len(head) < offset + 8 + size:
            return None
        if chunk == b"fmt ":
            fmt = head[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise ValueError("decoder output has no fmt chunk")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    mask = 0
    if tag == _EXTENSIBLE and len(fmt) >= 40:
        mask = struct.unpack_from("<I", fmt, 20)[0]
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if tag != _FLOAT_FORMAT or bits != 32 or channels < 1:
        raise ValueError(f"decoder output is format {tag}, {bits} bits, {channels} channels")
    return WavHeader(channels, rate, mask, offset + 8)


def positions(mask: int, channels: int) -> tuple[str, ...]:
    """Channel positions from a WAVE channel mask; the WAVE order for the count if none.

    A mask whose bit count differs from the channel count says nothing reliable.
    """
    named = tuple(name for bit, name in enumerate(MASK_POSITIONS) if mask >> bit & 1)
    if mask and len(named) == channels:
        return named
    return DEFAULT_POSITIONS.get(channels, tuple(f"C{i + 1}" for i in range(channels)))


@dataclass(frozen=True)
class Log:
    """What ffmpeg's log says about the input and about problems decoding it."""

    demuxer: str | None = None  # first name of the input format, e.g. "wav", "mov"
    codec: str | None = None  # the audio stream's codec, e.g. "pcm_s24le", "aac"
    stream: str = ""  # the rest of its line: rate, layout, sample format, bit rate
    duration_seconds: float | None = None  # from the header: an estimate
    errors: tuple[str, ...] = ()  # error-level messages (and truncation warnings)


def parse_log(lines: list[str]) -> Log:
    """Read ffmpeg's `level+info` log lines (see command())."""
    demuxer = codec = duration = None
    stream = ""
    errors: list[str] = []
    for line in lines:
        match = _LEVEL.search(line)
        if match is None:
            continue
        level, text = match.groups()
        truncated = level == "warning" and any(w in text for w in _TRUNCATION_WARNINGS)
        if level in ("panic", "fatal", "error") or truncated:
            errors.append(text.strip())
        elif level == "info":
            if demuxer is None and (found := _INPUT.match(text)):
                demuxer = found.group(1).split(",")[0]
            elif codec is None and demuxer is not None and (found := _AUDIO.match(text)):
                codec, stream = found.group(1), found.group(2)
            elif duration is None and (found := _DURATION.match(text)):
                hours, minutes, seconds = found.groups()
                duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return Log(demuxer, codec, stream, duration, tuple(errors))


def format_name(demuxer: str | None, codec: str | None) -> str | None:
    """`file.format`: the container, or the codec where users know the file by it."""
    if codec in _BY_CODEC and demuxer in ("ogg", "mov", "matroska", "caf", "aac", None):
        return _BY_CODEC[codec]
    if demuxer is None:
        return None
    return _FORMATS.get(demuxer, demuxer.upper())


def subtype_name(codec: str | None, stream: str) -> str | None:
    """`file.subtype` in libsndfile's names: PCM_16, FLOAT, VORBIS, MPEG_LAYER_III ..."""
    if codec is None:
        return None
    if codec in _SUBTYPES:
        return _SUBTYPES[codec]
    if codec in _DEPTH_PREFIX:
        bits = _bits(stream)
        return f"{_DEPTH_PREFIX[codec]}_{bits}" if bits else codec.upper()
    return codec.upper()


def is_lossy(codec: str | None) -> bool:
    """Whether the codec discards information (MP3, Vorbis, Opus, AAC, ADPCM ...)."""
    if codec is None:
        return False
    if codec.startswith("pcm_") and codec not in ("pcm_mulaw", "pcm_alaw"):
        return False
    return codec not in _LOSSLESS


def _bits(stream: str) -> int | None:
    """Bit depth from a stream line's sample format: 's32 (24 bit)' -> 24, 's16p' -> 16."""
    if found := _BITS.search(stream):
        return int(found.group(1))
    for field in stream.split(","):
        name = field.strip().split(" ")[0].rstrip("p")
        if name in _SAMPLE_FORMAT_BITS:
            return _SAMPLE_FORMAT_BITS[name]
    return None
