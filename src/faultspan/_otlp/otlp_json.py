"""OTLP/JSON as the specification writes it (hex ids, integer enums, int64 as strings), both directions."""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from faultspan._otlp.sdk_private import plain_attributes, span_attributes

_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _each_id_holder(document: dict[str, Any]) -> list[dict[str, Any]]:
    holders: list[dict[str, Any]] = []
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                holders.append(span)
                holders.extend(span.get("links", []))
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            holders.extend(scope_logs.get("logRecords", []))
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
    _attributes(encoded, span_attributes(span), span.dropped_attributes)
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


def _grouped(
    spans: Sequence[ReadableSpan] | Sequence[ReadableLogRecord],
) -> dict[Resource, dict[InstrumentationScope | None, list[Any]]]:
    """Spans (or log records) by equal resource, then equal scope, as the OTLP exporters group them.
    Hashing a resource serialises its attributes, so each distinct object is hashed once."""
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
_ID_HOLDERS = (
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.trace.v1.Span.Link",
    "opentelemetry.proto.logs.v1.LogRecord",
)


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
    return _decode(ExportTraceServiceRequest, document)


def decode_logs(document: Mapping[str, Any]) -> Any:
    """OTLP/JSON back to an ``ExportLogsServiceRequest``, the same way as ``decode_trace``."""
    return _decode(ExportLogsServiceRequest, document)


def _decode(message: Any, document: Mapping[str, Any]) -> Any:
    try:
        return message(**_fast_fields(message.DESCRIPTOR, document, 1))
    except (_Unusual, ValueError, TypeError, OverflowError):
        return _parse_with_protobuf(document, message)


def _parse_with_protobuf(document: Mapping[str, Any], message: Any = ExportTraceServiceRequest) -> Any:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    _convert_ids(copy, _hex_to_base64)
    return json_format.ParseDict(copy, message())


def _ids_to_hex(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _HEX_ID_FIELDS and isinstance(value, str):
                node[key] = _base64_to_hex(value)
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def request_document(request: Any) -> dict[str, Any]:
    """Any OTLP export request (traces, logs) as the specification's JSON: hex ids, integer enums."""
    document: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    _ids_to_hex(document)
    return document


def _encode_log(record: ReadableLogRecord) -> dict[str, Any]:
    """One log record as ``encode_logs`` of the OTLP exporter writes it, in the JSON mapping."""
    log = record.log_record
    encoded: dict[str, Any] = {}
    _nanos(encoded, "timeUnixNano", log.timestamp)
    _nanos(encoded, "observedTimeUnixNano", log.observed_timestamp)
    severity = getattr(log.severity_number, "value", None)
    if severity:
        encoded["severityNumber"] = severity
    _text_field(encoded, "severityText", log.severity_text)
    encoded["body"] = _any_value(log.body)  # present even when empty, as protobuf's encoding has it
    _attributes(encoded, log.attributes, record.dropped_attributes)
    if log.trace_flags:
        encoded["flags"] = int(log.trace_flags)
    if log.trace_id:
        encoded["traceId"] = f"{log.trace_id:032x}"
    if log.span_id:
        encoded["spanId"] = f"{log.span_id:016x}"
    _text_field(encoded, "eventName", log.event_name)
    return encoded


def encode_logs(records: Sequence[ReadableLogRecord]) -> dict[str, Any]:
    """Log records as spec OTLP/JSON (an ``ExportLogsServiceRequest``), grouped as the OTLP exporter
    groups them; decodes to the same message as its protobuf encoding (tests/test_logs_package.py)."""
    resource_logs = []
    for resource, scopes in _grouped(records).items():
        resource_document: dict[str, Any] = {}
        _attributes(resource_document, resource.attributes, 0)
        scope_logs = []
        for scope, members in scopes.items():
            scope_document = {
                "scope": _encode_scope(scope),
                "logRecords": [_encode_log(record) for record in members],
            }
            _text_field(scope_document, "schemaUrl", scope.schema_url if scope else None)
            scope_logs.append(scope_document)
        document = {"resource": resource_document, "scopeLogs": scope_logs}
        _text_field(document, "schemaUrl", resource.schema_url)
        resource_logs.append(document)
    return {"resourceLogs": resource_logs} if resource_logs else {}


def logs_json(records: Sequence[ReadableLogRecord]) -> bytes:
    """The ``logs.json`` member of a package."""
    return json.dumps(encode_logs(records), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
