"""collector-config/: the OpenTelemetry Collector files are checked statically (no otelcol-contrib binary
runs here); the rotel configuration is checked by starting rotel from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from support.collector import ROTEL_CONFIG, OtlpSink, RotelCollector, read_rotel_config
from support.instrumented import SHOP_SECRETS

CONFIG_DIR = ROTEL_CONFIG.parent
OTELCOL_FILES = sorted(CONFIG_DIR.glob("*.yaml"))
SECTIONS = ("receivers", "processors", "exporters", "connectors")
# The rotel settings RotelCollector replaces per instance (free ports, the sink's address).
PER_INSTANCE = {"ROTEL_OTLP_GRPC_ENDPOINT", "ROTEL_OTLP_HTTP_ENDPOINT", "ROTEL_OTLP_EXPORTER_ENDPOINT"}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONFIG_DIR / name).read_text())
    return document


def pipeline_references(document: dict[str, Any]) -> dict[str, set[str]]:
    """Section -> component ids named by some pipeline (``service.extensions`` for extensions)."""
    used: dict[str, set[str]] = {section: set() for section in (*SECTIONS, "extensions")}
    for pipeline in document["service"]["pipelines"].values():
        for section in ("receivers", "processors", "exporters"):
            used[section].update(pipeline.get(section, []))
    used["extensions"].update(document["service"].get("extensions", []))
    return used


def test_the_collector_files_are_the_agent_and_the_gateway() -> None:
    assert [path.name for path in OTELCOL_FILES] == ["agent.yaml", "gateway.yaml"]


@pytest.mark.parametrize("path", OTELCOL_FILES, ids=lambda path: path.name)
def test_every_referenced_component_is_defined_and_every_defined_one_used(path: Path) -> None:
    document = load(path.name)
    assert set(document) <= {*SECTIONS, "extensions", "service"}
    used = pipeline_references(document)
    for section, names in used.items():
        defined = set(document.get(section) or {})
        assert names <= defined, f"{path.name}: {section} used but not defined: {sorted(names - defined)}"
        assert defined <= names, f"{path.name}: {section} defined but unused: {sorted(defined - names)}"


@pytest.mark.parametrize("path", OTELCOL_FILES, ids=lambda path: path.name)
def test_every_pipeline_is_complete_with_memory_limiter_first_and_batch_last(path: Path) -> None:
    pipelines = load(path.name)["service"]["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] == "traces"
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1] == "batch"


def test_agent_receives_otlp_redacts_and_routes_by_trace_id() -> None:
    agent = load("agent.yaml")
    assert set(agent["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    (pipeline,) = agent["service"]["pipelines"].values()
    assert pipeline["processors"] == ["memory_limiter", "redaction", "batch"]
    assert pipeline["exporters"] == ["loadbalancing"]
    balancing = agent["exporters"]["loadbalancing"]
    assert balancing["routing_key"] == "traceID"
    assert "otlp" in balancing["protocol"]
    assert balancing["resolver"]["dns"]["hostname"] == "${env:FAULTSPAN_GATEWAY_HOSTNAME}"
    gateway_grpc = load("gateway.yaml")["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert balancing["resolver"]["dns"]["port"] == int(gateway_grpc.rpartition(":")[2])


def test_gateway_tail_sampling_keeps_errors_and_exceptions_and_samples_the_rest() -> None:
    gateway = load("gateway.yaml")
    policies = {policy["name"]: policy for policy in gateway["processors"]["tail_sampling"]["policies"]}
    by_type = {policy["type"]: policy for policy in policies.values()}
    assert set(by_type) == {"status_code", "ottl_condition", "probabilistic"}, (
        "policies are OR-ed: no and/drop"
    )
    assert by_type["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert by_type["ottl_condition"]["ottl_condition"]["spanevent"] == ['name == "exception"']
    assert 0 < by_type["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    (pipeline,) = gateway["service"]["pipelines"].values()
    assert pipeline["processors"].index("tail_sampling") < pipeline["processors"].index("batch")
    assert set(pipeline["exporters"]) == {"otlp/backend", "file/archive"}
    assert gateway["exporters"]["file/archive"]["format"] == "json"
    assert gateway["exporters"]["otlp/backend"]["sending_queue"]["storage"] == "file_storage/queue"


def mask(redaction: dict[str, Any], text: str) -> str:
    """Python's re standing in for the Collector's RE2: the patterns use the syntax both share."""
    for pattern in redaction["blocked_values"]:
        text = re.sub(pattern, "****", text)
    return text


def key_blocked(redaction: dict[str, Any], key: str) -> bool:
    return any(re.search(pattern, key) for pattern in redaction["blocked_key_patterns"])


def test_redaction_masks_the_shop_secrets_by_value_and_keeps_faultspan_metadata() -> None:
    redaction = load("agent.yaml")["processors"]["redaction"]
    assert redaction["allow_all_keys"] is True
    assert redaction["summary"] == "info"
    # Where examples/shop.py puts its secrets, before faultspan's own redaction.
    leaks = [
        "POST https://pay.example.com/v1/charge?api_key=EXAMPLEdemoKey00000000000000 timed out",
        "could not connect to postgres://shop:demo-Pa55word!@db.internal:5432/orders",
        "card 4111 1111 1111 1111 declined for order total 4200",
        '{"card": "x", "amount": 4200, "password": "hunter2-demo"}',
        "Authorization: Bearer demo0token0abcdef0123456789",
    ]
    masked = [mask(redaction, text) for text in leaks]
    for secret in SHOP_SECRETS:
        assert all(secret not in text for text in masked), secret
    assert "db.internal:5432/orders" in masked[1]
    assert mask(redaction, "postgres://shop:[REDACTED]@db.internal/orders") == (
        "postgres://shop:[REDACTED]@db.internal/orders"
    )
    clean = "ValueError: order 8812 has no line items (token_count=3, session.id=abc)"
    assert mask(redaction, clean) == clean
    assert all(re.fullmatch(pattern, "[REDACTED]") for pattern in redaction["allowed_values"])


@pytest.mark.parametrize(
    ("key", "blocked"),
    [
        ("http.request.header.authorization", True),
        ("db.connection_string", True),
        ("password", True),
        ("user.api_key", True),
        ("client_secret", True),
        ("session_id", True),
        ("token_count", False),
        ("password_policy", False),
        ("access_key_id", False),
        ("session.id", False),
        ("exception.message", False),
        ("faultspan.frames", False),
    ],
)
def test_redaction_key_patterns_follow_faultspans_key_rules(key: str, blocked: bool) -> None:
    redaction = load("agent.yaml")["processors"]["redaction"]
    assert key_blocked(redaction, key) is blocked
    for ignored in redaction["ignored_keys"]:
        assert not key_blocked(redaction, ignored)


def test_readme_documents_every_file() -> None:
    readme = (CONFIG_DIR / "README.md").read_text()
    for path in sorted(CONFIG_DIR.iterdir()):
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
    assert "could not be run here" in readme


def test_the_collector_fixture_starts_rotel_from_rotel_env(
    collector: RotelCollector, otlp_sink: OtlpSink
) -> None:
    settings = read_rotel_config()
    assert settings["ROTEL_EXPORTER"] == "otlp"
    environment = collector.environment()
    for key, value in settings.items():
        if key not in PER_INSTANCE:
            assert environment[key] == value, key
    started = next(line for line in collector.log_text().splitlines() if line.startswith("### start"))
    for key, value in settings.items():
        if key not in PER_INSTANCE:
            assert f"{key}={value}" in started
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = "through rotel.env"
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    with grpc.insecure_channel(collector.grpc_endpoint.removeprefix("http://")) as channel:
        TraceServiceStub(channel).Export(request, timeout=10)
    arrived = otlp_sink.wait_for_span("through rotel.env")
    assert arrived.trace_id == bytes(range(1, 17)).hex()
