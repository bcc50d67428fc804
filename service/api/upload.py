"""Streaming uploads: the request body goes chunk by chunk to a spool file on disk (never whole
into memory), with the size limit enforced while reading (413) and the content type decided by
the file's first bytes, not its name (415). The spooled file is then probed with PyAV before
it is copied to storage.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

SNIFF_BYTES = 512  # enough for an MPEG-TS sync check (0x47 every 188 bytes)
MAX_FIELD_BYTES = 64 * 1024


class UploadError(Exception):
    """An upload we refuse; ``status`` is the HTTP answer (400, 413, 415, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# Leading bytes of containers FFmpeg reads (checked against the content, not the name).
def sniff(head: bytes) -> str | None:
    """The container family of a file's first bytes, or None when it is not audio/video."""
    h = head
    if len(h) >= 12 and h[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        brand = h[8:12]
        if h[4:8] == b"ftyp" and brand in (b"heic", b"heix", b"avif", b"mif1", b"msf1"):
            return None  # HEIF/AVIF still images use the same box format
        return "mp4"
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if h.startswith(b"RIFF") and h[8:12] in (b"WAVE", b"AVI "):
        return "wav" if h[8:12] == b"WAVE" else "avi"
    if h.startswith(b"RF64") or h.startswith(b"BW64"):
        return "wav"
    if h.startswith(b"OggS"):
        return "ogg"
    if h.startswith(b"fLaC"):
        return "flac"
    if h.startswith(b"ID3") or (len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0):
        return "mp3"  # also ADTS AAC (0xFFF1 / 0xFFF9)
    if h.startswith(b"FLV"):
        return "flv"
    if h.startswith(b"FORM") and h[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if h.startswith(b"caff"):
        return "caf"
    if h.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if h.startswith(b"\x00\x00\x01\xba") or h.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg"
    if len(h) > 376 and h[0] == 0x47 and h[188] == 0x47 and h[376] == 0x47:
        return "mpegts"
    if h.startswith(b"#!AMR"):
        return "amr"
    return None


_KNOWN_OTHER = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BM", "a BMP image"),
    (b"RIFF", "a RIFF file that is neither WAVE nor AVI (WebP?)"),
    (b"\x7fELF", "an executable"),
    (b"{", "JSON or text"),
    (b"<", "HTML or XML"),
)


def describe(head: bytes) -> str:
    """A short guess at what a refused file is, for the 415 message."""
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    for magic, what in _KNOWN_OTHER:
        if head.startswith(magic):
            return what
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "an unknown format"


class Spool:
    """Bytes into a file on disk with a hard size limit and a content check on the first bytes."""

    def __init__(self, path: Path, limit_bytes: int) -> None:
        self.path = path
        self.limit = limit_bytes
        self.size = 0
        self.head = b""
        self.kind: str | None = None
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed in close())

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise UploadError(
                413, f"upload is larger than the limit of {self.limit / 1e6:g} MB "
                     "(AVAGENT_MAX_UPLOAD_MB)"
            )
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= SNIFF_BYTES:
                self._check()
        self._f.write(data)

    def _check(self) -> None:
        self.kind = sniff(self.head)
        if self.kind is None:
            raise UploadError(
                415, f"the file is {describe(self.head)}, not a video or audio container "
                     "(judged by its content, not its name)"
            )

    def abort(self) -> None:
        """Close the file without checks (idempotent)."""
        if not self._f.closed:
            self._f.close()

    def close(self) -> None:
        """Finish: refuse empty files, check short files' content."""
        self._f.close()
        if self.size == 0:
            raise UploadError(422, "the uploaded file is empty (0 bytes)")
        if self.kind is None:
            self._check()


def content_disposition(value: bytes) -> tuple[str | None, str | None]:
    """``(name, filename)`` of a part's Content-Disposition header."""
    _, params = parse_options_header(value)
    name = params.get(b"name")
    filename = params.get(b"filename")
    return (
        name.decode("utf-8", "replace") if name is not None else None,
        filename.decode("utf-8", "replace") if filename is not None else None,
    )


async def read_multipart(
    stream: AsyncIterator[bytes], boundary: bytes, spool: Spool, file_field: str = "file"
) -> tuple[dict[str, list[str]], str | None]:
    """Parse a multipart body from ``stream``: the ``file_field`` part goes into ``spool``,
    other parts (small text fields) are returned. Returns ``(fields, filename)``."""
    fields: dict[str, list[str]] = {}
    state: dict[str, Any] = {
        "hname": b"", "hvalue": b"", "headers": {}, "name": None, "filename": None,
        "buf": bytearray(), "is_file": False, "filename_out": None, "got_file": False,
    }

    def on_part_begin() -> None:
        state.update(headers={}, name=None, filename=None, buf=bytearray(), is_file=False,
                     hname=b"", hvalue=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["hname"].lower()] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished() -> None:
        name, filename = content_disposition(state["headers"].get(b"content-disposition", b""))
        state["name"], state["filename"] = name, filename
        if name == file_field:
            if state["got_file"]:
                raise UploadError(400, f"send one '{file_field}' part per job")
            state["is_file"], state["got_file"] = True, True
            state["filename_out"] = filename

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["is_file"]:
            spool.write(data[start:end])
        else:
            buf: bytearray = state["buf"]
            buf.extend(data[start:end])
            if len(buf) > MAX_FIELD_BYTES:
                raise UploadError(413, f"form field {state['name']!r} is too large")

    def on_part_end() -> None:
        if not state["is_file"] and state["name"]:
            fields.setdefault(state["name"], []).append(bytes(state["buf"]).decode("utf-8", "replace"))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # python-multipart raises its own errors on malformed bodies
        raise UploadError(400, f"malformed multipart body: {exc}") from None
    if not state["got_file"]:
        raise UploadError(422, f"multipart body has no '{file_field}' part")
    return fields, state["filename_out"]


def options_from_fields(fields: dict[str, list[str]]) -> dict[str, Any]:
    """Options from form fields (or query parameters): either one ``options`` JSON field, or
    ``planner``, ``max_rounds``, ``threshold``, ``outputs`` (repeated or comma-separated)."""
    out: dict[str, Any] = {}
    if "options" in fields:
        try:
            parsed = json.loads(fields["options"][-1])
        except ValueError as exc:
            raise UploadError(422, f"field 'options' is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise UploadError(422, "field 'options' must be a JSON object")
        out.update(parsed)
    for name in ("planner", "max_rounds", "threshold"):
        if name in fields and fields[name][-1] != "":
            out[name] = fields[name][-1]
    if "outputs" in fields:
        out["outputs"] = [o.strip() for v in fields["outputs"] for o in v.split(",") if o.strip()]
    return out


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

_EXT_FOR_KIND = {
    "mp4": ".mp4", "matroska": ".mkv", "wav": ".wav", "avi": ".avi", "ogg": ".ogg",
    "flac": ".flac", "mp3": ".mp3", "flv": ".flv", "aiff": ".aiff", "caf": ".caf",
    "asf": ".wmv", "mpeg": ".mpg", "mpegts": ".ts", "amr": ".amr",
}


def input_name(filename: str | None, kind: str | None, known_exts: frozenset[str]) -> str:
    """A safe file name for the stored upload: the client's stem (sanitised) and its extension
    when it is a known media extension, else one implied by the sniffed content."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _SAFE.sub("_", stem).strip("._-")[:100] or "input"
    ext = "." + ext.lower() if ext else ""
    if ext not in known_exts:
        ext = _EXT_FOR_KIND.get(kind or "", ".bin")
    return stem + ext
