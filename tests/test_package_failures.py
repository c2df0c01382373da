"""One package per failure: two bugs in one trace are two packages, and a flush before the trace ends (a
crashing thread's) writes what is complete without closing the trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faultspan.packages import format as fspkg
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "two_failures.py"


def packages(directory: Path) -> list[fspkg.Package]:
    return [fspkg.read_package(path) for path in sorted(directory.glob("*.fspkg"))]


def span_names(package: fspkg.Package) -> set[str]:
    return {
        span["name"]
        for resource in package.members["trace.json"]["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    }


def faultspan_json(*args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", *args, "--json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("crash_between", [False, True])
def test_each_failure_of_a_trace_is_a_package_with_the_whole_trace(
    crash_between: bool, tmp_path: Path, otel_env: dict[str, str]
) -> None:
    directory = tmp_path / "packages"
    run_instrumented(
        APP,
        *(["--crash-between"] if crash_between else []),
        env=otel_env,
        OTEL_SERVICE_NAME="two-failures",
        OTEL_TRACES_EXPORTER="faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(directory),
    )
    job = [package for package in packages(directory) if "job" in span_names(package)]
    assert sorted(package.manifest["exception"]["type"] for package in job) == ["KeyError", "ValueError"]
    for package in job:
        assert span_names(package) == {"job", "step 1", "step 2"}
        assert package.manifest["occurrences"] == 1
    crashed = [package for package in packages(directory) if "job" not in span_names(package)]
    assert [package.manifest["exception"]["type"] for package in crashed] == (
        ["RuntimeError"] if crash_between else []
    )
    listed = faultspan_json("list", str(directory))
    assert len(listed) == 3 if crash_between else 2
    groups = faultspan_json("groups", str(directory))
    assert sum(group["count"] for group in groups) == len(listed)
