"""Crash safety: writers killed with SIGKILL at random moments never leave a package that fails to verify."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_packages
from faultspan.packages.atomic import TEMPORARY_SUFFIX
from faultspan.packages.format import EXTENSION, read_package
from faultspan.packages.store import process_exists
from test_packages import Exporters, eventually, packages_in, use_package_dir

fresh_runtime = test_packages.fresh_runtime
new_exporter = test_packages.new_exporter

LOOP = Path(__file__).parent / "apps" / "package_loop.py"
RUNS = 30
HANG_GUARD_SECONDS = 30


def test_packages_survive_sigkill_at_random_moments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_exporter: Exporters
) -> None:
    directory = tmp_path / "packages"
    environment = {
        **os.environ,
        "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR": str(directory),
        "OTEL_PYTHON_FAULTSPAN_PACKAGE_MAX_PER_FINGERPRINT": "1",
    }
    loop = subprocess.Popen(
        [sys.executable, str(LOOP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
    )
    assert loop.stdin is not None and loop.stdout is not None
    chance = random.Random()
    writers: list[int] = []
    try:
        for run in range(RUNS):
            loop.stdin.write("run\n")
            loop.stdin.flush()
            writers.append(int(loop.stdout.readline()))  # its first package is on disk: it is writing
            if run == 0:
                # However slow the machine, the later kills then hit both new packages and rewrites.
                eventually(lambda: has_new_packages_and_rewrites(directory), seconds=HANG_GUARD_SECONDS)
            time.sleep(chance.uniform(0, 0.15))  # the random moment of the kill, not a synchronisation
            os.kill(writers[-1], signal.SIGKILL)
    finally:
        for pid in writers:
            if process_exists(pid):
                os.kill(pid, signal.SIGKILL)
        loop.stdin.close()
        loop.wait(HANG_GUARD_SECONDS)

    eventually(lambda: not any(process_exists(pid) for pid in writers))
    assert has_new_packages_and_rewrites(directory)  # and read_package raises PackageError on a partial one
    assert not [path for path in directory.iterdir() if not path.name.endswith((EXTENSION, TEMPORARY_SUFFIX))]
    leftovers = len(temporaries(directory))  # writes the kills interrupted (random: often a few, maybe none)

    use_package_dir(monkeypatch, str(directory))
    exporter = new_exporter()
    eventually(lambda: not temporaries(directory))
    assert exporter.store.stale_removed == leftovers


def has_new_packages_and_rewrites(directory: Path) -> bool:
    manifests = [read_package(path).manifest for path in packages_in(directory)]
    return len(manifests) >= 2 and max(manifest["occurrences"] for manifest in manifests) >= 2


def temporaries(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.name.endswith(TEMPORARY_SUFFIX)]
