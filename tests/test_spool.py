"""The spool's segment files: order, acknowledgement, damage, budget, and processes sharing a directory."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from faultspan._pipeline import spool
from faultspan._pipeline.spool import Outcome, Spool
from faultspan.cli import main
from support.collector import free_port


class Recorder:
    """A collector stand-in for the reading side: takes payloads until told to refuse."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.received: list[bytes] = []
        self.refuse_after = refuse_after

    def __call__(self, payload: bytes) -> Outcome:
        if self.refuse_after is not None and len(self.received) >= self.refuse_after:
            return Outcome.RETRY
        self.received.append(payload)
        return Outcome.SENT


def payloads(count: int, size: int = 100) -> list[bytes]:
    return [f"batch {index:04d} ".encode().ljust(size, b".") for index in range(count)]


def test_batches_are_sent_oldest_first_and_the_segments_removed(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    batches = payloads(5)
    for batch in batches[:3]:
        writer.append(batch)
    writer.seal()
    for batch in batches[3:]:
        writer.append(batch)
    writer.close()
    assert len(spool.segments(tmp_path)) == 2

    recorder = Recorder()
    result = spool.drain(tmp_path, recorder)

    assert recorder.received == batches
    assert (result.sent, result.blocked) == (5, False)
    assert spool.segments(tmp_path) == []


def test_a_batch_confirmed_once_is_never_sent_again(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    batches = payloads(4)
    for batch in batches:
        writer.append(batch)
    writer.close()

    first = Recorder(refuse_after=2)
    assert spool.drain(tmp_path, first).blocked
    second = Recorder()
    spool.drain(tmp_path, second)

    assert first.received == batches[:2]
    assert second.received == batches[2:]


def test_damaged_and_truncated_records_are_skipped_with_one_warning_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    batches = payloads(5)
    for batch in batches:
        writer.append(batch)
    writer.close()
    (path,) = spool.segments(tmp_path)
    data = bytearray(path.read_bytes())
    record = len(data) // 5
    data[record + record // 2] ^= 0xFF  # a flipped bit in the second record's payload
    path.write_bytes(bytes(data[: len(data) - 10]))  # and the last record cut short

    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        spool.drain(tmp_path, recorder)

    assert recorder.received == [batches[0], batches[2], batches[3]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert path.name in warnings[0]
    assert "2 damaged or truncated" in warnings[0]


def test_over_budget_the_oldest_batches_are_evicted_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = 64 * 1024
    older = Spool(tmp_path, max_bytes=budget)
    for batch in payloads(100, size=1000):  # about 100 KB: the older segments go
        older.append(batch)
    older.close()
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        newer = Spool(tmp_path, max_bytes=budget)
        newer.append(b"the newest batch".ljust(1000, b"."))
        newer.close()

    assert older.evicted_records + newer.evicted_records > 0
    assert sum(path.stat().st_size for path in spool.segments(tmp_path)) <= budget
    assert any("evicted" in r.getMessage() for r in caplog.records)
    recorder = Recorder()
    spool.drain(tmp_path, recorder)
    assert recorder.received[-1].startswith(b"the newest batch")
    evicted = older.evicted_records + newer.evicted_records
    assert len(recorder.received) + evicted == 101

    assert main(["spool", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["evicted_batches"] == evicted


def test_a_batch_dropped_while_the_older_segment_is_being_sent_is_counted_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def batch(label: str) -> bytes:
        spans = ResourceSpans(schema_url=label.ljust(40 * 1024, "."))
        return ExportTraceServiceRequest(resource_spans=[spans]).SerializeToString()

    writer = Spool(tmp_path, max_bytes=64 * 1024)
    writer.append(batch("in flight"))
    writer.seal()
    (older,) = spool.segments(tmp_path)
    with spool.claim(older) as fd:  # the sender holds it: it cannot be evicted
        assert fd is not None
        assert not writer.append(batch("the newest"))
    writer.close()

    assert writer.evicted_records == 1
    assert main(["spool", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["evicted_batches"], report["pending_batches"]) == (1, 1)


def test_a_journaled_record_is_kept_until_settled(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    settled = writer.journal(b"sent by its batch")
    kept = writer.journal(b"never sent")
    assert settled is not None and kept is not None
    writer.settle([settled])
    writer.close()

    recorder = Recorder()
    spool.drain(tmp_path, recorder)
    assert recorder.received == [b"never sent"]


def test_a_fully_settled_journal_leaves_nothing_on_disk(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    refs = [writer.journal(batch) for batch in payloads(3)]
    writer.settle([ref for ref in refs if ref is not None])
    assert [path.stat().st_size for path in spool.segments(tmp_path)] == [0]
    writer.close()
    assert spool.segments(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path
    from faultspan._pipeline.spool import Spool, encode

    writer = Spool(Path(sys.argv[1]), max_bytes=1 << 20)
    for index in range(3):
        writer.append(b"from the writer %d" % index)
    active = writer._active
    os.pwrite(active.fd, encode(b"killed while writing this")[:20], active.size)
    print("written", flush=True)
    sys.stdin.read()
    """
)


def test_a_live_writers_segment_is_left_alone_and_read_after_it_is_killed(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "written\n"
        recorder = Recorder()
        spool.drain(tmp_path, recorder)
        assert recorder.received == []
        assert main(["spool", str(tmp_path), "--json"]) == 0
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    spool.drain(tmp_path, recorder)
    assert recorder.received == [b"from the writer %d" % index for index in range(3)]
    assert spool.segments(tmp_path) == []


def test_a_segment_being_created_is_invisible_to_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader running between the writer's creating its file and locking it must not take the file."""
    recorder = Recorder()
    real_flock = spool.fcntl.flock

    def reader_runs_first(fd: int, operation: int) -> None:
        if operation == spool.fcntl.LOCK_EX:
            spool.drain(tmp_path, recorder)
        real_flock(fd, operation)

    monkeypatch.setattr(spool.fcntl, "flock", reader_runs_first)
    writer = Spool(tmp_path, max_bytes=1 << 20)
    writer.append(b"first batch")
    monkeypatch.undo()
    writer.close()

    spool.drain(tmp_path, recorder)
    assert recorder.received == [b"first batch"]


def test_two_readers_never_send_the_same_segment(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    writer.append(b"only once")
    writer.close()
    (path,) = spool.segments(tmp_path)
    inner = Recorder()

    def nested(payload: bytes) -> Outcome:
        spool.drain(tmp_path, inner)  # a second reader while the first holds the segment
        return Outcome.SENT

    spool.drain(tmp_path, nested)
    assert inner.received == []
    assert not path.exists()


def test_spool_verb_usage_errors_and_unreachable_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["spool", str(tmp_path / "missing")]) == 2
    assert "missing: no such directory" in capsys.readouterr().out

    writer = Spool(tmp_path, max_bytes=1 << 20)
    writer.append(ExportTraceServiceRequest(resource_spans=[ResourceSpans()]).SerializeToString())
    writer.close()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")
    assert main(["spool", str(tmp_path), "--drain"]) == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol 'http/xml'" in capsys.readouterr().out

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert main(["spool", str(tmp_path), "--drain"]) == 1
    out = capsys.readouterr().out
    assert "0 batch(es) sent" in out
    assert "in 1 batch(es)" in out
