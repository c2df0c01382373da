"""The example app as a real subprocess under opentelemetry-instrument, through a real collector (rotel)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import SHOP, SHOP_SECRETS, run_instrumented


def run_shop(env: dict[str, str], **variables: str) -> subprocess.CompletedProcess[str]:
    return run_instrumented(SHOP, env=env, OTEL_SERVICE_NAME="shop", **variables)


def checkout_failure(spans: list[ReceivedSpan]) -> bool:
    return any(span.name == "checkout" and span.events_named("exception") for span in spans) and any(
        span.name == "POST /checkout" for span in spans
    )


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = [span for span in spans if span.name == name]
    return span


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_failure_reaches_the_collector_enriched_and_redacted(
    protocol: str, collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str]
) -> None:
    run_shop(otel_env, OTEL_TRACES_EXPORTER="otlp", **collector.exporter_env(protocol))  # type: ignore[arg-type]
    spans = otlp_sink.wait_for(checkout_failure)
    checkout = by_name(spans, "checkout")
    assert checkout.resource["service.name"] == "shop"
    assert checkout.status_code == 2
    (event,) = checkout.events_named("exception")
    attributes = event.attributes
    assert attributes["exception.type"] == "__main__.PaymentDeclined"
    assert attributes["exception.message"] == "card [REDACTED] declined for order total 4200"
    assert attributes["faultspan.fingerprint"] == checkout.attributes["faultspan.fingerprint"]
    frames = json.loads(str(attributes["faultspan.frames"]))
    charge = next(frame for frame in frames if frame["function"] == "charge")
    assert charge["in_app"] is True
    assert charge["locals"]["amount_cents"] == "4200"
    assert "[REDACTED]" in charge["locals"]["attempt"]
    chain = json.loads(str(attributes["faultspan.chain"]))
    assert chain["cause"]["type"] == "ConnectionError"
    assert "The above exception was the direct cause" in str(attributes["exception.stacktrace"])
    request = by_name(spans, "POST /checkout")
    assert request.attributes["http.request.header.authorization"] == "[REDACTED]"
    assert "http.request.header.authorization" in str(request.attributes["redaction.masked.keys"])
    received = otlp_sink.raw_bytes()
    for needle in SHOP_SECRETS:
        assert needle.encode() not in received, needle


def test_console_exporter_shows_no_secret(otel_env: dict[str, str]) -> None:
    output = run_shop(otel_env, OTEL_TRACES_EXPORTER="console").stdout
    assert '"faultspan.fingerprint"' in output
    assert "[REDACTED]" in output
    for needle in SHOP_SECRETS:
        assert needle not in output, needle


def test_same_bug_same_fingerprint_across_processes(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    moved = tmp_path / "elsewhere" / "shop.py"
    moved.parent.mkdir()
    moved.write_text("# moved to another host, with a line shift\n\n" + SHOP.read_text())
    env = {**otel_env, "OTEL_TRACES_EXPORTER": "otlp", **collector.exporter_env("grpc")}
    run_shop(env, PYTHONHASHSEED="1")
    run_instrumented(moved, env=env, OTEL_SERVICE_NAME="shop", PYTHONHASHSEED="2")
    spans = otlp_sink.wait_for(lambda spans: sum(span.name == "checkout" for span in spans) == 2)
    keys = {span.attributes["faultspan.fingerprint"] for span in spans if span.name == "checkout"}
    assert len(keys) == 1


@pytest.mark.parametrize(
    "choice",
    [
        {"OTEL_PYTHON_CONFIGURATOR": "configurator"},
        {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"},
    ],
    ids=["other-configurator", "other-distro-and-configurator"],
)
def test_redaction_holds_when_opentelemetry_distro_wins(
    choice: dict[str, str], otel_env: dict[str, str]
) -> None:
    pytest.importorskip("opentelemetry.distro")
    output = run_shop(otel_env, OTEL_TRACES_EXPORTER="console", **choice).stdout
    assert '"faultspan.fingerprint"' in output
    for needle in SHOP_SECRETS:
        assert needle not in output, needle


def test_bad_configuration_warns_once_and_the_app_runs(otel_env: dict[str, str]) -> None:
    result = run_shop(
        otel_env,
        OTEL_TRACES_EXPORTER="console",
        OTEL_PYTHON_FAULTSPAN_MAX_FRAMES="lots",
        OTEL_PYTHON_FAULTSPAN_REDACT_CALLBACK="no_such_module:scrub",
    )
    assert result.stderr.count("OTEL_PYTHON_FAULTSPAN_MAX_FRAMES") == 1
    assert result.stderr.count("OTEL_PYTHON_FAULTSPAN_REDACT_CALLBACK") == 1
    assert "Traceback" not in result.stderr
    assert '"faultspan.fingerprint"' in result.stdout
