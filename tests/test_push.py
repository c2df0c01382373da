"""``faultspan push``: replay packages re-sent through the real rotel collector to the in-test sink."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from faultspan._otlp.otlp_json import decode_trace
from faultspan._otlp.transport import EndpointError, resolve
from faultspan.cli import main
from faultspan.delivery.push_record import NAME as RECORD
from faultspan.delivery.push_record import PushRecord
from faultspan.packages.format import TRACE, read_package
from support.collector import OtlpSink, ReceivedSpan, RotelCollector, flatten_request, free_port
from support.instrumented import SHOP, run_instrumented

PACKAGES = 2


@pytest.fixture(scope="module")
def shop_packages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Packages of real failures: examples/shop.py run under opentelemetry-instrument, once per package."""
    directory = tmp_path_factory.mktemp("shop-packages")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env |= {"OTEL_TRACES_EXPORTER": "faultspan", "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR": str(directory)}
    with ThreadPoolExecutor(PACKAGES) as pool:
        list(pool.map(lambda _: run_instrumented(SHOP, env=env), range(PACKAGES)))
    packages = sorted(directory.glob("*.fspkg"))
    assert len(packages) == PACKAGES
    return packages


@pytest.fixture
def packages(shop_packages: list[Path], tmp_path: Path) -> Path:
    """A fresh directory holding a copy of every shop package (push writes its record next to them)."""
    directory = tmp_path / "packages"
    directory.mkdir()
    for package in shop_packages:
        shutil.copy2(package, directory)
    return directory


def push_env(endpoint: str, protocol: str, **variables: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol, **variables}


def collector_env(collector: RotelCollector, protocol: str) -> dict[str, str]:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    return push_env(endpoint, protocol)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


Push = Callable[..., Result]


@pytest.fixture
def push(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Push:
    """``faultspan push ARGS`` run in this process with exactly the OTEL_* variables given (stderr is not
    a terminal here; the progress bar test runs the command in a subprocess on a pseudo-terminal)."""

    def run(*args: str | Path, env: dict[str, str]) -> Result:
        for name in os.environ:
            if name.startswith("OTEL_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(["push", *map(str, args)])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def packaged_spans(*paths: Path) -> list[ReceivedSpan]:
    """The spans of the packages' trace.json, decoded as they would be sent."""
    return [
        span for path in paths for span in flatten_request(decode_trace(read_package(path).members[TRACE]))
    ]


def by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.span_id: span for span in spans}


def assert_arrived_as_packaged(sink: OtlpSink, *paths: Path) -> None:
    expected = by_id(packaged_spans(*paths))
    arrived = by_id(sink.wait_for(lambda spans: set(expected) <= {span.span_id for span in spans}))
    assert set(arrived) == set(expected)
    for span_id, span in expected.items():
        # Ids, names, parents, times, attributes, events, links, status, resource and scope: all of it.
        assert arrived[span_id] == span
    exceptions = [event for span in arrived.values() for event in span.events_named("exception")]
    assert len(exceptions) >= len(paths)


def recorded(directory: Path) -> dict[str, dict[str, dict[str, object]]]:
    document = json.loads((directory / RECORD).read_text())
    endpoints: dict[str, dict[str, dict[str, object]]] = document["endpoints"]
    return endpoints


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_one_package_arrives_as_packaged(
    packages: Path, collector: RotelCollector, otlp_sink: OtlpSink, push: Push, protocol: str
) -> None:
    package = sorted(packages.glob("*.fspkg"))[0]
    result = push(package, env=collector_env(collector, protocol))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("pushed 1 (")
    assert_arrived_as_packaged(otlp_sink, package)
    (entries,) = recorded(packages).values()
    assert [entry["package"] for entry in entries.values()] == [package.name]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_directory_arrives_and_second_run_sends_nothing_unless_forced(
    packages: Path, collector: RotelCollector, otlp_sink: OtlpSink, push: Push, protocol: str
) -> None:
    env = collector_env(collector, protocol)
    paths = sorted(packages.glob("*.fspkg"))
    first = push(packages, env=env)
    assert first.returncode == 0, first.stderr
    assert_arrived_as_packaged(otlp_sink, *paths)
    (key,) = recorded(packages)
    assert key.startswith(f"{protocol} http://127.0.0.1:")
    assert sorted(entry["package"] for entry in recorded(packages)[key].values()) == [p.name for p in paths]

    # With the collector down, any attempt to send would fail: exit 0 proves nothing was sent.
    collector.stop()
    second = push(packages, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"pushed 0 (0 spans), {PACKAGES} already pushed, 0 failed")

    collector.start()
    otlp_sink.clear()
    forced = push("--force", packages, env=env)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(f"pushed {PACKAGES} (")
    assert_arrived_as_packaged(otlp_sink, *paths)


def test_record_is_per_endpoint(
    packages: Path, collector: RotelCollector, otlp_sink: OtlpSink, push: Push
) -> None:
    for protocol in ("grpc", "http/protobuf"):
        result = push(packages, env=collector_env(collector, protocol))
        assert result.stdout.startswith(f"pushed {PACKAGES} ("), result.stderr
    assert len(recorded(packages)) == 2
    otlp_sink.wait_for_spans(2 * len(packaged_spans(*packages.glob("*.fspkg"))))


def test_bad_package_is_skipped_with_one_line(
    packages: Path, collector: RotelCollector, otlp_sink: OtlpSink, push: Push
) -> None:
    good, bad = sorted(packages.glob("*.fspkg"))
    bad.write_bytes(bad.read_bytes()[:-40])
    result = push(packages, env=collector_env(collector, "grpc"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{bad}: not a valid ZIP archive (no end of central directory)"]
    assert result.stdout.startswith("pushed 1 (")
    assert "1 invalid" in result.stdout
    assert_arrived_as_packaged(otlp_sink, good)
    (entries,) = recorded(packages).values()
    assert [entry["package"] for entry in entries.values()] == [good.name]


def test_missing_path_is_one_line_and_exit_1(packages: Path, collector: RotelCollector, push: Push) -> None:
    missing = packages / "nope.fspkg"
    result = push(missing, env=collector_env(collector, "grpc"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{missing}: no such file or directory"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_unreachable_endpoint_is_one_line_exit_1_nothing_recorded(
    packages: Path, push: Push, protocol: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = push(packages, env=push_env(endpoint, protocol, OTEL_EXPORTER_OTLP_TIMEOUT="0.5"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert f"{protocol} {endpoint}" in line
    assert "unreachable" in line
    assert f"{PACKAGES} packages not sent" in line
    assert not (packages / RECORD).exists()


def test_dry_run_lists_and_sends_nothing(packages: Path, push: Push) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: a send would fail
    result = push("--dry-run", packages, env=push_env(endpoint, "grpc"))
    assert result.returncode == 0, result.stderr
    listed = result.stdout.splitlines()
    assert [line.split(":")[0] for line in listed[:-1]] == [str(p) for p in sorted(packages.glob("*.fspkg"))]
    assert listed[-1].startswith(f"would push {PACKAGES}, 0 already pushed")
    assert not (packages / RECORD).exists()


def test_malformed_protocol_is_a_usage_error(packages: Path, push: Push) -> None:
    result = push(packages, env=push_env("http://127.0.0.1:4317", "thrift"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "faultspan push: OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol 'thrift' "
        "(expected grpc, http/protobuf, http/json)"
    ]


def test_progress_bar_only_on_a_terminal(
    packages: Path, collector: RotelCollector, push: Push, otel_env: dict[str, str]
) -> None:
    env = collector_env(collector, "grpc")
    piped = push(packages, env=env)
    assert piped.returncode == 0
    assert piped.stderr == ""

    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "faultspan", "push", "--force", str(packages)],
            env={**otel_env, **env},
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        drawn = b""
        while chunk := _read_pty(controller):
            drawn += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert b"\r" in drawn
    assert f"] 1/{PACKAGES} ".encode() in drawn


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO once the other side is closed and drained
        return b""


def test_refused_packages_are_reported_with_the_reason_and_not_recorded(
    packages: Path, otlp_sink: OtlpSink, push: Push
) -> None:
    otlp_sink.fail_with(grpc.StatusCode.INVALID_ARGUMENT)  # not retryable: each package fails on its own
    result = push(packages, env=push_env(otlp_sink.url, "grpc"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"pushed 0 (0 spans), 0 already pushed, {PACKAGES} failed")
    reason = "INVALID_ARGUMENT: OtlpSink told to fail with INVALID_ARGUMENT"
    assert result.stderr.splitlines() == [f"{path}: {reason}" for path in sorted(packages.glob("*.fspkg"))]
    assert otlp_sink.rejected == PACKAGES
    assert not (packages / RECORD).exists()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ("grpc", "http://localhost:4317", 10.0, True)),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ("http/protobuf", "http://localhost:4318/v1/traces", 10.0, True),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318/",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
            },
            ("http/json", "https://c:4318/v1/traces", 10.0, False),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2.5",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "7",
            },
            ("http/protobuf", "http://t:1/x", 2.5, True),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "false"},
            ("grpc", "http://c:4317", 10.0, False),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
            ("grpc", "c:4317", 10.0, True),
        ),
    ],
)
def test_endpoint_follows_the_sdk_reading_of_the_variables(
    variables: dict[str, str], expected: tuple[str, str, float, bool]
) -> None:
    endpoint = resolve(variables)
    assert (endpoint.protocol, endpoint.url, endpoint.timeout, endpoint.insecure) == expected


def test_endpoint_headers_are_parsed_as_the_sdk_does_and_never_named_in_the_key() -> None:
    endpoint = resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:secret@c:4317",
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-tenant=t1",
        }
    )
    assert dict(endpoint.headers) == {"authorization": "Bearer abc", "x-tenant": "t1"}
    assert endpoint.key == "grpc https://c:4317"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
            "OTEL_EXPORTER_OTLP_TIMEOUT: 'soon' is not a number of seconds",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"},
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '0' is not a positive",
        ),
        (
            {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
            "OTEL_EXPORTER_OTLP_COMPRESSION: unsupported compression",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4318/v1/traces' is not an http:// or https:// URL",
        ),
    ],
)
def test_malformed_variables_are_named(variables: dict[str, str], message: str) -> None:
    with pytest.raises(EndpointError) as raised:
        resolve(variables)
    assert str(raised.value).startswith(message)


def test_unreadable_certificate_is_a_usage_error(packages: Path, push: Push, tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    result = push(
        packages, env=push_env("https://127.0.0.1:4317", "grpc", OTEL_EXPORTER_OTLP_CERTIFICATE=str(missing))
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"faultspan push: OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read {missing} (No such file or directory)"
    ]


def test_unreadable_record_stops_its_directory(packages: Path, collector: RotelCollector, push: Push) -> None:
    (packages / RECORD).write_text("{not json")
    collector.stop()  # any send would fail: the packages must not even be tried
    result = push(packages, env=collector_env(collector, "grpc"))
    assert result.returncode == 1
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"{packages / RECORD}: not valid JSON (")
    assert rest == [
        f"{path}: the push record of its directory is unreadable" for path in sorted(packages.glob("*.fspkg"))
    ]
    assert (packages / RECORD).read_text() == "{not json"


def test_concurrent_records_merge_instead_of_overwriting(tmp_path: Path) -> None:
    first, second = PushRecord(tmp_path), PushRecord(tmp_path)
    first.add("grpc http://a:4317", "1" * 64, "one.fspkg", 2)
    second.add("grpc http://a:4317", "2" * 64, "two.fspkg", 3)
    first.save()
    second.save()
    reread = PushRecord(tmp_path)
    assert reread.pushed("grpc http://a:4317", "1" * 64)
    assert reread.pushed("grpc http://a:4317", "2" * 64)
    assert not reread.pushed("http/protobuf http://a:4318/v1/traces", "1" * 64)
    assert sorted(path.name for path in tmp_path.iterdir()) == [RECORD]
