"""The in-process PCM WAVE reader (pcm.py) against the ffmpeg child it stands in for.

Every file here is written by a real writer (soundfile/libsndfile, ffmpeg, sox) or
byte by byte where no writer makes the layout. Where open_audio() reads a file in
process, its blocks must be bit-identical to the ffmpeg path's, with the same
AudioInfo and the same errors; files it cannot read exactly as ffmpeg does go to
ffmpeg.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from chalicelib.analysis import AnalysisError, Limits, analyze_file, decode, pcm
from chalicelib.analysis.decode import BLOCK_FRAMES, AudioInfo, _DecoderStream, open_audio
from tests.audio_cases import ffmpeg_exe, make_issue_cases, run_ffmpeg, tool
from tests.music import music_like

RATE = 48000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """3 s of music-like stereo, 48 kHz, 24-bit (BLOCK_FRAMES ends mid-file), with a
    burst driven past full scale so clipping and float overs are exercised too."""
    x = music_like(3.0, RATE, seed=7)
    x[RATE : RATE + 2000] *= 4.0
    path = tmp_path_factory.mktemp("fast") / "source.wav"
    soundfile.write(path, np.clip(x, -1, 1), RATE, subtype="PCM_24")
    return path, x


def read(
    path: Path, limits: Limits | None = None, *, ffmpeg: bool = False
) -> tuple[str, AudioInfo, list[np.ndarray]]:
    """(which reader, info, blocks) through open_audio, or forced through ffmpeg."""
    limits = limits or Limits()
    stream = _DecoderStream(path, limits) if ffmpeg else open_audio(path, limits)
    with stream:
        blocks = list(stream.blocks())
        return type(stream).__name__, stream.info, blocks


def assert_same_as_ffmpeg(path: Path) -> np.ndarray:
    """The file is read in process, to the bit what ffmpeg delivers; returns the audio."""
    kind, info, blocks = read(path)
    assert kind == "_PcmStream", f"{path.name} went to ffmpeg"
    _, want_info, want = read(path, ffmpeg=True)
    assert info == want_info
    assert [b.shape for b in blocks] == [b.shape for b in want]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in blocks)
    assert all(len(b) == BLOCK_FRAMES for b in blocks[:-1])
    got, expected = np.concatenate(blocks), np.concatenate(want)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))  # NaN bits too
    return got


def wave_bytes(fmt: bytes, data: bytes, *, before: bytes = b"", after: bytes = b"") -> bytes:
    """A RIFF WAVE of the given fmt body and data, with chunks before/after `data`."""
    body = b"WAVE" + chunk(b"fmt ", fmt) + before + chunk(b"data", data) + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(tag: bytes, body: bytes, size: int | None = None) -> bytes:
    """A RIFF chunk, padded to an even length; `size` overrides the size field."""
    header = tag + struct.pack("<I", len(body) if size is None else size)
    return header + body + b"\0" * (len(body) & 1)


def pcm16_fmt(channels: int = 2, rate: int = RATE) -> bytes:
    return struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def pan(layout: str, channels: int) -> str:
    """An ffmpeg filter making `layout` from stereo, each channel a different mix."""
    gains = "|".join(f"c{i}={1.0 - 0.1 * i:.1f}*c{i % 2}" for i in range(channels))
    return f"pan={layout}|{gains}"


# --- writers' files, read in process, bit-identical --------------------------------------

SOUNDFILE = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


@pytest.mark.parametrize("subtype", SOUNDFILE)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_soundfile_wavs(
    tmp_path: Path, source: tuple[Path, np.ndarray], subtype: str, channels: int
) -> None:
    """libsndfile writes WAVE_FORMAT_PCM/IEEE_FLOAT up to 2 channels, WAVEX above."""
    x = np.tile(source[1], (1, 3))[:, :channels]
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, x, RATE, subtype=subtype)
    y = assert_same_as_ffmpeg(path)
    assert y.shape == (len(x), channels)


FFMPEG = [
    ("u8", ["-c:a", "pcm_u8"]),
    ("s16", ["-c:a", "pcm_s16le"]),
    ("s24", ["-c:a", "pcm_s24le"]),
    ("s32", ["-c:a", "pcm_s32le"]),
    ("f32", ["-c:a", "pcm_f32le"]),
    ("f64", ["-c:a", "pcm_f64le"]),
    ("rf64", ["-c:a", "pcm_s24le", "-rf64", "always"]),
    ("rf64f", ["-c:a", "pcm_f32le", "-rf64", "always"]),
    ("mono", ["-c:a", "pcm_s24le", "-ac", "1"]),
    ("5.1", ["-c:a", "pcm_s24le", "-af", pan("5.1", 6)]),
    ("5.1side", ["-c:a", "pcm_s16le", "-af", pan("5.1(side)", 6)]),
    ("2.1", ["-c:a", "pcm_s16le", "-af", pan("2.1", 3)]),  # mask 0x0B
    ("quad", ["-c:a", "pcm_s32le", "-af", pan("quad", 4)]),
    ("7.1", ["-c:a", "pcm_f32le", "-af", pan("7.1", 8)]),
    ("44k", ["-c:a", "pcm_s24le", "-ar", "44100"]),
    ("96k", ["-c:a", "pcm_s24le", "-ar", "96000"]),
    ("bext", ["-c:a", "pcm_s24le", "-write_bext", "1", "-metadata", "description=mix 3"]),
    ("info", ["-c:a", "pcm_s16le", "-metadata", "title=odd title", "-metadata", "artist=x"]),
]


@pytest.mark.parametrize(("name", "options"), FFMPEG, ids=[f[0] for f in FFMPEG])
def test_ffmpeg_wavs(
    tmp_path: Path, source: tuple[Path, np.ndarray], name: str, options: list[str]
) -> None:
    """ffmpeg writes WAVEX with the layout's mask (and for > 16 bits), RF64, bext, LIST."""
    path = tmp_path / f"{name}.wav"
    run_ffmpeg("-i", source[0], *options, path)
    assert_same_as_ffmpeg(path)


def test_wavex_positions(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    """The mask names the channels, as ffmpeg passes it on; LFE included."""
    path = tmp_path / "two_one.wav"
    run_ffmpeg("-i", source[0], "-af", pan("2.1", 3), "-c:a", "pcm_s16le", path)
    _, info, _ = read(path)
    assert info.positions == ("FL", "FR", "LFE")


@pytest.mark.parametrize(
    "options", [["-b", "16"], ["-b", "24"], ["-b", "32"], ["-e", "floating-point", "-b", "32"],
                ["-b", "8"], ["-b", "24", "-c", "1"], ["-b", "16", "-c", "4"]],
    ids=["16", "24", "32", "float", "8", "mono24", "quad16"],
)  # fmt: skip
def test_sox_wavs(tmp_path: Path, source: tuple[Path, np.ndarray], options: list[str]) -> None:
    """sox writes WAVE_FORMAT_EXTENSIBLE above 16 bits or 2 channels."""
    sox = tool("sox")
    path = tmp_path / "sox.wav"
    channels = ["remix", "1"] if "-c" in options and "1" in options else []
    subprocess.run([sox, str(source[0]), *options, str(path), *channels], check=True, timeout=60)
    assert_same_as_ffmpeg(path)


AIFF = [
    ("s8", "aiff", ["-c:a", "pcm_s8"]),
    ("s16", "aiff", ["-c:a", "pcm_s16be"]),
    ("s24", "aiff", ["-c:a", "pcm_s24be"]),
    ("s32", "aiff", ["-c:a", "pcm_s32be"]),
    ("f32", "aifc", ["-c:a", "pcm_f32be", "-f", "aiff"]),
    ("f64", "aifc", ["-c:a", "pcm_f64be", "-f", "aiff"]),
    ("sowt", "aifc", ["-c:a", "pcm_s16le", "-f", "aiff"]),
    ("44k", "aiff", ["-c:a", "pcm_s24be", "-ar", "44100"]),
    ("22k_mono", "aiff", ["-c:a", "pcm_s16be", "-ar", "22050", "-ac", "1"]),
    ("96k", "aiff", ["-c:a", "pcm_s24be", "-ar", "96000"]),
    ("tags", "aiff", ["-c:a", "pcm_s16be", "-write_id3v2", "1", "-metadata", "title=x"]),
]


@pytest.mark.parametrize(("name", "suffix", "options"), AIFF, ids=[a[0] for a in AIFF])
def test_ffmpeg_aiffs(
    tmp_path: Path, source: tuple[Path, np.ndarray], name: str, suffix: str, options: list[str]
) -> None:
    """AIFF and AIFC (big-endian; float and little-endian `sowt` in AIFC)."""
    path = tmp_path / f"{name}.{suffix}"
    run_ffmpeg("-i", source[0], *options, path)
    assert_same_as_ffmpeg(path)


@pytest.mark.parametrize("subtype", ["PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_soundfile_aiffs(tmp_path: Path, source: tuple[Path, np.ndarray], subtype: str) -> None:
    """libsndfile writes a PEAK chunk, and AIFC with FVER for floats."""
    path = tmp_path / f"{subtype}.aiff"
    soundfile.write(path, source[1], 44100, subtype=subtype, format="AIFF")
    assert_same_as_ffmpeg(path)


@pytest.mark.parametrize("options", [["-b", "16"], ["-b", "24"], ["-b", "8", "-c", "1"]])
@pytest.mark.parametrize("suffix", ["aiff", "aifc"])
def test_sox_aiffs(
    tmp_path: Path, source: tuple[Path, np.ndarray], options: list[str], suffix: str
) -> None:
    sox = tool("sox")
    path = tmp_path / f"sox.{suffix}"
    remix = ["remix", "1"] if "-c" in options else []
    subprocess.run([sox, str(source[0]), *options, str(path), *remix], check=True, timeout=60)
    assert_same_as_ffmpeg(path)


REAL = [  # (track of tests/test_real_music.py, suffix, ffmpeg output options)
    (0, "wav", ["-c:a", "pcm_s16le"]),
    (7, "wav", ["-c:a", "pcm_s24le", "-rf64", "always"]),
    (14, "aiff", ["-c:a", "pcm_s16be"]),
    (21, "wav", ["-c:a", "pcm_f32le"]),
    (28, "aifc", ["-c:a", "pcm_s16le", "-f", "aiff"]),
]


@pytest.mark.parametrize(("index", "suffix", "options"), REAL, ids=[str(r[0]) for r in REAL])
def test_real_music(tmp_path: Path, index: int, suffix: str, options: list[str]) -> None:
    """Released music (quiet intros, fades, full-scale passages), decoded and stored as
    a user's tools store it: read in process (no false S/PDIF or DTS sync), the same."""
    from tests.test_real_music import fetch_tracks

    path = tmp_path / f"track.{suffix}"
    run_ffmpeg("-i", fetch_tracks()[index], *options, path)
    assert_same_as_ffmpeg(path)


def test_bw64(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    rf64 = tmp_path / "rf64.wav"
    run_ffmpeg("-i", source[0], "-c:a", "pcm_s24le", "-rf64", "always", rf64)
    bw64 = tmp_path / "bw64.wav"
    bw64.write_bytes(b"BW64" + rf64.read_bytes()[4:])
    assert_same_as_ffmpeg(bw64)


def test_hand_made_layouts(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    """Odd-sized chunks (padded), data before fmt, junk after data, a bad LIST/INFO."""
    data = pcm16(source[1])
    odd = chunk(b"junk", b"abc")  # 3 bytes and a pad byte
    layouts = {
        "odd_before.wav": wave_bytes(pcm16_fmt(), data, before=odd),
        "odd_after.wav": wave_bytes(pcm16_fmt(), data, after=odd + chunk(b"id3 ", b"x" * 7)),
        "fmt18.wav": wave_bytes(pcm16_fmt() + b"\0\0", data),
        "trailing_bytes.wav": wave_bytes(pcm16_fmt(), data, after=b"\x01\x02\x03"),
        "bad_info.wav": wave_bytes(
            pcm16_fmt(),
            data,
            before=chunk(b"LIST", b"INFO" + b"INAM" + struct.pack("<I", 0xFFFFFFF4) + bytes(8)),
        ),
    }
    body = b"WAVE" + chunk(b"data", data) + chunk(b"fmt ", pcm16_fmt())
    layouts["data_first.wav"] = b"RIFF" + struct.pack("<I", len(body)) + body
    for name, content in layouts.items():
        (tmp_path / name).write_bytes(content)
        y = assert_same_as_ffmpeg(tmp_path / name)
        assert len(y) == len(source[1]), name


def test_the_wav_that_hangs_libsndfile(tmp_path: Path) -> None:
    """Issue 8 item 1: read in process (the chunk walk skips LIST by its own size),
    the same as ffmpeg, at once."""
    cases = tmp_path / "cases"
    make_issue_cases(cases)
    started = time.monotonic()
    kind, _, blocks = read(cases / "hang_info_chunk.wav")
    assert time.monotonic() - started < 1.0
    assert kind == "_PcmStream" and sum(map(len, blocks)) == RATE
    assert_same_as_ffmpeg(cases / "hang_info_chunk.wav")
    for name in ("mask_l_r_lfe.wav", "float_plus_380_db.wav", "cosine_starts_on_crest.wav"):
        assert_same_as_ffmpeg(cases / name)


def test_an_spdif_stream_in_a_wav_goes_to_ffmpeg(
    tmp_path: Path, source: tuple[Path, np.ndarray]
) -> None:
    """AC-3 in IEC 61937 bursts, stored as 16-bit stereo PCM (as a DVD/CD rip may be):
    ffmpeg decodes the AC-3, so the file is its to read."""
    bursts = tmp_path / "ac3.spdif"
    run_ffmpeg("-i", source[0], "-c:a", "ac3", "-f", "spdif", bursts)
    data = bursts.read_bytes()
    path = tmp_path / "ac3.wav"
    path.write_bytes(wave_bytes(pcm16_fmt(), data[: len(data) // 4 * 4]))
    kind, info, _ = read(path)
    assert kind == "_DecoderStream" and (info.subtype, info.lossy) == ("AC3", True)


def test_a_sync_word_in_music_is_music(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    """Two small samples (0xFF1F, 0x00E8) read as a 14-bit DTS sync word: one or two of
    them are no DTS stream to ffmpeg's probe, and not to ours."""
    data = bytearray(pcm16(source[1]))
    data[400:404] = data[9000:9004] = b"\x1f\xff\xe8\x00"
    path = tmp_path / "quiet.wav"
    path.write_bytes(wave_bytes(pcm16_fmt(), bytes(data)))
    assert_same_as_ffmpeg(path)


def test_nan_and_overs_pass_through(tmp_path: Path) -> None:
    """Float samples are delivered as stored (NaN, inf, 1e19); measure() judges them."""
    x = np.zeros((1000, 2), np.float32)
    x[10, 0], x[11, 1], x[12, 0], x[13, 1] = np.nan, np.inf, 1e19, -3.5
    for subtype in ("FLOAT", "DOUBLE"):
        path = tmp_path / f"{subtype}.wav"
        soundfile.write(path, x, RATE, subtype=subtype)
        y = assert_same_as_ffmpeg(path)
        assert np.isnan(y[10, 0]) and y[12, 0] == np.float32(1e19)


def test_damaged_headers_read_as_ffmpeg_reads_them(tmp_path: Path) -> None:
    """300 headers with bytes or size fields overwritten (0, 0xFFFFFFFF, 0xFFFFFFF4,
    random), some files cut short: whatever the reader takes, it reads as ffmpeg
    does (same blocks and AudioInfo, or the same error); the rest it leaves to ffmpeg."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4800, 2)) * 0.1
    sources = []
    for name, rate, options in (
        ("a.wav", RATE, {"subtype": "PCM_24"}),
        ("b.wav", RATE, {"subtype": "FLOAT"}),
        ("c.aiff", 44100, {"subtype": "PCM_16", "format": "AIFF"}),
    ):
        soundfile.write(tmp_path / name, x, rate, **options)
        sources.append((tmp_path / name).read_bytes())
    info = chunk(b"LIST", b"INFOINAM" + struct.pack("<I", 5) + b"abcde\0")
    sources.append(wave_bytes(pcm16_fmt(), pcm16(x), before=info, after=chunk(b"junk", b"xyz")))
    sizes = [0, 1, 2, 16, 18, 40, 0xFFFFFFFF, 0xFFFFFFF4]
    taken = 0
    for case in range(300):
        data = bytearray(sources[case % len(sources)])
        for _ in range(rng.integers(1, 4)):
            at = int(rng.integers(0, 120))
            if rng.random() < 0.5:
                data[at] = int(rng.integers(0, 256))
            else:
                value = (
                    sizes[case % len(sizes)]
                    if rng.random() < 0.5
                    else int(rng.integers(0, 1 << 32))
                )
                data[at - at % 4 : at - at % 4 + 4] = struct.pack("<I", value)
        if rng.random() < 0.2:
            data = data[: int(rng.integers(12, len(data)))]
        path = tmp_path / f"damaged{case}.wav"
        path.write_bytes(bytes(data))
        with pcm_layout(path) as layout:
            if layout is None:
                continue
        taken += 1
        assert whole_outcome(path) == whole_outcome(path, ffmpeg=True), case
    assert taken > 50  # the damage leaves many files the reader still takes


def whole_outcome(path: Path, *, ffmpeg: bool = False) -> tuple:
    """(error code,) or ("ok", AudioInfo, the samples' bytes)."""
    try:
        _, info, blocks = read(path, ffmpeg=ffmpeg)
    except AnalysisError as exc:
        return (exc.code,)
    return ("ok", info, np.concatenate(blocks).tobytes())


# --- what goes to ffmpeg -------------------------------------------------------------------


def test_files_ffmpeg_reads(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    """Layouts ffmpeg reads its own way (or refuses) are left to it: same outcome as before."""
    data = pcm16(source[1])
    whole = wave_bytes(pcm16_fmt(), data)
    s24in32 = struct.pack("<HHIIHH", 1, 2, RATE, RATE * 8, 8, 24)
    extensible = struct.pack("<HHIIHHHHI", 0xFFFE, 2, RATE, RATE * 8, 8, 32, 22, 24, 3)
    extensible += struct.pack("<I", 1) + bytes.fromhex("000010008000 00aa00389b71".replace(" ", ""))
    files = {
        "truncated.wav": whole[: len(whole) // 2],
        "streamed.wav": wave_bytes(pcm16_fmt(), data)[:40] + b"\xff\xff\xff\xff" + data,
        "size0.wav": whole[:40] + b"\0\0\0\0" + data,
        "two_data.wav": wave_bytes(pcm16_fmt(), data, after=chunk(b"data", data[:4000])),
        "half_frame.wav": wave_bytes(pcm16_fmt(), data + b"\0\0"),
        "s24_in_32.wav": wave_bytes(s24in32, bytes(8 * 1000)),
        "valid24_of32.wav": wave_bytes(extensible, bytes(8 * 1000)),
        "short_list.wav": wave_bytes(pcm16_fmt(), data, before=chunk(b"LIST", b"ab")),
        "spdif.wav": wave_bytes(pcm16_fmt(), (b"\x72\xf8\x1f\x4e" + bytes(6140)) * 4 + data),
        "rifx.wav": b"RIFX" + whole[4:],
        "no_fmt.wav": b"RIFF" + bytes(4) + b"WAVE" + chunk(b"data", data),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pcm_layout(path) as layout:
            assert layout is None, name
    aiff = tmp_path / "a.aiff"
    run_ffmpeg("-i", source[0], "-c:a", "pcm_s16be", aiff)
    whole = aiff.read_bytes()
    layout = struct.pack(">III", 100 << 16 | 2, 0, 0)  # CAF layout tag: stereo
    with_chan = whole + b"CHAN" + struct.pack(">I", len(layout)) + layout
    aiffs = {
        "cut.aiff": whole[: len(whole) // 2],
        "chan.aiff": with_chan[:4] + struct.pack(">I", len(with_chan) - 8) + with_chan[8:],
        "form_short.aiff": whole[:4] + struct.pack(">I", len(whole) - 100) + whole[8:],
    }
    for name, content in aiffs.items():
        (tmp_path / name).write_bytes(content)
        with pcm_layout(tmp_path / name) as found:
            assert found is None, name
    flac = tmp_path / "a.flac"
    run_ffmpeg("-i", source[0], "-c:a", "flac", flac)
    assert read(flac)[0] == "_DecoderStream"
    assert read(tmp_path / "chan.aiff")[0] == "_DecoderStream"
    assert outcome(tmp_path / "truncated.wav") == ("corrupt_file",)
    assert outcome(tmp_path / "cut.aiff") == outcome(tmp_path / "cut.aiff", ffmpeg=True)


class pcm_layout:
    """pcm.probe() on a file, with its descriptor closed afterwards."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def __enter__(self) -> pcm.PcmLayout | None:
        limits = Limits()
        return pcm.probe(self._fd, 8, (limits.min_sample_rate, limits.max_sample_rate))

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def outcome(path: Path, limits: Limits | None = None, *, ffmpeg: bool = False) -> tuple:
    """The error code (and message) or the frame count that reading the file ends in."""
    try:
        _, _, blocks = read(path, limits, ffmpeg=ffmpeg)
    except AnalysisError as exc:
        return (exc.code,)
    return ("ok", sum(map(len, blocks)))


def test_a_pipe_goes_to_ffmpeg(source: tuple[Path, np.ndarray]) -> None:
    """`soundcheck analyze <(curl ...)`: /dev/fd/N is not opened here (it could block)."""
    ffmpeg_exe()
    read_end, write_end = os.pipe()
    data = source[0].read_bytes()
    thread = threading.Thread(target=lambda: os.fdopen(write_end, "wb").write(data), daemon=True)
    thread.start()
    try:
        kind, _, blocks = read(Path(f"/dev/fd/{read_end}"))
    finally:
        os.close(read_end)
        thread.join(5)
    assert kind == "_DecoderStream" and sum(map(len, blocks)) == len(source[1])


# --- limits, errors and resources ------------------------------------------------------------


def test_limits_as_decoded_are_the_same(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    path = tmp_path / "a.wav"
    soundfile.write(path, source[1], RATE, subtype="PCM_16")
    for limits in (
        Limits(max_duration_seconds=2.0),  # from the header
        Limits(max_samples=2 * BLOCK_FRAMES + 10),
        Limits(max_channels=1),
        Limits(max_sample_rate=44100),
    ):
        mine, theirs = outcome(path, limits), outcome(path, limits, ffmpeg=True)
        assert mine == theirs and mine[0] != "ok", limits
    with pytest.raises(AnalysisError) as fast:
        read(path, Limits(max_duration_seconds=2.0))
    with pytest.raises(AnalysisError) as slow:
        read(path, Limits(max_duration_seconds=2.0), ffmpeg=True)
    assert fast.value.message == slow.value.message


def test_no_descriptor_is_left_open(tmp_path: Path, source: tuple[Path, np.ndarray]) -> None:
    """Read to the end, closed early, refused by a limit, or given to ffmpeg: no fd stays."""
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        read(source[0])
        with open_audio(source[0]) as stream:
            next(iter(stream.blocks()))
        with pytest.raises(AnalysisError):
            open_audio(source[0], Limits(max_duration_seconds=1.0))
    assert len(os.listdir("/proc/self/fd")) == fds


def test_analysis_is_unchanged(
    source: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """analyze_file() reads the same numbers either way (the stream is all it sees)."""
    fast = analyze_file(source[0])
    monkeypatch.setattr(decode._PcmStream, "open", classmethod(lambda cls, path, limits: None))
    slow = analyze_file(source[0])
    assert fast == slow


def test_frames_estimate_matches_ffmpegs_duration_line() -> None:
    """ffmpeg prints hundredths of a second (rounded up from 5 ms); decode.py multiplies."""
    assert pcm.ffmpeg_frames_estimate(RATE * 3, RATE) == RATE * 3
    assert pcm.ffmpeg_frames_estimate(100, RATE) == 0  # 2 ms: "00:00:00.00"
    assert pcm.ffmpeg_frames_estimate(RATE * 3600 * 2 + 17, RATE) == RATE * 3600 * 2
    assert pcm.ffmpeg_frames_estimate(44100 * 61 + 441 * 3 - 1, 44100) == 44100 * 61 + 441 * 3
