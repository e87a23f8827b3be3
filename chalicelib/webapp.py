"""The web app's static files (chalicelib/web/) and the headers they are served with.

Files are looked up in a manifest of what is on disk under `web/`, never by
joining a request path onto a directory, so no path can climb out. Every page
response carries a Content-Security-Policy without inline script or style:
user-supplied strings reach the page as text only, and even an injected tag
could not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

WEB_DIR = Path(__file__).parent / "web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
# Files the page never loads (licences, checksums, docs) are served as plain text.
_PLAIN = {"LICENSE", "SHA256SUMS", "README.md"}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str


@cache
def manifest() -> dict[str, Path]:
    """Every servable file under web/, by its path relative to web/ ('js/main.js')."""
    found = {}
    for path in sorted(WEB_DIR.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.parts):
            continue
        if path.suffix in CONTENT_TYPES or path.name in _PLAIN:
            found[path.relative_to(WEB_DIR).as_posix()] = path
    return found


def asset(relative: str) -> Asset | None:
    """The file at `relative` (as in the manifest), or None."""
    path = manifest().get(relative)
    if path is None:
        return None
    content_type = CONTENT_TYPES.get(path.suffix, "text/plain; charset=utf-8")
    return Asset(path.read_text(encoding="utf-8"), content_type)


def content_security_policy(upload_origins: tuple[str, ...] = ()) -> str:
    """The page's CSP: scripts, styles and requests from this origin (plus the upload
    store's), no inline script or style attribute in markup, no framing, no plugins."""
    connect = " ".join(("'self'", *upload_origins))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {connect}; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def upload_origins(storage_bucket: str | None, s3_endpoint: str | None) -> tuple[str, ...]:
    """Where browsers PUT uploads besides this origin: the S3 bucket's endpoints.

    Presigned URLs are virtual-hosted (`https://<bucket>.s3.<region>.amazonaws.com`)
    or, with AWS_ENDPOINT_URL_S3, that endpoint.
    """
    if not storage_bucket:
        return ()
    origins = [f"https://{storage_bucket}.s3.amazonaws.com", "https://*.amazonaws.com"]
    if s3_endpoint:
        parts = urlsplit(s3_endpoint)
        if parts.scheme in ("http", "https") and parts.netloc:
            origins.insert(0, f"{parts.scheme}://{parts.netloc}")
    return tuple(origins)


def headers(content_type: str, csp: str, *, cache_seconds: int = 0) -> dict[str, str]:
    """Response headers of every web app file."""
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": f"public, max-age={cache_seconds}" if cache_seconds else "no-cache",
    }
