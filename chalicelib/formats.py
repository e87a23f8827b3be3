"""Which uploads can be audio we decode, judged from the name and content type alone.

`POST /api/audio/upload-url` calls `check_upload(file_name, content_type)` before it
hands out an upload URL, so a MIDI file, a video or a document is refused before a
single byte is uploaded, with the list of formats that are accepted. This is a
first gate only: the decoder (ffmpeg, chalicelib/analysis/decode.py) still judges
the content, and a text file renamed `mix.wav` fails there as `unsupported_format`.
The accepted list follows what the decoder reads (docs/api.md): video containers too,
since their first audio stream is analysed.

Pure Python, no imports from the analysis package: the API functions load it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from chalicelib.errors import ApiError, shown

# Extension -> the format's name, as listed to users. Every one is decoded by ffmpeg.
ACCEPTED: dict[str, str] = {
    ".wav": "WAV",
    ".wave": "WAV",
    ".bwf": "BWF",
    ".rf64": "RF64",
    ".w64": "Wave64",
    ".flac": "FLAC",
    ".aif": "AIFF",
    ".aiff": "AIFF",
    ".aifc": "AIFF-C",
    ".caf": "CAF",
    ".mp3": "MP3",
    ".ogg": "Ogg Vorbis",
    ".oga": "Ogg Vorbis",
    ".opus": "Opus",
    ".m4a": "M4A (AAC or ALAC)",
    ".aac": "AAC",
    ".wv": "WavPack",
    ".wma": "WMA",
    ".mka": "Matroska audio",
    ".weba": "WebM audio",
    # Video containers: the decoder analyses their first audio stream (and fails the
    # job as unsupported_format when there is none), so they are not refused here.
    ".mp4": "MP4 (its audio)",
    ".m4v": "MP4 (its audio)",
    ".mov": "QuickTime (its audio)",
    ".mkv": "Matroska (its audio)",
    ".webm": "WebM (its audio)",
}
# What a refused file most likely is, so the message can say so.
KNOWN_NOT_AUDIO: dict[str, str] = {
    ".mid": "a MIDI file (notes, not sound)",
    ".midi": "a MIDI file (notes, not sound)",
    ".kar": "a MIDI karaoke file (notes, not sound)",
    ".avi": "a video file",
    ".wmv": "a video file",
    ".m3u": "a playlist (upload the tracks themselves)",
    ".m3u8": "a playlist (upload the tracks themselves)",
    ".pls": "a playlist (upload the tracks themselves)",
    ".cue": "a cue sheet (upload the audio file it points to)",
    ".txt": "a text file",
    ".pdf": "a document",
    ".doc": "a document",
    ".docx": "a document",
    ".zip": "an archive (upload the tracks one by one)",
    ".rar": "an archive (upload the tracks one by one)",
    ".jpg": "an image",
    ".jpeg": "an image",
    ".png": "an image",
    ".als": "a DAW project (export the mix as WAV or FLAC)",
    ".flp": "a DAW project (export the mix as WAV or FLAC)",
    ".logicx": "a DAW project (export the mix as WAV or FLAC)",
    ".ptx": "a DAW project (export the mix as WAV or FLAC)",
}
_MIDI_TYPES = ("audio/midi", "audio/mid", "audio/x-midi", "audio/sp-midi", "audio/x-mid")
# video/* is not here: a video's audio stream is analysed (the decoder judges).
_NOT_AUDIO_FAMILIES = ("text/", "image/", "font/", "model/", "multipart/")


def accepted_list() -> str:
    """The accepted formats, each once, with their extensions: for error messages."""
    by_name: dict[str, list[str]] = {}
    for extension, name in ACCEPTED.items():
        by_name.setdefault(name, []).append(extension)
    return ", ".join(f"{name} ({' '.join(exts)})" for name, exts in by_name.items())


def check_upload(file_name: str, content_type: str) -> None:
    """Refuse a name or content type that cannot be audio we decode: ApiError
    `unsupported_format` (400), naming what the file seems to be and what is accepted."""
    extension = PurePosixPath(file_name.replace("\\", "/")).suffix.lower()
    kind = content_type.split(";", 1)[0].strip().lower()
    problem = None
    if extension in KNOWN_NOT_AUDIO:
        problem = f"{shown(file_name)} looks like {KNOWN_NOT_AUDIO[extension]}"
    elif kind in _MIDI_TYPES:
        problem = f"{shown(file_name)} is sent as MIDI ({shown(kind)}): notes, not sound"
    elif kind.startswith(_NOT_AUDIO_FAMILIES):
        problem = f"{shown(file_name)} is sent as {shown(kind)}, not as audio"
    elif extension and extension not in ACCEPTED:
        problem = f"{shown(extension)} files are not an audio format soundcheck decodes"
    elif not extension and not kind.startswith(("audio/", "video/", "application/ogg")):
        problem = f"{shown(file_name)} has no file extension and is sent as {shown(kind)}"
    if problem:
        raise ApiError(
            "unsupported_format",
            f"{problem}. Accepted: {accepted_list()}. Export or convert the mix to one of "
            "these (WAV or FLAC keep every detail).",
        )
