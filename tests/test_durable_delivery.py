"""Fault tests of durable OTLP delivery with the real rotel collector, stopped and restarted on fixed ports.

Apps are real subprocesses under opentelemetry-instrument (``apps/durable_app.py``); each test prints what was
sent, what arrived and how long the app took to exit. The outages of 5, 15 and 30 s take that long each.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultspan._pipeline import spool
from support.collector import OtlpSink, ReceivedSpan, RotelCollector, flatten_request
from support.instrumented import INSTRUMENT
from test_packages import eventually

APP = Path(__file__).parent / "apps" / "durable_app.py"
CONFIGURED_APP = Path(__file__).parent / "apps" / "durable_configured.py"
FAULTSPAN = Path(sys.executable).parent / "faultspan"
BOUND_MILLIS = 3000
HANG_GUARD_SECONDS = 60


@dataclass
class Rig:
    sink: OtlpSink
    collector: RotelCollector
    spool_dir: Path
    env: dict[str, str]

    def start_app(self, *args: str, **variables: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(INSTRUMENT), sys.executable, str(APP), *args],
            env={**self.env, **variables},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_app(self, *args: str, **variables: str) -> tuple[subprocess.CompletedProcess[str], float]:
        """Run to the end; also returns the seconds from its last span (``ended`` line) to its exit."""
        with tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(
                [str(INSTRUMENT), sys.executable, str(APP), *args],
                env={**self.env, **variables},
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            assert process.stdout is not None
            lines = []
            last_span = time.monotonic()
            for line in process.stdout:
                lines.append(line)
                if line.startswith("ended "):
                    last_span = time.monotonic()
            process.wait(timeout=HANG_GUARD_SECONDS)
            exit_seconds = time.monotonic() - last_span
            errors.seek(0)
            stderr = errors.read()
        return subprocess.CompletedProcess(
            process.args, process.returncode, "".join(lines), stderr
        ), exit_seconds

    def spool_verb(self, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAULTSPAN), "spool", str(self.spool_dir), *args],
            env={**self.env, **variables},
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
            check=False,
        )

    def deliver_leftovers(self, **variables: str) -> int:
        """What an app left on disk at exit (its time bound ran out before the collector took it), sent
        now; returns how many spans that was."""
        left = self.status()["pending_spans"] if self.spool_dir.exists() else 0
        if left:
            drained = self.spool_verb("--drain", **variables)
            assert drained.returncode == 0, drained.stdout + drained.stderr
        return left

    def collector_destination(self, protocol: str) -> str:
        if protocol == "grpc":
            return f"grpc_127.0.0.1_{self.collector.grpc_port}"
        return f"http_http_127.0.0.1_{self.collector.http_port}_v1_traces"

    def status(self) -> dict[str, Any]:
        result = self.spool_verb("--json")
        assert result.returncode == 0, result.stdout + result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        return status


@pytest.fixture
def rig(otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path) -> Iterator[Rig]:
    """rotel on pinned ports (not started) forwarding to the sink; the app's env points at rotel."""
    collector = RotelCollector(otlp_sink.endpoint, log_dir=tmp_path / "rotel")
    env = {
        **otel_env,
        **collector.exporter_env("grpc"),
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "durable-app",
        "OTEL_PYTHON_FAULTSPAN_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS": str(BOUND_MILLIS),
    }
    try:
        yield Rig(otlp_sink, collector, tmp_path / "spool", env)
    finally:
        collector.close()


def segments(root: Path) -> list[Path]:
    return [path for directory in spool.destinations(root) for path in spool.segments(directory)]


def names(prefix: str, count: int) -> set[str]:
    return {f"{prefix} {index}" for index in range(count)}


def wait_for_names(sink: OtlpSink, expected: set[str], timeout: float = 30.0) -> list[ReceivedSpan]:
    try:
        return sink.wait_for(lambda spans: expected <= {span.name for span in spans}, timeout)
    except AssertionError as err:
        missing = sorted(
            expected - {span.name for span in sink.spans()}, key=lambda name: int(name.split()[-1])
        )
        raise AssertionError(
            f"{len(missing)} never arrived: {missing[:5]} .. {missing[-5:]}; {err}"
        ) from None


def report(scenario: str, sent: int, spans: list[ReceivedSpan], exit_seconds: float | None) -> None:
    counts = Counter(span.name for span in spans)
    duplicates = sum(count - 1 for count in counts.values())
    took = "-" if exit_seconds is None else f"{exit_seconds:.2f}s"
    print(f"[{scenario}] sent {sent}, arrived {len(counts)} (duplicates {duplicates}), app exit {took}")


def ended(output: str) -> int:
    return int(next(line for line in output.splitlines() if line.startswith("ended ")).split()[1])


def test_collector_down_for_the_whole_run_then_the_next_run_delivers_everything(rig: Rig) -> None:
    first, seconds = rig.run_app("1000", "--name", "first")
    assert first.returncode == 0, first.stderr
    assert rig.status()["pending_spans"] == 1000

    rig.collector.start()
    second, _ = rig.run_app("10", "--name", "second")
    assert second.returncode == 0, second.stderr

    spans = wait_for_names(rig.sink, names("first", 1000) | names("second", 10))
    report("collector down for the whole run, next run", 1010, spans, seconds)
    assert segments(rig.spool_dir) == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_spool_verb_drains_what_a_run_left(rig: Rig, protocol: Literal["grpc", "http/protobuf"]) -> None:
    rig.env.update(rig.collector.exporter_env(protocol))
    run, seconds = rig.run_app("300", "--fail-every", "50")
    assert run.returncode == 0, run.stderr
    assert rig.status()["destinations"] == [rig.collector_destination(protocol)]

    rig.collector.start()
    # The verb's own variables name no endpoint: the batches go where they were spooled for.
    drained = rig.spool_verb(
        "--drain",
        OTEL_EXPORTER_OTLP_ENDPOINT="",
        OTEL_EXPORTER_OTLP_PROTOCOL="",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="",
    )
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "0 span(s) in 0 batch(es)" in drained.stdout
    assert f"{rig.collector.grpc_port if protocol == 'grpc' else rig.collector.http_port}" in drained.stdout

    spans = wait_for_names(rig.sink, names("work", 300))
    report(f"faultspan spool --drain ({protocol})", 300, spans, seconds)
    failures = {span.name for span in spans if span.events_named("exception")}
    assert failures == {f"work {index}" for index in range(0, 300, 50)}


@pytest.mark.parametrize("outage", [5, 15, 30])
def test_an_outage_during_load_loses_nothing(rig: Rig, outage: int) -> None:
    rate = 300
    count = (outage + 4) * rate
    rig.collector.start()
    process = rig.start_app(str(count), "--rate", str(rate))
    began = time.monotonic()
    rig.sink.wait_for_spans(rate)
    rig.collector.stop()
    time.sleep(outage)  # the outage itself, not a synchronisation
    rig.collector.start()
    _, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    assert process.returncode == 0, err
    took = time.monotonic() - began
    left = rig.deliver_leftovers()

    spans = wait_for_names(rig.sink, names("work", count))
    report(f"{outage}s outage during load, app ran {took:.1f}s, {left} left on disk", count, spans, None)


def test_sigterm_during_load_keeps_every_span_and_the_applications_exit_code(rig: Rig) -> None:
    rig.collector.start()
    process = rig.start_app("0", "--rate", "1000", "--then", "term-wait")
    rig.sink.wait_for_spans(200)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    exit_seconds = time.monotonic() - signalled

    assert process.returncode == 3, err
    count = ended(out)
    left = rig.deliver_leftovers()
    spans = wait_for_names(rig.sink, names("work", count))
    report(f"SIGTERM during load (application handler), {left} left on disk", count, spans, exit_seconds)


def test_a_sigterm_handler_installed_before_configure_is_chained_and_its_exit_code_kept(rig: Rig) -> None:
    rig.collector.start()
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(CONFIGURED_APP), "300"],
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=False,
    )
    assert result.returncode == 5, result.stderr
    assert result.stdout == "application handler\n"
    spans = wait_for_names(rig.sink, names("configured", 300))
    report("configure(), SIGTERM handler installed first", 300, spans, time.monotonic() - began)


def test_sigterm_with_the_collector_gone_dies_by_the_signal_with_everything_on_disk(rig: Rig) -> None:
    rig.collector.start()
    process = rig.start_app("0", "--rate", "1000", "--then", "forever")
    before = len(rig.sink.wait_for_spans(200))
    rig.collector.stop()
    # The app goes on while the collector is gone: its spans go to the spool, then the signal comes.
    eventually(lambda: segments(rig.spool_dir), HANG_GUARD_SECONDS)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=HANG_GUARD_SECONDS)
    exit_seconds = time.monotonic() - signalled
    assert process.returncode == -signal.SIGTERM

    pending = rig.status()["pending_spans"]
    received = len(rig.sink.spans())
    rig.collector.start()
    drained = rig.spool_verb("--drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    # The collector forwards what it took on its own time: wait for every drained span.
    rig.sink.wait_for(lambda spans: len(spans) >= received + pending)
    arrived = {span.name for span in rig.sink.spans()}
    count = len(arrived)
    spans = wait_for_names(rig.sink, names("work", count))  # no holes: 0 .. count-1
    report("SIGTERM (default action), collector down", count, spans, exit_seconds)
    assert count > before


@pytest.mark.parametrize("collector_up", [False, True], ids=["collector down", "collector up"])
def test_sigkill_right_after_a_captured_failure_keeps_it(rig: Rig, collector_up: bool) -> None:
    if collector_up:
        rig.collector.start()
    run, _ = rig.run_app("1", "--fail-every", "1", "--then", "sigkill")
    assert run.returncode == -signal.SIGKILL, run.stderr

    if not collector_up:
        rig.collector.start()
    drained = rig.spool_verb("--drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    span = rig.sink.wait_for_span("work 0")
    state = "up" if collector_up else "down"
    report(f"SIGKILL right after a captured failure, collector {state}", 1, rig.sink.spans(), None)
    (event,) = span.events_named("exception")
    assert event.attributes["exception.message"] == "planned failure 0"
    assert span.attributes["faultspan.fingerprint"]


def test_a_refusing_receiver_loses_nothing_once_it_heals(rig: Rig) -> None:
    """The app talks to the receiver directly, so its refusals reach faultspan's exporter."""
    rig.sink.fail_with(grpc.StatusCode.UNAVAILABLE)
    count = 1500
    process = rig.start_app(str(count), "--rate", "500", OTEL_EXPORTER_OTLP_ENDPOINT=rig.sink.url)
    began = time.monotonic()
    rig.sink.wait_for_attempts(3)
    rig.sink.fail_with(None)
    _, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    assert process.returncode == 0, err
    took = time.monotonic() - began
    left = rig.deliver_leftovers(OTEL_EXPORTER_OTLP_ENDPOINT=rig.sink.url)

    spans = wait_for_names(rig.sink, names("work", count))
    scenario = f"receiver refusing ({rig.sink.rejected} refusals), app ran {took:.1f}s, {left} left on disk"
    report(scenario, count, spans, None)


def test_a_damaged_segment_is_skipped_with_a_warning_and_everything_else_delivered(rig: Rig) -> None:
    run, _ = rig.run_app("2000")
    assert run.returncode == 0, run.stderr
    records = [
        (path, record) for path in segments(rig.spool_dir) for record in spool.scan(path.read_bytes()).records
    ]
    assert len(records) >= 3

    def span_names(payload: bytes) -> set[str]:
        request = ExportTraceServiceRequest.FromString(payload)
        return {span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}

    (flipped_path, flipped), (cut_path, cut) = records[0], records[-1]
    data = bytearray(flipped_path.read_bytes())
    data[flipped.offset + 40] ^= 0xFF
    flipped_path.write_bytes(bytes(data))
    with cut_path.open("r+b") as segment:
        segment.truncate(cut.offset + 30)
    lost = span_names(flipped.payload) | span_names(cut.payload)

    rig.collector.start()
    drained = rig.spool_verb("--drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert flipped_path.name in drained.stderr
    assert cut_path.name in drained.stderr
    expected = names("work", 2000) - lost
    spans = wait_for_names(rig.sink, expected)
    report("damaged and truncated segments", len(expected), spans, None)
    assert not lost & {span.name for span in spans}


def test_over_budget_eviction_is_counted_and_reported_and_the_app_is_unaffected(rig: Rig) -> None:
    budget = 64 * 1024
    run, seconds = rig.run_app("5000", OTEL_PYTHON_FAULTSPAN_SPOOL_MAX_BYTES=str(budget))
    assert run.returncode == 0, run.stderr
    assert ended(run.stdout) == 5000

    status = rig.status()
    print(f"[budget reached] app exit {seconds:.2f}s, spool {status}")
    assert status["evicted_batches"] > 0
    assert status["bytes"] <= budget
    human = rig.spool_verb()
    assert f"evicted over the budget: {status['evicted_batches']} batch(es)" in human.stdout


def test_processes_sharing_a_spool_each_keep_their_spans(rig: Rig) -> None:
    runs = [rig.start_app("700", "--name", name, "--fail-every", "100") for name in ("left", "right")]
    for process in runs:
        _, err = process.communicate(timeout=HANG_GUARD_SECONDS)
        assert process.returncode == 0, err

    rig.collector.start()
    drained = rig.spool_verb("--drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    spans = wait_for_names(rig.sink, names("left", 700) | names("right", 700))
    report("two processes, one spool", 1400, spans, None)
    assert len(spans) == 1400


def spool_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_a_clean_run_leaves_no_spool_file(rig: Rig) -> None:
    rig.collector.start()
    run, _ = rig.run_app("200", "--fail-every", "10")
    assert run.returncode == 0, run.stderr
    wait_for_names(rig.sink, names("work", 200))
    assert spool_files(rig.spool_dir) == []


def test_spool_files_are_the_owners_only(rig: Rig) -> None:
    run, _ = rig.run_app("50", "--fail-every", "10")
    assert run.returncode == 0, run.stderr
    files = spool_files(rig.spool_dir)
    assert files
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    for directory in {path.parent for path in files}:
        assert directory.stat().st_mode & 0o077 == 0, f"{directory} is {oct(directory.stat().st_mode)}"


def test_after_sigterm_under_load_the_packages_count_every_failure_the_collector_got(rig: Rig) -> None:
    rig.collector.start()
    packages = rig.spool_dir.parent / "packages"
    process = rig.start_app(
        "0",
        "--rate",
        "1000",
        "--fail-every",
        "7",
        "--then",
        "term-wait",
        OTEL_TRACES_EXPORTER="otlp,faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(packages),
    )
    rig.sink.wait_for_spans(500)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    assert process.returncode == 3, err
    count = ended(out)
    rig.deliver_leftovers()
    spans = wait_for_names(rig.sink, names("work", count))
    failed = sum(1 for span in spans if span.events_named("exception"))
    groups = subprocess.run(
        [str(FAULTSPAN), "groups", str(packages), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert groups.returncode == 0, groups.stderr
    assert sum(group["count"] for group in json.loads(groups.stdout)) == failed


def test_a_batch_the_collector_will_never_take_is_moved_aside_and_the_rest_goes_on(
    otel_env: dict[str, str], tmp_path: Path
) -> None:
    with OtlpSink(max_message_bytes=256 * 1024) as sink:
        run = subprocess.run(
            [str(INSTRUMENT), sys.executable, str(Path(__file__).parent / "apps" / "poison_span.py")],
            env={
                **otel_env,
                "OTEL_SERVICE_NAME": "poison",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_PYTHON_FAULTSPAN_SPOOL_DIR": str(tmp_path / "spool"),
            },
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        wait_for_names(sink, names("order", 200))
        assert "poison" not in {span.name for span in sink.spans()}
    assert run.stderr.count("rejected a batch as never deliverable") == 1, run.stderr
    (destination,) = spool.destinations(tmp_path / "spool")
    assert spool.segments(destination) == []
    (aside,) = spool.segments(destination / spool.QUARANTINE)
    (record,) = spool.scan(aside.read_bytes()).records
    (span,) = flatten_request(ExportTraceServiceRequest.FromString(record.payload))
    assert span.name == "poison"
