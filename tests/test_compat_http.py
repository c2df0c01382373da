"""Issue 14 in-process: what faultspan writes next to the official instrumentations (docs/compatibility.md).

The official suites themselves (tests/test_official_suites.py) are the broad check; these pin the decisions
one by one, each with the real framework.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import fastapi
import pytest
from fastapi.testclient import TestClient
from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability

from conftest import Pipeline
from faultspan._capture.redaction import RedactionRules, Redactor
from faultspan_instrumentation.fastapi import _route
from faultspan_instrumentation.flask import FlaskInstrumentor as FaultspanFlask


def test_masking_keeps_a_string_array_an_array() -> None:
    redactor = Redactor(RedactionRules())
    masked: list[str] = []
    sanitised = {"http.request.header.authorization": ("[REDACTED]",)}  # as the official one writes it
    assert redactor.scrub_attributes(sanitised, "", masked) is None
    assert masked == []
    raw = {"http.request.header.cookie": ("a=1", "b=2"), "http.request.header.x_token": ["t0ken"]}
    assert redactor.scrub_attributes(raw, "", masked) == {
        "http.request.header.cookie": ("[REDACTED]", "[REDACTED]"),
        "http.request.header.x_token": ["[REDACTED]"],
    }


def test_route_of_an_included_router_and_a_mount_keeps_its_prefix() -> None:
    routes: list[str | None] = []
    app, sub, router = fastapi.FastAPI(), fastapi.FastAPI(), fastapi.APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: str, request: fastapi.Request) -> dict[str, str]:
        routes.append(_route(request.scope))
        return {}

    @sub.get("/x/{y}")
    async def inner(y: int, request: fastapi.Request) -> dict[str, str]:
        routes.append(_route(request.scope))
        return {}

    app.include_router(router, prefix="/api")
    app.mount("/sub", sub)
    client = TestClient(app)
    assert client.get("/api/items/7").status_code == 200
    assert client.get("/sub/x/3").status_code == 200
    assert routes == ["/api/items/{item_id}", "/sub/x/{y}"]


@pytest.fixture
def semconv() -> Iterator[Any]:
    def opt_in(value: str) -> None:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = value
        _OpenTelemetrySemanticConventionStability._initialized = False

    previous = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN")
    try:
        yield opt_in
    finally:
        os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
        if previous is not None:
            os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = previous
        _OpenTelemetrySemanticConventionStability._initialized = False


@pytest.fixture
def flask_app() -> Iterator[Any]:
    import flask

    instrumentor = FaultspanFlask()
    instrumentor.instrument()
    app = flask.Flask("compat")
    app.add_url_rule("/boom/<int:n>", "boom", lambda n: 1 / 0)
    try:
        yield app
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("opt_in", "present", "absent"),
    [
        ("", {"http.method", "http.target", "http.status_code"}, {"http.request.method", "url.path"}),
        ("http", {"http.request.method", "url.path", "http.response.status_code"}, {"http.method"}),
        ("http/dup", {"http.method", "http.request.method", "url.path", "http.target"}, set()),
    ],
)
def test_own_span_follows_the_semantic_convention_opt_in(
    pipeline: Pipeline, semconv: Any, flask_app: Any, *, opt_in: str, present: set[str], absent: set[str]
) -> None:
    semconv(opt_in)
    assert flask_app.test_client().get("/boom/1", headers={"User-Agent": "probe"}).status_code == 500
    (span,) = pipeline.spans()
    assert present <= set(span.attributes)
    assert not absent & set(span.attributes)
    assert not [key for key in span.attributes if key.startswith("http.request.header.")]  # none asked for


def test_own_span_records_the_headers_the_official_variable_names(
    pipeline: Pipeline, flask_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id,authorization"
    )
    headers = {"X-Request-Id": "r-1", "Authorization": "Bearer s3cr3t-t0ken-value", "User-Agent": "probe"}
    assert flask_app.test_client().get("/boom/2", headers=headers).status_code == 500
    (span,) = pipeline.spans()
    headers_seen = {
        key: value for key, value in span.attributes.items() if key.startswith("http.request.header.")
    }
    assert headers_seen == {
        "http.request.header.x_request_id": ("r-1",),
        "http.request.header.authorization": ("[REDACTED]",),
    }


def test_an_app_the_user_uninstrumented_gets_no_span_from_faultspan(
    pipeline: Pipeline, flask_app: Any
) -> None:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor.instrument_app(flask_app)
    FlaskInstrumentor.uninstrument_app(flask_app)
    assert flask_app.test_client().get("/boom/3").status_code == 500
    assert pipeline.spans() == []
