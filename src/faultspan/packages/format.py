"""The ``.fspkg`` replay package: building, atomic writing, reading untrusted files (package-format.md)."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import math
import os
import platform
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from faultspan.packages import signing
from faultspan.processor import plain_attributes
from faultspan.redaction import REDACTED, Redactor

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
MAX_NAME_ATTEMPTS = 100

_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_SYMLINK = 0o120000
_FILE_TYPE_MASK = 0o170000
_DRIVE = re.compile(r"^[A-Za-z]:")
_HEX = re.compile(r"^[0-9a-f]+$")
_TEMPORARY_NAME = re.compile(r"\.([0-9]+)-[^/]*\.tmp")
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_OF_DIRECTORY_SIZE = 22
_MAX_COMMENT = 0xFFFF
_LOCAL_HEADER = "<4s5H3L2H"
_CENTRAL_HEADER = "<4s6H3L5H2L"
_END_RECORD = "<4s4H2LH"
_ZIP_VERSION = 20  # 2.0: deflate
_ZIP_MADE_BY = 3 << 8 | _ZIP_VERSION  # Unix, so that the mode in the external attributes counts
_ZIP_MODE = 0o100600 << 16
_ZIP_DATE = 0x21  # 1980-01-01, the earliest a ZIP header can hold
MAX_DIRECTORY_SIZE = 64 * 1024


_Read = TypeVar("_Read")


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
    """A verified package: the manifest, every other listed member parsed from JSON, ``trace.json`` decoded
    (an ``ExportTraceServiceRequest``, as verifying made it), and the parsed ``signature.json`` when
    present (check it with ``signing.is_signed_by(manifest, signature, key)``)."""

    manifest: dict[str, Any]
    members: dict[str, Any]
    request: Any
    signature: Any = None


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


_INT64 = 1 << 63
# SpanKind's values are INTERNAL=0 ... CONSUMER=4; OTLP numbers them from 1 (0 is UNSPECIFIED).
_KIND_OFFSET = 1
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200


def _utf8(text: str) -> str:
    """Protobuf refuses lone surrogates; an attribute holding one is skipped, as the OTLP exporter does."""
    if not text.isascii():
        text.encode("utf-8")
    return text


def _double(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def _any_value(value: object) -> dict[str, Any]:
    """``opentelemetry``'s ``_encode_value`` with protobuf's JSON mapping, in the same order of checks."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": _utf8(value)}
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{value} does not fit in int64")
        return {"intValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": _double(value)}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        items = [_any_value(item) for item in value]
        return {"arrayValue": {"values": items} if items else {}}
    if isinstance(value, Mapping):
        pairs = [_key_value(str(key), item) for key, item in value.items()]
        return {"kvlistValue": {"values": pairs} if pairs else {}}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _key_value(key: str, value: object) -> dict[str, Any]:
    encoded = _any_value(value)
    return {"key": _utf8(key), "value": encoded} if key else {"value": encoded}


def _attributes(holder: dict[str, Any], attributes: Mapping[str, object] | None, dropped: int) -> None:
    encoded = []
    for key, value in plain_attributes(attributes).items():
        if type(value) is str and value.isascii() and key.isascii() and key:  # most attributes
            encoded.append({"key": key, "value": {"stringValue": value}})
            continue
        try:
            encoded.append(_key_value(key, value))
        except (ValueError, TypeError):  # the OTLP exporter skips what protobuf refuses
            continue
    if encoded:
        holder["attributes"] = encoded
    if dropped:
        holder["droppedAttributesCount"] = dropped


def _text_field(holder: dict[str, Any], name: str, text: str | None) -> None:
    if text:
        holder[name] = text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _nanos(holder: dict[str, Any], name: str, value: int | None) -> None:
    if value:
        holder[name] = str(value)


def _flags(parent: SpanContext | None) -> int:
    return _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if parent is not None and parent.is_remote else 0)


def _encode_span(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    encoded: dict[str, Any] = {"traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}"}
    if context.trace_state:
        _text_field(encoded, "traceState", ",".join(f"{k}={v}" for k, v in context.trace_state.items()))
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    _text_field(encoded, "name", span.name)
    encoded["kind"] = span.kind.value + _KIND_OFFSET
    _nanos(encoded, "startTimeUnixNano", span.start_time)
    _nanos(encoded, "endTimeUnixNano", span.end_time)
    _attributes(encoded, span._attributes, span.dropped_attributes)  # the SDK copies for .attributes
    events = []
    for event in span.events:
        item: dict[str, Any] = {}
        _nanos(item, "timeUnixNano", event.timestamp)
        _text_field(item, "name", event.name)
        _attributes(item, event.attributes, event.dropped_attributes)
        events.append(item)
    if events:
        encoded["events"] = events
    if span.dropped_events:
        encoded["droppedEventsCount"] = span.dropped_events
    links = []
    for link in span.links:
        item = {"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}"}
        _attributes(item, link.attributes, link.dropped_attributes)
        item["flags"] = _flags(link.context)
        links.append(item)
    if links:
        encoded["links"] = links
    if span.dropped_links:
        encoded["droppedLinksCount"] = span.dropped_links
    if span.status is not None:
        status: dict[str, Any] = {}
        _text_field(status, "message", span.status.description)
        if span.status.status_code.value:
            status["code"] = span.status.status_code.value
        encoded["status"] = status
    encoded["flags"] = _flags(span.parent)
    return encoded


def _encode_scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    if scope is not None:
        _text_field(encoded, "name", scope.name)
        _text_field(encoded, "version", scope.version)
        _attributes(encoded, scope.attributes, 0)
    return encoded


def _grouped(spans: Sequence[ReadableSpan]) -> dict[Resource, dict[InstrumentationScope | None, list[Any]]]:
    """Spans by equal resource, then equal scope, as the OTLP exporter groups them. Hashing a resource
    serialises its attributes, so each distinct object is hashed once."""
    groups: dict[Resource, dict[InstrumentationScope | None, list[Any]]] = {}
    by_identity: dict[tuple[int, int], list[Any]] = {}
    for span in spans:
        scope = span.instrumentation_scope or None
        key = (id(span.resource), id(scope))
        group = by_identity.get(key)
        if group is None:
            group = by_identity[key] = groups.setdefault(span.resource, {}).setdefault(scope, [])
        group.append(span)
    return groups


def encode_trace(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Spans as spec OTLP/JSON (lowerCamelCase, integer enums, int64 as strings, hex ids), built directly:
    the same document as protobuf's ``MessageToDict(encode_spans(spans))`` with hex ids, at a fraction of
    the cost (tests/test_package_writer.py proves they decode to the same bytes)."""
    resource_spans = []
    for resource, scopes in _grouped(spans).items():
        resource_document: dict[str, Any] = {}
        _attributes(resource_document, resource.attributes, 0)
        scope_spans = []
        for scope, members in scopes.items():
            scope_document = {
                "scope": _encode_scope(scope),
                "spans": [_encode_span(span) for span in members],
            }
            _text_field(scope_document, "schemaUrl", scope.schema_url if scope else None)
            scope_spans.append(scope_document)
        document = {"resource": resource_document, "scopeSpans": scope_spans}
        _text_field(document, "schemaUrl", resource.schema_url)
        resource_spans.append(document)
    return {"resourceSpans": resource_spans} if resource_spans else {}


def trace_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The ``trace.json`` member. Unescaped UTF-8 is a third faster to write than ASCII, and
    ``encode_trace`` leaves no lone surrogate that UTF-8 would refuse."""
    return json.dumps(encode_trace(spans), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Unusual(Exception):
    """A value outside the common shape ``_fast_fields`` reads; protobuf's parser decides about it."""


# Ids as lowercase hex, int64 as decimal digits, bytes as canonical base64: what encode_trace writes.
_HEX_BYTES = re.compile(r"(?:[0-9a-f]{2})*")
_DECIMAL = re.compile(r"-?[0-9]+")
# Far below json_format's limit of 100 nested messages, which the slow path then enforces.
_MAX_FAST_DEPTH = 64
_Convert = Callable[[Any, int], Any]


def _string(value: Any, depth: int) -> str:
    if type(value) is not str:
        raise _Unusual
    return value  # a lone surrogate makes the message constructor raise


def _boolean(value: Any, depth: int) -> bool:
    if type(value) is not bool:
        raise _Unusual
    return value


def _integer(value: Any, depth: int) -> int:
    """An int, or decimal digits as OTLP writes int64 (the message constructor checks the range)."""
    if type(value) is int:
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return int(value)
    raise _Unusual


def _enum_number(value: Any, depth: int) -> int:
    if type(value) is not int:
        raise _Unusual
    return value


def _finite_double(value: Any, depth: int) -> float:
    if type(value) is int:
        return float(value)
    if type(value) is not float or not math.isfinite(value):
        raise _Unusual
    return value


def _hex_id(value: Any, depth: int) -> bytes:
    if type(value) is not str or not _HEX_BYTES.fullmatch(value):
        raise _Unusual
    return bytes.fromhex(value)


def _base64(value: Any, depth: int) -> bytes:
    if type(value) is not str:
        raise _Unusual
    try:
        decoded = base64.b64decode(value, validate=True)
    except ValueError:
        raise _Unusual from None
    if base64.b64encode(decoded).decode("ascii") != value:
        raise _Unusual
    return decoded


def _unusual(value: Any, depth: int) -> Any:
    raise _Unusual


_SCALARS: dict[int, _Convert] = {
    FieldDescriptor.TYPE_STRING: _string,
    FieldDescriptor.TYPE_BOOL: _boolean,
    FieldDescriptor.TYPE_ENUM: _enum_number,
    FieldDescriptor.TYPE_DOUBLE: _finite_double,
    FieldDescriptor.TYPE_BYTES: _base64,
    **dict.fromkeys(
        (
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_FIXED32,
            FieldDescriptor.TYPE_FIXED64,
            FieldDescriptor.TYPE_SFIXED32,
            FieldDescriptor.TYPE_SFIXED64,
        ),
        _integer,
    ),
}
_ID_HOLDERS = ("opentelemetry.proto.trace.v1.Span", "opentelemetry.proto.trace.v1.Span.Link")


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _Unusual
    return value


def _converter(field: Any) -> _Convert:
    """How to read a field's value. OTLP traces have no map and no repeated scalar field: should a new
    version add one, protobuf's parser reads it."""
    if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
        message_type = field.message_type
        if field.is_repeated:
            return lambda value, depth: [_fast_fields(message_type, item, depth + 1) for item in _list(value)]
        return lambda value, depth: _fast_fields(message_type, value, depth + 1)
    if field.is_repeated:
        return _unusual
    if field.json_name in _HEX_ID_FIELDS and field.containing_type.full_name in _ID_HOLDERS:
        return _hex_id
    return _SCALARS.get(field.type, _unusual)


@functools.cache
def _fields(descriptor: Any) -> dict[str, tuple[str, _Convert, str | None]]:
    """Each field by its JSON name: its Python name, how to read its value, and its oneof."""
    return {
        field.json_name: (
            field.name,
            _converter(field),
            field.containing_oneof.name if field.containing_oneof else None,
        )
        for field in descriptor.fields
    }


def _fast_fields(descriptor: Any, document: Any, depth: int) -> dict[str, Any]:
    """The message's constructor arguments (nested messages as dicts) from the subset of OTLP/JSON that
    ``encode_trace`` writes; ``_Unusual`` for anything else (other spellings, nulls, unknown fields)."""
    if type(document) is not dict or depth > _MAX_FAST_DEPTH:
        raise _Unusual
    fields = _fields(descriptor)
    arguments: dict[str, Any] = {}
    oneofs: set[str] = set()
    for key, value in document.items():
        name, convert, oneof = fields.get(key) or _unusual(key, depth)
        if oneof is not None:
            if oneof in oneofs:
                raise _Unusual
            oneofs.add(oneof)
        arguments[name] = convert(value, depth)
    return arguments


def decode_trace(document: Mapping[str, Any]) -> Any:
    """OTLP/JSON back to an ``ExportTraceServiceRequest``.

    What ``encode_trace`` writes is read by ``_fast_fields``, four times faster than protobuf's parser and
    to the same message (tests/test_package_reading.py); any other document goes to protobuf's parser,
    which accepts or rejects it as it always did (after the hex ids are made the base64 it reads).
    """
    try:
        return ExportTraceServiceRequest(**_fast_fields(ExportTraceServiceRequest.DESCRIPTOR, document, 1))
    except (_Unusual, ValueError, TypeError, OverflowError):
        return _parse_with_protobuf(document)


def _parse_with_protobuf(document: Mapping[str, Any]) -> Any:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    _convert_ids(copy, _hex_to_base64)
    return json_format.ParseDict(copy, ExportTraceServiceRequest())


# -- writing -------------------------------------------------------------------------------------------------

# Level 1 takes less than half of level 6's time; a typical package gets about 10 % larger.
COMPRESS_LEVEL = 1
STORE_BELOW = 1024
TEMPORARY_SUFFIX = ".tmp"


def dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, str]:
    found: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(name, distribution.version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _redacted_argv(argv: Sequence[str], redactor: Redactor) -> list[str]:
    """Each argument through the value rules; the value after a secret-named option (``--password x``) and
    the value of ``--token=x`` are masked by the option's name."""
    redacted: list[str] = []
    secret_next = False
    for argument in argv:
        option, equals, _ = argument.partition("=")
        if secret_next:
            redacted.append(REDACTED)
        elif equals and option.startswith("-") and redactor.is_secret_key(option.lstrip("-")):
            redacted.append(f"{option}={REDACTED}")
        else:
            redacted.append(redactor.scrub_text(argument))
        secret_next = (
            not secret_next
            and argument.startswith("-")
            and not equals
            and redactor.is_secret_key(argument.lstrip("-"))
        )
    return redacted


def runtime_facts(*, argv: bool, environment: bool, redactor: Redactor) -> dict[str, Any]:
    facts: dict[str, Any] = {
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
    if argv:
        facts["argv"] = _redacted_argv(sys.argv, redactor)
    if environment:
        variables = dict(sorted(os.environ.items()))
        facts["environment"] = redactor.scrub_attributes(variables, "environment.", []) or variables
    return facts


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


def _deflated(data: bytes) -> tuple[int, int, bytes]:
    """Compression method, CRC-32 and stored form of a member. Small members are stored: setting up a
    deflate stream costs more than the few bytes it would save."""
    if len(data) < STORE_BELOW:
        return zipfile.ZIP_STORED, zlib.crc32(data), data
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return zipfile.ZIP_DEFLATED, zlib.crc32(data), compressor.compress(data) + compressor.flush()


# runtime.json is the same bytes object in every package of a process (and bytes cache their own hash).
_runtime_deflated = functools.lru_cache(maxsize=2)(_deflated)


def zip_package(manifest: Mapping[str, Any], members: Mapping[str, bytes], signing_key: str = "") -> bytes:
    """The ZIP file; with a key, ``signature.json`` signs the manifest (which hashes every other member).

    Written directly rather than through ``zipfile``, whose per-member bookkeeping cost more than deflating
    a typical package: regular files (mode 0600), deflated unless tiny, no directories, no ZIP64 (packages
    are far below 4 GiB), a fixed 1980-01-01 timestamp (the manifest holds the real time).
    """
    named = {MANIFEST: dump(manifest), **members}
    if signing_key:
        named[signing.SIGNATURE] = dump(signing.sign(manifest, signing_key))
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in named.items():
        method, crc, compressed = (_runtime_deflated if name == RUNTIME else _deflated)(data)
        encoded = name.encode("ascii")
        fields = (
            _ZIP_VERSION,
            0,
            method,
            0,
            _ZIP_DATE,
            crc,
            len(compressed),
            len(data),
            len(encoded),
        )
        local.append(struct.pack(_LOCAL_HEADER, b"PK\x03\x04", *fields, 0) + encoded + compressed)
        central.append(
            struct.pack(_CENTRAL_HEADER, b"PK\x01\x02", _ZIP_MADE_BY, *fields, 0, 0, 0, 0, _ZIP_MODE, offset)
            + encoded
        )
        offset += len(local[-1])
    directory = b"".join(central)
    end = struct.pack(_END_RECORD, _END_OF_DIRECTORY, 0, 0, len(named), len(named), len(directory), offset, 0)
    return b"".join(local) + directory + end


def build(
    failure: Failure,
    spans: Sequence[ReadableSpan],
    created: datetime,
    *,
    replay: Mapping[str, Any] | None = None,
    runtime: bytes = b"{}",
    signing_key: str = "",
    **fields: Any,
) -> bytes:
    """A package; ``fields`` override manifest fields (``truncated``, ``dropped_spans``)."""
    members = {
        TRACE: trace_json(spans),
        REPLAY: dump(NOT_REPLAYABLE if replay is None else replay),
        RUNTIME: runtime,
    }
    return zip_package({**manifest_for(failure, created, members), **fields}, members, signing_key)


def rewritten(path: Path, fields: Mapping[str, Any], signing_key: str = "") -> bytes:
    """The package at ``path`` (verified first) with some manifest fields replaced and a new signature."""
    package = read_package(path)
    with zipfile.ZipFile(path) as zip_file:
        members = {name: zip_file.read(name) for name in package.manifest["members"]}
    return zip_package({**package.manifest, **fields}, members, signing_key)


_temporary_numbers = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _temporary(directory: Path) -> tuple[int, str]:
    """A new hidden file named after this process, so a later start can tell a dead writer's leftovers."""
    while True:
        path = os.path.join(directory, f".{os.getpid()}-{next(_temporary_numbers)}{TEMPORARY_SUFFIX}")
        try:
            return os.open(path, _CREATE, 0o600), path
        except FileExistsError:  # left by a dead process that had the same pid
            continue


def _write_all(handle: int, data: bytes) -> None:
    """Plain ``os.write`` calls: system calls are what a package write costs (``open()`` adds three)."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def temporary_owner(name: str) -> int | None:
    """The pid in a temporary file's name, None for a name this module did not make."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return int(match[1]) if match else None


def write_atomic(directory: Path, name: str, data: bytes, *, replace: bool = False) -> Path:
    """Written to a temporary file in ``directory``, then linked under ``name`` (a new name with a ``-<n>``
    suffix when it exists: a package is never replaced) or, with ``replace``, renamed onto it.

    A reader sees all or nothing whatever kills the process. The directory entry becomes durable at the next
    ``sync_directory``: the writer syncs once per batch of packages, not per package.
    """
    handle, temporary = _temporary(directory)
    try:
        try:
            _write_all(handle, data)
        finally:
            os.close(handle)
        if replace:
            final = directory / name
            os.replace(temporary, final)
            return final
        return _link_new(temporary, directory, name)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _link_new(temporary: str, directory: Path, name: str) -> Path:
    stem = name.removesuffix(EXTENSION)
    for attempt in range(MAX_NAME_ATTEMPTS):
        final = directory / (name if attempt == 0 else f"{stem}-{attempt}{EXTENSION}")
        try:
            os.link(temporary, final)
        except FileExistsError:
            continue
        return final
    raise FileExistsError(f"{directory / name} and {MAX_NAME_ATTEMPTS - 1} suffixed names exist")


def sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


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


def _read_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    with archive.open(entry) as stream:
        data = stream.read(entry.file_size + 1)
    if len(data) != entry.file_size:
        raise PackageError(f"member {entry.filename!r} does not match its declared size")
    return data


def _manifest(archive: zipfile.ZipFile) -> tuple[dict[str, Any], dict[str, zipfile.ZipInfo]]:
    """The schema-checked manifest, and the archive's entries by name (checked for safety)."""
    entries = archive.infolist()
    _check_entries(entries)
    by_name = {entry.filename: entry for entry in entries}
    if MANIFEST not in by_name:
        raise PackageError(f"missing member {MANIFEST}")
    manifest = _parse_json(MANIFEST, _read_member(archive, by_name[MANIFEST]))
    _check_manifest(manifest)
    return manifest, by_name


def _read(archive: zipfile.ZipFile) -> Package:
    manifest, by_name = _manifest(archive)
    listed: dict[str, dict[str, Any]] = manifest["members"]
    for name in by_name:
        if name not in (MANIFEST, signing.SIGNATURE) and name not in listed:
            raise PackageError(f"member {name!r} is not listed in {MANIFEST}")
    signature = None
    if signing.SIGNATURE in by_name and signing.SIGNATURE not in listed:
        signature = _parse_json(signing.SIGNATURE, _read_member(archive, by_name[signing.SIGNATURE]))
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
        request = decode_trace(members[TRACE])
    except (json_format.ParseError, ValueError, TypeError, AttributeError, OverflowError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PackageError(f"{TRACE} is not an OTLP/JSON ExportTraceServiceRequest ({reason})") from None
    replay = members[REPLAY]
    if not isinstance(replay, dict) or not isinstance(replay.get("replayable"), bool):
        raise PackageError(f"{REPLAY}: field 'replayable' is missing or not a bool")
    if not isinstance(members[RUNTIME], dict):
        raise PackageError(f"{RUNTIME} is not a JSON object")
    return Package(manifest=manifest, members=members, request=request, signature=signature)


def _open(path: Path, read: Callable[[zipfile.ZipFile], _Read]) -> _Read:
    """``read`` applied to the package at ``path``, every failure turned into a one-line ``PackageError``."""
    try:
        size = path.stat().st_size
        if size > MAX_TOTAL_SIZE:
            raise PackageError(f"file is larger than {MAX_TOTAL_SIZE} bytes")
        _check_entry_count(path, size)
        with zipfile.ZipFile(path) as archive:
            return read(archive)
    except PackageError:
        raise
    except OSError as error:
        raise PackageError(f"cannot read ({error.strerror or error})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise PackageError(f"not a valid ZIP archive ({error})") from None
    except (NotImplementedError, RuntimeError, ValueError) as error:
        raise PackageError(f"unreadable archive ({error})") from None


def read_package(path: Path) -> Package:
    """Verify and parse a package from disk without extracting anything; raises only ``PackageError``."""
    return _open(path, _read)


def read_manifest(path: Path) -> dict[str, Any]:
    """Only the package's manifest, schema-checked, with the archive's safety checks but without reading
    (or verifying) the other members: cheap enough to index a directory."""
    return _open(path, lambda archive: _manifest(archive)[0])
