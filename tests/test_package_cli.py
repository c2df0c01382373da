"""The replay-package verbs on real packages: show, list, groups, compare (and their errors and output)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

import faultspan
from faultspan._capture import runtime
from faultspan._pipeline.distro import install
from faultspan.cli import main
from faultspan.packages import atomic, runtime_facts
from faultspan.packages import format as fspkg
from faultspan.packages.compare import _frame_diff, _locals_diff
from faultspan.packages.exporter import describe_failure
from support.instrumented import run_instrumented

FAULTSPAN = Path(sys.executable).parent / "faultspan"
NOW = datetime.now(timezone.utc)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- the failures, captured for real -------------------------------------------------------------------------


class PaymentDeclined(Exception):
    pass


def charge(card_number: str, amount_cents: int) -> None:
    attempt = {"card": card_number, "amount": amount_cents}
    faultspan.breadcrumb("payment", "charging card", amount=attempt["amount"])
    try:
        raise ConnectionError("gateway timed out after 3.2s")
    except ConnectionError as exc:
        declined = PaymentDeclined(f"card {card_number} declined for order total {amount_cents}")
        declined.__notes__ = ["retry budget exhausted"]
        raise declined from exc


def checkout(tracer: Tracer, amount_cents: int) -> None:
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
        faultspan.breadcrumb("http", "POST /checkout received")
        with tracer.start_as_current_span("checkout"):
            charge("4111 1111 1111 1111", amount_cents)


def reserve(tracer: Tracer, sku: str) -> None:
    stock: dict[str, int] = {}
    with tracer.start_as_current_span("GET /stock", kind=SpanKind.SERVER):
        stock[sku] -= 1


class Service:
    """A TracerProvider of its own (another ``service.name``) behind faultspan's processor."""

    def __init__(self, name: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        install(self.provider).add_downstream(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        """Everything exported since the last call."""
        self.provider.force_flush()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


def shifted(span: ReadableSpan, nanoseconds: int) -> ReadableSpan:
    """The same span, every time moved by ``nanoseconds``: a failure that happened at another time."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=[Event(event.name, event.attributes, event.timestamp + nanoseconds) for event in span.events],
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=(span.start_time or 0) + nanoseconds,
        end_time=(span.end_time or 0) + nanoseconds,
        instrumentation_scope=span.instrumentation_scope,
    )


def write_package(
    directory: Path,
    spans: Sequence[ReadableSpan],
    failing: str,
    failed: datetime,
    facts: dict[str, Any],
    *,
    written_after: timedelta = timedelta(0),
) -> Path:
    """The failure as if it had happened at ``failed`` (its exception event), written ``written_after``."""
    recorded = next(span for span in spans if span.name == failing).events[-1].timestamp
    delta = int(failed.timestamp() * 1e9) - recorded
    moved = [shifted(span, delta) for span in spans]
    failure = describe_failure(next(span for span in moved if span.name == failing))
    created = failed + written_after
    data = fspkg.build(failure, moved, created, runtime=fspkg.dump(facts))
    return atomic.write_atomic(directory, fspkg.file_name(failure, created), data)


@dataclass(frozen=True)
class Corpus:
    """``old`` and ``recent``: the same failure with other numbers; ``other``: another failure and service."""

    directory: Path
    old: Path
    recent: Path
    other: Path

    def names(self, *paths: Path) -> list[str]:
        return [path.name for path in paths]


_corpus: Corpus | None = None


@pytest.fixture
def corpus(pipeline: Any, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Built once per test process. ``pipeline`` installs faultspan's ``record_exception``."""
    global _corpus  # noqa: PLW0603 -- real captures are slow enough to share
    if _corpus is None:
        directory = tmp_path_factory.mktemp("corpus")
        facts = runtime_facts.runtime_facts(
            argv=False, environment=False, redactor=runtime.current().redactor
        )
        shop = Service("shop")
        packages = []
        for amount, age in ((4200, timedelta(days=3)), (4300, timedelta(hours=2))):
            with pytest.raises(PaymentDeclined):
                checkout(shop.tracer, amount)
            packages.append(write_package(directory, shop.spans(), "checkout", NOW - age, facts))
        old, recent = packages
        last = fspkg.rfc3339(NOW - timedelta(minutes=5))
        atomic.write_atomic(
            directory,
            recent.name,
            fspkg.rewritten(recent, {"occurrences": 5, "last_occurrence": last}),
            replace=True,
        )
        billing = Service("billing")
        with pytest.raises(KeyError):
            reserve(billing.tracer, "sku-1")
        # "other" comes from another host: another Python, pytest missing, protobuf older, leftpad new
        distributions = {**facts["distributions"], "protobuf": "0.0.1", "leftpad": "1.0"}
        del distributions["pytest"]
        elsewhere = {
            **facts,
            "python": {**facts["python"], "version": "3.99.0"},
            "distributions": distributions,
        }
        other = write_package(
            directory, billing.spans(), "GET /stock", NOW - timedelta(minutes=10), elsewhere
        )
        for service in (shop, billing):
            service.provider.shutdown()
        _corpus = Corpus(directory, old, recent, other)
    return _corpus


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    output = capsys.readouterr()
    return status, output.out, output.err


@pytest.fixture(autouse=True)
def without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


# -- show ----------------------------------------------------------------------------------------------------


def test_show_prints_chain_source_locals_breadcrumbs_spans_and_runtime(
    corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "show", str(corpus.old))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{__name__}.PaymentDeclined: card [REDACTED] declined for order total 4200"
    assert lines[1].startswith(f"service shop  failed {fspkg.rfc3339(NOW - timedelta(days=3))}")
    assert lines[1].endswith("  span checkout")
    assert re.fullmatch(r"fingerprint [0-9a-f]{32}  trace [0-9a-f]{32}", lines[2])
    assert lines[3].startswith(f"python {sys.version.split()[0]} CPython  ")
    assert lines[4] == f"entry point {sys.argv[0]}"
    assert "seen " not in out
    exception = out[out.index("\nException\n") : out.index("\nBreadcrumbs\n")]
    assert "  note: retry budget exhausted" in exception
    assert "in charge\n" in exception
    assert re.search(r"\n\s+> *\d+ \|\s+raise declined from exc\n", exception)
    assert re.search(r"\n\s+\d+ \|\s+except ConnectionError as exc:\n", exception)
    assert "amount_cents = 4200" in exception
    assert "card_number = [REDACTED]" in exception
    assert "4111" not in out
    cause = exception[exception.index("caused by:") :]
    assert "ConnectionError: gateway timed out after 3.2s" in cause
    crumbs = out[out.index("\nBreadcrumbs\n") : out.index("\nSpans\n")].splitlines()[2:]
    assert "http: POST /checkout received" in crumbs[0]
    assert "payment: charging card  amount=4200" in crumbs[1]
    spans = out[out.index("\nSpans\n") :].splitlines()[2:]
    assert re.fullmatch(r"  POST /checkout  [\d.]+ ms  \+0\.000 ms  ERROR", spans[0])
    assert re.fullmatch(r"    checkout  [\d.]+ ms  \+[\d.]+ ms  ERROR  <- failure", spans[1])


def test_show_counts_later_occurrences(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "show", str(corpus.recent))
    assert status == 0
    last = fspkg.rfc3339(NOW - timedelta(minutes=5))
    assert f"seen 5 times, the last at {last}" in out.splitlines()[:7]


def test_show_json_has_the_same_content(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "show", "--json", str(corpus.recent))
    assert status == 0
    view = json.loads(out)
    assert (view["occurrences"], view["truncated"]) == (5, False)
    assert view["last_occurrence"] == fspkg.rfc3339(NOW - timedelta(minutes=5))
    exception = view["exception"]
    assert exception["span"] == "checkout"
    assert exception["chain"]["notes"] == ["retry budget exhausted"]
    assert exception["chain"]["cause"]["type"] == "ConnectionError"
    frame = next(frame for frame in exception["frames"] if frame["function"] == "charge")
    assert frame["locals"]["amount_cents"] == "4300"
    assert frame["pre_context"] and frame["post_context"]
    assert [crumb["message"] for crumb in view["breadcrumbs"]] == ["POST /checkout received", "charging card"]
    root, child = view["spans"]
    assert (root["name"], root["depth"], root["offset_ms"], root["failing"]) == (
        "POST /checkout",
        0,
        0,
        False,
    )
    assert (child["parent_span_id"], child["failing"], child["status"]) == (root["span_id"], True, 2)
    assert root["kind"] == 2  # OTLP SPAN_KIND_SERVER
    assert view["runtime"]["python"]["version"] == sys.version.split()[0]


def import_rows(tracer: Tracer) -> None:
    with tracer.start_as_current_span("import"):
        try:
            {}["header"]
        except KeyError:
            failures = [ValueError("row 3: bad date"), TypeError("row 7: no price")]
            raise ExceptionGroup("2 rows failed", failures)  # noqa: B904, F821 -- implicit context; 3.11+


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in Python 3.11")
def test_show_exception_groups_context_and_truncation(
    pipeline: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = Service("batch")
    with pytest.raises(Exception, match="2 rows failed"):
        import_rows(batch.tracer)
    package = write_package(tmp_path, batch.spans(), "import", NOW, {})
    batch.provider.shutdown()
    atomic.write_atomic(tmp_path, package.name, fspkg.rewritten(package, {"truncated": True}), replace=True)
    status, out, _ = run(capsys, "show", str(package))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "ExceptionGroup: 2 rows failed (2 sub-exceptions)"
    assert "truncated: parts of this failure were left out to respect the package size cap" in lines[:5]
    exception = out[out.index("\nException\n") : out.index("\nBreadcrumbs\n")]
    assert (
        "\n    group member 1:\n      ValueError: row 3: bad date\n"
        "    group member 2:\n      TypeError: row 7: no price\n"
        "  while handling:\n    KeyError: 'header'\n"
    ) in exception


# -- list ----------------------------------------------------------------------------------------------------


def test_list_is_a_table_sorted_by_time(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "list", str(corpus.directory))
    assert (status, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["TIME", "SERVICE", "EXCEPTION", "MESSAGE", "FINGERPRINT", "FILE"]
    assert [row.split()[-1] for row in rows] == corpus.names(corpus.old, corpus.recent, corpus.other)
    assert rows[0].startswith((NOW - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S"))
    assert re.split(r"\s{2,}", rows[2])[1:4] == ["billing", "KeyError", "'sku-1'"]
    assert "declined for order total 4300" in rows[1]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--service", "billing"], ["other"]),
        (["--service", "nope"], []),
        (["--since", "1h"], ["recent", "other"]),  # recent was created 2h ago, seen again 5 min ago
        # Absolute: NOW is fixed when this module is imported, and the suite may run minutes before this test.
        (["--since", (NOW - timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")], ["recent"]),
        (["--until", "1d"], ["old"]),
        (["--since", "4d", "--until", "30m"], ["old", "recent"]),
        (["--since", (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")], ["recent", "other"]),
        (["--until", (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00")], ["old"]),
        (["--until", (NOW - timedelta(days=2)).strftime("%Y-%m-%d")], ["old"]),
        (["--since", (NOW - timedelta(days=1)).strftime("%Y-%m-%d")], ["recent", "other"]),
    ],
)
def test_list_filters(
    options: list[str], expected: list[str], corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "list", str(corpus.directory), *options, "--json")
    assert status == 0
    assert [Path(row["file"]).name for row in json.loads(out)] == [
        getattr(corpus, name).name for name in expected
    ]


def test_list_filters_by_fingerprint_prefix(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = fspkg.read_package(corpus.old).manifest["fingerprint"][:6]
    status, out, _ = run(capsys, "list", str(corpus.directory), "--fingerprint", prefix.upper())
    assert status == 0
    assert [row.split()[-1] for row in out.splitlines()[1:]] == corpus.names(corpus.old, corpus.recent)


def test_list_json(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", "--json", str(corpus.directory))
    assert status == 0
    rows = json.loads(out)
    manifest = fspkg.read_package(corpus.recent).manifest
    assert rows[1] == {
        "failure_time": fspkg.rfc3339(NOW - timedelta(hours=2)),
        "created": manifest["created"],
        "service": "shop",
        "exception": manifest["exception"],
        "fingerprint": manifest["fingerprint"],
        "trace_id": manifest["trace_id"],
        "occurrences": 5,
        "last_seen": fspkg.rfc3339(NOW - timedelta(minutes=5)),
        "replay": False,
        "file": str(corpus.recent),
    }


def test_list_uses_the_configured_directory(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR", str(corpus.directory))
    status, out, _ = run(capsys, "list")
    assert status == 0
    assert corpus.other.name in out


@pytest.mark.parametrize("verb", ["list", "groups"])
@pytest.mark.parametrize("value", ["yesterday", "30", "2x", "2026-13-01", ""])
def test_a_bad_time_is_a_one_line_usage_error(
    verb: str, value: str, corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, verb, str(corpus.directory), "--since", value)
    assert (status, out) == (2, "")
    assert err == (
        f"faultspan {verb}: --since: {value!r} is neither ISO 8601 nor a relative time like 30m, 2h, 7d\n"
    )


# -- groups --------------------------------------------------------------------------------------------------


def test_groups_count_occurrences_newest_first(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "groups", "--json", str(corpus.directory))
    assert status == 0
    checkout_group, billing_group = json.loads(out)
    old, recent = (fspkg.read_package(path).manifest for path in (corpus.old, corpus.recent))
    assert checkout_group == {
        "fingerprint": old["fingerprint"],
        "count": 6,
        "replays": 0,
        "packages": 2,
        "first_seen": old["created"],
        "last_seen": fspkg.rfc3339(NOW - timedelta(minutes=5)),
        "services": ["shop"],
        "exception": recent["exception"],
        "example": str(corpus.recent),
    }
    assert recent["fingerprint"] == old["fingerprint"]
    assert (billing_group["count"], billing_group["services"]) == (1, ["billing"])
    assert billing_group["exception"]["type"] == "KeyError"

    status, out, _ = run(capsys, "groups", str(corpus.directory))
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["COUNT", "FIRST", "SEEN", "LAST"]
    assert rows[0].startswith("6 ")
    assert rows[0].endswith(corpus.recent.name)
    assert "declined for order total 4300" in rows[0]
    assert rows[1].startswith("1 ") and "billing" in rows[1]


def test_groups_filters(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "groups", "--json", str(corpus.directory), "--until", "1d")
    assert status == 0
    (group,) = json.loads(out)
    assert (group["count"], group["example"]) == (1, str(corpus.old))
    status, out, _ = run(capsys, "groups", "--json", str(corpus.directory), "--service", "billing")
    assert [group["services"] for group in json.loads(out)] == [["billing"]]


# -- compare -------------------------------------------------------------------------------------------------


def test_compare_the_same_failure_with_other_numbers(
    corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "compare", "--json", str(corpus.old), str(corpus.recent))
    assert status == 0
    document = json.loads(out)
    assert document["same_failure"] is True
    differences = document["differences"]
    assert differences["exception"] == {
        "message": [
            "card [REDACTED] declined for order total 4200",
            "card [REDACTED] declined for order total 4300",
        ]
    }
    assert differences["service"] is None
    assert {row["change"] for row in differences["frames"]} == {"same"}
    assert "charge" in [row["b"]["function"] for row in differences["frames"]]
    charge_locals = next(frame for frame in differences["locals"] if frame["frame"].endswith(":charge"))
    assert charge_locals["changed"]["amount_cents"] == ["4200", "4300"]
    assert (charge_locals["added"], charge_locals["removed"]) == ({}, {})
    assert differences["runtime"] == {
        "facts": {},
        "distributions": {"added": {}, "removed": {}, "changed": {}},
    }

    status, out, _ = run(capsys, "compare", str(corpus.old), str(corpus.recent))
    assert status == 0
    assert out.startswith(f"same failure: fingerprint {document['a']['fingerprint']}\n")
    assert "    - card [REDACTED] declined for order total 4200\n" in out
    assert "    + card [REDACTED] declined for order total 4300\n" in out
    assert "    ~ amount_cents = 4200 -> 4300\n" in out
    assert "Runtime\n  no differences\n" in out


def test_compare_different_failures(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "compare", "--json", str(corpus.old), str(corpus.other))
    assert status == 1
    document = json.loads(out)
    differences = document["differences"]
    assert document["same_failure"] is False
    assert differences["exception"]["type"] == [f"{__name__}.PaymentDeclined", "KeyError"]
    assert differences["service"] == ["shop", "billing"]
    changes = {(row["change"], (row["a"] or row["b"])["function"]) for row in differences["frames"]}
    assert {("removed", "charge"), ("removed", "checkout"), ("added", "reserve")} <= changes
    runtime_facts = differences["runtime"]
    assert runtime_facts["facts"] == {"python.version": [sys.version.split()[0], "3.99.0"]}
    assert runtime_facts["distributions"]["added"] == {"leftpad": "1.0"}
    assert list(runtime_facts["distributions"]["removed"]) == ["pytest"]
    assert runtime_facts["distributions"]["changed"]["protobuf"][1] == "0.0.1"

    status, out, _ = run(capsys, "compare", str(corpus.old), str(corpus.other))
    assert status == 1
    assert out.startswith("different failures: fingerprint ")
    assert "  - shop\n  + billing\n" in out
    assert re.search(rf"\n  - {__name__}:charge  line \d+\n", out)
    assert re.search(rf"\n  \+ {__name__}:reserve  line \d+\n", out)
    assert f"  ~ python.version  {sys.version.split()[0]} -> 3.99.0\n" in out
    assert "  + leftpad 1.0\n" in out
    assert "  - pytest " in out


def test_frame_diff_marks_moved_and_changed_lines() -> None:
    def frames(*names: tuple[str, int]) -> list[dict[str, Any]]:
        return [{"module": "app", "function": name, "lineno": line, "locals": None} for name, line in names]

    rows = _frame_diff(
        frames(("main", 1), ("route", 5), ("load", 9), ("parse", 20)),
        frames(("main", 1), ("parse", 20), ("route", 6), ("save", 3)),
    )
    assert [(change, (new or old)["function"]) for change, old, new in rows] == [
        ("same", "main"),
        ("moved", "parse"),
        ("line", "route"),
        ("removed", "load"),
        ("added", "save"),
    ]


def test_locals_differing_only_in_memory_addresses_are_the_same() -> None:
    def frame(**variables: str) -> dict[str, Any]:
        return {"module": "app", "function": "handle", "lineno": 3, "locals": variables}

    old = frame(client="<Client object at 0x7f00aa>", retries="3", token="a")
    new = frame(client="<Client object at 0x7f11bb>", retries="4", user="u")
    assert _locals_diff([("same", old, new)]) == [
        {
            "frame": "app:handle",
            "added": {"user": "u"},
            "removed": {"token": "a"},
            "changed": {"retries": ["3", "4"]},
        }
    ]


def test_compare_verifies_both_files_first(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.fspkg"
    bad.write_bytes(b"not a zip")
    status, out, err = run(capsys, "compare", str(corpus.old), str(bad))
    assert (status, out) == (1, "")
    assert err == f"{bad}: not a valid ZIP archive (no end of central directory)\n"


# -- output: colour, width, errors ---------------------------------------------------------------------------


def every_human_output(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> str:
    outputs = [
        run(capsys, "show", str(corpus.old)),
        run(capsys, "list", str(corpus.directory)),
        run(capsys, "groups", str(corpus.directory)),
        run(capsys, "compare", str(corpus.old), str(corpus.other)),
    ]
    return "".join(out for _, out, _ in outputs)


@pytest.mark.parametrize("setting", [(False, "", False), (True, "1", False), (True, "", True)])
def test_colour_only_on_a_terminal_without_no_color(
    setting: tuple[bool, str, bool],
    corpus: Corpus,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tty, no_color, coloured = setting
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    monkeypatch.setenv("NO_COLOR", no_color)
    output = every_human_output(corpus, capsys)
    assert ("\x1b" in output) is coloured
    assert "\x1b" not in ANSI.sub("", output)


@pytest.mark.parametrize("columns", [60, 100])
def test_output_fits_the_terminal_width(
    columns: int, corpus: Corpus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(columns))
    output = every_human_output(corpus, capsys)
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert any(line.endswith("...") for line in lines)
    assert "<- failure" in output  # a span name is cut, not its marks
    assert "  <- failure" in output


def test_nothing_is_cut_for_a_pipe(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "60")  # readline exports it to children, pipes included
    output = every_human_output(corpus, capsys)
    assert max(len(line) for line in output.splitlines()) > 120
    assert "..." not in output


def test_bad_inputs_get_one_line_each(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.fspkg"
    status, out, err = run(capsys, "show", str(missing))
    assert (status, out) == (1, "")
    assert err == f"{missing}: cannot read (No such file or directory)\n"
    for verb in ("list", "groups"):
        assert run(capsys, verb, str(tmp_path / "nowhere")) == (
            1,
            "",
            f"{tmp_path / 'nowhere'}: not a directory\n",
        )

    directory = tmp_path / "mixed"
    shutil.copytree(corpus.directory, directory)
    (directory / "truncated.fspkg").write_bytes(corpus.old.read_bytes()[:200])
    (directory / "notes.txt").write_text("not a package")
    for verb in ("list", "groups"):
        status, out, err = run(capsys, verb, str(directory))
        assert status == 1
        assert (
            err == f"{directory / 'truncated.fspkg'}: not a valid ZIP archive (no end of central directory)\n"
        )
        assert corpus.recent.name in out


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "one.fspkg"],
        ["show"],
        ["list", "--since"],
        ["groups", "a", "b"],
        ["show", "x", "--colour"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: faultspan" in capsys.readouterr().err


# -- the console script --------------------------------------------------------------------------------------


def test_console_script(corpus: Corpus, otel_env: dict[str, str]) -> None:
    """The installed ``faultspan`` script, into a pipe: not cut even with COLUMNS exported, not coloured."""
    env = {**otel_env, "COLUMNS": "60"}
    env.pop("NO_COLOR", None)
    groups = subprocess.run(
        [str(FAULTSPAN), "groups", str(corpus.directory)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (groups.returncode, groups.stderr) == (0, "")
    _, first, second = groups.stdout.splitlines()
    assert first.startswith("6 ") and first.endswith(corpus.recent.name)
    assert second.startswith("1 ") and second.endswith(corpus.other.name)
    assert "\x1b" not in groups.stdout


def test_a_closed_pipe_ends_quietly(corpus: Corpus, otel_env: dict[str, str]) -> None:
    """``faultspan show PKG | head -0``: the reader is gone before the first write. Buffered output (no
    PYTHONUNBUFFERED) would otherwise fail again at exit, with a message and status 120."""
    env = {key: value for key, value in otel_env.items() if key != "PYTHONUNBUFFERED"}
    reader, writer = os.pipe()
    os.close(reader)
    try:
        shown = subprocess.run(
            [str(FAULTSPAN), "show", str(corpus.old)],
            env=env,
            stdout=writer,
            stderr=subprocess.PIPE,
            check=False,
        )
    finally:
        os.close(writer)
    assert (shown.returncode, shown.stderr) == (0, b"")


# -- the first commands of a new user ------------------------------------------------------------------------


def test_no_arguments_prints_the_verbs_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys)
    assert (status, out) == (2, "")
    assert err.startswith("usage: faultspan [-h] [--version] VERB ...\n")
    for verb in ("show", "list", "groups", "compare", "verify", "view", "replay", "push", "config"):
        assert re.search(rf"^    {verb} +\S", err, re.MULTILINE), verb


@pytest.mark.parametrize("verb", [None, "show", "list", "groups", "compare", "verify", "view", "replay"])
def test_help_is_plain_text(verb: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"] if verb else ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: faultspan")
    assert not re.search(r"`|:(func|class|mod):|\*\*", out)


def test_version(otel_env: dict[str, str]) -> None:
    for command in ([str(FAULTSPAN)], [sys.executable, "-m", "faultspan"]):
        shown = subprocess.run(
            [*command, "--version"], env=otel_env, capture_output=True, text=True, check=False
        )
        assert (shown.returncode, shown.stdout, shown.stderr) == (
            0,
            f"faultspan {version('faultspan')}\n",
            "",
        )


# -- show: by name or fingerprint, frames as a reader wants them ---------------------------------------------


def test_show_finds_a_package_by_name_or_fingerprint(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR", str(corpus.directory))
    monkeypatch.chdir(corpus.directory.parent)
    status, out, _ = run(capsys, "show", corpus.old.name)
    assert status == 0 and out.startswith(
        f"{__name__}.PaymentDeclined: card [REDACTED] declined for order total 4200\n"
    )
    fingerprint = fspkg.read_package(corpus.old).manifest["fingerprint"]
    for prefix in (fingerprint, fingerprint[:12].upper(), fingerprint[:6]):
        status, out, _ = run(capsys, "show", prefix)  # the newest package of the group
        assert status == 0 and "declined for order total 4300\n" in out.splitlines(keepends=True)[0]
    status, out, _ = run(capsys, "compare", corpus.old.name, fingerprint[:12])
    assert status == 0 and out.startswith(f"same failure: fingerprint {fingerprint}\n")
    assert run(capsys, "show", "nothing-here") == (
        1,
        "",
        f"nothing-here: no such file, and no package of that name or fingerprint in {corpus.directory}\n",
    )


def test_a_fingerprint_prefix_of_several_groups_is_a_usage_error(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for number, source in enumerate((corpus.old, corpus.other)):
        fingerprint = f"abc{number}" + fspkg.read_package(source).manifest["fingerprint"][4:]
        atomic.write_atomic(tmp_path, source.name, fspkg.rewritten(source, {"fingerprint": fingerprint}))
    monkeypatch.setenv("OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR", str(tmp_path))
    status, out, err = run(capsys, "show", "abc")
    assert (status, out) == (2, "")
    assert re.fullmatch(r"abc: the start of 2 fingerprints \(abc0[0-9a-f]{8}, abc1[0-9a-f]{8}\)\n", err)
    assert run(capsys, "show", "ABC1")[0] == 0


def descend(depth: int) -> int:
    return descend(depth + 1) + 1


def parse_with(text: str) -> object:
    def hook(pairs: dict[str, object]) -> object:
        raise ValueError(f"bad pair in\n{text}\nsecond line")

    return json.loads(text, object_hook=hook)  # json's own frames sit between the two in-app ones


def captured_package(directory: Path, failing: Callable[[], object]) -> Path:
    service = Service("frames")
    with service.tracer.start_as_current_span("work"):
        try:
            failing()
        except Exception:
            faultspan.capture_exception()
    package = write_package(directory, service.spans(), "work", NOW, {})
    service.provider.shutdown()
    return package


def test_show_hides_library_frames_and_keeps_line_breaks(
    pipeline: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = captured_package(tmp_path, lambda: parse_with('{"a": 1}'))
    status, out, _ = run(capsys, "show", str(package))
    assert status == 0
    assert out.startswith('ValueError: bad pair in\n  {"a": 1}\n  second line\nservice frames  ')
    assert 'in\\n{"a": 1}' not in out  # no escaped line break in what the message shows
    exception = out[out.index("\nException\n") : out.index("\nBreadcrumbs\n")]
    functions = re.findall(r"^\s+File .*, in (\S+)$", exception, re.MULTILINE)
    assert functions[-2:] == ["parse_with", "hook"]
    assert re.search(
        r"\n    \(3 library frames hidden: --all-frames shows them\)\n    File .*, in hook\n",
        exception,
    )
    assert "json" not in "".join(re.findall(r"^\s+File (.*)$", exception, re.MULTILINE)[-2:])

    status, everything, _ = run(capsys, "show", "--all-frames", str(package))
    assert status == 0 and "hidden" not in everything
    shown = re.findall(r'^\s+File "(.*)", line \d+, in (\S+)$', everything, re.MULTILINE)
    assert [function for _, function in shown][-5:] == ["parse_with", "loads", "decode", "raw_decode", "hook"]
    assert shown[-2][0].endswith("json/decoder.py")


def test_show_folds_recursion_and_marks_the_gap_where_it_is(
    pipeline: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = captured_package(tmp_path, lambda: descend(0))
    max_frames = runtime.current().settings.max_frames
    view = json.loads(run(capsys, "show", "--json", str(package))[1])
    frames = view["exception"]["frames"]
    assert len(frames) == max_frames
    omitted = view["exception"]["chain"]["frames_omitted"]
    assert omitted > 0
    status, out, _ = run(capsys, "show", str(package))
    assert status == 0
    exception = out[out.index("\nException\n") : out.index("\nBreadcrumbs\n")].splitlines()
    gap = exception.index(f"    ({omitted} frames omitted here: OTEL_PYTHON_FAULTSPAN_MAX_FRAMES)")
    before, after = exception[:gap], exception[gap + 1 :]
    in_descend = [line for line in exception if line.endswith(", in descend")]
    assert len(in_descend) == 3  # once on each side of the gap, the rest folded, and the innermost
    head = sum(1 for frame in frames[: max_frames // 4] if frame["function"] == "descend")
    tail = sum(1 for frame in frames[max_frames // 4 :] if frame["function"] == "descend")
    assert f"        [the frame above repeated {head - 1} more times]" in before
    assert f"        [the frame above repeated {tail - 2} more times]" in after
    assert after[-1].startswith(f"          depth = {frames[-1]['locals']['depth']}")

    status, everything, _ = run(capsys, "show", "--all-frames", str(package))
    assert everything.count(", in descend\n") == head + tail
    assert "repeated" not in everything


# -- list and groups: failure times, replays -----------------------------------------------------------------


def test_list_shows_when_it_failed_not_when_it_was_written(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = NOW - timedelta(hours=5)
    shop = Service("late")
    with pytest.raises(PaymentDeclined):
        checkout(shop.tracer, 4400)
    package = write_package(
        tmp_path, shop.spans(), "checkout", failed, {}, written_after=timedelta(minutes=7)
    )
    shop.provider.shutdown()
    status, out, _ = run(capsys, "list", str(tmp_path))
    assert status == 0
    assert out.splitlines()[1].startswith(failed.strftime("%Y-%m-%d %H:%M:%S  late "))
    (row,) = json.loads(run(capsys, "list", "--json", str(tmp_path))[1])
    assert (row["failure_time"], row["created"]) == (
        fspkg.rfc3339(failed),
        fspkg.rfc3339(failed + timedelta(minutes=7)),
    )
    assert row["last_seen"] == fspkg.rfc3339(failed)
    since = (failed + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(run(capsys, "list", "--json", str(tmp_path), "--since", since)[1]) == []
    assert (
        run(capsys, "show", str(package))[1]
        .splitlines()[1]
        .startswith(f"service late  failed {fspkg.rfc3339(failed)}  ")
    )


def test_replays_are_listed_but_not_counted_as_occurrences(tmp_path: Path, otel_env: dict[str, str]) -> None:
    apps = Path(__file__).parent / "apps"
    state = tmp_path / "state"
    state.write_text("fail")
    directory = tmp_path / "packages"
    run_instrumented(
        apps / "replay_produce.py",
        str(state),
        env=otel_env,
        OTEL_TRACES_EXPORTER="faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(directory),
    )
    (original,) = [
        path
        for path in directory.glob("*.fspkg")
        if fspkg.read_package(path).members["replay.json"].get("callable") == "replay_targets:count"
    ]
    fingerprint = fspkg.read_package(original).manifest["fingerprint"]
    replayed = subprocess.run(
        [str(FAULTSPAN), "replay", str(original), "--allow-code-execution", "--output", str(directory)],
        cwd=apps,
        env=otel_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr

    def cli(*argv: str) -> str:
        done = subprocess.run(
            [str(FAULTSPAN), *argv, str(directory)], env=otel_env, capture_output=True, text=True, check=False
        )
        assert (done.returncode, done.stderr) == (0, "")
        return done.stdout

    (group,) = [row for row in json.loads(cli("groups", "--json")) if row["fingerprint"] == fingerprint]
    assert (group["count"], group["replays"], group["packages"]) == (1, 1, 2)
    rows = [row for row in json.loads(cli("list", "--json")) if row["fingerprint"] == fingerprint]
    assert [row["replay"] for row in rows] == [False, True]
    (line,) = [line for line in cli("groups").splitlines() if fingerprint[:12] in line]
    assert line.startswith("1 (+1 replay)  ")
    assert sum(line.endswith("  (replay)") for line in cli("list").splitlines()) == 1
