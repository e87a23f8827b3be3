"""Object stores for audio: S3 (presigned PUT) and a local directory for dev.

File keys are made here, never by clients: "<prefix>/<owner-id>/<uuid>/<safe name>".
A key a client sends back is checked against that shape and the caller's own
prefix, so no one can analyse another owner's upload or climb out with `..`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode

from chalicelib import rules
from chalicelib.errors import StorageError, shown
from chalicelib.settings import Settings

DEFAULT_EXPIRES_IN = 900
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
LOCAL_UPLOAD_ROUTE = "/api/audio/local-upload"
SECRET_FILE = ".upload-secret"
_MAX_NAME = 100
_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_EXPIRES_IN = 3600  # the longest an upload URL may live (S3 allows 7 days; no need here)
_OWNER_ID = re.compile(r"^[0-9a-f]{24}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """Where and how a client uploads one file."""

    file_key: str
    upload_url: str
    method: str
    headers: dict[str, str]
    expires_in: int

    def to_api(self) -> dict[str, Any]:
        return {
            "fileKey": self.file_key,
            "uploadUrl": self.upload_url,
            "method": self.method,
            "headers": dict(self.headers),
            "expiresIn": self.expires_in,
        }


class Storage(Protocol):
    def create_upload(
        self, owner: str, file_name: str, content_type: str, size_bytes: int
    ) -> Upload: ...
    def check_key(self, owner: str, key: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def download(self, key: str, dest: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_owner(self, owner: str) -> int: ...

    # Whether retention deletes expired uploads here (the local store), or the
    # bucket's lifecycle rule does (S3: the functions' IAM policy grants no delete).
    @property
    def deletes_expired_uploads(self) -> bool: ...


# --- keys: one set of rules for both stores ------------------------------------


def owner_id(owner: str) -> str:
    """The key segment for an owner: a digest, since owner ids are opaque strings."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:24]


def safe_file_name(file_name: str | None) -> str:
    """A name fit for a key: no directories, no control characters, extension kept.

    The user's own name is kept on the job for display; this one only has to be
    harmless in a URL, a path and an S3 console.
    """
    raw = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    stem, dot, ext = ascii_name.rpartition(".")
    if not dot:
        stem, ext = ascii_name, ""
    ext = _UNSAFE_CHARS.sub("", ext).lower()[:10]
    stem = _UNSAFE_CHARS.sub("-", stem).strip("-._")[: _MAX_NAME - 11] or "audio"
    return f"{stem}.{ext}" if ext else stem


def new_key(prefix: str, owner: str, file_name: str | None) -> str:
    return f"{prefix}/{owner_id(owner)}/{uuid.uuid4().hex}/{safe_file_name(file_name)}"


def validate_key(key: object) -> str:
    """A key of the shape this module makes, or StorageError 400 invalid_file_key.

    Checked character by character rather than normalised: anything a URL or a
    filesystem could reinterpret (`..`, `%2e`, backslashes, NUL, a leading slash)
    is refused outright.
    """
    if not isinstance(key, str) or not 0 < len(key) <= rules.MAX_FILE_KEY:
        raise _invalid_key(f"fileKey must be a string of 1-{rules.MAX_FILE_KEY} characters")
    if any(ord(c) < 0x20 or c in "\\%\x7f" for c in key) or key.startswith("/"):
        raise _invalid_key("fileKey contains characters that are not allowed")
    parts = key.split("/")
    if len(parts) != 4 or any(p in ("", ".", "..") for p in parts):
        raise _invalid_key("fileKey is not a key made by this service")
    prefix, owner_part, unique, name = parts
    if not (_PREFIX.match(prefix) and _OWNER_ID.match(owner_part) and _UUID_HEX.match(unique)):
        raise _invalid_key("fileKey is not a key made by this service")
    if not _SAFE_NAME.match(name):
        raise _invalid_key("fileKey is not a key made by this service")
    return key


def check_owner_key(prefix: str, owner: str, key: object) -> str:
    """validate_key, and the key must lie under this owner's own prefix."""
    checked = validate_key(key)
    if not checked.startswith(f"{prefix}/{owner_id(owner)}/"):
        raise _invalid_key("fileKey does not belong to the caller")
    return checked


def key_from_path(segment: str) -> str:
    """The key in a local upload URL's path segment (sent with '/' as %2F)."""
    return unquote(segment)


def _invalid_key(message: str) -> StorageError:
    return StorageError("invalid_file_key", message)


def _not_found(key: str) -> StorageError:
    return StorageError("not_found", f"no uploaded file at {shown(key)}")


def _check_upload_request(
    file_name: object, content_type: object, size_bytes: object, max_bytes: int
) -> None:
    """The upload-url rules (chalicelib.rules) again, for callers other than the API."""
    if file_name is not None:
        rules.text(file_name, "fileName", rules.MAX_FILE_NAME, StorageError)
    rules.content_type(content_type, StorageError)
    size = rules.size_bytes(size_bytes, StorageError)
    if size > max_bytes:
        raise too_large(size, max_bytes)


def require_object(storage: Storage, key: str, max_bytes: int) -> int:
    """The object's size; StorageError 404 if it was never uploaded, 413 if too large.

    The presigned URL already fixes the size, but the local store and buggy
    clients can still put more there: check before downloading.
    """
    size = storage.size(key)
    if size is None:
        raise _not_found(key)
    if size > max_bytes:
        raise too_large(size, max_bytes)
    return size


def human_size(size: int) -> str:
    """Bytes as people read them: 1.2 GB, 500 MB, 12 KB (binary multiples, as file managers)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size} bytes"


def too_large(size: int | None, max_bytes: int) -> StorageError:
    """The 413 for an upload over the limit, naming the setting that raises it."""
    what = f"the file is {human_size(size)}" if size is not None else "the file is too large"
    return StorageError(
        "too_large",
        f"{what}; the limit is {human_size(max_bytes)} "
        "(the server's SOUNDCHECK_MAX_UPLOAD_BYTES raises it)",
    )


# --- local directory -------------------------------------------------------------


class LocalStorage:
    """Files under a directory; uploads go to a signed route of the app itself."""

    def __init__(
        self,
        root: Path,
        public_url: str,
        secret: bytes,
        *,
        prefix: str = "uploads",
        max_upload_bytes: int = 500 * 1024 * 1024,
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the upload secret must be at least 16 bytes")
        if not 0 < expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expires_in must be 1-{MAX_EXPIRES_IN} seconds")
        self.root = Path(root)
        self.public_url = public_url.rstrip("/")
        self.prefix = prefix
        self.max_upload_bytes = max_upload_bytes
        self.expires_in = expires_in
        self._secret = secret

    def _signature(self, key: str, expires: int, size: int, content_type: str) -> str:
        # Like a presigned S3 PUT that signs Content-Length and Content-Type: the URL
        # is good for this key, this size and this type, until `expires`.
        message = f"{key}\n{expires}\n{size}\n{content_type.lower()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def create_upload(
        self, owner: str, file_name: str, content_type: str, size_bytes: int
    ) -> Upload:
        _check_upload_request(file_name, content_type, size_bytes, self.max_upload_bytes)
        key = new_key(self.prefix, owner, file_name)
        expires = int(time.time()) + self.expires_in
        signature = self._signature(key, expires, size_bytes, content_type)
        query = urlencode({"expires": expires, "signature": signature})
        url = f"{self.public_url}{LOCAL_UPLOAD_ROUTE}/{quote(key, safe='')}?{query}"
        headers = {"Content-Type": content_type, "Content-Length": str(size_bytes)}
        return Upload(key, url, "PUT", headers, self.expires_in)

    def check_put(
        self,
        key: str,
        expires: object,
        signature: object,
        size: object,
        content_type: object,
    ) -> StorageError | None:
        """Why a PUT to an upload URL is refused, or None when it may go ahead.

        Checked from the URL and the request's headers alone, before its body is
        read: the signature must cover this key, expiry, Content-Length and
        Content-Type (403 invalid_signature, whatever the client changed), the URL
        must not have expired nor claim an expiry further out than this store ever
        issues (403 expired / invalid_signature), and nothing may have been uploaded
        to the key yet (403 upload_used: a URL is good for one upload).
        """
        invalid = StorageError("invalid_signature", "the upload URL is invalid or expired")
        try:
            validate_key(key)
        except StorageError:
            return invalid
        if not (isinstance(expires, str) and expires.isascii() and expires.isdigit()):
            return invalid
        if len(expires) > 12 or not isinstance(signature, str) or not _HEX64.match(signature):
            return invalid
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return invalid
        if not isinstance(content_type, str) or not content_type.isascii():
            return invalid
        expires_at, now = int(expires), time.time()
        if expires_at > now + self.expires_in + 60:  # never issued by this store
            return invalid
        expected = self._signature(key, expires_at, size, content_type.strip())
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            return invalid
        if expires_at < now:
            return StorageError("expired", "the upload URL has expired; ask for a new one")
        if size > self.max_upload_bytes:
            return too_large(size, self.max_upload_bytes)
        if self.exists(key):
            return StorageError("upload_used", "this upload URL was already used")
        return None

    def check_key(self, owner: str, key: str) -> str:
        return check_owner_key(self.prefix, owner, key)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(validate_key(key)).parts)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def download(self, key: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError:
            raise _not_found(key) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write atomically, so a reader never sees half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_new(self, key: str, data: bytes) -> bool:
        """Write a new object atomically; False (nothing written) if the key exists.

        The upload route's single use: a replayed upload URL cannot overwrite.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.link(tmp, path)  # atomic and exclusive, unlike os.replace
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # its <uuid>/ folder, once empty (one upload's own)
            path.parent.rmdir()

    def delete_owner(self, owner: str) -> int:
        """Delete every object under the owner's prefix; how many files went (idempotent)."""
        folder = self.root / self.prefix / owner_id(owner)
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return count

    @property
    def deletes_expired_uploads(self) -> bool:
        return True

    def uploads(self, after: str = "") -> Iterator[tuple[str, float, Path]]:
        """(key, mtime, path) of every file under the upload prefix, owner folders in order
        (only those named after `after`, to resume a pass).

        Left-over `.part-` files of an interrupted write are listed too, under the
        key of the folder they sit in plus their own name (which no job can name).
        """
        base = self.root / self.prefix
        if not base.is_dir():
            return
        for owner_dir in sorted(base.iterdir()):
            if not owner_dir.is_dir() or owner_dir.name <= after:
                continue
            for unique in sorted(owner_dir.iterdir()):
                if not unique.is_dir():
                    continue
                for path in unique.iterdir():
                    try:
                        mtime = path.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    key = f"{self.prefix}/{owner_dir.name}/{unique.name}/{path.name}"
                    yield key, mtime, path


def local_secret(root: Path) -> bytes:
    """The local store's upload secret, made once and kept in `<root>/.upload-secret`.

    Every process of the local stack (API, consumers) reads the same file. Keys
    never start with a dot, so the file cannot be reached as an object.
    """
    path = Path(root) / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic and exclusive: the first process to get here wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ValueError(f"{path} is not an upload secret (64 hex digits); delete it to make one")
    return secret


# --- S3 -------------------------------------------------------------------------------


class S3Storage:
    """An S3 bucket; clients upload straight to it through a presigned PUT.

    The presigned URL signs Content-Type and Content-Length, so S3 itself refuses
    a body of another size than the one declared and checked against the limit.
    boto3 is imported only when first needed, keeping the API's cold start small.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        prefix: str = "uploads",
        max_upload_bytes: int = 500 * 1024 * 1024,
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.max_upload_bytes = max_upload_bytes
        self.expires_in = expires_in
        self._client = client
        self._endpoint_url = endpoint_url

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self._endpoint_url,
                config=Config(signature_version="s3v4", retries={"mode": "standard"}),
            )
        return self._client

    def create_upload(
        self, owner: str, file_name: str, content_type: str, size_bytes: int
    ) -> Upload:
        _check_upload_request(file_name, content_type, size_bytes, self.max_upload_bytes)
        key = new_key(self.prefix, owner, file_name)
        url = self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size_bytes,
            },
            ExpiresIn=self.expires_in,
            HttpMethod="PUT",
        )
        headers = {"Content-Type": content_type, "Content-Length": str(size_bytes)}
        return Upload(key, url, "PUT", headers, self.expires_in)

    def check_key(self, owner: str, key: str) -> str:
        return check_owner_key(self.prefix, owner, key)

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def download(self, key: str, dest: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, validate_key(key), str(dest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise _not_found(key) from None
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=validate_key(key), Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def delete_owner(self, owner: str, page_size: int = 1000) -> int:
        """Delete every object under the owner's prefix, a page (at most 1000) a request;
        how many went.

        Needs s3:ListBucket and s3:DeleteObject: run by an operator (`soundcheck owner
        purge`), not by the functions, whose policy grants no delete.
        """
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=f"{self.prefix}/{owner_id(owner)}/",
            PaginationConfig={"PageSize": page_size},
        )
        count = 0
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(
                    f"S3 refused to delete {len(answer['Errors'])} objects: {first.get('Code')}"
                )
            count += len(keys)
        return count

    @property
    def deletes_expired_uploads(self) -> bool:
        return False  # the bucket's lifecycle rule does (docs/deploy.md)


def storage_from_settings(settings: Settings) -> Storage:
    """S3 when STORAGE_BUCKET is set (AWS_ENDPOINT_URL_S3 points boto3 elsewhere),
    else the local directory store."""
    if settings.storage_bucket:
        return S3Storage(
            settings.storage_bucket,
            prefix=settings.storage_prefix,
            max_upload_bytes=settings.max_upload_bytes,
        )
    secret_text = getattr(settings, "upload_secret", None)
    secret = secret_text.encode("utf-8") if secret_text else local_secret(settings.storage_dir)
    return LocalStorage(
        settings.storage_dir,
        settings.public_url or DEFAULT_PUBLIC_URL,
        secret,
        prefix=settings.storage_prefix,
        max_upload_bytes=settings.max_upload_bytes,
    )
