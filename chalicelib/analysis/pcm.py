"""Uncompressed WAVE and AIFF read in this process: the fast path for the commonest uploads.

ffmpeg (ffmpeg.py) stays the reference decoder. A file is read here only when it is
a local regular file whose layout ffmpeg 7's demuxers read in exactly one way, so
the samples (float32, bit for bit), the AudioInfo and the errors are the ffmpeg
path's (tests/test_decode_fast.py compares both over writer-made files):

- RIFF, RF64 or BW64 `WAVE` (RF64/BW64: `ds64` first, its 64-bit data size used);
  `fmt ` of WAVE_FORMAT_PCM (8-bit unsigned, 16/24/32-bit signed), IEEE_FLOAT
  (32/64-bit) or EXTENSIBLE with one of those subformats, all valid bits used, a
  channel mask of the 18 WAVE positions, frames of channels x bytes; one `data`
  chunk of whole frames, an even size, wholly inside the file; 16-bit data that
  does not start like an S/PDIF or DTS stream (ffmpeg would decode that);
- AIFF or AIFC (NONE, twos, sowt, fl32/FL32, fl64/FL64) of 8-32-bit integer or 32/64-bit
  float samples, a FORM size that is the file's, a COMM frame count that is the
  SSND chunk's, no CHAN chunk;
- and in both, the channel count and rate within the limits.

Anything else (a truncated file, a data size of 0 or 0xFFFFFFFF written by a
streaming writer, a second `fmt `/`data`, chunks ffmpeg refuses, RIFX, a pipe
such as `/dev/fd/N`) returns None from `probe`: decode.py then runs ffmpeg. The
chunk walks only move forward, read at most MAX_CHUNKS chunk headers and never
past the file's size, so no header can loop them (libsndfile 1.2.2 spins forever
on a LIST/INFO sub-chunk of size 0xFFFFFFF4; the walk skips LIST by its own
size). Reading is bounded by the data size.

Conversion follows libswresample's from what ffmpeg's pcm decoders deliver:
8-bit (x - 128) / 2^7, other integers left-aligned in 32 bits (24-bit) or as
they are, over 2^15 or 2^31; float64 rounded to float32; float32 as stored.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

import numpy as np

MAX_CHUNKS = 1024  # chunk headers read before giving the file to ffmpeg
_FMT_MAX = 1024  # a longer `fmt ` chunk is not plain PCM
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_GUID_TAIL = bytes.fromhex("000010008000 00aa00389b71".replace(" ", ""))  # KSDATAFORMAT_*
_MASK_BITS = 18  # WAVE speaker positions (ffmpeg.MASK_POSITIONS)
_BEXT_SIZE = 602  # a Broadcast WAVE `bext` chunk's fixed part (EBU Tech 3285)
# (AIFC compression, bits; 0: any) -> ffmpeg's codec. AIFF is AIFC's NONE.
_AIFF_CODECS = {
    (b"NONE", 8): "pcm_s8",
    (b"NONE", 16): "pcm_s16be",
    (b"NONE", 24): "pcm_s24be",
    (b"NONE", 32): "pcm_s32be",
    (b"twos", 8): "pcm_s8",
    (b"twos", 16): "pcm_s16be",
    (b"twos", 24): "pcm_s24be",
    (b"twos", 32): "pcm_s32be",
    (b"sowt", 16): "pcm_s16le",
    (b"fl32", 0): "pcm_f32be",
    (b"fl64", 0): "pcm_f64be",
    (b"FL32", 0): "pcm_f32be",  # libsndfile's spelling
    (b"FL64", 0): "pcm_f64be",
}
_SAMPLE_BYTES = {
    "pcm_u8": 1,
    "pcm_s8": 1,
    "pcm_s16le": 2,
    "pcm_s16be": 2,
    "pcm_s24le": 3,
    "pcm_s24be": 3,
    "pcm_s32le": 4,
    "pcm_s32be": 4,
    "pcm_f32le": 4,
    "pcm_f32be": 4,
    "pcm_f64le": 8,
    "pcm_f64be": 8,
}
_AIFC_VERSION1 = bytes.fromhex("a2805140")

# ffmpeg probes the first 32 packets (of 4 KiB) of 16-bit PCM WAVE data for coded audio.
_SNIFF = 32 * 4096
_SYNCS_NEEDED = 3
_SYNCS = (
    b"\x72\xf8\x1f\x4e",  # IEC 61937 Pa Pb (0xF872 0x4E1F), little-endian words
    b"\xfe\x7f\x01\x80",  # DTS 0x7FFE8001, 16-bit little-endian
    b"\x7f\xfe\x80\x01",  # DTS, 16-bit big-endian
    b"\xff\x1f\x00\xe8",  # DTS 0x1FFFE800, 14-bit little-endian
    b"\x1f\xff\xe8\x00",  # DTS, 14-bit big-endian
)

# (WAVE format tag, bits) -> ffmpeg's codec name (for AudioInfo: ffmpeg.subtype_name).
_CODECS = {
    (_PCM, 8): "pcm_u8",
    (_PCM, 16): "pcm_s16le",
    (_PCM, 24): "pcm_s24le",
    (_PCM, 32): "pcm_s32le",
    (_FLOAT, 32): "pcm_f32le",
    (_FLOAT, 64): "pcm_f64le",
}


@dataclass(frozen=True)
class PcmLayout:
    """Where a WAVE file's samples are and how they are stored."""

    format: str  # AudioInfo.format: "WAV" or "AIFF"
    codec: str  # ffmpeg's name: "pcm_s24le", "pcm_f32be", ...
    channels: int
    sample_rate: int  # Hz
    mask: int  # WAVEX dwChannelMask, 0 if none
    data_offset: int  # byte offset of the first sample
    data_bytes: int  # whole frames: a multiple of channels x sample_bytes
    sample_bytes: int  # 1, 2, 3, 4 or 8

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.channels * self.sample_bytes)


def probe(fd: int, max_channels: int, sample_rates: tuple[int, int]) -> PcmLayout | None:
    """The layout of the WAVE file open as `fd`, or None when ffmpeg must read it.

    Reads chunk headers with pread (the descriptor's offset is not moved); never
    raises for a malformed file (that is ffmpeg's to judge), only OSError on I/O.
    `max_channels` and `sample_rates` (min, max Hz): outside them, None (ffmpeg's
    path reports the limit).
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return None
    size = info.st_size
    head = os.pread(fd, 12, 0)
    if len(head) < 12:
        return None
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        found = _probe_aiff(fd, size, head)
    elif head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        found = _probe_wave(fd, size, head)
    else:
        return None
    if found is None:
        return None
    if found.channels > max_channels or not sample_rates[0] <= found.sample_rate <= sample_rates[1]:
        return None
    sniffed = found.codec == "pcm_s16le" and found.format == "WAV"
    if sniffed and _bitstream_inside(
        os.pread(fd, min(found.data_bytes, _SNIFF), found.data_offset)
    ):
        return None
    return found


def _probe_wave(fd: int, size: int, head: bytes) -> PcmLayout | None:
    """RIFF/RF64/BW64 WAVE, walked as ffmpeg 7's wav demuxer walks it."""
    position, ds64_data = 12, None
    if head[:4] != b"RIFF":
        ds64 = os.pread(fd, 8 + 24, 12)
        if len(ds64) < 32 or ds64[:4] != b"ds64":
            return None
        (chunk_size,) = struct.unpack_from("<I", ds64, 4)
        (ds64_data,) = struct.unpack_from("<Q", ds64, 16)
        if chunk_size < 24 or chunk_size & 1 or ds64_data == 0 or ds64_data >= 1 << 62:
            return None
        position = 20 + chunk_size
    fmt = data = None
    for _ in range(MAX_CHUNKS):
        header = os.pread(fd, 8, position)
        if len(header) < 8:
            break
        tag = header[:4]
        (chunk_size,) = struct.unpack_from("<I", header, 4)
        body = position + 8
        end = body + chunk_size
        if tag == b"fmt ":
            if fmt is not None or chunk_size > _FMT_MAX or end > size:
                return None
            fmt = _parse_fmt(os.pread(fd, chunk_size, body))
            if fmt is None:
                return None
        elif tag == b"data":
            if data is not None:
                return None  # ffmpeg joins a second data chunk: its reading, not ours
            if ds64_data is not None:
                chunk_size = ds64_data
                end = body + chunk_size
            elif chunk_size in (0, 0xFFFFFFFF):
                return None  # a streaming writer's "to the end of the file"
            if end > size or chunk_size & 1:
                return None  # truncated (ffmpeg reports it) or an unaligned chunk after
            data = (body, chunk_size)
        elif (
            (tag == b"LIST" and chunk_size < 4)
            or (tag == b"bext" and (chunk_size < _BEXT_SIZE or end > size))
            or tag in (b"SMV0", b"XMA2", b"ds64")
        ):
            return None  # chunks ffmpeg refuses or reads as something else
        if end >= size:
            break
        position = end + (end & 1)
    else:
        return None
    if fmt is None or data is None:
        return None
    codec, channels, rate, mask, sample_bytes = fmt
    offset, data_bytes = data
    if data_bytes % (channels * sample_bytes):
        return None
    return PcmLayout("WAV", codec, channels, rate, mask, offset, data_bytes, sample_bytes)


def _probe_aiff(fd: int, size: int, head: bytes) -> PcmLayout | None:
    """AIFF/AIFC walked as ffmpeg 7's aiff demuxer walks it: within the FORM size, which
    must be the file's; a COMM whose frame count is the SSND's; no CHAN (a layout)."""
    (form_size,) = struct.unpack_from(">I", head, 4)
    if form_size + 8 != size:
        return None
    aifc = head[8:12] == b"AIFC"
    position, comm, sound = 12, None, None
    for _ in range(MAX_CHUNKS):
        if position + 8 > size:
            break
        header = os.pread(fd, 8, position)
        tag = header[:4]
        (chunk_size,) = struct.unpack_from(">I", header, 4)
        body = position + 8
        end = body + chunk_size
        if end > size or chunk_size >= 0x7FFFFFF7:
            return None
        if tag == b"COMM":
            if comm is not None or not 18 <= chunk_size <= _FMT_MAX:
                return None
            comm = _parse_comm(os.pread(fd, chunk_size, body), aifc)
            if comm is None:
                return None
            if sound is not None:
                break  # ffmpeg reads no further once COMM follows SSND
        elif tag == b"SSND":
            if sound is not None or chunk_size < 8:
                return None
            (skip,) = struct.unpack(">I", os.pread(fd, 4, body))
            sound = (body + 8 + skip, chunk_size - 8 - skip)
        elif tag == b"FVER":
            if chunk_size < 4 or os.pread(fd, 4, body) != _AIFC_VERSION1:
                return None
        elif tag in (b"CHAN", b"wave", b"APCM", b"\0\0\0\0"):
            return None  # a layout, codec data, XA ADPCM, or what ffmpeg reads as the end
        position = end + (end & 1)
    else:
        return None
    if comm is None or sound is None:
        return None
    codec, channels, rate, frames, sample_bytes = comm
    offset, data_bytes = sound
    if data_bytes <= 0 or data_bytes != frames * channels * sample_bytes:
        return None
    return PcmLayout("AIFF", codec, channels, rate, 0, offset, data_bytes, sample_bytes)


def _parse_comm(comm: bytes, aifc: bool) -> tuple[str, int, int, int, int] | None:
    """(codec, channels, rate, frames, sample bytes) of a plain PCM/float COMM, else None.

    The rate is ffmpeg's integer reading of the 80-bit extended float (rounded to
    nearest); an AIFC names its compression: NONE/twos (by bits), sowt, fl32/FL32, fl64/FL64."""
    channels, frames, bits, exponent, mantissa = struct.unpack_from(">HIHHQ", comm)
    shift = exponent - 16383 - 63
    if not -63 <= shift <= 63:
        return None
    rate = mantissa << shift if shift >= 0 else (mantissa + (1 << (-shift - 1))) >> -shift
    compression = comm[18:22] if aifc and len(comm) >= 22 else b"NONE"
    codec = _AIFF_CODECS.get((compression, bits)) or _AIFF_CODECS.get((compression, 0))
    if codec is None or channels < 1 or not 0 < rate < 1 << 31 or frames == 0:
        return None
    return codec, channels, rate, frames, _SAMPLE_BYTES[codec]


def _bitstream_inside(start: bytes) -> bool:
    """Whether 16-bit data may start with what ffmpeg probes as a coded stream, not
    PCM: IEC 61937 (S/PDIF) burst preambles or DTS sync words (16- or 14-bit, either
    byte order), as on DTS music CDs ripped to WAV; ffmpeg then decodes AC-3/DTS.
    Its probes need 3 bursts (S/PDIF) or 4 frames (DTS); one sync word turns up in
    quiet music now and then (0x1FFF 0xE800 is two small samples)."""
    return any(start.count(sync) >= _SYNCS_NEEDED for sync in _SYNCS)


def _parse_fmt(fmt: bytes) -> tuple[str, int, int, int, int] | None:
    """(codec, channels, rate, mask, sample bytes) of a plain PCM/float `fmt `, else None.

    As ffmpeg's ff_get_wav_header reads it: cbSize clipped to the chunk; EXTENSIBLE
    needs 22 bytes of it, and its wValidBitsPerSample decides the codec; extra
    bytes would become codec extradata (a 32-bit PCM with extradata 1 is float16).
    """
    if len(fmt) < 16:
        return None
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", fmt)
    extra = min(len(fmt) - 18, struct.unpack_from("<H", fmt, 16)[0]) if len(fmt) >= 18 else 0
    mask = 0
    if tag == _EXTENSIBLE:
        if extra != 22:
            return None
        valid, mask = struct.unpack_from("<HI", fmt, 18)
        guid = fmt[24:40]
        if guid[4:] != _GUID_TAIL or valid not in (0, bits) or mask >> _MASK_BITS:
            return None
        (tag,) = struct.unpack_from("<I", guid)
    elif extra:
        return None
    codec = _CODECS.get((tag, bits))
    sample_bytes = bits // 8
    if codec is None or channels < 1 or align != channels * sample_bytes or rate >= 1 << 31:
        return None
    return codec, channels, rate, mask, sample_bytes


_INTS = {  # codec -> (numpy dtype, log2 of full scale)
    "pcm_s8": ("i1", 7),
    "pcm_s16le": ("<i2", 15),
    "pcm_s16be": (">i2", 15),
    "pcm_s32le": ("<i4", 31),
    "pcm_s32be": (">i4", 31),
}
_FLOATS = {"pcm_f32le": "<f4", "pcm_f32be": ">f4", "pcm_f64le": "<f8", "pcm_f64be": ">f8"}


def to_float32(
    raw: bytearray, codec: str, samples: int, work: np.ndarray | None = None
) -> np.ndarray:
    """`samples` samples stored as `codec` in raw[1:], as float32 (new memory).

    raw[0] and the byte after the samples are scratch: raw must hold at least
    2 + samples x sample bytes. `work`: int32 scratch of at least `samples` for
    24-bit codecs, reused between blocks (fresh memory each block costs page faults:
    6x the conversion). Values are libswresample's for the same conversion (ffmpeg's
    pcm decoders deliver u8, s16, s32 or float), bit for bit.
    """
    if codec in ("pcm_s24le", "pcm_s24be"):
        # Each sample's 3 bytes and a neighbour read as one int32: the sample shifted
        # left by 8 (as ffmpeg's decoder leaves it) plus a stray low byte, cleared.
        if codec == "pcm_s24le":
            wide = np.ndarray((samples,), "<i4", raw, 0, (3,))  # the byte before
        else:
            wide = np.ndarray((samples,), ">i4", raw, 1, (3,))  # the byte after
        ints = np.empty(samples, np.int32) if work is None else work[:samples]
        np.bitwise_and(wide, -256, out=ints)
        out = ints.astype(np.float32)
        out *= np.float32(2.0**-31)
        return out
    body = memoryview(raw)[1:]
    if codec in _FLOATS:
        return np.frombuffer(body, _FLOATS[codec], samples).astype(np.float32)
    if codec == "pcm_u8":
        out = np.frombuffer(body, np.uint8, samples).astype(np.float32)
        out -= np.float32(128.0)
        out *= np.float32(2.0**-7)
        return out
    dtype, bits = _INTS[codec]
    out = np.frombuffer(body, dtype, samples).astype(np.float32)
    out *= np.float32(2.0**-bits)
    return out


def ffmpeg_frames_estimate(frames: int, sample_rate: int) -> int:
    """The frame count decode.py derives from ffmpeg's `Duration:` line for a WAVE or
    AIFF of `frames` frames: ffmpeg prints the duration in microseconds rounded to nearest,
    plus 5 ms, cut to hundredths of a second; decode.py multiplies back."""
    micros = (frames * 1_000_000 * 2 + sample_rate) // (2 * sample_rate)
    centis = (micros + 5000) // 10_000
    seconds, hundredths = divmod(centis, 100)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    shown = float(f"{seconds:02d}.{hundredths:02d}")
    return round((hours * 3600 + minutes * 60 + shown) * sample_rate)
