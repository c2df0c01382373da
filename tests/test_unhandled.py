"""faultspan_unhandled: a crashing process, thread, asyncio task and ``__del__`` as real subprocesses under
opentelemetry-instrument through the rotel collector; hooks restored exactly in-process."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import Pipeline
from faultspan_instrumentation.unhandled import HOOK, UnhandledInstrumentor
from support.collector import OtlpSink, ReceivedEvent, ReceivedSpan, RotelCollector, free_port
from support.hooks import assert_idempotent_and_reversible
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "unhandled_app.py"
WORKER = Path(__file__).parents[1] / "examples" / "worker.py"
# Instrumentors of other areas are irrelevant here and would only slow every start-up. The official logging
# instrumentation adds a handler to the root logger, which switches off ``logging.lastResort``: asyncio's
# "Task exception was never retrieved" then vanishes from stderr, with or without faultspan.
UNRELATED = "faultspan_flask,faultspan_django,faultspan_fastapi,flask,django,fastapi,logging"
ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def collector_env(collector: RotelCollector, otel_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **otel_env,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_PYTHON_FAULTSPAN_SPOOL_DIR": str(tmp_path),
        **collector.exporter_env("grpc"),
    }


def plain_run(*args: str, env: dict[str, str], script: Path = APP) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def visible(stderr: str) -> str:
    """What the user sees on stderr, without OpenTelemetry's own start-up lines and object addresses."""
    lines = [line for line in stderr.splitlines() if not line.startswith("Configuration of configurator")]
    return ADDRESS.sub(" at 0x", "\n".join(lines))


def exception_events(spans: list[ReceivedSpan], message: str) -> list[tuple[ReceivedSpan, ReceivedEvent]]:
    return [
        (span, event)
        for span in spans
        for event in span.events_named("exception")
        if event.attributes.get("exception.message") == message
    ]


@pytest.mark.parametrize(
    ("mode", "message", "hook", "returncode"),
    [
        ("crash", "sku A-7 short by 7", "sys.excepthook", 1),
        ("thread", "sku C-1 short by 3", "threading.excepthook", 0),
        ("task", "sku D-4 short by 6", "asyncio", 0),
        ("unraisable", "sku E-9 short by 1", "sys.unraisablehook", 0),
    ],
)
def test_unhandled_failure_delivered_once_and_output_unchanged(
    mode: str,
    message: str,
    hook: str,
    returncode: int,
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    result = run_instrumented(
        APP,
        mode,
        env=collector_env(collector, otel_env, tmp_path),
        returncode=returncode,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED,
    )
    spans = otlp_sink.wait_for(lambda spans: bool(exception_events(spans, message)))
    ((span, event),) = exception_events(spans, message)
    assert span.name == "unhandled LookupError"
    assert span.status_code == 2
    assert span.attributes[HOOK] == hook
    assert event.attributes[HOOK] == hook
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.escaped"] == "True"
    frames = json.loads(str(event.attributes["faultspan.frames"]))
    reserve = frames[-1]
    assert (reserve["function"], reserve["locals"]["quantity"]) == ("reserve", str(int(message[-1]) + 5))
    if mode == "thread":
        assert span.attributes["thread.name"] == "reserver"
    plain = plain_run(mode, env=otel_env)
    assert (result.returncode, visible(result.stderr)) == (plain.returncode, visible(plain.stderr))
    assert result.stdout == plain.stdout


def test_exception_recorded_where_it_escaped_is_not_delivered_again(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    env = collector_env(collector, otel_env, tmp_path)
    run_instrumented(
        APP, "crash-in-span", env=env, returncode=1, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED
    )
    message = "sku B-3 short by 4"
    spans = otlp_sink.wait_for(lambda spans: bool(exception_events(spans, message)))
    ((span, _),) = exception_events(spans, message)
    assert span.name == "job"
    assert not [span for span in spans if span.name.startswith("unhandled")]


def test_worker_example_failures_reach_the_collector(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    env = collector_env(collector, otel_env, tmp_path)
    orders = ("7", "13", "-2")
    result = run_instrumented(
        WORKER, *orders, env=env, returncode=1, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED
    )
    rejected, lost = "order id -2 is negative", "'region'"
    spans = otlp_sink.wait_for(lambda spans: all(exception_events(spans, text) for text in (rejected, lost)))
    ((process, _),) = exception_events(spans, rejected)
    assert (process.name, process.attributes["order.id"]) == ("process order", -2)
    trail = [event.attributes["breadcrumb.message"] for event in process.events_named("breadcrumb")]
    assert trail[:2] == ["select name, region from customers where id = ?", "processing order -2 for Ada"]
    ((audit, event),) = exception_events(spans, lost)
    assert (audit.name, event.attributes[HOOK]) == ("unhandled KeyError", "asyncio")
    plain = plain_run(*orders, env=otel_env, script=WORKER)
    assert visible(result.stderr) == visible(plain.stderr)


def test_crash_with_collector_down_exits_within_the_bound(otel_env: dict[str, str], tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_instrumented(
        APP,
        "crash",
        env=otel_env,
        returncode=1,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=nobody,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS="1000",
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED,
    )
    print(f"crash with the collector down exited after {time.monotonic() - started:.2f}s")
    assert result.stderr.rstrip().endswith("LookupError: sku A-7 short by 7")
    # Flushed before the process died: the failure reached faultspan's durable spool on disk.
    assert any(b"sku A-7 short by 7" in path.read_bytes() for path in tmp_path.rglob("*.seg"))


def test_disabled_instrumentations_leave_every_hook_alone(otel_env: dict[str, str]) -> None:
    ours = "faultspan_unhandled,faultspan_outgoing,faultspan_logging"
    enabled = run_instrumented(
        APP,
        "hooks",
        env=otel_env,
        OTEL_TRACES_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED,
    )
    disabled = run_instrumented(
        APP,
        "hooks",
        env=otel_env,
        OTEL_TRACES_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=f"{UNRELATED},{ours}",
    )
    plain = plain_run("hooks", env=otel_env)
    assert enabled.stdout.splitlines()[:4] == ["faultspan_instrumentation.unhandled"] * 4
    assert enabled.stdout.splitlines()[4] == "faultspan_instrumentation.outgoing"
    assert "faultspan_instrumentation.logging" in enabled.stdout.splitlines()[5]
    assert disabled.stdout.splitlines()[:5] == plain.stdout.splitlines()[:5]
    assert "faultspan_instrumentation" not in disabled.stdout


def test_uninstrument_restores_every_hook_exactly() -> None:
    def hooks() -> list[object]:
        return [
            sys.excepthook,
            threading.excepthook,
            sys.unraisablehook,
            vars(asyncio.BaseEventLoop)["call_exception_handler"],
        ]

    assert_idempotent_and_reversible(UnhandledInstrumentor(), hooks)


def test_keyboard_interrupt_is_not_recorded_but_still_reported(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    instrumentor = UnhandledInstrumentor()
    instrumentor.instrument()
    try:
        sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
        assert pipeline.spans() == []
        sys.excepthook(LookupError, LookupError("sku Z-1 short by 2"), None)
    finally:
        instrumentor.uninstrument()
    assert capsys.readouterr().err.splitlines() == ["KeyboardInterrupt", "LookupError: sku Z-1 short by 2"]
    (span,) = pipeline.spans()
    assert (span.name, span.attributes[HOOK]) == ("unhandled LookupError", "sys.excepthook")
