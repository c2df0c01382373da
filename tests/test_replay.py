"""Assisted replay: replayable capture into real packages, ``faultspan replay``, its refusals, line recording.

Packages come from a real subprocess under opentelemetry-instrument with the faultspan exporter
(``apps/replay_produce.py``); every replay is a real ``python -m faultspan replay`` subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faultspan._capture import config, runtime
from faultspan._capture import replay_store as store
from faultspan._capture import replayable as capture
from faultspan.packages.format import read_package
from faultspan.packages.signing import SIGNATURE
from support.instrumented import run_instrumented

APPS = Path(__file__).parent / "apps"
KEY = "replay-test-key"
MAX_REPLAY_BYTES = 4096


@pytest.fixture
def targets() -> Iterator[Any]:
    """apps/replay_targets imported as the packages name it (``replay_targets``)."""
    sys.path.insert(0, str(APPS))
    try:
        import replay_targets

        yield replay_targets
    finally:
        sys.path.remove(str(APPS))


def _clean_env(**variables: str) -> dict[str, str]:
    """Like the ``otel_env`` fixture, for the module-scoped producer too."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, **variables}


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The state file and, by callable name, the package of each failing call of replay_produce.py."""
    root = tmp_path_factory.mktemp("replay")
    state = root / "state"
    state.write_text("fail")
    run_instrumented(
        APPS / "replay_produce.py",
        str(state),
        env=_clean_env(),
        OTEL_TRACES_EXPORTER="faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(root / "packages"),
        OTEL_PYTHON_FAULTSPAN_MAX_REPLAY_BYTES=str(MAX_REPLAY_BYTES),
        OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY,
    )
    packages = {}
    for path in (root / "packages").glob("*.fspkg"):
        document = read_package(path).members["replay.json"]
        packages[document["callable"].partition(":")[2]] = path
    return state, packages


@pytest.fixture
def packages(produced: tuple[Path, dict[str, Path]]) -> dict[str, Path]:
    """The packages, with their shared state file set back to "fail" (the recorded failure)."""
    state, found = produced
    state.write_text("fail")
    return found


def replay(package: Path, *args: str, cwd: Path = APPS, **variables: str) -> subprocess.CompletedProcess[str]:
    """``python -m faultspan replay PACKAGE ARGS``, by default from apps/, where the targets import."""
    return subprocess.run(
        [sys.executable, "-m", "faultspan", "replay", str(package), *args],
        cwd=cwd,
        env=_clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def consented(package: Path, output: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return replay(package, "--allow-code-execution", "--output", str(output), "--json", *args, **variables)


def _rezip(source: Path, target: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the package with each member passed through ``change`` (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


# -- the recorded call ---------------------------------------------------------------------------------------


def test_package_holds_the_exact_call_and_otlp_does_not(packages: dict[str, Path], targets: Any) -> None:
    package = read_package(packages["charge"])
    function, args, kwargs = capture.decode_call(package.members["replay.json"])
    assert function is targets.charge
    order = targets.Order(7, ("tea", "cake"), Decimal("12.50"), targets.Tier.GOLD)
    when = dt.datetime(2026, 11, 30, 9, 15, 1, 250, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert args[1:4] == [order, when, frozenset({"a", "b"})]
    assert args[1].tier is targets.Tier.GOLD and args[2].utcoffset() == dt.timedelta(hours=1)
    ratios = args[4]
    assert ratios[0] == 0.1 and math.isnan(ratios[1]) and math.copysign(1, ratios[2]) == -1
    assert ratios[3] == math.inf
    assert args[5:] == [b"\x00\xff", None, True]
    assert kwargs == {"mode": "fast", "retries": (1, 2)}
    trace_text = json.dumps(package.members["trace.json"])
    assert "faultspan.replay" not in trace_text and "AP8=" not in trace_text


@pytest.mark.parametrize(
    ("callable_name", "reason"),
    [
        ("login", "argument 'password': its name is a secret name"),
        ("notify", "argument 'header': would be redacted"),
        ("guarded", "argument 'lock': type _thread.lock is not supported"),
        ("bulk", "argument 'blob': the recorded call is larger than OTEL_PYTHON_FAULTSPAN_MAX_REPLAY_BYTES"),
    ],
)
def test_non_replayable_call_is_refused_with_its_reason(
    packages: dict[str, Path], tmp_path: Path, callable_name: str, reason: str
) -> None:
    document = read_package(packages[callable_name]).members["replay.json"]
    assert document == {
        "replayable": False,
        "callable": f"replay_targets:{callable_name}",
        "reason": reason,
        "fingerprint": document["fingerprint"],
    }
    result = consented(packages[callable_name], tmp_path, OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert result.returncode == 1
    assert result.stderr == f"{packages[callable_name]}: not replayable: {reason}\n"
    assert not list(tmp_path.iterdir())


# -- replay verdicts -----------------------------------------------------------------------------------------


def _reproduced(package: Path, output: Path) -> dict[str, Any]:
    result = consented(package, output, OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    assert outcome["verdict"] == "reproduced"
    assert outcome["replay"] == outcome["original"]
    written = read_package(Path(outcome["package"]))
    assert Path(outcome["package"]).parent == output
    assert written.manifest["fingerprint"] == outcome["original"]["fingerprint"]
    assert (
        written.members["replay.json"]["callable"] == read_package(package).members["replay.json"]["callable"]
    )
    return outcome


def test_sync_function_reproduces_in_text_output(packages: dict[str, Path], tmp_path: Path) -> None:
    result = replay(
        packages["charge"],
        "--allow-code-execution",
        "--output",
        str(tmp_path),
        OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("original:  ValueError: cannot handle [7, 2, 2] [")
    assert lines[1].replace("replayed:", "original:") == lines[0]
    assert lines[2] == "reproduced"
    written = Path(lines[3].removeprefix("package:   "))
    assert written.parent == tmp_path and read_package(written).signature is not None


@pytest.mark.parametrize(
    "callable_name", ["charge_async", "Billing.refund", "Billing.audit", "Order.ship", "reserve"]
)
def test_async_functions_and_methods_reproduce(
    packages: dict[str, Path], tmp_path: Path, callable_name: str
) -> None:
    _reproduced(packages[callable_name], tmp_path)


def test_different_failure_and_no_failure_exit_1(
    produced: tuple[Path, dict[str, Path]], packages: dict[str, Path], tmp_path: Path
) -> None:
    state = produced[0]
    state.write_text("other")
    different = consented(packages["charge_async"], tmp_path / "other", OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert different.returncode == 1, different.stderr
    outcome = json.loads(different.stdout)
    assert outcome["verdict"] == "different failure"
    assert outcome["replay"]["type"] == "LookupError"
    assert outcome["replay"]["message"] == "no record for Decimal('-0.00')"
    assert outcome["replay"]["fingerprint"] != outcome["original"]["fingerprint"]
    assert read_package(Path(outcome["package"])).manifest["exception"]["type"] == "LookupError"

    state.write_text("ok")
    healthy = consented(packages["charge_async"], tmp_path / "ok", OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert healthy.returncode == 1, healthy.stderr
    outcome = json.loads(healthy.stdout)
    assert (outcome["verdict"], outcome["replay"], outcome["package"]) == ("no failure", None, None)


# -- refusals ------------------------------------------------------------------------------------------------


def test_refuses_without_consent(packages: dict[str, Path], tmp_path: Path) -> None:
    result = replay(packages["charge"], "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"{packages['charge']}: not replayed:")
    assert "--allow-code-execution" in result.stderr
    assert not list(tmp_path.iterdir())


def test_refuses_a_package_that_fails_verification(packages: dict[str, Path], tmp_path: Path) -> None:
    def altered(name: str, data: bytes) -> bytes:
        return (
            data.replace(b"replay_targets:count", b"replay_targets:bulk") if name == "replay.json" else data
        )

    tampered = _rezip(packages["count"], tmp_path / "tampered.fspkg", altered)
    result = consented(tampered, tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.startswith(f"{tampered}: fails verification: ")
    assert result.stderr.count("\n") == 1
    missing = consented(tmp_path / "missing.fspkg", tmp_path / "out")
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)
    assert not (tmp_path / "out").exists()


def test_refuses_unsigned_and_wrongly_signed_packages_when_a_key_is_set(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    unsigned = _rezip(
        packages["count"], tmp_path / "unsigned.fspkg", lambda name, data: None if name == SIGNATURE else data
    )
    result = consented(unsigned, tmp_path / "out", OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert result.returncode == 1
    assert result.stderr == (
        f"{unsigned}: unsigned, and OTEL_PYTHON_FAULTSPAN_SIGNING_KEY is set: refusing to run it\n"
    )
    wrong_key = consented(packages["count"], tmp_path / "out", OTEL_PYTHON_FAULTSPAN_SIGNING_KEY="another")
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.startswith(f"{packages['count']}: signature does not match ")
    assert not (tmp_path / "out").exists()
    without_key = consented(unsigned, tmp_path / "out")
    assert json.loads(without_key.stdout)["verdict"] == "reproduced"


def test_refuses_a_callable_that_does_not_import_here(packages: dict[str, Path], tmp_path: Path) -> None:
    result = replay(
        packages["count"], "--allow-code-execution", "--output", str(tmp_path / "out"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"{packages['count']}: cannot import replay_targets:count: "
        "ModuleNotFoundError: No module named 'replay_targets'\n"
    )
    assert not (tmp_path / "out").exists()


# -- line recording ------------------------------------------------------------------------------------------


def test_record_lines_stores_in_app_lines_with_changed_locals(
    produced: tuple[Path, dict[str, Path]], packages: dict[str, Path], tmp_path: Path
) -> None:
    result = consented(packages["count"], tmp_path, "--record-lines", OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    recording = read_package(Path(outcome["package"])).members["replay.json"]["recording"]
    assert outcome["recording"] == {"lines": len(recording["lines"]), "truncated": False, "limit": 5000}
    lines = recording["lines"]
    assert {line["filename"] for line in lines} == {str(APPS / "replay_targets.py")}
    steps = [(line["function"], line["source"].strip(), line["locals"]) for line in lines]
    assert all(line["source"].startswith("    ") for line in lines)  # indentation kept
    assert steps[0] == ("count", "total = 0", {"state": repr(str(produced[0])), "limit": "4"})
    assert ("count", "total += number", {"number": "1"}) in steps
    assert ("count", "for number in range(limit):", {"total": "6"}) in steps
    assert ("count", 'secret = "[REDACTED]"', {}) in steps
    assert steps[-1] == ("_act", 'raise ValueError(f"cannot handle {subject!r}")', {})
    assert "sk_live" not in json.dumps(recording)
    times = [line["time"] for line in lines]
    assert times == sorted(times) and all(type(line["lineno"]) is int for line in lines)


def test_record_lines_is_bounded(packages: dict[str, Path], tmp_path: Path) -> None:
    result = consented(
        packages["count"],
        tmp_path,
        "--record-lines",
        "--max-lines",
        "5",
        OTEL_PYTHON_FAULTSPAN_SIGNING_KEY=KEY,
    )
    assert result.returncode == 0, result.stderr
    recording = read_package(Path(json.loads(result.stdout)["package"])).members["replay.json"]["recording"]
    assert (len(recording["lines"]), recording["truncated"], recording["limit"]) == (5, True, 5)


# -- in process: the decorator and the encoding --------------------------------------------------------------


def test_success_path_stores_nothing(pipeline: Any, targets: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("ok")
    with pipeline.tracer.start_as_current_span("request") as span:
        assert targets.count(str(state), 3) == "ok"
        ids = span.get_span_context()
    assert store.take(ids.trace_id, ids.span_id) is None
    state.write_text("fail")
    with pipeline.tracer.start_as_current_span("request") as span, pytest.raises(ValueError):
        targets.count(str(state), 3)
    document = store.take(span.get_span_context().trace_id, span.get_span_context().span_id)
    assert document is not None and document["args"] == [str(state), 3]


def test_replay_in_otlp_puts_the_call_on_the_exception_event(
    pipeline: Any, targets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "_current", runtime.Runtime(config.load({}, {"replay_in_otlp": True})))
    state = tmp_path / "state"
    state.write_text("fail")
    with pytest.raises(ValueError):
        targets.count(str(state), 2)
    (span,) = pipeline.spans()
    (event,) = [event for event in span.events if event.name == "exception"]
    recorded = json.loads(event.attributes["faultspan.replay"])
    assert recorded["callable"] == "replay_targets:count" and recorded["args"] == [str(state), 2]
    assert store.take(span.context.trace_id, span.context.span_id) == {
        **recorded,
        "fingerprint": event.attributes["faultspan.fingerprint"],
    }


class Local:
    pass


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -(2**70),
        1.5,
        "",
        "ünï",
        b"",
        [],
        (),
        {(1, "a"): [frozenset({2})]},
        {1.0, "x"},
        dt.time(1, 2, 3, 4, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 1, 2),
        Decimal("NaN"),
        uuid.UUID(int=7),
        Path("relative/p"),
        Local,
    ],
)
def test_encoding_round_trips_exactly(value: object) -> None:
    redactor = runtime.current().redactor
    encoded = json.loads(json.dumps(capture._Encoder(redactor, 10_000).encode(value, "v"), allow_nan=False))
    decoded = capture.decode(encoded)
    assert type(decoded) is type(value)
    assert decoded == value or (isinstance(value, Decimal) and decoded.is_nan())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (threading.Event(), "type threading.Event is not supported"),
        ({"api_key": "x"}, "key 'api_key' is a secret name"),
        (dt.datetime(2026, 1, 1, fold=1), "fold=1 (a repeated wall-clock time) is not recorded"),
        (Local(), "type test_replay.Local is not supported"),
    ],
)
def test_unsupported_values_name_the_reason(value: object, reason: str) -> None:
    with pytest.raises(capture.Unsupported) as refusal:
        capture._Encoder(runtime.current().redactor, 10_000).encode(value, "v")
    assert str(refusal.value) == reason


def test_a_callable_that_cannot_be_imported_is_not_replayable() -> None:
    def inner(x: int) -> None:
        raise ValueError(x)

    document = capture.record_call(
        function=inner,
        wrapper=inner,
        args=(1,),
        kwargs={},
        redactor=runtime.current().redactor,
        max_bytes=100,
    )
    assert document["replayable"] is False
    assert "cannot be imported by its name" in document["reason"]
