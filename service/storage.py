"""Object storage through fsspec: local paths, ``file://`` and ``s3://`` (s3fs) with the same code.

Every key a user can influence (upload names, object names found under a batch source) goes
through :func:`safe_key`, which refuses ``..`` segments, absolute paths, NUL bytes and
backslashes, so nothing escapes the root it is joined to. Writes are atomic: local files are
written next to their target and renamed; an S3 object only appears when its upload completes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import posixpath
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avagent.errors import ParameterError
from avagent.service.settings import Settings

logger = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB: the unit of every streamed copy


def safe_key(key: str) -> str:
    """Normalise a relative object key, refusing anything that could leave its root.

    >>> safe_key("in/a b.mp4")
    'in/a b.mp4'
    >>> safe_key("in/../../etc/passwd")
    Traceback (most recent call last):
    ...
    avagent.errors.ParameterError: key='in/../../etc/passwd' must not contain '..' segments
    """
    if not isinstance(key, str) or not key:
        raise ParameterError(f"key={key!r} must be a non-empty string")
    if "\x00" in key:
        raise ParameterError(f"key={key!r} must not contain NUL bytes")
    if "\\" in key:
        raise ParameterError(f"key={key!r} must not contain backslashes")
    if key.startswith("/") or "://" in key or (len(key) > 1 and key[1] == ":"):
        raise ParameterError(f"key={key!r} must be relative (no leading '/', scheme or drive)")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ParameterError(f"key={key!r} must not contain '..' segments")
    if not parts:
        raise ParameterError(f"key={key!r} names nothing")
    return "/".join(parts)


def normalize_uri(uri: str) -> str:
    """``/abs/path`` and ``file:///abs/path`` become ``file:///abs/path``; ``s3://b/p`` stays.

    Refuses NUL bytes, ``..`` segments and relative local paths, and unknown schemes.
    """
    if not isinstance(uri, str) or not uri:
        raise ParameterError(f"uri={uri!r} must be a non-empty string")
    if "\x00" in uri:
        raise ParameterError(f"uri={uri!r} must not contain NUL bytes")
    if uri.startswith("/"):
        uri = "file://" + uri
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ParameterError(f"uri={uri!r} must be absolute (s3://bucket/key, file:///path or /path)")
    scheme = scheme.lower()
    if scheme not in ("file", "s3"):
        raise ParameterError(f"uri={uri!r}: scheme {scheme!r} is not supported (use s3:// or file://)")
    if scheme == "file" and not rest.startswith("/"):
        raise ParameterError(f"uri={uri!r}: file URIs need an absolute path (file:///...)")
    if any(p == ".." for p in rest.split("/")):
        raise ParameterError(f"uri={uri!r} must not contain '..' segments")
    trailing = "/" if rest.endswith("/") else ""
    if scheme == "s3":
        parts = [p for p in rest.split("/") if p not in ("", ".")]
        if not parts:
            raise ParameterError(f"uri={uri!r} names no bucket")
        return "s3://" + "/".join(parts) + (trailing if len(parts) > 1 or trailing else "")
    return "file://" + posixpath.normpath(rest) + (trailing if rest != "/" else "")


def join(base: str, key: str) -> str:
    """``base`` URI (a "folder") joined with a relative ``key`` checked by :func:`safe_key`."""
    return base.rstrip("/") + "/" + safe_key(key)


def is_under(uri: str, prefix: str) -> bool:
    """Whether normalised ``uri`` lies under ``prefix`` (folder semantics: ``s3://b/a`` is not
    under ``s3://b/ab``)."""
    u, p = normalize_uri(uri), normalize_uri(prefix)
    if p.endswith("/") or p.endswith("://"):
        return u.startswith(p)
    return u == p or u.startswith(p + "/")


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    rel: str  # key relative to the listed prefix, '/'-separated
    size: int
    etag: str  # S3 ETag, or mtime+size for local files: changes when the object changes


class Storage:
    """One fsspec view of local disks and S3, rooted at ``root`` for the service's own objects.

    ``root`` holds uploads (``uploads/<job>/``) and single-job outputs (``jobs/<job>/``); batch
    sources and destinations are arbitrary URIs that pass :meth:`check_allowed`.
    """

    def __init__(
        self,
        root: str,
        *,
        s3_options: dict[str, Any] | None = None,
        allowed_prefixes: list[str] | None = None,
    ) -> None:
        self.root = normalize_uri(root).rstrip("/")
        self.s3_options = dict(s3_options or {})
        prefixes = allowed_prefixes if allowed_prefixes else [self.root, "s3://"]
        self.allowed_prefixes = [p if p == "s3://" else normalize_uri(p) for p in prefixes]
        if self.root.startswith("file://"):
            Path(self.root[len("file://") :]).mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        root = settings.storage_root or str(settings.cache_dir / "storage")
        s3: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
        client_kwargs: dict[str, Any] = {}
        if settings.s3_endpoint_url:
            client_kwargs["endpoint_url"] = settings.s3_endpoint_url
        if settings.s3_region:
            client_kwargs["region_name"] = settings.s3_region
        if client_kwargs:
            s3["client_kwargs"] = client_kwargs
        if settings.s3_access_key_id:
            s3["key"] = settings.s3_access_key_id
            s3["secret"] = settings.s3_secret_access_key
        prefixes = [p.strip() for p in settings.source_prefixes.split(",") if p.strip()]
        return cls(root, s3_options=s3, allowed_prefixes=prefixes)

    # -- addressing ------------------------------------------------------------------------
    def key_uri(self, key: str) -> str:
        """URI of ``key`` under the service's root."""
        return join(self.root, key)

    def check_allowed(self, uri: str) -> str:
        """Normalise a user-given URI and require it to lie under an allowed prefix."""
        norm = normalize_uri(uri)
        if not any(
            norm.startswith("s3://") if p == "s3://" else is_under(norm, p)
            for p in self.allowed_prefixes
        ):
            raise ParameterError(
                f"uri={uri!r} is outside the allowed prefixes ({', '.join(self.allowed_prefixes)})"
            )
        return norm

    def _fs(self, uri: str) -> tuple[Any, str]:
        norm = normalize_uri(uri)
        if norm.startswith("s3://"):
            import s3fs

            return s3fs.S3FileSystem(**self.s3_options), norm[len("s3://") :].rstrip("/")
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), norm[len("file://") :].rstrip("/") or "/"

    @staticmethod
    def _is_local(fs: Any) -> bool:
        return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    # -- reads -----------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        fs, path = self._fs(uri)
        return bool(fs.exists(path))

    def is_file(self, uri: str) -> bool:
        """True for an object (a file), False for a folder/prefix or nothing."""
        fs, path = self._fs(uri)
        return bool(fs.isfile(path))

    def size(self, uri: str) -> int:
        fs, path = self._fs(uri)
        return int(fs.size(path))

    def open_read(self, uri: str) -> Any:
        fs, path = self._fs(uri)
        return fs.open(path, "rb")

    def iter_bytes(self, uri: str, chunk: int = CHUNK) -> Iterator[bytes]:
        with self.open_read(uri) as f:
            while data := f.read(chunk):
                yield data

    def read_bytes(self, uri: str) -> bytes:
        fs, path = self._fs(uri)
        return bytes(fs.cat_file(path))

    def get_file(self, uri: str, local: Path) -> str:
        """Copy ``uri`` to ``local`` in chunks; return its sha256 (hex)."""
        digest = hashlib.sha256()
        local.parent.mkdir(parents=True, exist_ok=True)
        with self.open_read(uri) as src, open(local, "wb") as dst:
            while data := src.read(CHUNK):
                digest.update(data)
                dst.write(data)
        return digest.hexdigest()

    def list(self, prefix: str, pattern: str = "*") -> list[ObjectInfo]:
        """Objects under folder ``prefix`` whose relative key (or, for a pattern without '/',
        whose base name) matches the glob ``pattern``; sorted by key. Hidden service folders
        (``.avagent/``) are skipped."""
        fs, base = self._fs(prefix)
        scheme = "s3://" if normalize_uri(prefix).startswith("s3://") else "file://"
        if not fs.exists(base):
            raise FileNotFoundError(f"{prefix} does not exist")
        out: list[ObjectInfo] = []
        for path, info in sorted(fs.find(base, detail=True).items()):
            if info.get("type") == "directory":
                continue
            rel = path[len(base) :].lstrip("/")
            if not rel or rel.startswith(".avagent/") or "/.avagent/" in rel:
                continue
            target = rel if "/" in pattern else posixpath.basename(rel)
            if not fnmatch.fnmatchcase(target, pattern):
                continue
            etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
            if not etag:
                etag = f"{info.get('mtime', info.get('LastModified', ''))}-{info.get('size')}"
            out.append(
                ObjectInfo(uri=f"{scheme}{path}", rel=rel, size=int(info.get("size") or 0), etag=etag)
            )
        return out

    # -- writes (atomic) -------------------------------------------------------------------
    def put_file(self, local: Path, uri: str) -> None:
        """Upload ``local`` to ``uri`` atomically (a reader sees the old object or the new)."""
        fs, path = self._fs(uri)
        if self._is_local(fs):
            dest = Path(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            fs.put_file(str(local), path)

    def write_bytes(self, uri: str, data: bytes) -> None:
        fs, path = self._fs(uri)
        if self._is_local(fs):
            dest = Path(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            fs.pipe_file(path, data)

    def delete(self, uri: str, *, recursive: bool = False) -> None:
        fs, path = self._fs(uri)
        if fs.exists(path):
            fs.rm(path, recursive=recursive)

    def ping(self) -> None:
        """Raise if the root cannot be written, read back and deleted (readiness check)."""
        probe = self.key_uri(f".avagent/ready-{uuid.uuid4().hex}")
        self.write_bytes(probe, b"ok")
        try:
            if self.read_bytes(probe) != b"ok":
                raise OSError(f"storage root {self.root} returned different bytes")
        finally:
            self.delete(probe)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            digest.update(data)
    return digest.hexdigest()
