"""The ``.fspkg`` replay package: manifest, members, building and verified reading (package-format.md)."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan

from faultspan._otlp.otlp_json import decode_logs, decode_trace, logs_json, trace_json
from faultspan.packages import archive, signing
from faultspan.packages.archive import PackageError as PackageError  # noqa: PLC0414 -- readers catch fspkg.PackageError

FORMAT_NAME = "faultspan-package"
FORMAT_VERSION = 1
EXTENSION = ".fspkg"
MANIFEST = "manifest.json"
TRACE = "trace.json"
REPLAY = "replay.json"
RUNTIME = "runtime.json"
LOGS = "logs.json"  # optional: the failing trace's log records, when it has any
REQUIRED_MEMBERS = (TRACE, REPLAY, RUNTIME)
NOT_REPLAYABLE = {"replayable": False, "reason": "replay capture is not enabled for this failure"}
_HEX = re.compile(r"^[0-9a-f]+$")


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
    """A verified package: the manifest, every other listed member parsed from JSON, ``trace.json`` decoded
    (an ``ExportTraceServiceRequest``, as verifying made it), ``logs.json`` decoded likewise (an
    ``ExportLogsServiceRequest``, None when the package has none), and the parsed ``signature.json`` when
    present (check it with ``signing.is_signed_by(manifest, signature, key)``)."""

    manifest: dict[str, Any]
    members: dict[str, Any]
    request: Any
    signature: Any = None
    logs: Any = None


def dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_name(failure: Failure, created: datetime) -> str:
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{failure.fingerprint[:12]}-{failure.trace_id[:8]}{EXTENSION}"


def manifest_for(failure: Failure, created: datetime, members: Mapping[str, bytes]) -> dict[str, Any]:
    stamp = rfc3339(created)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": stamp,
        "fingerprint": failure.fingerprint,
        "exception": {"type": failure.exception_type, "message": failure.exception_message},
        "service": failure.service,
        "trace_id": failure.trace_id,
        "span_id": failure.span_id,
        "occurrences": 1,
        "last_occurrence": stamp,
        "truncated": False,
        "dropped_spans": 0,
        "members": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()
        },
    }


def zip_package(manifest: Mapping[str, Any], members: Mapping[str, bytes], signing_key: str = "") -> bytes:
    """The ZIP file; with a key, ``signature.json`` signs the manifest (which hashes every other member)."""
    named = {MANIFEST: dump(manifest), **members}
    if signing_key:
        named[signing.SIGNATURE] = dump(signing.sign(manifest, signing_key))
    return archive.write_zip(named, cached=RUNTIME)


def build(
    failure: Failure,
    spans: Sequence[ReadableSpan],
    created: datetime,
    *,
    replay: Mapping[str, Any] | None = None,
    runtime: bytes = b"{}",
    signing_key: str = "",
    logs: Sequence[ReadableLogRecord] = (),
    **fields: Any,
) -> bytes:
    """A package; ``fields`` override manifest fields (``truncated``, ``dropped_spans``)."""
    members = {
        TRACE: trace_json(spans),
        REPLAY: dump(NOT_REPLAYABLE if replay is None else replay),
        RUNTIME: runtime,
    }
    if logs:
        members[LOGS] = logs_json(logs)
    return zip_package({**manifest_for(failure, created, members), **fields}, members, signing_key)


def rewritten(path: Path, fields: Mapping[str, Any], signing_key: str = "") -> bytes:
    """The package at ``path`` (verified first) with some manifest fields replaced and a new signature."""
    package = read_package(path)
    with zipfile.ZipFile(path) as zip_file:
        members = {name: zip_file.read(name) for name in package.manifest["members"]}
    return zip_package({**package.manifest, **fields}, members, signing_key)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):  # the rare case: name the first repeated key
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
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


def _manifest(zip_file: zipfile.ZipFile) -> tuple[dict[str, Any], dict[str, zipfile.ZipInfo]]:
    """The schema-checked manifest, and the archive's entries by name (checked for safety)."""
    entries = zip_file.infolist()
    archive.check_entries(entries)
    by_name = {entry.filename: entry for entry in entries}
    if MANIFEST not in by_name:
        raise PackageError(f"missing member {MANIFEST}")
    manifest = _parse_json(MANIFEST, archive.read_member(zip_file, by_name[MANIFEST]))
    _check_manifest(manifest)
    return manifest, by_name


def _read(zip_file: zipfile.ZipFile) -> Package:
    manifest, by_name = _manifest(zip_file)
    listed: dict[str, dict[str, Any]] = manifest["members"]
    for name in by_name:
        if name not in (MANIFEST, signing.SIGNATURE) and name not in listed:
            raise PackageError(f"member {name!r} is not listed in {MANIFEST}")
    signature = None
    if signing.SIGNATURE in by_name and signing.SIGNATURE not in listed:
        signature = _parse_json(signing.SIGNATURE, archive.read_member(zip_file, by_name[signing.SIGNATURE]))
    members: dict[str, Any] = {}
    for name, entry in listed.items():
        if name not in by_name:
            raise PackageError(f"missing member {name!r}")
        data = archive.read_member(zip_file, by_name[name])
        if len(data) != entry["size"]:
            raise PackageError(f"member {name!r} has {len(data)} bytes, the manifest says {entry['size']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise PackageError(f"member {name!r} SHA-256 does not match the manifest")
        members[name] = _parse_json(name, data) if name.endswith(".json") else data
    request = _decoded(members, TRACE, decode_trace, "ExportTraceServiceRequest")
    logs = _decoded(members, LOGS, decode_logs, "ExportLogsServiceRequest") if LOGS in members else None
    replay = members[REPLAY]
    if not isinstance(replay, dict) or not isinstance(replay.get("replayable"), bool):
        raise PackageError(f"{REPLAY}: field 'replayable' is missing or not a bool")
    if not isinstance(members[RUNTIME], dict):
        raise PackageError(f"{RUNTIME} is not a JSON object")
    return Package(manifest=manifest, members=members, request=request, signature=signature, logs=logs)


def _decoded(members: Mapping[str, Any], name: str, decode: Callable[[Any], Any], message: str) -> Any:
    if not isinstance(members[name], dict):
        raise PackageError(f"{name} is not a JSON object")
    try:
        return decode(members[name])
    except (json_format.ParseError, ValueError, TypeError, AttributeError, OverflowError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PackageError(f"{name} is not an OTLP/JSON {message} ({reason})") from None


def read_package(path: Path) -> Package:
    """Verify and parse a package from disk without extracting anything; raises only ``PackageError``."""
    return archive.open_checked(path, _read)


def read_manifest(path: Path) -> dict[str, Any]:
    """Only the package's manifest, schema-checked, with the archive's safety checks but without reading
    (or verifying) the other members: cheap enough to index a directory."""
    return archive.open_checked(path, lambda zip_file: _manifest(zip_file)[0])
