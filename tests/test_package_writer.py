"""The package writer: its thread and queue, the disk bounds, runtime facts, replay documents, signatures,
and the direct OTLP/JSON encoder."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceState

import test_packages
from faultspan._capture import replay_store
from faultspan._capture.redaction import REDACTED
from faultspan._capture.runtime import current
from faultspan._otlp import otlp_json
from faultspan.packages import atomic, runtime_facts, signing
from faultspan.packages import format as fspkg
from faultspan.packages.exporter import describe_failure
from faultspan.packages.store import STALE_TEMPORARY_SECONDS
from support.instrumented import INSTRUMENT
from test_packages import (
    TRACE_ID,
    Exporters,
    eventually,
    failing_trace,
    flushed,
    make_span,
    packages_in,
    trace_ids,
    use_package_dir,
)

fresh_runtime = test_packages.fresh_runtime
new_exporter = test_packages.new_exporter

FINGERPRINT = "ab" * 16


def configure(monkeypatch: pytest.MonkeyPatch, directory: Path, **options: str) -> Path:
    use_package_dir(monkeypatch, str(directory), **options)
    return directory


def manifests(directory: Path) -> list[dict[str, Any]]:
    return [fspkg.read_package(path).manifest for path in packages_in(directory)]


def span_names(path: Path) -> list[str]:
    trace = fspkg.read_package(path).members["trace.json"]
    return [span["name"] for span in trace["resourceSpans"][0]["scopeSpans"][0]["spans"]]


# -- the writer thread ---------------------------------------------------------------------------------------


def test_export_only_hands_over_and_the_writer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path)
    exporter = new_exporter()
    with exporter._write_lock:  # the writer is stuck: export() must not wait for it
        exporter.export(failing_trace(1))
        eventually(lambda: not exporter.writer.pending)  # the writer took the trace and waits for the lock
        exporter.export(failing_trace(2))
        assert packages_in(directory) == []
        assert not exporter.force_flush(50)
    assert exporter.force_flush(10_000)
    assert trace_ids(directory) == [1, 2]


def test_full_queue_drops_counts_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_queue_size="1")
    exporter = new_exporter()
    with caplog.at_level(logging.WARNING, logger="faultspan"), exporter._write_lock:
        exporter.export(failing_trace(1))
        eventually(lambda: not exporter.writer.pending)
        for trace_id in (2, 3, 4):
            exporter.export(failing_trace(trace_id))
    assert exporter.force_flush(10_000)
    assert exporter.dropped == 2
    assert trace_ids(directory) == [1, 2]
    assert len([record for record in caplog.records if "queue full" in record.getMessage()]) == 1


def test_forked_child_writes_its_own_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_wait_seconds="60")
    exporter = new_exporter()
    exporter.export([make_span("parent's pending failure", 2, 1, trace_id=1, failed=True)])
    pid = os.fork()
    if pid == 0:  # the child: a writer of its own, none of the parent's pending traces
        exporter.export(failing_trace(2))
        os._exit(0 if exporter.force_flush(10_000) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert trace_ids(directory) == [2]
    assert exporter.force_flush(10_000)
    assert trace_ids(directory) == [1, 2]


# -- disk bounds ---------------------------------------------------------------------------------------------


def test_later_occurrences_are_counted_in_the_newest_package_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_max_per_fingerprint="2")
    exporter = new_exporter()
    for trace_id in range(1, 6):
        flushed(exporter, failing_trace(trace_id))
    assert trace_ids(directory) == [1, 2]
    first, newest = manifests(directory)
    assert (first["occurrences"], newest["occurrences"]) == (1, 4)
    assert newest["last_occurrence"] > newest["created"]
    assert exporter.store.counted == 3
    exporter.shutdown()

    restarted = new_exporter()
    flushed(restarted, failing_trace(6))
    assert trace_ids(directory) == [1, 2]
    assert manifests(directory)[1]["occurrences"] == 5


def test_a_new_window_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_max_per_fingerprint="1", package_window_seconds="0")
    exporter = new_exporter()
    for trace_id in (1, 2):
        flushed(exporter, failing_trace(trace_id))
    eventually(lambda: trace_ids(directory) == [1, 2])


def test_directory_budget_evicts_oldest_first_but_never_the_new_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_max_per_fingerprint="0")
    flushed(new_exporter(), failing_trace(1))  # written before the start: found by the scan
    (size,) = [path.stat().st_size for path in packages_in(directory)]
    configure(
        monkeypatch, directory, package_max_per_fingerprint="0", package_dir_max_bytes=str(size * 5 // 2)
    )
    exporter = new_exporter()
    for trace_id in range(2, 6):
        flushed(exporter, failing_trace(trace_id))
    assert trace_ids(directory) == [4, 5]
    assert exporter.store.evicted == 3

    configure(monkeypatch, directory, package_max_per_fingerprint="0", package_dir_max_bytes="1")
    flushed(new_exporter(), failing_trace(6))
    assert trace_ids(directory) == [6]


def payload_span(name: str, span_id: int, parent: int | None, *, failed: bool = False) -> ReadableSpan:
    span = make_span(name, span_id, parent, failed=failed)
    noise = base64.b64encode(os.urandom(6000)).decode()  # incompressible: each span costs ~8 KB
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={"payload": noise},
        events=span.events,
        start_time=span.start_time,
        end_time=span.end_time,
    )


def test_package_size_cap_sheds_the_spans_farthest_from_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    spans = [
        payload_span("root", 1, None),
        payload_span("parent", 2, 1),
        payload_span("failing", 3, 2, failed=True),
        payload_span("child", 4, 3),
        payload_span("uncle", 5, 1),
        payload_span("cousin", 6, 5),
        payload_span("unconnected", 7, 99),
    ]
    runtime_json = fspkg.dump(
        runtime_facts.runtime_facts(argv=False, environment=False, redactor=current().redactor)
    )
    failure = describe_failure(spans[2])

    def size(*names: str) -> int:
        kept = [span for span in spans if span.name in names]
        return len(fspkg.build(failure, kept, fspkg.datetime.now(fspkg.timezone.utc), runtime=runtime_json))

    required = ("root", "parent", "failing")
    cap = (size(*required, "child") + size(*required, "child", "uncle")) // 2
    directory = configure(monkeypatch, tmp_path, package_max_bytes=str(cap))
    exporter = new_exporter()
    flushed(exporter, spans)
    (path,) = packages_in(directory)
    assert path.stat().st_size <= cap
    assert span_names(path) == ["root", "parent", "failing", "child"]
    manifest = fspkg.read_package(path).manifest
    assert (manifest["truncated"], manifest["dropped_spans"]) == (True, 3)
    assert exporter.truncated == 1

    configure(monkeypatch, tmp_path / "tiny", package_max_bytes="1")
    flushed(new_exporter(), spans)
    (path,) = packages_in(tmp_path / "tiny")
    assert span_names(path) == ["root", "parent", "failing"]


def test_a_name_collision_never_replaces_a_package(tmp_path: Path) -> None:
    first = atomic.write_atomic(tmp_path, "same.fspkg", b"first")
    second = atomic.write_atomic(tmp_path, "same.fspkg", b"second")
    assert (first.name, second.name) == ("same.fspkg", "same-1.fspkg")
    assert first.read_bytes() == b"first"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["same-1.fspkg", "same.fspkg"]


def dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(process.stdout)


def test_stale_temporaries_are_removed_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path)
    old = time.time() - STALE_TEMPORARY_SECONDS - 5
    names = {
        "dead": f".{dead_pid()}-a.tmp",
        "live, young": f".{os.getpid()}-b.tmp",
        "live, old (a reused pid)": f".{os.getpid()}-c.tmp",
        "foreign, young": ".d.tmp",
        "foreign, old": ".e.tmp",
    }
    for label, name in names.items():
        (directory / name).write_bytes(b"partial")
        if "old" in label:
            os.utime(directory / name, (old, old))
    exporter = new_exporter()
    eventually(lambda: exporter.store.stale_removed == 3)
    assert sorted(path.name for path in directory.iterdir()) == sorted(
        (names["live, young"], names["foreign, young"])
    )


# -- runtime.json, replay.json, signature.json ---------------------------------------------------------------

ARGV = [
    "app.py",
    "--password",
    "hunter2",
    "--api-token=tok3nValue9",
    "--verbose",
    "postgres://app:s3cretPw@db/x",
]


def test_argv_and_environment_only_when_opted_in_and_then_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    monkeypatch.setattr(sys, "argv", ARGV)
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:s3cretPw@db/x")
    monkeypatch.setenv("PLAIN_SETTING", "blue")
    directory = configure(monkeypatch, tmp_path / "default")
    flushed(new_exporter(), failing_trace())
    default = fspkg.read_package(packages_in(directory)[0])
    assert "argv" not in default.members["runtime.json"]
    assert "environment" not in default.members["runtime.json"]

    directory = configure(
        monkeypatch, tmp_path / "opted-in", package_include_argv="true", package_include_env="true"
    )
    flushed(new_exporter(), failing_trace())
    (path,) = packages_in(directory)
    facts = fspkg.read_package(path).members["runtime.json"]
    assert facts["argv"] == [
        "app.py",
        "--password",
        REDACTED,
        f"--api-token={REDACTED}",
        "--verbose",
        f"postgres://app:{REDACTED}@db/x",
    ]
    environment = facts["environment"]
    assert environment["DB_PASSWORD"] == REDACTED
    assert environment["DATABASE_URL"] == f"postgres://app:{REDACTED}@db/x"
    assert environment["PLAIN_SETTING"] == "blue"
    for secret in (b"hunter2", b"s3cretPw", b"tok3nValue9"):
        assert secret not in path.read_bytes()


def test_replay_document_is_taken_for_the_failing_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = configure(monkeypatch, tmp_path, package_max_per_fingerprint="0")
    document = {"replayable": True, "callable": "app:charge", "arguments": {"amount": 42}}
    replay_store.remember(TRACE_ID, 2, document)  # span 2 of failing_trace() is the failing one
    exporter = new_exporter()
    flushed(exporter, failing_trace())
    flushed(exporter, failing_trace(TRACE_ID + 1))
    replays = [fspkg.read_package(path).members["replay.json"] for path in packages_in(directory)]
    assert sorted(replays, key=json.dumps) == sorted([document, fspkg.NOT_REPLAYABLE], key=json.dumps)
    assert replay_store.take(TRACE_ID, 2) is None


def test_signed_packages_and_their_rewrites_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    key = "k3y-for-tests"
    directory = configure(monkeypatch, tmp_path, signing_key=key, package_max_per_fingerprint="1")
    exporter = new_exporter()
    flushed(exporter, failing_trace(1))
    (path,) = packages_in(directory)
    package = fspkg.read_package(path)
    assert signing.SIGNATURE not in package.manifest["members"]
    assert signing.is_signed_by(package.manifest, package.signature, key)
    assert not signing.is_signed_by(package.manifest, package.signature, "another key")

    flushed(exporter, failing_trace(2))
    rewritten = fspkg.read_package(path)
    assert rewritten.manifest["occurrences"] == 2
    assert signing.is_signed_by(rewritten.manifest, rewritten.signature, key)


def test_reader_accepts_only_a_json_signature_as_unlisted_member(tmp_path: Path) -> None:
    members = {"trace.json": b"{}", "replay.json": fspkg.dump(fspkg.NOT_REPLAYABLE), "runtime.json": b"{}"}
    failure = fspkg.Failure(FINGERPRINT, "ValueError", "bad", "svc", format(TRACE_ID, "032x"), "0" * 16)
    manifest = fspkg.manifest_for(failure, fspkg.datetime.now(fspkg.timezone.utc), members)
    unsigned = tmp_path / "unsigned.fspkg"
    unsigned.write_bytes(fspkg.zip_package(manifest, members))
    assert fspkg.read_package(unsigned).signature is None
    broken = tmp_path / "broken.fspkg"
    broken.write_bytes(fspkg.zip_package(manifest, {**members, signing.SIGNATURE: b'{"algorithm": '}))
    with pytest.raises(fspkg.PackageError, match=r"signature\.json is not valid JSON"):
        fspkg.read_package(broken)
    other = tmp_path / "other.fspkg"
    other.write_bytes(fspkg.zip_package(manifest, {**members, "signatures.json": b"{}"}))
    with pytest.raises(fspkg.PackageError, match=r"'signatures\.json' is not listed"):
        fspkg.read_package(other)


# -- the direct OTLP/JSON encoder ----------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # Cs: lone surrogates
SCALARS = st.one_of(
    st.booleans(),
    TEXT,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    # JSON has one NaN: a NaN with another sign or payload comes back as this one (as with protobuf's own
    # JSON encoder), so only the canonical NaN can make the round trip byte-exact.
    st.floats(allow_nan=False, allow_infinity=True) | st.just(math.nan),
)
VALUES = st.one_of(
    SCALARS,
    st.integers(min_value=2**63, max_value=2**70),  # refused by protobuf: the attribute is skipped
    st.lists(st.booleans(), max_size=3).map(tuple),
    st.lists(TEXT, max_size=3).map(tuple),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=3).map(tuple),
    st.binary(max_size=8),
    st.dictionaries(TEXT, SCALARS, max_size=3),
    st.none(),
)
ATTRIBUTES = st.dictionaries(TEXT, VALUES, max_size=4)
IDS = st.integers(min_value=1, max_value=2**64 - 1)


def bounded(items: list[Any], dropped: int) -> BoundedList[Any]:
    result: BoundedList[Any] = BoundedList(None)
    result.extend(items)
    result.dropped = dropped
    return result


@st.composite
def spans(draw: st.DrawFn) -> ReadableSpan:
    trace_id = draw(st.integers(min_value=1, max_value=2**128 - 1))
    parent = draw(st.none() | st.builds(SpanContext, st.just(trace_id), IDS, st.booleans()))
    resource = draw(
        st.sampled_from([Resource({"service.name": "a"}), Resource({"service.name": "b"}, "s://u")])
    )
    scope = draw(
        st.none() | st.builds(InstrumentationScope, TEXT, st.none() | TEXT, st.none() | TEXT, ATTRIBUTES)
    )
    events = [
        Event(draw(TEXT), draw(ATTRIBUTES), draw(st.integers(0, 2**64 - 1)))
        for _ in range(draw(st.integers(0, 2)))
    ]
    links = [
        Link(SpanContext(draw(IDS), draw(IDS), draw(st.booleans())), draw(ATTRIBUTES))
        for _ in range(draw(st.integers(0, 2)))
    ]
    description = draw(st.none() | TEXT)
    code = draw(st.sampled_from(list(StatusCode)))
    return ReadableSpan(
        name=draw(TEXT),
        context=SpanContext(
            trace_id,
            draw(IDS),
            False,
            trace_state=TraceState(
                draw(
                    st.lists(
                        st.tuples(st.sampled_from(["k", "vendor@x"]), st.sampled_from(["v", "1"])),
                        max_size=2,
                        unique_by=lambda pair: pair[0],
                    )
                )
            ),
        ),
        parent=parent,
        resource=resource,
        attributes=draw(ATTRIBUTES),
        events=bounded(events, draw(st.integers(0, 3))),
        links=bounded(links, draw(st.integers(0, 3))),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=Status(code, description if code is StatusCode.ERROR else None),
        start_time=draw(st.none() | st.integers(0, 2**64 - 1)),
        end_time=draw(st.none() | st.integers(0, 2**64 - 1)),
        instrumentation_scope=scope,
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), max_size=4))
def test_direct_encoder_decodes_to_the_otlp_exporters_bytes(batch: list[ReadableSpan]) -> None:
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    expected = encode_spans(batch)
    document = json.loads(otlp_json.trace_json(batch))
    reference = json_format.MessageToDict(expected, use_integers_for_enums=True)
    otlp_json._convert_ids(reference, lambda value: base64.b64decode(value).hex())
    assert json.dumps(document, sort_keys=True) == json.dumps(reference, sort_keys=True)
    assert otlp_json.decode_trace(document).SerializeToString() == expected.SerializeToString()


def test_lone_surrogates_never_make_an_unreadable_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    """Protobuf refuses them: the attribute is skipped (as the OTLP exporter does), a name is replaced."""
    directory = configure(monkeypatch, tmp_path)
    child, root = failing_trace()
    attributes = {"kept": "é", "value": "\udc80", "\udc81key": 1}
    odd = ReadableSpan(
        name="bad \udc80 name",
        context=child.context,
        parent=child.parent,
        resource=child.resource,
        attributes=attributes,
        events=child.events,
    )
    flushed(new_exporter(), [odd, root])
    (path,) = packages_in(directory)
    span = fspkg.read_package(path).members["trace.json"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["name"] == "bad ? name"
    assert span["attributes"] == [{"key": "kept", "value": {"stringValue": "é"}}]
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    exported = encode_spans([ReadableSpan(name="n", context=child.context, attributes=attributes)])
    assert [item.key for item in exported.resource_spans[0].scope_spans[0].spans[0].attributes] == ["kept"]


def test_processes_sharing_a_directory_share_the_per_fingerprint_limit_and_the_count(
    tmp_path: Path, otel_env: dict[str, str]
) -> None:
    directory = tmp_path / "shared"
    env = {
        **otel_env,
        "OTEL_SERVICE_NAME": "shared",
        "OTEL_TRACES_EXPORTER": "faultspan",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR": str(directory),
        "OTEL_PYTHON_FAULTSPAN_PACKAGE_MAX_PER_FINGERPRINT": "10",
    }
    app = Path(__file__).parent / "apps" / "repeated_failure.py"
    processes = [
        subprocess.Popen([str(INSTRUMENT), sys.executable, str(app), "30"], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    written = manifests(directory)
    assert len({manifest["fingerprint"] for manifest in written}) == 1
    assert len(written) == 10
    assert sum(manifest["occurrences"] for manifest in written) == 120


def _failing(span: ReadableSpan, fingerprint: str, blob: str) -> ReadableSpan:
    event = Event(
        "exception",
        {"exception.type": "E", "exception.message": blob[:100], "faultspan.fingerprint": fingerprint},
        span.start_time,
    )
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={**(span.attributes or {}), "blob": blob},
        events=[*span.events, event],
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(spans(), min_size=1, max_size=4),
    st.lists(st.sampled_from(["0" * 32, "f" * 32]), min_size=1, max_size=3),
    st.sampled_from([0, 2_000, 3_000_000]),
    st.sampled_from(["0", "4096", "65536"]),
)
def test_whatever_the_writer_writes_its_reader_accepts(
    batch: list[ReadableSpan], fingerprints: list[str], repeated: int, cap: str
) -> None:
    """Spans of any shape, failures of one or more fingerprints, repetitive megabytes that compress far
    beyond 1000:1, with or without a size cap: every package written verifies and lists."""
    from faultspan._capture import runtime
    from faultspan.packages import catalog
    from faultspan.packages.exporter import PackageSpanExporter

    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    failing = [
        _failing(span, fingerprints[index % len(fingerprints)], "ab" * repeated)
        for index, span in enumerate(batch)
    ]
    with tempfile.TemporaryDirectory() as directory:
        runtime.load({"package_dir": directory, "package_max_per_fingerprint": "0", "package_max_bytes": cap})
        exporter = PackageSpanExporter()
        try:
            written = exporter.write(failing)
        finally:
            exporter.shutdown()
            runtime.load()
        assert len(written) == len(set(fingerprints[: len(batch)]))
        for path in written:
            fspkg.read_package(path)
        assert all(not isinstance(entry, fspkg.PackageError) for _, entry in catalog.scan(Path(directory)))
