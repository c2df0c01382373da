"""Every text faultspan writes is bounded before it is copied, so no record is too large to deliver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Pipeline
from faultspan._capture import config, exceptions
from faultspan._capture.exceptions import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    MAX_MESSAGE,
    MAX_STACKTRACE,
    MAX_STATUS,
    MAX_STRUCTURE,
)
from faultspan._capture.redaction import RedactionRules, Redactor
from faultspan._pipeline import recording
from support.collector import OtlpSink, RotelCollector
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "oversized_failure.py"
HUGE = list(range(500_000))


def raised(message: str) -> BaseException:
    try:
        raise LookupError(message)
    except LookupError as error:
        return error


def test_capture_bounds_every_text_and_says_how_much_was_cut() -> None:
    text = f"cannot reconcile {HUGE}"
    error = raised(text)
    error.add_note(text)
    captured = exceptions.capture(error, config.load(options={}), Redactor(RedactionRules()))
    message = captured.attributes[EXCEPTION_MESSAGE]
    assert len(message) <= MAX_MESSAGE
    assert message.startswith("cannot reconcile [0, 1, 2")
    assert message.endswith("499998, 499999]")
    assert f"of {len(text)} characters truncated" in message
    assert len(captured.attributes[EXCEPTION_STACKTRACE]) <= MAX_STACKTRACE
    assert captured.attributes[EXCEPTION_STACKTRACE].endswith("499999]\n")
    for name in (exceptions.FRAMES, exceptions.CHAIN):
        assert len(captured.attributes[name]) <= MAX_STRUCTURE
    assert sum(len(value) for value in captured.attributes.values()) < 512 * 1024


def test_the_text_path_and_the_status_are_bounded_like_the_capture(pipeline: Pipeline) -> None:
    """The SDK's own record_exception and use_span copy the whole str(exc); the processor bounds them."""
    recording.unwrap_record_exception()
    try:
        with pipeline.tracer.start_as_current_span("sdk only"):
            raise LookupError(f"cannot reconcile {HUGE}")
    except LookupError:
        pass
    finally:
        recording.wrap_record_exception()
    (span,) = [span for span in pipeline.spans() if span.name == "sdk only"]
    assert len(span.status.description) <= MAX_STATUS
    (event,) = span.events
    assert len(event.attributes[EXCEPTION_MESSAGE]) <= MAX_MESSAGE
    assert len(event.attributes[EXCEPTION_STACKTRACE]) <= MAX_STACKTRACE
    assert event.attributes["faultspan.fingerprint"]


def test_an_oversized_failure_does_not_block_the_traffic_behind_it(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    packages = tmp_path / "packages"
    run_instrumented(
        APP,
        env=otel_env,
        OTEL_SERVICE_NAME="oversized",
        OTEL_TRACES_EXPORTER="otlp,faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(packages),
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path / "spool"),
        **collector.exporter_env("grpc"),
    )
    spans = otlp_sink.wait_for(lambda spans: len(spans) >= 1_001, timeout=30)
    ordinary = [span for span in spans if span.name.startswith("order ")]
    assert len({span.name for span in ordinary}) == 1_000
    assert sum(1 for span in ordinary if span.events_named("exception")) == 10
    (big,) = [span for span in spans if span.name == "reconcile"]
    (event,) = big.events_named("exception")
    assert event.attributes["exception.type"] == "__main__.InventoryError"
    assert event.attributes["faultspan.fingerprint"] == big.attributes["faultspan.fingerprint"]
    size = len(otlp_sink.raw_bytes())
    assert size < 2 * 1024 * 1024, size  # 1,001 spans in all, the big one well under 1 MiB
    listed = subprocess.run(
        [sys.executable, "-m", "faultspan", "list", str(packages), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    written = sorted(packages.glob("*.fspkg"))
    assert written
    verified = subprocess.run(
        [sys.executable, "-m", "faultspan", "verify", *map(str, written)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
