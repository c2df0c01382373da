"""``logs.json`` in packages: the OTLP/JSON log encoder, the member in the manifest, verification on read."""

from __future__ import annotations

import base64
import json
import logging
import math
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from faultspan._otlp import otlp_json
from faultspan.cli import main
from faultspan.packages import format as fspkg
from test_packages import failing_trace

TEXT = st.text(max_size=8)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.just(math.nan)
    | TEXT
    | st.binary(max_size=4)
)
ANY = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
)
ATTRIBUTES = st.dictionaries(
    TEXT.filter(bool), st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT, max_size=3
)
IDS = st.integers(0, 2**64 - 1)


@st.composite
def records(draw: st.DrawFn) -> ReadableLogRecord:
    log = LogRecord(
        timestamp=draw(st.none() | st.integers(0, 2**64 - 1)),
        observed_timestamp=draw(st.integers(1, 2**64 - 1)),
        trace_id=draw(st.integers(0, 2**128 - 1)),
        span_id=draw(IDS),
        trace_flags=TraceFlags(draw(st.integers(0, 1))),
        severity_text=draw(st.none() | TEXT),
        severity_number=draw(st.none() | st.sampled_from(list(SeverityNumber))),
        body=draw(ANY),
        attributes=draw(ATTRIBUTES),
    )
    log.event_name = draw(st.none() | TEXT)
    return ReadableLogRecord(
        log_record=log,
        resource=draw(
            st.sampled_from([Resource({"service.name": "a"}), Resource({"service.name": "b"}, "s://u")])
        ),
        instrumentation_scope=draw(st.none() | st.builds(InstrumentationScope, TEXT, st.none() | TEXT)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), max_size=4))
def test_log_encoder_writes_the_otlp_exporters_message(batch: list[ReadableLogRecord]) -> None:
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    expected = encode_logs(batch)
    document = json.loads(otlp_json.logs_json(batch))
    reference = json_format.MessageToDict(expected, use_integers_for_enums=True)
    otlp_json._convert_ids(reference, lambda value: base64.b64decode(value).hex())
    assert json.dumps(document, sort_keys=True) == json.dumps(reference, sort_keys=True)
    assert otlp_json.decode_logs(document).SerializeToString() == expected.SerializeToString()


def _record(trace_id: int, body: str, event_name: str | None = None) -> ReadableLogRecord:
    log = LogRecord(
        timestamp=1_700_000_000_000_000_000,
        trace_id=trace_id,
        span_id=7,
        trace_flags=TraceFlags(1),
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body=body,
        attributes={"exception.type": "ValueError"},
    )
    log.event_name = event_name
    return ReadableLogRecord(log_record=log, resource=Resource({"service.name": "shop"}))


def _package(tmp_path: Path, logs: list[ReadableLogRecord]) -> Path:
    spans = failing_trace()
    failing = spans[0]
    failure = fspkg.Failure(
        "ab" * 16, "ValueError", "boom", "shop", f"{failing.context.trace_id:032x}", "00" * 8
    )
    data = fspkg.build(failure, spans, datetime.now(timezone.utc), logs=logs)
    path = tmp_path / "failure.fspkg"
    path.write_bytes(data)
    return path


def test_logs_json_is_a_listed_verified_member(tmp_path: Path) -> None:
    trace_id = failing_trace()[0].context.trace_id
    path = _package(
        tmp_path, [_record(trace_id, "charge failed", "exception"), _record(trace_id, "retrying")]
    )
    package = fspkg.read_package(path)
    assert fspkg.LOGS in package.manifest["members"]
    bodies = [record.body.string_value for record in package.logs.resource_logs[0].scope_logs[0].log_records]
    assert bodies == ["charge failed", "retrying"]
    assert package.logs.resource_logs[0].scope_logs[0].log_records[0].event_name == "exception"
    assert package.logs.resource_logs[0].scope_logs[0].log_records[0].trace_id.hex() == f"{trace_id:032x}"


def test_a_package_without_log_records_has_no_logs_member(tmp_path: Path) -> None:
    package = fspkg.read_package(_package(tmp_path, []))
    assert fspkg.LOGS not in package.manifest["members"]
    assert package.logs is None


def _rewrite_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    manifest = json.loads(members.pop(fspkg.MANIFEST))
    members[name] = data
    manifest["members"] = {
        member: {"sha256": __import__("hashlib").sha256(value).hexdigest(), "size": len(value)}
        for member, value in members.items()
    }
    path.write_bytes(fspkg.zip_package(manifest, members))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[]", "logs.json is not a JSON object"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
            "logs.json is not an OTLP/JSON",
        ),
        (b'{"resourceSpans": []}', "logs.json is not an OTLP/JSON"),
    ],
)
def test_a_bad_logs_member_fails_verify_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, reason: str
) -> None:
    path = _package(tmp_path, [_record(1, "x")])
    _rewrite_member(path, fspkg.LOGS, data)
    assert main(["verify", str(path)]) == 1
    err = capsys.readouterr()
    lines = [line for line in (err.out + err.err).splitlines() if line.strip()]
    assert any(reason in line for line in lines), lines


def test_a_tampered_logs_member_fails_its_hash(tmp_path: Path) -> None:
    path = _package(tmp_path, [_record(1, "x")])
    with zipfile.ZipFile(path) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    manifest = json.loads(members.pop(fspkg.MANIFEST))
    members[fspkg.LOGS] = members[fspkg.LOGS].replace(b'"x"', b'"y"')
    path.write_bytes(fspkg.zip_package(manifest, members))
    with pytest.raises(fspkg.PackageError, match=r"logs\.json.*SHA-256"):
        fspkg.read_package(path)
