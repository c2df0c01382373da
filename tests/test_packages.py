"""Replay packages: the ``faultspan`` exporter, the ``.fspkg`` format, and the verify/show/list verbs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from faultspan._capture import runtime
from faultspan._capture.config import env_name
from faultspan._otlp.otlp_json import decode_trace, encode_trace
from faultspan.cli import main
from faultspan.packages import exporter as exporter_module
from faultspan.packages.archive import MAX_TOTAL_SIZE
from faultspan.packages.exporter import PackageSpanExporter
from faultspan.packages.format import read_package
from support.collector import OtlpSink, RotelCollector
from support.instrumented import SHOP, SHOP_SECRETS, run_instrumented

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
RESOURCE = Resource({"service.name": "unit"})


def make_span(
    name: str,
    span_id: int,
    parent: int | None = None,
    *,
    trace_id: int = TRACE_ID,
    failed: bool = False,
    remote_parent: bool = False,
    links: tuple[Link, ...] = (),
) -> ReadableSpan:
    events = [Event("breadcrumb", {"breadcrumb.category": "db", "breadcrumb.message": "SELECT 1"}, 1_000)]
    if failed:
        events.append(
            Event(
                "exception",
                {
                    "exception.type": "ValueError",
                    "exception.message": "bad \x1b[31mvalue",
                    "faultspan.fingerprint": "ab" * 16,
                    "faultspan.frames": json.dumps([{"filename": "app.py", "lineno": 3, "function": "f"}]),
                },
                2_000,
            )
        )
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False),
        parent=None if parent is None else SpanContext(trace_id, parent, is_remote=remote_parent),
        resource=RESOURCE,
        attributes={"n": 1, "ok": True, "ratio": 0.5, "tags": ("a", "b")},
        events=events,
        links=links,
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR if failed else StatusCode.UNSET),
        start_time=1_000,
        end_time=5_000_000,
    )


def failing_trace(trace_id: int = TRACE_ID) -> list[ReadableSpan]:
    return [
        make_span("child", 2, 1, trace_id=trace_id, failed=True),
        make_span("root", 1, trace_id=trace_id, links=(Link(SpanContext(7, 8, is_remote=True)),)),
    ]


PACKAGE_DIR_VARIABLE = "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR"


def use_package_dir(monkeypatch: pytest.MonkeyPatch, directory: str, **options: str) -> None:
    """Points the runtime at ``directory``; ``options`` are more settings (``package_wait_seconds="1"``)."""
    monkeypatch.setenv(PACKAGE_DIR_VARIABLE, directory)
    for option, value in options.items():
        monkeypatch.setenv(env_name(option), value)
    runtime.load()


@pytest.fixture(autouse=True)
def fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    monkeypatch.undo()
    runtime.load()


@pytest.fixture
def new_exporter() -> Iterator[Callable[[], PackageSpanExporter]]:
    """Exporters for the current settings, each shut down (its writer thread stopped) after the test."""
    made: list[PackageSpanExporter] = []

    def make() -> PackageSpanExporter:
        made.append(PackageSpanExporter())
        return made[-1]

    yield make
    for exporter in made:
        exporter.shutdown()


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "packages"
    use_package_dir(monkeypatch, str(directory))
    return directory


def flushed(exporter: PackageSpanExporter, spans: list[ReadableSpan]) -> None:
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(10_000)


@pytest.fixture
def valid_package(package_dir: Path, new_exporter: Callable[[], PackageSpanExporter]) -> Path:
    flushed(new_exporter(), failing_trace())
    (path,) = package_dir.glob("*.fspkg")
    return path


def packages_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.fspkg")) if directory.exists() else []


def eventually(condition: Callable[[], object], seconds: float = 10.0) -> None:
    """Polls an observable condition until it holds (the writer works on its own thread)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# -- integration ---------------------------------------------------------------------------------------------


def test_shop_failure_becomes_one_verifiable_package(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    directory = tmp_path / "packages"
    run_instrumented(
        SHOP,
        env={**otel_env, **collector.exporter_env("grpc")},
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="otlp,faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(directory),
    )
    (package,) = packages_in(directory)
    assert list(directory.iterdir()) == [package]

    command = [sys.executable, "-m", "faultspan"]
    verified = subprocess.run([*command, "verify", str(package)], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    shown = subprocess.run(
        [*command, "show", "--json", str(package)], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)

    exception = view["exception"]
    assert exception["type"] == "__main__.PaymentDeclined"
    assert exception["span"] == "checkout"
    assert view["manifest"]["service"] == "shop"
    assert view["manifest"]["fingerprint"] == exception["fingerprint"]
    assert exception["chain"]["cause"]["type"] == "ConnectionError"
    charge = next(frame for frame in exception["frames"] if frame["function"] == "charge")
    assert charge["locals"]["card_number"] == "[REDACTED]"
    assert charge["locals"]["amount_cents"] == "4200"
    root, checkout = view["spans"]
    assert (root["name"], root["depth"], root["parent_span_id"]) == ("POST /checkout", 0, None)
    assert (checkout["name"], checkout["depth"], checkout["failing"]) == ("checkout", 1, True)
    assert checkout["parent_span_id"] == root["span_id"]
    received = otlp_sink.wait_for(lambda spans: len(spans) == 2)
    assert {(span.trace_id, span.span_id) for span in received} == {
        (view["manifest"]["trace_id"], span["span_id"]) for span in view["spans"]
    }

    with zipfile.ZipFile(package) as archive:
        content = package.read_bytes() + b"".join(archive.read(name) for name in archive.namelist())
    for needle in SHOP_SECRETS:
        assert needle.encode() not in content, needle

    human = subprocess.run([*command, "show", str(package)], capture_output=True, text=True, check=False)
    assert "caused by:" in human.stdout
    assert "card_number = [REDACTED]" in human.stdout
    listed = subprocess.run([*command, "list", str(directory)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0
    assert package.name in listed.stdout
    assert "PaymentDeclined" in listed.stdout


# -- the exporter --------------------------------------------------------------------------------------------

Exporters = Callable[[], PackageSpanExporter]


def test_package_waits_for_the_local_root(package_dir: Path, new_exporter: Exporters) -> None:
    exporter = new_exporter()
    child, root = failing_trace()
    assert exporter.export([child]) is SpanExportResult.SUCCESS
    flushed(exporter, [root])
    (path,) = packages_in(package_dir)
    package = read_package(path)
    assert package.manifest["exception"] == {"type": "ValueError", "message": "bad \x1b[31mvalue"}
    assert package.manifest["span_id"] == format(2, "016x")
    names = [
        span["name"] for span in package.members["trace.json"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    ]
    assert sorted(names) == ["child", "root"]
    flushed(exporter, [make_span("late", 3, 1, failed=True)])
    assert len(packages_in(package_dir)) == 1


def test_remote_parent_counts_as_local_root(package_dir: Path, new_exporter: Exporters) -> None:
    new_exporter().export([make_span("server", 1, 99, failed=True, remote_parent=True)])
    eventually(lambda: len(packages_in(package_dir)) == 1)


def test_trace_without_failure_writes_nothing(package_dir: Path, new_exporter: Exporters) -> None:
    exporter = new_exporter()
    exporter.export([make_span("child", 2, 1), make_span("root", 1)])
    exporter.shutdown()
    assert packages_in(package_dir) == []


def test_writer_timer_packages_a_trace_whose_root_never_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    use_package_dir(monkeypatch, str(tmp_path), package_wait_seconds="1")
    exporter = new_exporter()
    started = time.monotonic()
    exporter.export([make_span("child", 2, 1, failed=True)])
    eventually(lambda: len(packages_in(tmp_path)) == 1)  # no further export and no flush: the timer did it
    assert time.monotonic() - started >= 1
    (path,) = packages_in(tmp_path)
    assert [
        span["name"]
        for span in read_package(path).members["trace.json"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    ] == ["child"]


def test_shutdown_writes_pending_failures(package_dir: Path, new_exporter: Exporters) -> None:
    exporter = new_exporter()
    exporter.export([make_span("child", 2, 1, failed=True)])
    exporter.shutdown()
    assert len(packages_in(package_dir)) == 1
    assert exporter.export(failing_trace(TRACE_ID + 1)) is SpanExportResult.FAILURE
    assert not exporter.force_flush()


def test_one_package_per_failing_trace(package_dir: Path, new_exporter: Exporters) -> None:
    flushed(new_exporter(), failing_trace(1) + failing_trace(2))
    (first, second) = (read_package(path).manifest["trace_id"] for path in packages_in(package_dir))
    assert {first, second} == {format(1, "032x"), format(2, "032x")}
    assert [path.name for path in package_dir.iterdir() if not path.name.endswith(".fspkg")] == []


def trace_ids(directory: Path) -> list[int]:
    return sorted(int(read_package(path).manifest["trace_id"], 16) for path in packages_in(directory))


def test_buffer_bound_evicts_healthy_traces_first(
    package_dir: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    monkeypatch.setattr(exporter_module, "MAX_TRACES", 2)
    exporter = new_exporter()
    for trace_id, failed in ((1, True), (2, False), (3, False), (4, True)):
        exporter.export([make_span("child", 2, 1, trace_id=trace_id, failed=failed)])
    assert packages_in(package_dir) == []
    exporter.export([make_span("child", 2, 1, trace_id=5)])
    eventually(lambda: trace_ids(package_dir) == [1])
    exporter.export([make_span("failing", 3, 1, trace_id=5, failed=True)])
    exporter.export([make_span("root", 1, trace_id=2), make_span("root", 1, trace_id=3)])
    exporter.shutdown()
    assert trace_ids(package_dir) == [1, 4, 5]
    spans_of_5 = read_package(packages_in(package_dir)[-1]).members["trace.json"]["resourceSpans"][0]
    assert len(spans_of_5["scopeSpans"][0]["spans"]) == 2


def test_spans_per_trace_are_bounded(
    package_dir: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    monkeypatch.setattr(exporter_module, "MAX_SPANS_PER_TRACE", 2)
    exporter = new_exporter()
    exporter.export([make_span("a", 2, 1), make_span("b", 3, 1), make_span("dropped", 4, 1, failed=True)])
    flushed(exporter, [make_span("root", 1)])
    assert packages_in(package_dir) == []
    other = TRACE_ID + 1
    flushed(
        exporter,
        [
            make_span("failing", 2, 1, trace_id=other, failed=True),
            make_span("extra", 3, 1, trace_id=other),
            make_span("root", 1, trace_id=other),
        ],
    )
    (path,) = packages_in(package_dir)
    trace = read_package(path).members["trace.json"]
    assert [span["name"] for span in trace["resourceSpans"][0]["scopeSpans"][0]["spans"]] == [
        "failing",
        "extra",
    ]


def test_unwritable_directory_warns_once_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, new_exporter: Exporters
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    use_package_dir(monkeypatch, str(blocker))
    exporter = new_exporter()
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        flushed(exporter, failing_trace(1))
        flushed(exporter, failing_trace(2))
    (warning,) = [record for record in caplog.records if "replay packages" in record.getMessage()]
    assert str(blocker) in warning.getMessage()
    blocker.unlink()
    flushed(exporter, failing_trace(3))
    assert trace_ids(blocker) == [3]


# -- trace.json ----------------------------------------------------------------------------------------------


def test_trace_json_is_spec_otlp_json_and_round_trips_byte_exact() -> None:
    spans = failing_trace()
    document = encode_trace(spans)
    text = json.dumps(document)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert span["traceId"] == format(TRACE_ID, "032x")
    assert span["spanId"] == format(1, "016x")
    assert span["links"][0] == {"traceId": format(7, "032x"), "spanId": format(8, "016x"), "flags": 768}
    assert span["kind"] == 2
    assert span["startTimeUnixNano"] == "1000"
    assert "parentSpanId" not in span
    decoded = decode_trace(json.loads(text))
    assert decoded.SerializeToString() == encode_spans(spans).SerializeToString()


# -- hostile archives ----------------------------------------------------------------------------------------


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def rezip(target: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    target.write_bytes(rezip_bytes(entries))
    return target


def with_manifest(members: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    manifest = json.loads(members["manifest.json"])
    change(manifest)
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def replaced(members: dict[str, bytes], name: str, data: bytes) -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    """``members`` with ``name`` holding ``data``, and a manifest that tells the truth about it."""
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return list(with_manifest({**members, name: data}, lambda d: d["members"].update({name: entry})).items())


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


HOSTILE: dict[str, tuple[Callable[[dict[str, bytes]], list[tuple[str | zipfile.ZipInfo, bytes]]], str]] = {
    "traversal": (lambda m: [*m.items(), ("../escape.json", b"{}")], "escapes the archive"),
    "nested-traversal": (lambda m: [*m.items(), ("a/../../x.json", b"{}")], "escapes the archive"),
    "absolute": (lambda m: [*m.items(), ("/etc/passwd", b"")], "absolute member name"),
    "windows-absolute": (lambda m: [*m.items(), ("C:\\boot.ini", b"")], "absolute member name"),
    "duplicate": (lambda m: [*m.items(), ("trace.json", m["trace.json"])], "duplicate member"),
    "symlink": (lambda m: [*m.items(), (symlink("link.json"), b"/etc/passwd")], "is a symlink"),
    "bomb": (lambda m: [*m.items(), ("pad.json", b" " * (65 * 1024 * 1024))], "uncompressed size exceeds"),
    "too-many": (lambda m: [*m.items(), *((f"x{i}.json", b"{}") for i in range(16))], "too many members"),
    "lying-hash": (
        lambda m: list({**m, "trace.json": m["trace.json"].replace(b'"root"', b'"tree"')}.items()),
        "SHA-256 does not match",
    ),
    "lying-size": (
        lambda m: list(with_manifest(m, lambda d: d["members"]["replay.json"].update(size=1)).items()),
        "the manifest says 1",
    ),
    "bad-json": (lambda m: list({**m, "manifest.json": b'{"format": '}.items()), "not valid JSON"),
    "duplicate-key": (
        lambda m: list({**m, "manifest.json": m["manifest.json"][:-1] + b',"service":"x"}'}.items()),
        "duplicate key",
    ),
    "not-utf8": (lambda m: list({**m, "manifest.json": b'{"a": "\xff"}'}.items()), "not UTF-8"),
    "missing-member": (
        lambda m: [(name, data) for name, data in m.items() if name != "runtime.json"],
        "missing member 'runtime.json'",
    ),
    "missing-manifest": (
        lambda m: [(name, data) for name, data in m.items() if name != "manifest.json"],
        "missing member manifest.json",
    ),
    "unlisted-member": (lambda m: [*m.items(), ("extra.json", b"{}")], "not listed"),
    "schema": (
        lambda m: list(with_manifest(m, lambda d: d.pop("fingerprint")).items()),
        "field 'fingerprint' is missing",
    ),
    "manifest-not-object": (lambda m: list({**m, "manifest.json": b"[]"}.items()), "not a JSON object"),
    "bad-created": (
        lambda m: list(with_manifest(m, lambda d: d.update(created="yesterday")).items()),
        "created is not an RFC 3339 time",
    ),
    "bad-trace-id": (
        lambda m: list(with_manifest(m, lambda d: d.update(trace_id="Z" * 32)).items()),
        "trace_id is not 32 lowercase hex digits",
    ),
    "bad-digest": (
        lambda m: list(with_manifest(m, lambda d: d["members"]["replay.json"].update(sha256="x")).items()),
        "sha256 is not 64 lowercase hex digits",
    ),
    "negative-size": (
        lambda m: list(with_manifest(m, lambda d: d["members"]["replay.json"].update(size=-1)).items()),
        "negative size",
    ),
    "unlisted-required": (
        lambda m: list(with_manifest(m, lambda d: d["members"].pop("runtime.json")).items()),
        "does not list runtime.json",
    ),
    "trace-not-otlp": (
        lambda m: replaced(m, "trace.json", b'{"resourceSpans": [{"bogus": 1}]}'),
        "not an OTLP/JSON ExportTraceServiceRequest",
    ),
    "trace-bad-hex": (
        lambda m: replaced(
            m, "trace.json", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zz"}]}]}]}'
        ),
        "not an OTLP/JSON ExportTraceServiceRequest",
    ),
    "replay-schema": (lambda m: replaced(m, "replay.json", b'{"replayable": "no"}'), "'replayable'"),
    "runtime-not-object": (lambda m: replaced(m, "runtime.json", b"[]"), "runtime.json is not a JSON object"),
    "future-version": (
        lambda m: list(with_manifest(m, lambda d: d.update(format_version=2)).items()),
        "unsupported format version 2",
    ),
}


def lying_count(members: dict[str, bytes]) -> bytes:
    """Many entries, with an end-of-central-directory record that claims four."""
    entries = [*members.items(), *((f"x{i}", b"") for i in range(2000))]
    data = bytearray(rezip_bytes(entries))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<HH", 4, 4)
    return bytes(data)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_package_fails_verify_with_one_line(
    case: str, valid_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, reason = HOSTILE[case]
    bad = rezip(tmp_path / f"{case}.fspkg", build(members_of(valid_package)))
    assert main(["verify", str(valid_package), str(bad)]) == 1
    output = capsys.readouterr()
    assert output.out == ""
    assert output.err.count("\n") == 1
    assert output.err.startswith(f"{bad}: ")
    assert reason in output.err
    assert main(["show", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}: ")


def test_lying_member_count_is_caught_before_parsing(
    valid_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "lying-count.fspkg"
    bad.write_bytes(lying_count(members_of(valid_package)))
    assert main(["verify", str(bad)]) == 1
    assert capsys.readouterr().err == f"{bad}: central directory larger than 65536 bytes\n"


def test_show_survives_a_deep_and_cyclic_span_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = [make_span(f"s{n}", n, n - 1 if n > 1 else None, failed=n == 3000) for n in range(1, 3001)]
    spans += [make_span("loop-a", 5001, 5002), make_span("loop-b", 5002, 5001)]
    use_package_dir(monkeypatch, str(tmp_path))
    (package,) = PackageSpanExporter().write(spans)
    assert main(["show", "--json", str(package)]) == 0
    view = json.loads(capsys.readouterr().out)
    assert [span["depth"] for span in view["spans"]] == list(range(3000))
    assert main(["show", str(package)]) == 0
    assert "<- failure" in capsys.readouterr().out


def test_encrypted_member_is_rejected(
    valid_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(valid_package.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central directory entry: manifest.json
    data[entry + 8] |= 0x1  # general purpose flag bit 0: encrypted
    bad = tmp_path / "encrypted.fspkg"
    bad.write_bytes(bytes(data))
    assert main(["verify", str(bad)]) == 1
    assert capsys.readouterr().err == f"{bad}: member 'manifest.json' is encrypted\n"


def test_oversized_file_is_rejected_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = tmp_path / "huge.fspkg"
    with huge.open("wb") as stream:
        stream.truncate(MAX_TOTAL_SIZE + 1)
    assert main(["verify", str(huge)]) == 1
    assert capsys.readouterr().err == f"{huge}: file is larger than {MAX_TOTAL_SIZE} bytes\n"


def test_not_a_zip_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.fspkg"
    garbage.write_bytes(b"PK\x03\x04 this is not an archive")
    assert main(["verify", str(garbage), str(tmp_path / "absent.fspkg")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{garbage}: not a valid ZIP archive (no end of central directory)"
    assert lines[1].startswith(f"{tmp_path / 'absent.fspkg'}: cannot read")


def test_show_escapes_terminal_control_characters(
    valid_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(valid_package)]) == 0
    output = capsys.readouterr().out
    assert "\x1b" not in output
    assert "ValueError: bad \\x1b[31mvalue" in output
    assert 'File "app.py", line 3, in f' in output
    assert "db: SELECT 1" in output
    assert output.count("db: SELECT 1") == 1


def test_list_reports_bad_files_and_lists_good_ones(
    valid_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = valid_package.parent / "broken.fspkg"
    bad.write_bytes(b"nope")
    assert main(["list", str(valid_package.parent)]) == 1
    output = capsys.readouterr()
    assert valid_package.name in output.out
    assert output.err.startswith(f"{bad}: ")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["verify"])
    assert exit_info.value.code == 2
    capsys.readouterr()
