"""Flask, Django and FastAPI: the examples as real servers under opentelemetry-instrument, through rotel.

Each example runs twice: with the official instrumentation of its framework (faultspan enriches that
instrumentation's server span) and with it disabled through OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (faultspan
opens the server span itself). The in-process tests at the end cover what the examples do not exercise:
reversibility, configurable failure statuses, body capture and user ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from faultspan._capture import runtime
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import run_instrumented
from support.servers import EXAMPLES, AppServer, http_get

SERVER, CLIENT = 2, 3
STATUS_ERROR = 2
# Synthetic secrets sent with every failing request or held in the examples' locals: none may arrive.
TOKEN = "demo0token0abcdef0123456789"
API_KEY = "EXAMPLEdemoKey00000000000000"
SESSION = "s3ss10nDemoCookie0123456789"
CARD = "4111 1111 1111 1111"
SECRETS = (TOKEN, API_KEY, SESSION, CARD)


@dataclass(frozen=True)
class Example:
    script: Path
    route: str
    env: dict[str, str]
    # The scope of the server span when the official instrumentation is disabled. FastAPI (since 0.16x)
    # traces requests itself once a TracerProvider is set, so faultspan has a span to enrich there too.
    own_scope: str
    user: str | None  # what the example's authentication makes of the bearer token (Flask has none)


EXAMPLE_APPS = {
    "flask": Example(
        EXAMPLES / "flask_app.py", "/orders/<int:order_id>", {}, "faultspan_instrumentation.flask", None
    ),
    "django": Example(
        EXAMPLES / "django_app.py",
        "orders/<int:order_id>",
        {"PYTHONPATH": str(EXAMPLES), "DJANGO_SETTINGS_MODULE": "django_app"},
        "faultspan_instrumentation.django",
        "42",
    ),
    "fastapi": Example(EXAMPLES / "fastapi_app.py", "/orders/{order_id}", {}, "fastapi", "demo-user"),
}


@dataclass(frozen=True)
class Served:
    framework: str
    official: bool
    server: AppServer
    sink: OtlpSink

    @property
    def service(self) -> str:
        return f"{self.framework}-{'official' if self.official else 'own'}"

    @property
    def example(self) -> Example:
        return EXAMPLE_APPS[self.framework]

    def order(self, order_id: int, marker: str) -> int:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Cookie": f"sessionid={SESSION}",
            "X-Request-Id": marker,
        }
        url = self.server.url(f"/orders/{order_id}?marker={marker}&api_key={API_KEY}")
        return http_get(url, headers, timeout=30)[0]

    def request_spans(self, spans: list[ReceivedSpan], marker: str) -> list[ReceivedSpan]:
        """The server spans of this service's ``/orders`` requests that carried ``marker``."""
        return [
            span
            for span in spans
            if span.kind == SERVER
            and span.resource.get("service.name") == self.service
            and (
                span.attributes.get("http.request.header.x_request_id") == [marker]
                or f"marker={marker}&" in str(span.attributes.get("url.query", ""))
            )
        ]

    def wait_for_request(self, marker: str) -> ReceivedSpan:
        """The request's server span, once it and the outgoing call's CLIENT span (same trace) arrived."""

        def arrived(spans: list[ReceivedSpan]) -> bool:
            found = self.request_spans(spans, marker)
            return bool(found) and any(s.kind == CLIENT and s.trace_id == found[0].trace_id for s in spans)

        spans = self.sink.wait_for(arrived, timeout=30)
        (span,) = self.request_spans(spans, marker)
        return span


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    receiver = OtlpSink()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def rotel(sink: OtlpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RotelCollector]:
    collector = RotelCollector(sink.endpoint, log_dir=tmp_path_factory.mktemp("rotel"))
    collector.start()
    try:
        yield collector
    finally:
        collector.close()


@pytest.fixture(
    scope="module",
    params=[(name, official) for name in EXAMPLE_APPS for official in (True, False)],
    ids=lambda param: f"{param[0]}-{'official' if param[1] else 'own'}",
)
def served(
    request: pytest.FixtureRequest,
    rotel: RotelCollector,
    sink: OtlpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    framework, official = request.param
    example = EXAMPLE_APPS[framework]
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(example.env)
    env.update(rotel.exporter_env("grpc"))
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_SERVICE_NAME=f"{framework}-{'official' if official else 'own'}",
        # The official variables decide for both kinds of span: the stable HTTP conventions, and the
        # request headers recorded (faultspan masks the credentials among them either way).
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="authorization,cookie,x-request-id",
    )
    if not official:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = framework
    with AppServer(example.script, env, tmp_path_factory.mktemp(framework)) as server:
        yield Served(framework, official, server, sink)


def _frames(event: dict[str, object]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = json.loads(str(event["faultspan.frames"]))
    return frames


def _crumbs(span: ReceivedSpan) -> list[dict[str, object]]:
    return [event.attributes for event in span.events_named("breadcrumb")]


def test_failing_request_is_one_enriched_exception_with_its_context_and_trail(served: Served) -> None:
    marker = f"{served.service}-{uuid.uuid4().hex[:8]}"
    assert served.order(7, marker) == 500
    span = served.wait_for_request(marker)

    assert span.name == f"GET {served.example.route}"
    if served.official:
        assert span.scope_name == f"opentelemetry.instrumentation.{served.framework}"
    else:
        assert span.scope_name == served.example.own_scope
    assert span.status_code == STATUS_ERROR
    attributes = span.attributes
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == served.example.route
    if not served.official:  # the official ones choose their URL attributes (Django's has no url.path)
        assert attributes["url.path"] == "/orders/7"
        assert attributes["url.query"] == f"marker={marker}&api_key=[REDACTED]"
    assert attributes.get("user.id") == served.example.user
    assert attributes["http.response.status_code"] == 500
    if served.framework != "fastapi" or served.official:  # FastAPI's native telemetry: no client, no headers
        assert attributes["client.address"] == "127.0.0.1"
        assert attributes["http.request.header.x_request_id"] == [marker]
        for credential in ("authorization", "cookie"):
            assert "[REDACTED]" in str(attributes[f"http.request.header.{credential}"]), credential

    (event,) = span.events_named("exception")
    assert str(event.attributes["exception.type"]).endswith("PaymentDeclined")
    frames = _frames(event.attributes)
    (view,) = [frame for frame in frames if frame["function"] == "order"]
    assert view["in_app"] is True
    assert view["locals"]["marker"] == repr(marker)
    (charge,) = [frame for frame in frames if frame["function"] == "charge"]
    assert charge["locals"]["card_number"].strip("'") == "[REDACTED]"
    in_trace = [s for s in served.sink.spans() if s.trace_id == span.trace_id]
    assert sum(len(s.events_named("exception")) for s in in_trace) == 1

    crumbs = _crumbs(span)
    messages = [str(crumb["breadcrumb.message"]) for crumb in crumbs]
    explicit = messages.index("charging order 7")
    assert crumbs[explicit]["breadcrumb.data.marker"] == marker
    # The log line (faultspan_logging) and the outgoing call (faultspan_outgoing), in the order they happened.
    logged = messages.index(f"loading order 7 for request {marker}")
    (outgoing,) = [i for i, crumb in enumerate(crumbs) if crumb["breadcrumb.category"] == "http"]
    assert f"/health?marker={marker}" in messages[outgoing]
    assert logged < explicit < outgoing

    received = served.sink.raw_bytes()
    for secret in SECRETS:
        assert secret.encode() not in received, secret


def test_handled_404_is_no_failure(served: Served) -> None:
    marker = f"{served.service}-{uuid.uuid4().hex[:8]}"
    assert served.order(0, marker) == 404
    spans = served.sink.wait_for(lambda spans: bool(served.request_spans(spans, marker)), timeout=30)
    (span,) = served.request_spans(spans, marker)
    assert span.attributes["http.response.status_code"] == 404
    if served.framework == "django" and served.official:
        # The official middleware records an Http404 a view raises (and marks the span failed):
        # faultspan leaves that as it is.
        assert [event.attributes["exception.type"] for event in span.events_named("exception")] == [
            "django.http.response.Http404"
        ]
        return
    assert span.events_named("exception") == []
    assert span.status_code != STATUS_ERROR


def test_concurrent_failures_never_mix(served: Served) -> None:
    markers = [f"{served.service}-{uuid.uuid4().hex[:6]}-c{index:02d}z" for index in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        assert list(pool.map(lambda marker: served.order(7, marker), markers)) == [500] * 50
    spans = served.sink.wait_for(
        lambda spans: all(served.request_spans(spans, marker) for marker in markers), timeout=60
    )
    for marker in markers:
        (span,) = served.request_spans(spans, marker)
        (event,) = span.events_named("exception")
        (view,) = [frame for frame in _frames(event.attributes) if frame["function"] == "order"]
        assert view["locals"]["marker"] == repr(marker)
        crumbs = _crumbs(span)
        assert [crumb["breadcrumb.data.marker"] for crumb in crumbs if "breadcrumb.data.marker" in crumb] == [
            marker
        ]
        trail = " ".join(str(crumb["breadcrumb.message"]) for crumb in crumbs)
        assert f"for request {marker}" in trail
        assert f"/health?marker={marker}" in trail
        everything = repr((span.attributes, [(e.name, e.attributes) for e in span.events]))
        assert [other for other in markers if other in everything] == [marker]


# ---- in process: the instrumentors on their own -------------------------------------------------------


def _patched_attributes() -> dict[tuple[type, str], object]:
    import flask.app
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.wsgi import WSGIHandler
    from fastapi.applications import FastAPI
    from starlette.applications import Starlette

    names = [
        (flask.app.Flask, "__call__"),
        (flask.app.Flask, "handle_user_exception"),
        (BaseHandler, "load_middleware"),
        (WSGIHandler, "__call__"),
        (Starlette, "__call__"),
        (Starlette, "build_middleware_stack"),
        (FastAPI, "build_middleware_stack"),
    ]
    return {(owner, name): vars(owner)[name] for owner, name in names}


def _instrumentors() -> list[Any]:
    from faultspan_instrumentation.django import DjangoInstrumentor
    from faultspan_instrumentation.fastapi import FastAPIInstrumentor
    from faultspan_instrumentation.flask import FlaskInstrumentor

    return [FlaskInstrumentor(), DjangoInstrumentor(), FastAPIInstrumentor()]


@pytest.fixture
def instrumented() -> Iterator[None]:
    for instrumentor in _instrumentors():
        instrumentor.instrument()
    try:
        yield
    finally:
        for instrumentor in _instrumentors():
            instrumentor.uninstrument()


def test_instrumentors_are_idempotent_and_reversible() -> None:
    import flask
    from django.core.signals import got_request_exception

    before = _patched_attributes()
    receivers = (len(flask.request_finished.receivers), len(got_request_exception.receivers))
    for instrumentor in _instrumentors():
        instrumentor.instrument()
    patched = _patched_attributes()
    assert all(patched[key] is not before[key] for key in before)
    for instrumentor in _instrumentors():
        instrumentor.instrument()  # a second call changes nothing
    assert _patched_attributes() == patched
    for instrumentor in _instrumentors():
        instrumentor.uninstrument()
    assert all(value is before[key] for key, value in _patched_attributes().items())
    assert (len(flask.request_finished.receivers), len(got_request_exception.receivers)) == receivers


PROBE = """
import flask.app, django.core.handlers.wsgi as wsgi, starlette.applications as starlette
print(*(vars(cls)["__call__"].__module__ for cls in (flask.app.Flask, wsgi.WSGIHandler, starlette.Starlette)))
"""


OURS = "faultspan_instrumentation"


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        ("", [f"{OURS}._http", f"{OURS}._http", f"{OURS}.fastapi"]),
        (
            "faultspan_flask,faultspan_django,faultspan_fastapi",
            ["flask.app", "django.core.handlers.wsgi", "starlette.applications"],
        ),
    ],
    ids=["enabled", "disabled"],
)
def test_standard_variable_disables_them(
    disabled: str, expected: list[str], otel_env: dict[str, str], tmp_path: Path
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = run_instrumented(
        probe, env=otel_env, OTEL_TRACES_EXPORTER="none", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled
    )
    assert result.stdout.split() == expected


@pytest.fixture
def settings() -> Iterator[Callable[..., object]]:
    """``settings(**options)`` replaces the process's faultspan settings until the test ends."""

    def apply(**options: object) -> object:
        return runtime.load(options=options)

    try:
        yield apply
    finally:
        runtime.load()


def test_failure_statuses_decide_without_an_exception(
    pipeline: Any, instrumented: None, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import flask.app

    app = flask.app.Flask("statuses")
    app.add_url_rule("/down", "down", lambda: ("down", 503))
    app.add_url_rule("/teapot", "teapot", lambda: ("teapot", 418))
    client = app.test_client()
    assert client.get("/down").status_code == 503
    assert client.get("/teapot").status_code == 418
    down, teapot = pipeline.spans()
    assert (down.name, down.kind.name, down.status.status_code.name) == ("GET /down", "SERVER", "ERROR")
    assert down.attributes["http.status_code"] == 503  # default (old) HTTP conventions: no error.type
    assert "error.type" not in down.attributes
    assert not down.events
    assert teapot.status.status_code.name == "UNSET"

    settings(http_failure_statuses=("418", "5xx", "500-599"))  # one bad entry: the default applies
    assert "configure(http_failure_statuses=...): '5xx' is not a status code" in caplog.text
    assert client.get("/teapot").status_code == 418
    (teapot,) = pipeline.spans()
    assert teapot.status.status_code.name == "UNSET"

    settings(http_failure_statuses=("418", "500-599"))
    assert client.get("/teapot").status_code == 418
    (teapot,) = pipeline.spans()
    assert teapot.status.status_code.name == "ERROR"


def test_body_is_captured_only_when_opted_in_capped_and_masked(
    pipeline: Any, instrumented: None, settings: Any
) -> None:
    import flask.app

    def fail() -> str:
        raise RuntimeError("rejected")

    app = flask.app.Flask("bodies")
    app.add_url_rule("/submit", "submit", fail, methods=["POST"])
    body = json.dumps({"password": "hunter2-demo", "note": "x" * 100})
    assert app.test_client().post("/submit", data=body).status_code == 500
    (span,) = pipeline.spans()
    assert "http.request.body" not in span.attributes
    assert len(span.events) == 1

    settings(http_capture_body=True, http_max_body_bytes=60)
    assert app.test_client().post("/submit", data=body).status_code == 500
    (span,) = pipeline.spans()
    captured = str(span.attributes["http.request.body"])
    assert captured.startswith('{"password": "[REDACTED]", "note": "xxx')
    assert captured.endswith("...")
    assert "hunter2" not in captured


def test_starlette_user_and_own_span(pipeline: Any, instrumented: None) -> None:
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    class Backend(AuthenticationBackend):
        async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
            return AuthCredentials(["authenticated"]), SimpleUser("alice")

    async def account(request: Request) -> PlainTextResponse:
        raise LookupError(f"no account for {request.user.display_name}")

    app = Starlette(
        routes=[Route("/accounts/{name}", account)],
        middleware=[Middleware(AuthenticationMiddleware, backend=Backend())],
    )

    async def call() -> list[int]:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return [(await client.get(path)).status_code for path in ("/accounts/alice", "/nowhere")]

    assert asyncio.run(call()) == [500, 404]
    failed, missing = pipeline.spans()
    assert (failed.name, failed.kind.name) == ("GET /accounts/{name}", "SERVER")
    assert failed.attributes["user.id"] == "alice"
    assert failed.attributes["http.status_code"] == 500  # the default (old) HTTP conventions
    assert [event.name for event in failed.events] == ["exception"]
    assert (missing.name, missing.attributes["http.status_code"], missing.events) == ("GET", 404, ())
