"""Turn a file into blocks of float32 samples, streamed, bounded in time, refused clearly.

    with open_audio("mix.m4a", limits) as stream:
        stream.info.positions            # ("FL", "FR")
        for block in stream.blocks():    # float32 (n, channels), n <= BLOCK_FRAMES
            ...

An `ffmpeg` child process (ffmpeg.py) decodes every format to float32 WAVE on a
pipe, read here block by block, so memory stays flat however long the track. A
plain PCM WAVE (RIFF/RF64/BW64) or AIFF/AIFC in a local file is read in this
process instead (pcm.py): the same blocks to the bit, the same AudioInfo and
errors, without a child (about 4x less CPU for a 24-bit WAV). Anything pcm.py
cannot read exactly as ffmpeg does, a truncated file or a pipe among them, goes
to ffmpeg, which stays the reference.
Decoding runs to the end of the stream: a header's frame count is an estimate
(VBR MP3 without a Xing frame, FLAC written to a pipe with total samples 0, Ogg
granule positions) and is never used to judge truncation; the decoder's own
errors are. Limits are enforced on what is decoded, as it is decoded. The child is
under a time budget (Limits.decode_budget) and is killed when it overruns, stops
delivering, or the stream is closed: no input can hang the process reading it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import resource
import select
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib.analysis import ffmpeg, pcm
from chalicelib.analysis.arrays import as_frames
from chalicelib.analysis.errors import AnalysisError
from chalicelib.analysis.limits import Limits

BLOCK_FRAMES = 1 << 16  # 1.4 s at 48 kHz: 512 KiB per stereo block
_PIPE_BYTES = 1 << 20  # asks Linux for a 1 MiB pipe (default 64 KiB): fewer wake-ups
_F_SETPIPE_SZ = 1031
_HEADER_MAX = 1 << 16  # ffmpeg's WAVE header is 80 bytes; more means something is wrong
_LOG_LINES = 400  # info lines kept (the input dump comes first)
_ERRORS_KEPT = 20
_INHERITED_FD = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")


@dataclass(frozen=True)
class AudioInfo:
    """What the file says about its audio (the result's `file` block and the channel map)."""

    format: str | None  # "WAV", "FLAC", "MP3", "OGG", "OPUS", "AAC", "ALAC", "AIFF", ...
    subtype: str | None  # "PCM_16", "PCM_24", "FLOAT", "VORBIS", "MPEG_LAYER_III", ...
    sample_rate: int  # Hz
    channels: int
    positions: tuple[str, ...]  # one per channel, ffmpeg's names: FL FR FC LFE BL BR SL SR ...
    lossy: bool  # decoded from a lossy codec (MP3, Vorbis, Opus, AAC, ADPCM ...)
    frames_estimate: int | None = None  # the header's count: an estimate, never trusted

    def file_fields(self) -> dict[str, Any]:
        """format, subtype, sampleRate, channels, lossy: the header part of `file`."""
        return {
            "format": self.format,
            "subtype": self.subtype,
            "sampleRate": self.sample_rate,
            "channels": self.channels,
            "lossy": self.lossy,
        }


class AudioStream:
    """Audio to be read once, block by block; a context manager that frees what it holds."""

    info: AudioInfo

    def blocks(self) -> Iterator[np.ndarray]:
        """float32 arrays shaped (n, channels), 0 < n <= BLOCK_FRAMES, in order, to the end.

        Raises AnalysisError mid-stream: too_long / too_large once the decoded audio
        passes a limit, corrupt_file for decoder errors or a decode over its time
        budget, empty_audio if nothing decodes. Can be iterated once.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the stream (kills a decoder child still running); idempotent."""

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_audio(path: str | Path, limits: Limits | None = None) -> AudioStream:
    """Start decoding `path`; return once its format, rate and channels are known.

    Raises AnalysisError: file_not_found, empty_audio (0 bytes or no frames),
    unsupported_format (not audio, no audio stream, an unknown codec), corrupt_file
    (damaged, truncated, or a decoder over its time budget), unsupported_sample_rate,
    too_many_channels, and too_long / too_large when an uncompressed file's header
    already shows it over the limits. RuntimeError if no ffmpeg is installed (and
    the file is not a plain PCM WAVE or AIFF, which is read in process).
    """
    limits = limits or Limits()
    path = Path(path)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise AnalysisError("file_not_found", f"no such file: {path.name}") from None
    except OSError as exc:
        raise AnalysisError("file_not_found", f"cannot read {path.name}: {exc.strerror}") from None
    if path.is_dir():
        raise AnalysisError("file_not_found", f"{path.name} is a directory, not a file")
    if path.is_file() and status.st_size == 0:
        raise AnalysisError("empty_audio", "the file is empty (0 bytes)")
    if stat.S_ISREG(status.st_mode):  # never open a pipe here: opening may block
        fast = _PcmStream.open(path, limits)
        if fast is not None:
            return fast
    return _DecoderStream(path, limits)


def array_stream(
    samples: np.ndarray, sample_rate: int, info: AudioInfo | None = None
) -> AudioStream:
    """An AudioStream over samples already in memory, shaped (frames, channels) or (frames,).

    Integer PCM is scaled as arrays.as_frames does; blocks are views where possible.
    Raises AnalysisError invalid_input for an array that is not audio.
    """
    return _ArrayStream(samples, sample_rate, info)


@dataclass
class Decoded:
    """A whole file in memory: for callers that need the array (not the analysis)."""

    samples: np.ndarray  # float32, shape (frames, channels)
    sample_rate: int
    info: dict[str, object] = field(default_factory=dict)  # AudioInfo.file_fields()
    audio: AudioInfo | None = None


def decode(path: str | Path, limits: Limits | None = None) -> Decoded:
    """Decode all of `path` into one array (memory grows with length: prefer open_audio)."""
    with open_audio(path, limits) as stream:
        parts = list(stream.blocks())
        info = stream.info
    samples = np.concatenate(parts) if parts else np.zeros((0, info.channels), np.float32)
    fields = info.file_fields()
    fields.pop("lossy")
    return Decoded(samples, info.sample_rate, fields, info)


class _ArrayStream(AudioStream):
    def __init__(self, samples: np.ndarray, sample_rate: int, info: AudioInfo | None) -> None:
        as_frames(samples[:0] if isinstance(samples, np.ndarray) else samples)  # validates
        self._samples = samples if samples.ndim == 2 else samples[:, np.newaxis]
        frames, channels = self._samples.shape
        self.info = info or AudioInfo(
            format=None,
            subtype=None,
            sample_rate=int(sample_rate),
            channels=channels,
            positions=ffmpeg.positions(0, channels),
            lossy=False,
            frames_estimate=frames,
        )

    def blocks(self) -> Iterator[np.ndarray]:
        frames = len(self._samples)
        for start in range(0, frames, BLOCK_FRAMES):
            yield as_frames(self._samples[start : start + BLOCK_FRAMES])


class _FileStream(AudioStream):
    """A stream that holds a file or a decoder: read once, released when read to the
    end or abandoned (a subclass yields the blocks from `_blocks`)."""

    _iterated = False

    def blocks(self) -> Iterator[np.ndarray]:
        if self._iterated:
            raise RuntimeError("an AudioStream can be read once")
        self._iterated = True
        try:
            yield from self._blocks()
        finally:
            self.close()

    def _blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError


class _PcmStream(_FileStream):
    """A plain PCM WAVE or AIFF read in this process (pcm.py): what ffmpeg would deliver."""

    @classmethod
    def open(cls, path: Path, limits: Limits) -> _PcmStream | None:
        """The stream, or None if the file is not one pcm.probe() accepts (ffmpeg reads it)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None  # ffmpeg's path reports why
        try:
            layout = pcm.probe(
                fd, limits.max_channels, (limits.min_sample_rate, limits.max_sample_rate)
            )
        except OSError:
            layout = None
        if layout is None:
            os.close(fd)
            return None
        return cls(fd, layout, limits)  # owns fd from here: closes it if it raises

    def __init__(self, fd: int, layout: pcm.PcmLayout, limits: Limits) -> None:
        self._fd: int | None = fd
        self._layout = layout
        self._limits = limits
        estimate = pcm.ffmpeg_frames_estimate(layout.frames, layout.sample_rate)
        try:
            limits.check_length(estimate, layout.channels, layout.sample_rate)
        except AnalysisError:
            self.close()
            raise
        self.info = AudioInfo(
            format=layout.format,
            subtype=ffmpeg.subtype_name(layout.codec, ""),
            sample_rate=layout.sample_rate,
            channels=layout.channels,
            positions=ffmpeg.positions(layout.mask, layout.channels),
            lossy=False,
            frames_estimate=estimate,
        )

    def _blocks(self) -> Iterator[np.ndarray]:
        layout, limits = self._layout, self._limits
        channels, rate = layout.channels, layout.sample_rate
        frame_bytes = channels * layout.sample_bytes
        raw = bytearray(2 + BLOCK_FRAMES * frame_bytes)  # 2 bytes of scratch: pcm.to_float32
        work = np.empty(BLOCK_FRAMES * channels, np.int32)
        position, left, frames, spent = layout.data_offset, layout.data_bytes, 0, 0.0
        while left:
            started = time.monotonic()
            want = min(left, BLOCK_FRAMES * frame_bytes)
            view = memoryview(raw)[1 : 1 + want]
            got = 0
            while got < want:
                assert self._fd is not None
                n = os.preadv(self._fd, [view[got:]], position + got)
                if n == 0:
                    raise AnalysisError(
                        "corrupt_file", "the file is damaged or truncated: it ended while read"
                    )
                got += n
            n_frames = want // frame_bytes
            samples = pcm.to_float32(raw, layout.codec, n_frames * channels, work)
            position, left, frames = position + want, left - want, frames + n_frames
            spent += time.monotonic() - started
            if spent > limits.decode_budget(frames * channels):
                raise AnalysisError(
                    "corrupt_file",
                    f"decoding took over {spent:.0f} s for {frames * channels:,} samples: "
                    "the file makes the decoder hang or crawl",
                )
            limits.check_length(frames, channels, rate, so_far=True)
            yield samples.reshape(n_frames, channels)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _DecoderStream(_FileStream):
    """ffmpeg decoding one file into a pipe, read under the limits' time budget."""

    def __init__(self, path: Path, limits: Limits) -> None:
        executable = ffmpeg.binary()
        if executable is None:
            raise RuntimeError("ffmpeg not found: install it, or the imageio-ffmpeg wheel")
        self._path = path
        self._limits = limits
        self._waited = 0.0  # seconds spent waiting for the decoder
        self._samples = 0  # samples (frames x channels) delivered so far
        self._info_lines: list[str] = []
        self._error_lines: list[str] = []
        self._partial_line = b""
        self._closed = False
        self._source = str(path.absolute())  # not resolve(): /dev/fd/N names a pipe
        # An inherited descriptor (`soundcheck analyze <(curl ...)`): the child needs it too.
        inherited = _INHERITED_FD.fullmatch(self._source)
        self._process = subprocess.Popen(
            ffmpeg.command(executable, self._source),
            pass_fds=(int(inherited.group(1)),) if inherited else (),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self._out = self._process.stdout.fileno()
        self._err: int | None = self._process.stderr.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._out, _F_SETPIPE_SZ, _PIPE_BYTES)
        # A kernel-enforced CPU cap: even an orphaned decoder (its parent killed) stops.
        cpu = int(limits.decode_budget(limits.max_samples)) + 1
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(self._process.pid, resource.RLIMIT_CPU, (cpu, cpu + 5))
        try:
            self._header, self._pending = self._read_header()
            self.info = self._audio_info()
        except BaseException:
            self.close()
            raise

    # --- reading ------------------------------------------------------------------------

    def _blocks(self) -> Iterator[np.ndarray]:
        channels, rate = self.info.channels, self.info.sample_rate
        frame_bytes = 4 * channels
        frames = 0
        leftover = self._pending
        while True:
            block = np.empty(BLOCK_FRAMES * channels, dtype="<f4")
            view = memoryview(block).cast("B")
            filled = len(leftover)
            view[:filled] = leftover
            filled += self._fill(view, filled)
            whole = filled - filled % frame_bytes
            leftover = bytes(view[whole:filled])
            n = whole // frame_bytes
            if n:
                frames += n
                self._limits.check_length(frames, channels, rate, so_far=True)
                yield block[: n * channels].reshape(n, channels)
            if filled < len(view):  # the decoder's output ended
                break
        self._finish(frames)

    def _fill(self, view: memoryview, start: int) -> int:
        """Read decoder output into view[start:] until full or at its end; bytes read."""
        got = start
        while got < len(view):
            if not self._ready_out():
                break
            n = os.readv(self._out, [view[got:]])
            if n == 0:
                break
            got += n
            self._samples += n // 4
        return got - start

    def _ready_out(self) -> bool:
        """Wait (within the budget) until stdout is readable, reading the log meanwhile."""
        while True:
            budget = self._limits.decode_budget(self._samples) - self._waited
            if budget <= 0:
                self._overrun()
            watched = [self._out] if self._err is None else [self._out, self._err]
            started = time.monotonic()
            ready, _, _ = select.select(watched, [], [], budget)
            self._waited += time.monotonic() - started
            if self._err is not None and self._err in ready:
                self._read_log()
            if self._out in ready:
                return True

    def _read_log(self) -> None:
        assert self._err is not None
        chunk = os.read(self._err, 65536)
        if not chunk:
            self._err = None
            chunk = b"\n"
        *lines, self._partial_line = (self._partial_line + chunk).split(b"\n")
        self._partial_line = self._partial_line[-4096:]
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")[:1000]
            if "[info]" in line:
                if len(self._info_lines) < _LOG_LINES:
                    self._info_lines.append(line)
            elif len(self._error_lines) < _ERRORS_KEPT:
                self._error_lines.append(line)

    def _read_header(self) -> tuple[ffmpeg.WavHeader, bytes]:
        head = bytearray()
        while len(head) < _HEADER_MAX:
            if not self._ready_out():
                break
            chunk = os.read(self._out, 4096)
            if not chunk:
                break
            head += chunk
            try:
                header = ffmpeg.parse_wav_header(bytes(head))
            except ValueError as exc:
                raise AnalysisError("corrupt_file", f"decoding failed: {exc}") from None
            if header is not None:
                self._drain_log()
                return header, bytes(head[header.data_offset :])
        self._drain_log(until_exit=True)
        raise self._open_error()

    def _drain_log(self, until_exit: bool = False) -> None:
        """Read what the log holds now (or, at the end, all of it) within the budget."""
        while self._err is not None:
            budget = self._limits.decode_budget(self._samples) - self._waited
            if budget <= 0:
                self._overrun()
            started = time.monotonic()
            ready, _, _ = select.select([self._err], [], [], budget if until_exit else 0)
            self._waited += time.monotonic() - started
            if not ready:
                if until_exit:
                    self._overrun()
                return
            self._read_log()

    # --- what the file is -----------------------------------------------------------------

    def _audio_info(self) -> AudioInfo:
        log = ffmpeg.parse_log(self._info_lines)
        header = self._header
        self._limits.check_format(header.channels, header.sample_rate)
        estimate = None
        if log.duration_seconds is not None:
            estimate = round(log.duration_seconds * header.sample_rate)
        if estimate and log.codec is not None and log.codec.startswith("pcm_"):
            # Uncompressed: the duration is the data size over the frame size, bounded by
            # the file's own size, so an over-long file is refused before it is decoded.
            self._limits.check_length(estimate, header.channels, header.sample_rate)
        return AudioInfo(
            format=ffmpeg.format_name(log.demuxer, log.codec),
            subtype=ffmpeg.subtype_name(log.codec, log.stream),
            sample_rate=header.sample_rate,
            channels=header.channels,
            positions=ffmpeg.positions(header.mask, header.channels),
            lossy=ffmpeg.is_lossy(log.codec),
            frames_estimate=estimate,
        )

    # --- the end --------------------------------------------------------------------------

    def _finish(self, frames: int) -> None:
        """At the end of the output: the decoder's verdict, then empty_audio if nothing came."""
        self._drain_log(until_exit=True)
        budget = max(0.0, self._limits.decode_budget(self._samples) - self._waited)
        try:
            code = self._process.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            self._overrun()
        errors = ffmpeg.parse_log(self._error_lines).errors
        if errors or code != 0:
            reason = self._clean(errors[0]) if errors else f"the decoder exited with code {code}"
            raise AnalysisError("corrupt_file", f"the file is damaged or truncated: {reason}")
        if frames == 0:
            raise AnalysisError("empty_audio", "the file holds no audio frames")

    def _open_error(self) -> AnalysisError:
        """Why ffmpeg produced no audio at all, as a code a user can act on."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1.0)
        errors = [self._clean(e) for e in ffmpeg.parse_log(self._error_lines).errors]
        text = " ".join(errors)
        first = errors[0] if errors else "no audio could be decoded"
        if "matches no streams" in text or "does not contain any stream" in text:
            return AnalysisError("unsupported_format", "the file has no audio stream")
        if "No such file or directory" in text:
            return AnalysisError("file_not_found", f"cannot open {self._path.name}")
        if "moov atom not found" in text:
            return AnalysisError(
                "corrupt_file", "the MP4/M4A file has no index (moov atom): it was cut off"
            )
        if ("Decoder" in text and "not found" in text) or "not on whitelist" in text:
            return AnalysisError("unsupported_format", f"not an audio format we decode: {first}")
        if "Invalid data found when processing input" in text or not errors:
            return AnalysisError(
                "unsupported_format", "not an audio file (no audio format recognised)"
            )
        return AnalysisError("corrupt_file", f"decoding failed: {first}")

    def _clean(self, message: str) -> str:
        """A log message without the temporary path it may name."""
        for shown in (f"file:{self._source}", self._source):
            message = message.replace(shown, self._path.name)
        return message

    def _overrun(self) -> None:
        self.close()
        raise AnalysisError(
            "corrupt_file",
            f"decoding took over {self._waited:.0f} s for {self._samples:,} samples: the file "
            "makes the decoder hang or crawl",
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._process.poll() is None:
            self._process.kill()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()
        self._process.wait()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
