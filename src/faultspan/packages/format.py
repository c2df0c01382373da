"""The ``.fspkg`` replay package: building, atomic writing, reading untrusted files (package-format.md)."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import platform
import re
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

FORMAT_NAME = "faultspan-package"
FORMAT_VERSION = 1
EXTENSION = ".fspkg"
MANIFEST = "manifest.json"
TRACE = "trace.json"
REPLAY = "replay.json"
RUNTIME = "runtime.json"
REQUIRED_MEMBERS = (TRACE, REPLAY, RUNTIME)
NOT_REPLAYABLE = {"replayable": False, "reason": "replay capture is not enabled for this failure"}

MAX_MEMBERS = 16
MAX_TOTAL_SIZE = 64 * 1024 * 1024
MAX_RATIO = 100
# Small members compress far better than 100:1 when they are mostly indentation or repeats; a bomb is big.
RATIO_FLOOR = 1024 * 1024

_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_SYMLINK = 0o120000
_FILE_TYPE_MASK = 0o170000
_DRIVE = re.compile(r"^[A-Za-z]:")
_HEX = re.compile(r"^[0-9a-f]+$")
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_OF_DIRECTORY_SIZE = 22
_MAX_COMMENT = 0xFFFF
MAX_DIRECTORY_SIZE = 64 * 1024


class PackageError(Exception):
    """A package that cannot be trusted or read; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class Failure:
    """What the manifest says about the failure a package holds."""

    fingerprint: str
    exception_type: str
    exception_message: str
    service: str
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Package:
    """A verified package: the manifest and every other member parsed from JSON."""

    manifest: dict[str, Any]
    members: dict[str, Any]


# -- OTLP/JSON -----------------------------------------------------------------------------------------------


def _each_id_holder(document: dict[str, Any]) -> list[dict[str, Any]]:
    holders: list[dict[str, Any]] = []
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                holders.append(span)
                holders.extend(span.get("links", []))
    return holders


def _convert_ids(document: dict[str, Any], convert: Callable[[str], str]) -> None:
    for holder in _each_id_holder(document):
        for field in _HEX_ID_FIELDS:
            if field in holder:
                holder[field] = convert(holder[field])


def _base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_base64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def encode_trace(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Spans as spec OTLP/JSON: lowerCamelCase, integer enums, int64 as strings, hex ids."""
    document: dict[str, Any] = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _convert_ids(document, _base64_to_hex)
    return document


def decode_trace(document: Mapping[str, Any]) -> Any:
    """OTLP/JSON back to an ``ExportTraceServiceRequest`` (protobuf's JSON parser reads ids as base64)."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    _convert_ids(copy, _hex_to_base64)
    return json_format.ParseDict(copy, ExportTraceServiceRequest())


# -- writing -------------------------------------------------------------------------------------------------


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, str]:
    found: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def runtime_facts() -> dict[str, Any]:
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "distributions": _distributions(),
        "entry_point": sys.argv[0] if sys.argv else "",
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_name(failure: Failure, created: datetime) -> str:
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{failure.fingerprint[:12]}-{failure.trace_id[:8]}{EXTENSION}"


def build(failure: Failure, spans: Sequence[ReadableSpan], created: datetime) -> bytes:
    members = {
        TRACE: _dump(encode_trace(spans)),
        REPLAY: _dump(NOT_REPLAYABLE),
        RUNTIME: _dump(runtime_facts()),
    }
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": rfc3339(created),
        "fingerprint": failure.fingerprint,
        "exception": {"type": failure.exception_type, "message": failure.exception_message},
        "service": failure.service,
        "trace_id": failure.trace_id,
        "span_id": failure.span_id,
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr(MANIFEST, _dump(manifest))
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_atomic(directory: Path, name: str, data: bytes) -> Path:
    """Temp file in the same directory, fsync, rename, fsync the directory: a reader sees all or nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, final)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)
    return final


# -- reading untrusted files ---------------------------------------------------------------------------------


def _check_name(name: str, seen: set[str]) -> None:
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise PackageError(f"absolute member name {name!r}")
    if ".." in re.split(r"[/\\]", name):
        raise PackageError(f"member name {name!r} escapes the archive")
    if name in seen:
        raise PackageError(f"duplicate member {name!r}")
    seen.add(name)


def _check_entries(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_MEMBERS:
        raise PackageError(f"too many members ({len(entries)} > {MAX_MEMBERS})")
    seen: set[str] = set()
    total = 0
    for entry in entries:
        _check_name(entry.filename, seen)
        if (entry.external_attr >> 16) & _FILE_TYPE_MASK == _SYMLINK:
            raise PackageError(f"member {entry.filename!r} is a symlink")
        if entry.flag_bits & 0x1:
            raise PackageError(f"member {entry.filename!r} is encrypted")
        total += entry.file_size
        if total > MAX_TOTAL_SIZE:
            raise PackageError(f"uncompressed size exceeds {MAX_TOTAL_SIZE} bytes")
        if entry.file_size > RATIO_FLOOR and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
            ratio = entry.file_size // max(entry.compress_size, 1)
            raise PackageError(f"member {entry.filename!r} compression ratio {ratio}:1 exceeds {MAX_RATIO}:1")


def _check_entry_count(path: Path, size: int) -> None:
    """Reads the member count and the central directory's size from the end-of-central-directory record
    before ``zipfile`` builds a ZipInfo for every entry (it trusts the size, not the count)."""
    with path.open("rb") as stream:
        tail_size = min(size, _END_OF_DIRECTORY_SIZE + _MAX_COMMENT)
        stream.seek(size - tail_size)
        tail = stream.read(tail_size)
    start = tail.rfind(_END_OF_DIRECTORY)
    if start < 0 or len(tail) < start + _END_OF_DIRECTORY_SIZE:
        raise PackageError("not a valid ZIP archive (no end of central directory)")
    count, directory_size = struct.unpack_from("<HI", tail, start + 10)
    if count > MAX_MEMBERS:
        raise PackageError(f"too many members ({count} > {MAX_MEMBERS})")
    if directory_size > MAX_DIRECTORY_SIZE:
        raise PackageError(f"central directory larger than {MAX_DIRECTORY_SIZE} bytes")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise PackageError(f"{name} is not UTF-8") from None
    except (ValueError, RecursionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PackageError(f"{name} is not valid JSON ({reason})") from None


def _require(mapping: Mapping[str, Any], key: str, kind: type, where: str = MANIFEST) -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PackageError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    return value


def _check_manifest(manifest: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(manifest, dict):
        raise PackageError(f"{MANIFEST} is not a JSON object")
    if _require(manifest, "format", str) != FORMAT_NAME:
        raise PackageError(f"{MANIFEST}: format is not {FORMAT_NAME!r}")
    version = _require(manifest, "format_version", int)
    if version != FORMAT_VERSION:
        raise PackageError(f"unsupported format version {version} (this reader knows {FORMAT_VERSION})")
    for key in ("created", "fingerprint", "service", "trace_id"):
        _require(manifest, key, str)
    try:
        datetime.fromisoformat(manifest["created"].replace("Z", "+00:00"))
    except ValueError:
        raise PackageError(f"{MANIFEST}: created is not an RFC 3339 time") from None
    if len(manifest["trace_id"]) != 32 or not _HEX.match(manifest["trace_id"]):
        raise PackageError(f"{MANIFEST}: trace_id is not 32 lowercase hex digits")
    exception = _require(manifest, "exception", dict)
    _require(exception, "type", str, f"{MANIFEST} exception")
    _require(exception, "message", str, f"{MANIFEST} exception")
    members: dict[str, dict[str, Any]] = _require(manifest, "members", dict)
    for name, entry in members.items():
        where = f"{MANIFEST} member {name!r}"
        if not isinstance(entry, dict):
            raise PackageError(f"{where} is not an object")
        digest = _require(entry, "sha256", str, where)
        if len(digest) != 64 or not _HEX.match(digest):
            raise PackageError(f"{where}: sha256 is not 64 lowercase hex digits")
        if _require(entry, "size", int, where) < 0:
            raise PackageError(f"{where}: negative size")
    for name in REQUIRED_MEMBERS:
        if name not in members:
            raise PackageError(f"{MANIFEST} does not list {name}")
    return members


def _read_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    with archive.open(entry) as stream:
        data = stream.read(entry.file_size + 1)
    if len(data) != entry.file_size:
        raise PackageError(f"member {entry.filename!r} does not match its declared size")
    return data


def _read(archive: zipfile.ZipFile) -> Package:
    entries = archive.infolist()
    _check_entries(entries)
    by_name = {entry.filename: entry for entry in entries}
    if MANIFEST not in by_name:
        raise PackageError(f"missing member {MANIFEST}")
    manifest = _parse_json(MANIFEST, _read_member(archive, by_name[MANIFEST]))
    listed = _check_manifest(manifest)
    for name in by_name:
        if name != MANIFEST and name not in listed:
            raise PackageError(f"member {name!r} is not listed in {MANIFEST}")
    members: dict[str, Any] = {}
    for name, entry in listed.items():
        if name not in by_name:
            raise PackageError(f"missing member {name!r}")
        data = _read_member(archive, by_name[name])
        if len(data) != entry["size"]:
            raise PackageError(f"member {name!r} has {len(data)} bytes, the manifest says {entry['size']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise PackageError(f"member {name!r} SHA-256 does not match the manifest")
        members[name] = _parse_json(name, data) if name.endswith(".json") else data
    if not isinstance(members[TRACE], dict):
        raise PackageError(f"{TRACE} is not a JSON object")
    try:
        decode_trace(members[TRACE])
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PackageError(f"{TRACE} is not an OTLP/JSON ExportTraceServiceRequest ({reason})") from None
    replay = members[REPLAY]
    if not isinstance(replay, dict) or not isinstance(replay.get("replayable"), bool):
        raise PackageError(f"{REPLAY}: field 'replayable' is missing or not a bool")
    if not isinstance(members[RUNTIME], dict):
        raise PackageError(f"{RUNTIME} is not a JSON object")
    return Package(manifest=manifest, members=members)


def read_package(path: Path) -> Package:
    """Verify and parse a package from disk without extracting anything; raises only ``PackageError``."""
    try:
        size = path.stat().st_size
        if size > MAX_TOTAL_SIZE:
            raise PackageError(f"file is larger than {MAX_TOTAL_SIZE} bytes")
        _check_entry_count(path, size)
        with zipfile.ZipFile(path) as archive:
            return _read(archive)
    except PackageError:
        raise
    except OSError as error:
        raise PackageError(f"cannot read ({error.strerror or error})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise PackageError(f"not a valid ZIP archive ({error})") from None
    except (NotImplementedError, RuntimeError, ValueError) as error:
        raise PackageError(f"unreadable archive ({error})") from None
