"""Reading ``trace.json`` fast: ``decode_trace`` accepts and rejects exactly what protobuf's JSON parser does
(after the hex ids become base64), and gives the same message, whatever the document."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind

from faultspan._otlp import otlp_json
from faultspan._otlp.otlp_json import decode_trace, encode_trace
from faultspan.cli import main
from faultspan.packages import format as fspkg
from faultspan.packages.format import TRACE
from test_packages import TRACE_ID, failing_trace, make_span

FAILURE = fspkg.Failure("ab" * 16, "ValueError", "bad", "unit", f"{TRACE_ID:032x}", "0" * 16)
CREATED = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
VALID = encode_trace(failing_trace())
# One span with a parent, a link, events and attributes of every kind: each field of the schema once.
SMALL = encode_trace(
    [make_span("child", 2, 1, failed=True, links=(Link(SpanContext(7, 8, is_remote=True)),))]
)

# Values that sit at the edges of protobuf's JSON mapping: other spellings of ints, ids and enums, nulls,
# non-finite and unrepresentable numbers, lone surrogates, non-canonical base64.
EDGE_VALUES = [
    None, True, False, 0, -1, 1.0, 1.5, 2**31, 2**32, 2**63, -(2**63) - 1, 2**64, 10**400,
    float("nan"), float("inf"), "", "0", "-0", "+5", " 5", "\t5", "5 ", "1_000", "0x10", "1e3", "1.0",
    "\u0665", "NaN", "Infinity", "-Infinity", "nan", "true", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR",
    "00000000000000000000000000000001", "ABCDEF0123456789", "abc", "zz", "0a f7", "YWJj", "YWJj=",
    "YWI=", "YWI", "YW-_", "YW+/", "\ud800", "\U0001f600", [], [None], [{}], {}, {"stringValue": "x"},
    {"unknown": 1},
]  # fmt: skip
ADDED_VALUES = [None, 0, "5", 1.5, "x", [], {}, True]
EDGE_KEYS = ["traceId", "trace_id", "spanId", "span_id", "kind", "attributes", "value", "intValue",
             "int_value", "doubleValue", "bytesValue", "stringValue", "boolValue", "arrayValue",
             "droppedAttributesCount", "unknownField", "[ext]", "code", "flags"]  # fmt: skip


def outcome(decode: Any, document: Any) -> tuple[str, Any]:
    try:
        return "accepted", decode(document).SerializeToString(deterministic=True)
    except Exception as error:  # the reference's own failures are part of what must match
        return "rejected", f"{type(error).__name__}: {error}"


def containers(value: Any) -> list[Any]:
    """Every dict and list inside ``value``, ``value`` first."""
    found = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


def edited(document: Any, node: dict[str, Any]) -> list[Any]:
    """Copies of ``document`` with ``node`` changed: each value replaced by each edge value, each key
    removed or renamed to each edge key, each edge key added."""
    original = dict(node)
    changes = [{**original, key: edge} for key in original for edge in EDGE_VALUES]
    changes += [{**original, key: edge} for key in EDGE_KEYS for edge in ADDED_VALUES]
    for key, value in original.items():
        others = {name: kept for name, kept in original.items() if name != key}
        changes += [others, *({**others, new: value} for new in EDGE_KEYS if new not in original)]
    copies = []
    for change in changes:
        node.clear()
        node.update(change)
        copies.append(copy.deepcopy(document))
    node.clear()
    node.update(original)
    return copies


def edits(document: Any) -> list[Any]:
    """``edited`` for every kind of object in the document (by its keys and the key that holds it)."""
    variants = []
    seen: set[tuple[str, ...]] = set()
    places: list[tuple[str, Any]] = [("", document)]
    while places:
        held_by, node = places.pop()
        if isinstance(node, list):
            places.extend((held_by, item) for item in node)
        elif isinstance(node, dict):
            places.extend(node.items())
            shape = (held_by, *sorted(node))
            if shape not in seen:
                seen.add(shape)
                variants.extend(edited(document, node))
    return variants


def test_every_single_edit_gets_the_reference_verdict() -> None:
    variants = edits(SMALL)
    differing = [
        variant
        for variant in variants
        if outcome(decode_trace, variant) != outcome(otlp_json._parse_with_protobuf, variant)
    ]
    assert differing == []


@st.composite
def hostile_variants(draw: st.DrawFn) -> Any:
    """The valid trace with one to three edits: a value replaced, a key added, removed or renamed."""
    document = copy.deepcopy(VALID)
    edge = st.sampled_from(EDGE_VALUES).map(copy.deepcopy)  # edits must never reach the shared samples
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(containers(document)))
        if isinstance(target, list):
            if target:
                target[draw(st.integers(0, len(target) - 1))] = draw(edge)
            continue
        action = draw(st.sampled_from(["replace", "add", "remove", "rename"]))
        if action == "add" or not target:
            target[draw(st.sampled_from(EDGE_KEYS))] = draw(edge)
            continue
        key = draw(st.sampled_from(sorted(target)))
        if action == "replace":
            target[key] = draw(edge)
        elif action == "remove":
            del target[key]
        else:
            target[draw(st.sampled_from(EDGE_KEYS))] = target.pop(key)
    return document


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_variants())
def test_hostile_variants_get_the_reference_verdict(document: Any) -> None:
    assert outcome(decode_trace, document) == outcome(otlp_json._parse_with_protobuf, document)


attribute_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text()
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)


def span_with(attributes: dict[str, Any], name: str) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(TRACE_ID, 1, is_remote=False),
        resource=Resource({"service.name": "unit"}),
        attributes=attributes,
        events=[Event("breadcrumb", attributes, 1_000)],
        kind=SpanKind.CLIENT,
        start_time=1_000,
        end_time=2_000,
    )


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), attribute_values, max_size=4), st.text(max_size=8))
def test_what_the_writer_encodes_decodes_to_the_reference_message(
    attributes: dict[str, Any], name: str
) -> None:
    document = json.loads(json.dumps(encode_trace([span_with(attributes, name)])))
    assert outcome(decode_trace, document) == outcome(otlp_json._parse_with_protobuf, document)


def test_the_writers_document_takes_the_fast_path() -> None:
    """Else the equivalence above would hold trivially, every document going to the reference parser."""
    arguments = otlp_json._fast_fields(ExportTraceServiceRequest.DESCRIPTOR, VALID, 1)
    fast = ExportTraceServiceRequest(**arguments).SerializeToString(deterministic=True)
    assert fast == otlp_json._parse_with_protobuf(VALID).SerializeToString(deterministic=True)


def write_package(directory: Path, trace: bytes) -> Path:
    members = {TRACE: trace, fspkg.REPLAY: fspkg.dump(fspkg.NOT_REPLAYABLE), fspkg.RUNTIME: b"{}"}
    path = directory / "hostile.fspkg"
    path.write_bytes(fspkg.zip_package(fspkg.manifest_for(FAILURE, CREATED, members), members))
    return path


def spans_of(trace: dict[str, Any]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = trace["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return spans


def test_verified_package_carries_the_decoded_trace(tmp_path: Path) -> None:
    package = fspkg.read_package(write_package(tmp_path, fspkg.dump(VALID)))
    assert package.request == otlp_json._parse_with_protobuf(VALID)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kind", "SPAN_KIND_NOPE", "Invalid enum value SPAN_KIND_NOPE"),
        ("startTimeUnixNano", "0x10", "invalid literal for int() with base 10: '0x10'"),
        ("startTimeUnixNano", str(2**64), "Value out of range"),
        ("spanId", "not hex", "non-hexadecimal number"),
        ("name", ["list"], "expected string or bytes-like object, got 'list'"),
        ("nonsense", 1, 'no field named "nonsense"'),
    ],
)
def test_hostile_trace_fails_verify_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any, reason: str
) -> None:
    trace = copy.deepcopy(VALID)
    spans_of(trace)[0][field] = value
    path = write_package(tmp_path, fspkg.dump(trace))
    assert main(["verify", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: {TRACE} is not an OTLP/JSON ExportTraceServiceRequest (")
    assert reason in line


def test_double_too_large_for_a_float_fails_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """protobuf's parser lets OverflowError out, which used to escape verification as a traceback."""
    trace = copy.deepcopy(VALID)
    spans_of(trace)[0]["attributes"] = [{"key": "big", "value": {"doubleValue": 10**400}}]
    path = write_package(tmp_path, fspkg.dump(trace))
    assert main(["verify", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}: {TRACE} is not an OTLP/JSON ExportTraceServiceRequest (int too large to convert to float)\n"
    )


def test_duplicate_json_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = fspkg.dump(VALID).replace(b'"name":"child"', b'"name":"child","name":"again"', 1)
    path = write_package(tmp_path, trace)
    assert main(["verify", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: {TRACE} is not valid JSON (duplicate key 'name')\n"
