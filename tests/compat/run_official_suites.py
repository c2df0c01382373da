"""The OpenTelemetry projects' own test suites, run plain and with faultspan active (issue 14).

For each suite, the sdist of exactly the installed version is fetched with
``pip download --no-binary :all: --no-deps`` and its tests are extracted; then the tests run three times in
a subprocess with ``faultspan_compat_plugin`` loaded (see there): ``plain``, ``b1`` (every faultspan
instrumentor active) and ``b2`` (b1 plus faultspan's processor in front of the tests' processors). A
regression is a test that passed plain and does not pass in a mode. Tests that fail only because they
compare attribute sets exactly are run once more with faultspan's documented additions hidden
(``faultspan.*``, ``redaction.masked.*``); the ones that then pass are counted as ``filtered``, not as
regressions.

    python tests/compat/run_official_suites.py [--work DIR] [--suite NAME ...]

Exit status 0 when no suite regressed, 1 otherwise, 2 when a suite could not be fetched or run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
MODES = ("b1", "b2")
RUN_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Suite:
    name: str
    distribution: str
    tests: str  # inside the sdist


SUITES = (
    Suite("flask", "opentelemetry-instrumentation-flask", "tests"),
    Suite("django", "opentelemetry-instrumentation-django", "tests"),
    Suite("fastapi", "opentelemetry-instrumentation-fastapi", "tests"),
    Suite("requests", "opentelemetry-instrumentation-requests", "tests"),
    Suite("httpx", "opentelemetry-instrumentation-httpx", "tests"),
    Suite("sqlite3", "opentelemetry-instrumentation-sqlite3", "tests"),
    Suite("logging", "opentelemetry-instrumentation-logging", "tests"),
    Suite("sdk-trace", "opentelemetry-sdk", "tests/trace"),
)


@dataclass
class Result:
    suite: str
    plain: int = 0
    passed: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    regressions: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


class SuiteError(Exception):
    pass


def fetch(suite: Suite, work: Path) -> Path:
    """The extracted sdist of the installed version (downloaded once per work directory)."""
    try:
        installed = version(suite.distribution)
    except PackageNotFoundError as err:
        raise SuiteError(f"{suite.distribution}: not installed") from err
    root = work / f"{suite.distribution}-{installed}"
    if (root / suite.tests).is_dir():
        return root
    downloads = work / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
        "--dest", str(downloads), f"{suite.distribution}=={installed}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    stem = suite.distribution.replace("-", "_") + f"-{installed}"
    archive = downloads / f"{stem}.tar.gz"
    if done.returncode != 0 or not archive.is_file():
        reason = done.stderr.strip()[-300:]
        raise SuiteError(f"{suite.distribution}=={installed}: pip download failed: {reason}")
    with tarfile.open(archive) as sdist:
        members = [
            member
            for member in sdist.getmembers()
            if member.name.startswith(f"{stem}/tests/")
            and (member.isfile() or member.isdir())
            and ".." not in PurePosixPath(member.name).parts
        ]
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4, 3.10.12 and later
            sdist.extractall(work, members=members, filter="data")
        else:  # Debian's 3.11.2: the members are already plain files and folders under tests/, no ".."
            sdist.extractall(work, members=members)
    extracted = work / stem
    if not (extracted / suite.tests).is_dir():
        raise SuiteError(f"{archive.name}: no {suite.tests}/ folder")
    extracted.rename(root)
    return root


def run(root: Path, suite: Suite, mode: str, *, node_ids: list[str] | None = None) -> dict[str, str]:
    """Each test's outcome (passed, skipped, failed) in ``mode``; ``node_ids`` reruns those with the
    documented additions filtered out."""
    with tempfile.TemporaryDirectory(prefix="faultspan-compat-") as scratch:
        outcomes = Path(scratch) / "outcomes.json"
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
            FAULTSPAN_COMPAT_MODE=mode,
            FAULTSPAN_COMPAT_OUTCOMES=str(outcomes),
            FAULTSPAN_COMPAT_FILTER="1" if node_ids is not None else "0",
        )
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "faultspan_compat_plugin",
            "--rootdir", str(root), "-o", "addopts=",
            *(node_ids if node_ids is not None else [suite.tests]),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command,
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise SuiteError(f"{suite.name} ({mode}): no result within {RUN_TIMEOUT_SECONDS} s") from err
        if not outcomes.is_file():
            tail = (done.stdout + done.stderr).strip()[-600:]
            raise SuiteError(f"{suite.name} ({mode}): pytest exited {done.returncode}, no results: {tail}")
        result: dict[str, str] = json.loads(outcomes.read_text(encoding="utf-8"))
        return result


def check(suite: Suite, work: Path) -> Result:
    started = time.monotonic()
    root = fetch(suite, work)
    plain = run(root, suite, "plain")
    baseline = sorted(node for node, outcome in plain.items() if outcome == "passed")
    result = Result(suite.name, plain=len(baseline))
    for mode in MODES:
        outcomes = run(root, suite, mode)
        lost = [node for node in baseline if outcomes.get(node) != "passed"]
        rerun = run(root, suite, mode, node_ids=lost) if lost else {}
        regressions = [node for node in lost if rerun.get(node) != "passed"]
        result.passed[mode] = len(baseline) - len(lost)
        result.filtered[mode] = len(lost) - len(regressions)
        result.regressions[mode] = regressions
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="where the sdists go (default: a temporary directory)")
    parser.add_argument("--suite", action="append", choices=[suite.name for suite in SUITES])
    args = parser.parse_args(argv)
    chosen = [suite for suite in SUITES if not args.suite or suite.name in args.suite]
    with tempfile.TemporaryDirectory(prefix="faultspan-suites-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        try:
            # Two at a time: each suite is one pytest process at a time, and CI has two cores.
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(lambda suite: check(suite, work), chosen))
        except SuiteError as err:
            print(f"run_official_suites: {err}", file=sys.stderr)
            return 2
    print(f"{'suite':<10} {'plain':>6} {'b1':>5} {'b1 filt':>8} {'b2':>5} {'b2 filt':>8} {'seconds':>8}")
    for r in results:
        print(
            f"{r.suite:<10} {r.plain:>6} {r.passed['b1']:>5} {r.filtered['b1']:>8} "
            f"{r.passed['b2']:>5} {r.filtered['b2']:>8} {r.seconds:>8.1f}"
        )
    failed = [(r.suite, mode, node) for r in results for mode in MODES for node in r.regressions[mode]]
    for suite_name, mode, node in failed:
        print(f"REGRESSION {suite_name} {mode}: {node}")
    print(f"{len(failed)} regressions in {len(results)} suites")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
