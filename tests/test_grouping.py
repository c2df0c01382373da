"""Grouping by root cause: the corpus scores, one key per exception object, the text path equal to the live
path (in process, and in real subprocesses under opentelemetry-instrument with a real collector)."""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import socket
import ssl
import sys
import traceback
import types
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

import grouping_corpus as corpus
from faultspan._capture import exceptions
from faultspan._capture import fingerprint as fp
from faultspan._capture.config import Settings
from faultspan._pipeline.distro import install
from faultspan.cli import main
from faultspan.packages import atomic
from faultspan.packages import format as fspkg
from faultspan.packages.exporter import describe_failure
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import run_instrumented

SETTINGS = Settings()
APP = Path(__file__).parent / "apps" / "grouping_app.py"
UNRELATED = "faultspan_flask,faultspan_django,faultspan_fastapi,flask,django,fastapi"
# A status the exception carries only as an attribute (UpstreamError.status_code) is not in its text.
ATTRIBUTE_ONLY = {"card-502", "card-504"}


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> list[corpus.Failure]:
    """Both releases of the service: the same bugs at moved lines, from another directory."""
    release = corpus.next_release(tmp_path_factory.mktemp("release-2") / "srv" / "app")
    return corpus.failures() + release.failures()


def live(failure: corpus.Failure) -> exceptions.Capture:
    return exceptions.capture(failure.exc, SETTINGS)


def text(exc: BaseException) -> fp.Fingerprints:
    """What the processor computes for an event the SDK recorded: type, str() and the formatted traceback."""
    stacktrace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return fp.text_fingerprints(exceptions.type_name(exc), str(exc), stacktrace)[0]


def test_the_corpus_is_big_enough(failures: list[corpus.Failure]) -> None:
    assert len(failures) >= 120
    first, second = (
        next(failure for failure in half if failure.bug == "card-502")
        for half in (failures[: len(failures) // 2], failures[len(failures) // 2 :])
    )
    assert (
        traceback.extract_tb(first.exc.__traceback__)[-1].lineno
        != traceback.extract_tb(second.exc.__traceback__)[-1].lineno
    ), "the second release moved the lines"
    assert len({failure.bug for failure in failures}) >= 20
    for bug in corpus.BUGS:
        reached = [failure for failure in failures if failure.bug == bug]
        assert {failure.caller for failure in reached} == set(corpus.CALLERS), bug
        assert len(set(map(repr, corpus.BUGS[bug][1]))) > 1 or bug in (
            "setting-database-url",
            "setting-redis-url",
            "label-no-customer",
        ), f"{bug}: its data does not vary"


def test_root_cause_precision_and_recall(failures: list[corpus.Failure]) -> None:
    bugs = [failure.bug for failure in failures]
    scores = corpus.pair_scores(bugs, [live(failure).fingerprint for failure in failures])
    assert scores.precision >= 0.98, scores
    assert scores.recall >= 0.95, scores


def test_look_alikes_stay_apart(failures: list[corpus.Failure]) -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    for failure in failures:
        keys[failure.bug].add(live(failure).fingerprint)
    for first, second in corpus.LOOK_ALIKES:
        assert not keys[first] & keys[second], (first, second)


def test_the_path_key_splits_by_caller_only(failures: list[corpus.Failure]) -> None:
    by_bug_and_caller: dict[tuple[str, str], set[str]] = defaultdict(set)
    for failure in failures:
        by_bug_and_caller[failure.bug, failure.caller].add(live(failure).path)
    assert all(len(paths) == 1 for paths in by_bug_and_caller.values())
    for bug in corpus.BUGS:
        assert len({next(iter(by_bug_and_caller[bug, caller])) for caller in corpus.CALLERS}) == 3, bug


def test_the_text_path_gives_the_live_keys(failures: list[corpus.Failure]) -> None:
    for failure in failures:
        captured = live(failure)
        from_text = text(failure.exc)
        if failure.bug in ATTRIBUTE_ONLY:
            assert from_text.root != captured.fingerprint
            continue
        assert (from_text.root, from_text.path) == (captured.fingerprint, captured.path), failure


def inner() -> None:
    raise LookupError("part PN-0042-C not found")


def recorded_on_the_way(captures: list[exceptions.Capture]) -> None:
    try:
        inner()
    except LookupError as exc:
        captures.append(exceptions.capture(exc, SETTINGS))
        raise


def test_one_exception_object_keeps_its_keys_wherever_it_is_recorded() -> None:
    captures: list[exceptions.Capture] = []
    try:
        recorded_on_the_way(captures)
    except LookupError as exc:
        captures.append(exceptions.capture(exc, SETTINGS))
        vars(exc).pop(exceptions._GROUPING_MARK)
        fresh = exceptions.capture(exc, SETTINGS)
    first, again = captures
    short, long = (json.loads(c.attributes[exceptions.FRAMES]) for c in captures)
    assert len(long) == len(short) + 1, "the second recording sees a longer traceback"
    assert fresh.path != first.path, "computed afresh, the longer traceback has another path key"
    assert fresh.fingerprint == first.fingerprint, "the root cause does not depend on the traceback's length"
    assert (again.fingerprint, again.path) == (first.fingerprint, first.path)


def test_grouping_info_names_the_parts() -> None:
    try:
        corpus.api_handler(corpus.fetch_stock, "PN-0042-C", 502)
    except Exception as exc:
        captured = exceptions.capture(exc, SETTINGS)
    info = json.loads(captured.attributes[exceptions.GROUPING])
    assert info["version"] == "fs2"
    assert info["type"] == "requests.exceptions.HTTPError"
    assert info["template"] == (
        "502 Server Error: Bad Gateway for url: https://inventory.example.com/v<n>/items/<n>"
    )
    assert info["crash_site"] == ["grouping_corpus", "fetch_stock", "response.raise_for_status()"]
    assert [frame[1] for frame in info["path"]] == [
        "test_grouping_info_names_the_parts",
        "api_handler",
        "_api_dispatch",
        "fetch_stock",
    ]
    assert "PN-0042-C" not in info["template"]


def test_grouping_info_is_bounded() -> None:
    info = {"version": "fs2", "type": "E", "template": "t", "path": [["m", "f", "x" * 500]] * 12}
    assert json.loads(exceptions.fit_grouping(info, 200)) == {"version": "fs2", "type": "E", "template": "t"}
    assert exceptions.fit_grouping(info, 10) == "{}"


def exception_events(spans: list[ReceivedSpan]) -> list[tuple[str, dict[str, object]]]:
    return [(span.name, event.attributes) for span in spans for event in span.events_named("exception")]


def recorded(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path, disabled: str
) -> list[tuple[str, dict[str, object]]]:
    def all_failed(spans: list[ReceivedSpan]) -> bool:
        return len(exception_events(spans)) == 6

    run_instrumented(
        APP,
        env=otel_env,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        **collector.exporter_env("grpc"),
    )
    return exception_events(otlp_sink.wait_for(all_failed))


def test_nested_spans_and_the_text_path_agree_under_opentelemetry_instrument(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    live_events = recorded(collector, otlp_sink, otel_env, tmp_path / "live", UNRELATED)
    assert all("faultspan.frames" in attributes for _, attributes in live_events)
    otlp_sink.clear()
    text_events = recorded(
        collector, otlp_sink, otel_env, tmp_path / "text", f"{UNRELATED},faultspan_exceptions"
    )
    assert not any("faultspan.frames" in attributes for _, attributes in text_events), "the SDK's own events"

    def keys(events: list[tuple[str, dict[str, object]]], name: str) -> dict[str, set[object]]:
        by_span: dict[str, set[object]] = defaultdict(set)
        for span, attributes in events:
            by_span[span].add(attributes[name])
        return by_span

    live_roots = keys(live_events, "faultspan.fingerprint")
    # Both declined cards (two entry points, two orders) are one bug; the missing part is another.
    card = live_roots["request checkout"] | live_roots["request renew_subscription"]
    assert len(card) == 1
    assert live_roots["request restock"].isdisjoint(card)
    assert live_roots["charge"] == card | live_roots["request restock"], "the inner span gets the same keys"
    live_paths = keys(live_events, "faultspan.fingerprint.path")
    assert live_paths["request checkout"].isdisjoint(live_paths["request renew_subscription"])
    assert live_paths["charge"] == set().union(
        *(live_paths[f"request {entry}"] for entry in ("checkout", "renew_subscription", "restock"))
    )
    assert keys(text_events, "faultspan.fingerprint") == live_roots, "the text path gives the live keys"
    for _, attributes in text_events:
        info = json.loads(str(attributes["faultspan.grouping"]))
        assert info["crash_site"][1] in ("charge", "reserve")


# --- the CLI: show explains the key, groups by either key ---------------------------------------------


class CardDeclined(Exception):
    pass


def charge(order_id: int) -> None:
    raise CardDeclined(f"card declined for order {order_id}")


def checkout(tracer: Tracer, order_id: int) -> None:
    with tracer.start_as_current_span("checkout"):
        charge(order_id)


def renew(tracer: Tracer, order_id: int) -> None:
    with tracer.start_as_current_span("renew"):
        charge(order_id)


def restock(tracer: Tracer, order_id: int) -> None:
    with tracer.start_as_current_span("restock"):
        raise LookupError(f"part PN-{order_id}-C not found")


def test_show_explains_the_key_and_groups_use_either_key(
    pipeline: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    install(provider).add_downstream(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    packages = []
    for age, (entry, order_id) in enumerate(((checkout, 8812), (renew, 17), (checkout, 5), (restock, 42))):
        with contextlib.suppress(Exception):
            entry(tracer, order_id)
        provider.force_flush()
        (span,) = exporter.get_finished_spans()
        exporter.clear()
        failure = describe_failure(span)
        created = datetime(2026, 12, 1, tzinfo=timezone.utc) - timedelta(minutes=age)
        data = fspkg.build(failure, [span], created)
        packages.append(atomic.write_atomic(tmp_path, fspkg.file_name(failure, created), data))
    provider.shutdown()

    def cli(*argv: str) -> str:
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    by_fingerprint = json.loads(cli("groups", "--json", str(tmp_path)))
    assert sorted(row["count"] for row in by_fingerprint) == [1, 3], "both entry points: one bug"
    by_path = json.loads(cli("groups", "--by", "path", "--json", str(tmp_path)))
    assert sorted(row["count"] for row in by_path) == [1, 1, 2]
    assert {row["fingerprint"] for row in by_path} == {row["fingerprint"] for row in by_fingerprint}
    assert "PATH" in cli("groups", "--by", "path", str(tmp_path)).splitlines()[0]
    shown = cli("show", str(packages[0]))
    grouping = shown[shown.index("\nGrouping\n") : shown.index("\nException\n")]
    assert "type      test_grouping.CardDeclined" in grouping
    assert "template  card declined for order <n>" in grouping
    assert "crash at  test_grouping : charge : raise CardDeclined(" in grouping
    assert "8812" not in grouping
    document = json.loads(cli("show", "--json", str(packages[3])))
    assert document["exception"]["grouping"]["template"] == "part <n> not found"


def raised_by(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


class WordedOSError(OSError):
    def __str__(self) -> str:
        return f"[Errno {self.errno}] worded its own way: {self.filename!r}, really"


@pytest.mark.parametrize(
    "exc",
    [
        raised_by(lambda: Path("/nonexistent/dir/inv 17.pdf").read_bytes()),
        raised_by(lambda: Path("/").read_text()),
        raised_by(lambda: b"\xff".decode("utf-8")),
        raised_by(lambda: "é".encode("ascii")),
        raised_by(lambda: json.loads('{"a": 1')),
        socket.gaierror(-2, "Name or service not known"),
        ssl.SSLCertVerificationError(
            1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)"
        ),
        WordedOSError(13, "Permission denied", "/srv/x"),
        OSError(5, "Input/output error: device gone"),
    ],
    ids=repr,
)
def test_templates_from_attributes_equal_the_templates_from_text(exc: BaseException) -> None:
    message = str(exc)
    from_text = fp.normalize_message(exceptions.type_name(exc), message)
    assert (fp.exception_template(exc, message) or from_text) == from_text


FLASK_APP = Path(__file__).parent / "apps" / "grouping_flask_app.py"
NOT_FLASK = "faultspan_django,faultspan_fastapi,django,fastapi"


def test_a_flask_view_and_its_inner_span_agree_live_and_from_text(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    """Two requests fail in the same view; the view's inner span and the server span record the exception.
    Most events are fingerprinted at exit, after the script's ``__main__`` has lost its ``__file__``."""

    def keys(disabled: str) -> tuple[set[object], set[object], set[str]]:
        otlp_sink.clear()
        run_instrumented(
            FLASK_APP,
            env=otel_env,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path / disabled),
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
            **collector.exporter_env("grpc"),
        )
        spans = otlp_sink.wait_for(
            lambda spans: (
                {name for name, _ in exception_events(spans)} >= {"charge", "GET /orders/<int:order_id>/pay"}
                and len([name for name, _ in exception_events(spans) if name == "charge"]) == 2
            )
        )
        events = exception_events(spans)
        return (
            {attributes["faultspan.fingerprint"] for _, attributes in events},
            {attributes["faultspan.fingerprint.path"] for _, attributes in events},
            {name for name, _ in events},
        )

    live_roots, live_paths, live_spans = keys(NOT_FLASK)
    assert live_spans == {"charge", "GET /orders/<int:order_id>/pay"}
    assert len(live_roots) == 1 and len(live_paths) == 1, "one bug, one call path, on both spans"
    text_roots, _, _ = keys(f"{NOT_FLASK},faultspan_exceptions")
    assert text_roots == live_roots


def test_a_script_that_returned_is_still_found_by_its_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython deletes ``__main__.__file__`` when the script returns; the exit flush still needs the name."""
    script = tmp_path / "job.py"
    returned = types.ModuleType("__main__")
    returned.__loader__ = importlib.machinery.SourceFileLoader("__main__", str(script))
    monkeypatch.setitem(sys.modules, "grouping_test_returned_main", returned)
    assert "__file__" not in vars(returned)
    assert fp.loaded_module(str(script)) == "__main__"
    lazy = types.ModuleType("grouping_test_lazy")
    lazy.__getattr__ = lambda name: 1 / 0  # type: ignore[attr-defined]  # a module __getattr__ that fails
    monkeypatch.setitem(sys.modules, "grouping_test_lazy", lazy)
    assert fp.loaded_module(str(tmp_path / "elsewhere.py")) is None
