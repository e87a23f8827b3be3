"""Uncompressed WAVE read in this process: the fast path for the commonest uploads.

ffmpeg (ffmpeg.py) stays the reference decoder. A file is read here only when it is
a local regular file whose layout ffmpeg 7's WAVE demuxer reads in exactly one way,
so the samples (float32, bit for bit), the AudioInfo and the errors are the ffmpeg
path's (tests/test_decode_fast.py compares both over writer-made files):

- RIFF, RF64 or BW64 `WAVE` (RF64/BW64: `ds64` first, its 64-bit data size used);
- `fmt ` of WAVE_FORMAT_PCM (8-bit unsigned, 16/24/32-bit signed), IEEE_FLOAT
  (32/64-bit) or EXTENSIBLE with one of those subformats, all valid bits used, a
  channel mask of the 18 WAVE positions, frames of channels x bytes, the channel
  count and rate within the limits;
- one `data` chunk, of whole frames, an even size and wholly inside the file.

Anything else (a truncated file, a data size of 0 or 0xFFFFFFFF written by a
streaming writer, a second `fmt `/`data`, `bext`/`LIST` chunks ffmpeg would refuse,
RIFX, AIFF, a pipe such as `/dev/fd/N`) returns None from `probe`: decode.py
then runs ffmpeg. The chunk walk only moves forward, reads at most MAX_CHUNKS
chunk headers and never past the file's size, so no header can loop it (libsndfile
1.2.2 spins forever on a LIST/INFO sub-chunk of size 0xFFFFFFF4; this walk skips
the LIST chunk by its own size). Reading is bounded by the data size.

Conversion follows libswresample's (pcm_* to float32): unsigned 8-bit
(x - 128) / 2^7, signed integers left-aligned in 32 bits then x / 2^31, float64
rounded to float32, float32 as stored.
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
# ffmpeg probes the first 32 packets (of 4 KiB) of 16-bit PCM WAVE data for coded audio.
_SNIFF = 32 * 4096
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

    codec: str  # ffmpeg's name: "pcm_s24le", "pcm_f32le", ...
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
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64", b"BW64"):
        return None
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
    if channels > max_channels or not sample_rates[0] <= rate <= sample_rates[1]:
        return None
    offset, data_bytes = data
    if data_bytes % (channels * sample_bytes):
        return None
    if codec == "pcm_s16le" and _bitstream_inside(os.pread(fd, min(data_bytes, _SNIFF), offset)):
        return None
    return PcmLayout(codec, channels, rate, mask, offset, data_bytes, sample_bytes)


def _bitstream_inside(start: bytes) -> bool:
    """Whether 16-bit data starts with what ffmpeg probes as a coded stream, not PCM:
    an IEC 61937 (S/PDIF) burst preamble or a DTS sync word (16- or 14-bit, either
    byte order), as on DTS music CDs ripped to WAV. ffmpeg then decodes AC-3/DTS."""
    return any(sync in start for sync in _SYNCS)


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


def to_float32(raw: bytearray, codec: str, samples: int) -> np.ndarray:
    """`samples` samples stored as `codec` in raw[1:] (raw[0] is scratch) as float32.

    Values are libswresample's for the same conversion, bit for bit. raw must hold
    at least 1 + samples x sample bytes; it is not kept (the result is new memory).
    """
    if codec == "pcm_s24le":
        # Each sample's 3 bytes with the byte before them, read as one int32: the
        # sample shifted left by 8 plus a stray low byte, cleared here.
        wide = np.ndarray((samples,), "<i4", raw, 0, (3,))
        ints = np.bitwise_and(wide, -256)
        out = ints.astype(np.float32)
        out *= np.float32(2.0**-31)
        return out
    body = memoryview(raw)[1:]
    if codec == "pcm_f32le":
        return np.frombuffer(body, "<f4", samples).copy()
    if codec == "pcm_f64le":
        return np.frombuffer(body, "<f8", samples).astype(np.float32)
    if codec == "pcm_u8":
        centred = np.frombuffer(body, np.uint8, samples).astype(np.float32)
        centred -= np.float32(128.0)
        centred *= np.float32(2.0**-7)
        return centred
    dtype, scale = ("<i2", 2.0**-15) if codec == "pcm_s16le" else ("<i4", 2.0**-31)
    out = np.frombuffer(body, dtype, samples).astype(np.float32)
    out *= np.float32(scale)
    return out


def ffmpeg_frames_estimate(frames: int, sample_rate: int) -> int:
    """The frame count decode.py derives from ffmpeg's `Duration:` line for a WAVE of
    `frames` frames: ffmpeg prints the duration in microseconds rounded to nearest,
    plus 5 ms, cut to hundredths of a second; decode.py multiplies back."""
    micros = (frames * 1_000_000 * 2 + sample_rate) // (2 * sample_rate)
    centis = (micros + 5000) // 10_000
    seconds, hundredths = divmod(centis, 100)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    shown = float(f"{seconds:02d}.{hundredths:02d}")
    return round((hours * 3600 + minutes * 60 + shown) * sample_rate)
