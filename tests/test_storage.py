"""Object stores: key rules, the local store's signed uploads, S3 through moto's server."""

from __future__ import annotations

import os
import stat
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.settings import load
from chalicelib.storage import (
    MAX_EXPIRES_IN,
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    key_from_path,
    local_secret,
    owner_id,
    require_object,
    safe_file_name,
    storage_from_settings,
)

SECRET = b"0123456789abcdef0123456789abcdef"
OWNER = "owner-a"


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(
        tmp_path / "objects", "http://127.0.0.1:8123", SECRET, max_upload_bytes=1000
    )


@pytest.fixture
def s3(moto_server: str) -> Iterator[S3Storage]:
    bucket = f"audio-{uuid.uuid4().hex[:12]}"
    store = S3Storage(bucket, endpoint_url=moto_server, max_upload_bytes=1000)
    store.client.create_bucket(Bucket=bucket)
    yield store


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest) -> Storage:
    return request.getfixturevalue(request.param)


def http_put(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --- names and keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("My Song (final).WAV", "My-Song-final.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\mix.flac", "mix.flac"),
        ("/abs/path/track.mp3", "track.mp3"),
        ("bad\x00name\n.wav", "bad-name.wav"),
        ("Café Déjà Vu.aiff", "Cafe-Deja-Vu.aiff"),
        ("..", "audio"),
        ("", "audio"),
        (None, "audio"),
        (".hidden.wav", "hidden.wav"),
        ("noext", "noext"),
        ("x" * 300 + ".wav", "x" * 89 + ".wav"),
        ("weird.ext%2e%2e", "weird.ext2e2e"),
    ],
)
def test_safe_file_name(given: str | None, expected: str) -> None:
    assert safe_file_name(given) == expected


def test_created_keys_live_under_the_owners_prefix(any_store: Storage) -> None:
    upload = any_store.create_upload(OWNER, "../My Mix.wav", "audio/wav", 10)
    prefix, owner_part, unique, name = upload.file_key.split("/")
    assert (prefix, owner_part, name) == ("uploads", owner_id(OWNER), "My-Mix.wav")
    assert len(unique) == 32
    assert any_store.check_key(OWNER, upload.file_key) == upload.file_key
    assert upload.method == "PUT" and upload.headers["Content-Type"] == "audio/wav"
    api = upload.to_api()
    assert set(api) == {"fileKey", "uploadUrl", "method", "headers", "expiresIn"}
    assert api["expiresIn"] == upload.expires_in > 0


def test_owner_ids_differ_and_hide_the_owner() -> None:
    assert owner_id("a") != owner_id("b")
    assert "alice" not in owner_id("alice@example.com")
    assert len(owner_id("x" * 1000)) == 24


def tricks(store: Storage) -> list[str]:
    """Keys a client might send to reach what is not theirs."""
    mine = store.create_upload(OWNER, "a.wav", "audio/wav", 10).file_key
    theirs = store.create_upload("owner-b", "a.wav", "audio/wav", 10).file_key
    prefix, me, unique, name = mine.split("/")
    return [
        theirs,
        f"{prefix}/{me}/../{owner_id('owner-b')}/{unique}/{name}",
        f"{prefix}/{me}/{unique}/..",
        f"{prefix}/{me}/{unique}/../../../etc/passwd",
        f"{prefix}/{me}/%2e%2e/{name}",
        f"{prefix}/{me}/{unique}/%2e%2e%2fsecret",
        f"{prefix}/{me}/{unique}\\..\\{name}",
        f"/{mine}",
        "/etc/passwd",
        f"{prefix}//{me}/{unique}/{name}",
        f"{prefix}/{me}/{unique}/./{name}",
        f"{prefix}/{me}/{unique}/{name}\x00.txt",
        f"{prefix}/{me}/{unique}/.upload-secret",
        f"other/{me}/{unique}/{name}",
        f"{prefix}/{me}/{unique}",
        f"{prefix}/{me}/not-a-uuid/{name}",
        mine + "/extra",
        "",
        "x" * 2000,
    ]


def test_path_tricks_are_refused_with_400(any_store: Storage) -> None:
    for key in tricks(any_store):
        with pytest.raises(StorageError) as info:
            any_store.check_key(OWNER, key)
        assert (info.value.status, info.value.code) == (400, "invalid_file_key"), key
    for key in (None, 5, b"bytes"):
        with pytest.raises(StorageError):
            any_store.check_key(OWNER, key)  # type: ignore[arg-type]


def test_object_operations_refuse_malformed_keys(local: LocalStorage, tmp_path: Path) -> None:
    (tmp_path / "victim.txt").write_text("secret")
    for bad in ("../victim.txt", "uploads/../../victim.txt", "/etc/passwd"):
        with pytest.raises(StorageError):
            local.put_bytes(bad, b"x")
        with pytest.raises(StorageError):
            local.download(bad, tmp_path / "out")
    assert (tmp_path / "victim.txt").read_text() == "secret"


@pytest.mark.parametrize(
    ("file_name", "content_type", "size", "status", "code"),
    [
        ("a.wav", "audio/wav", 1001, 413, "too_large"),
        ("a.wav", "audio/wav", 0, 400, "invalid_field"),
        ("a.wav", "audio/wav", -5, 400, "invalid_field"),
        ("a.wav", "audio/wav", True, 400, "invalid_field"),
        ("a.wav", "audio/wav", "10", 400, "invalid_field"),
        ("a.wav", "audio wav", 10, 400, "invalid_content_type"),
        ("a.wav", "audio/wav\r\nX-Evil: 1", 10, 400, "invalid_content_type"),
        ("a.wav", None, 10, 400, "invalid_content_type"),
        ("x" * 256, "audio/wav", 10, 400, "invalid_field"),
    ],
)
def test_bad_upload_requests(
    any_store: Storage,
    file_name: str,
    content_type: str,
    size: int,
    status: int,
    code: str,
) -> None:
    with pytest.raises(StorageError) as info:
        any_store.create_upload(OWNER, file_name, content_type, size)
    assert (info.value.status, info.value.code) == (status, code)


def test_the_declared_limit_itself_is_allowed(any_store: Storage) -> None:
    assert any_store.create_upload(OWNER, "a.wav", "audio/wav", 1000).file_key


# --- the local store ----------------------------------------------------------------------


def signed_parts(upload_url: str) -> tuple[str, str, str]:
    """(key, expires, signature) as the app's local-upload route receives them."""
    parts = urlsplit(upload_url)
    segment = parts.path.rsplit("/", 1)[-1]
    query = parse_qs(parts.query)
    return key_from_path(segment), query["expires"][0], query["signature"][0]


def test_local_round_trip(local: LocalStorage, tmp_path: Path) -> None:
    upload = local.create_upload(OWNER, "mix.wav", "audio/wav", 5)
    assert upload.upload_url.startswith("http://127.0.0.1:8123/api/audio/local-upload/uploads%2F")
    assert upload.headers == {"Content-Type": "audio/wav", "Content-Length": "5"}
    key, expires, signature = signed_parts(upload.upload_url)
    assert key == upload.file_key
    assert local.check_put(key, expires, signature, 5, "audio/wav") is None
    assert not local.exists(key) and local.size(key) is None
    assert local.put_new(key, b"RIFF!")
    assert local.exists(key) and local.size(key) == 5
    assert require_object(local, key, 1000) == 5
    local.download(key, tmp_path / "copy.wav")
    assert (tmp_path / "copy.wav").read_bytes() == b"RIFF!"
    assert [p.name for p in (tmp_path / "objects").rglob(".part-*")] == []
    local.delete(key)
    local.delete(key)  # deleting twice is fine
    assert not local.exists(key)


def refusal(local: LocalStorage, *args: object) -> tuple[int, str] | None:
    error = local.check_put(*args)  # type: ignore[arg-type]
    return None if error is None else (error.status, error.code)


def test_local_upload_url_binds_key_expiry_size_and_type(
    local: LocalStorage, tmp_path: Path
) -> None:
    """Like a presigned S3 PUT: the URL is good for its key, expiry, size and type only."""
    upload = local.create_upload(OWNER, "mix.wav", "audio/wav", 5)
    key, expires, signature = signed_parts(upload.upload_url)
    bad = (403, "invalid_signature")
    other = local.create_upload(OWNER, "other.wav", "audio/wav", 5).file_key
    assert refusal(local, key, expires, signature, 5, "audio/wav") is None
    assert refusal(local, key, expires, signature, 5, "AUDIO/WAV") is None  # types ignore case
    assert refusal(local, other, expires, signature, 5, "audio/wav") == bad
    assert refusal(local, key, str(int(expires) + 1), signature, 5, "audio/wav") == bad
    assert refusal(local, key, expires, signature, 5 * 1024 * 1024, "audio/wav") == bad
    assert refusal(local, key, expires, signature, 4, "audio/wav") == bad
    assert refusal(local, key, expires, signature, 5, "text/html") == bad
    assert refusal(local, key, expires, signature, 5, None) == bad
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert refusal(local, key, expires, flipped, 5, "audio/wav") == bad
    for junk in ("", None, "é" * 64, "\ud800", signature.upper(), signature + "0"):
        assert refusal(local, key, expires, junk, 5, "audio/wav") == bad
    for junk in ("soon", "", None, "١٢٣", "1e12", "-1", "9" * 40):
        assert refusal(local, key, junk, signature, 5, "audio/wav") == bad
    assert refusal(local, "../" + key, expires, signature, 5, "audio/wav") == bad
    assert refusal(local, key, expires, signature, 5, "audio/wav\u00e9") == bad
    stranger = LocalStorage(tmp_path / "objects", "http://x", b"another-secret-of-32-bytes......")
    assert refusal(stranger, key, expires, signature, 5, "audio/wav") == bad


def test_local_upload_url_expires_and_has_a_ceiling(
    local: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = local.create_upload(OWNER, "mix.wav", "audio/wav", 5)
    key, expires, signature = signed_parts(upload.upload_url)
    real = time.time()
    monkeypatch.setattr("chalicelib.storage.time.time", lambda: real + local.expires_in + 1)
    assert refusal(local, key, expires, signature, 5, "audio/wav") == (403, "expired")
    # An expiry further out than the store ever issues is refused, signed or not.
    monkeypatch.setattr("chalicelib.storage.time.time", lambda: real - 3 * local.expires_in)
    assert refusal(local, key, expires, signature, 5, "audio/wav") == (403, "invalid_signature")
    with pytest.raises(ValueError, match="expires_in"):
        LocalStorage(local.root, "http://x", SECRET, expires_in=MAX_EXPIRES_IN + 1)
    with pytest.raises(ValueError, match="expires_in"):
        LocalStorage(local.root, "http://x", SECRET, expires_in=0)


def test_local_upload_url_is_good_for_one_upload(local: LocalStorage) -> None:
    upload = local.create_upload(OWNER, "mix.wav", "audio/wav", 5)
    key, expires, signature = signed_parts(upload.upload_url)
    assert local.put_new(key, b"RIFF!")
    assert refusal(local, key, expires, signature, 5, "audio/wav") == (403, "upload_used")
    assert not local.put_new(key, b"EVIL!")
    assert local.size(key) == 5 and (local.root / key).read_bytes() == b"RIFF!"
    assert [p.name for p in local.root.rglob(".part-*")] == []


def test_missing_and_oversized_objects(any_store: Storage, tmp_path: Path) -> None:
    key = any_store.create_upload(OWNER, "a.wav", "audio/wav", 10).file_key
    with pytest.raises(StorageError) as info:
        any_store.download(key, tmp_path / "out.wav")
    assert (info.value.status, info.value.code) == (404, "not_found")
    with pytest.raises(StorageError) as info:
        require_object(any_store, key, 1000)
    assert info.value.status == 404
    any_store.put_bytes(key, b"x" * 1001)
    with pytest.raises(StorageError) as info:
        require_object(any_store, key, 1000)
    assert (info.value.status, info.value.code) == (413, "too_large")


def test_local_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = local_secret(tmp_path / "store")
    assert len(first) == 32
    assert local_secret(tmp_path / "store") == first
    mode = stat.S_IMODE(os.stat(tmp_path / "store" / ".upload-secret").st_mode)
    assert mode & 0o077 == 0
    assert local_secret(tmp_path / "elsewhere") != first
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / ".upload-secret").write_text("not hex")
    with pytest.raises(ValueError, match="delete it"):
        local_secret(tmp_path / "broken")


def test_storage_from_settings(tmp_path: Path) -> None:
    made = storage_from_settings(load({"SOUNDCHECK_STORAGE_DIR": str(tmp_path / "o")}))
    assert isinstance(made, LocalStorage)
    assert (tmp_path / "o" / ".upload-secret").exists()
    assert made.create_upload(OWNER, "a.wav", "audio/wav", 1).upload_url.startswith(
        "http://127.0.0.1:8000/api/audio/local-upload/"
    )
    env = {
        "SOUNDCHECK_STORAGE_DIR": str(tmp_path / "p"),
        "SOUNDCHECK_UPLOAD_SECRET": "a-secret-of-enough-length",
        "SOUNDCHECK_PUBLIC_URL": "https://dev.example",
        "SOUNDCHECK_MAX_UPLOAD_BYTES": "50",
    }
    configured = storage_from_settings(load(env))
    assert isinstance(configured, LocalStorage)
    assert not (tmp_path / "p" / ".upload-secret").exists()
    upload = configured.create_upload(OWNER, "a.wav", "audio/wav", 50)
    assert upload.upload_url.startswith("https://dev.example/")
    same = LocalStorage(tmp_path / "p", "https://dev.example", b"a-secret-of-enough-length")
    assert same.check_put(*signed_parts(upload.upload_url), 50, "audio/wav") is None
    with pytest.raises(StorageError):
        configured.create_upload(OWNER, "a.wav", "audio/wav", 51)
    bucket = storage_from_settings(load({"STORAGE_BUCKET": "my-bucket"}))
    assert isinstance(bucket, S3Storage) and bucket.bucket == "my-bucket"


# --- S3 (moto's server, over real HTTP) -------------------------------------------------------


def test_s3_presigned_put_really_uploads(s3: S3Storage, tmp_path: Path) -> None:
    body = b"RIFF....WAVEfmt "
    upload = s3.create_upload(OWNER, "Mix 1.wav", "audio/wav", len(body))
    query = parse_qs(urlsplit(upload.upload_url).query)
    # Content-Length and Content-Type are signed: S3 refuses another size or type.
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert int(query["X-Amz-Expires"][0]) == upload.expires_in
    assert upload.headers == {"Content-Type": "audio/wav", "Content-Length": str(len(body))}
    assert http_put(upload.upload_url, body, upload.headers) == 200
    assert s3.exists(upload.file_key) and s3.size(upload.file_key) == len(body)
    s3.download(upload.file_key, tmp_path / "got.wav")
    assert (tmp_path / "got.wav").read_bytes() == body
    s3.delete(upload.file_key)
    assert not s3.exists(upload.file_key) and s3.size(upload.file_key) is None


def test_s3_boto3_is_not_imported_until_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from chalicelib.storage import S3Storage\n"
        "S3Storage('b')\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
