"""Start-up time of the ``faultspan`` command, against a bare interpreter start, measured in the same run.

    python benchmarks/cli_start.py [--runs N]

For ``faultspan --version``, ``faultspan config`` and ``faultspan list EMPTYDIR``: the median wall time of N
runs (the bare ``python -c pass`` start interleaved with them, so machine drift hits every row alike), the
ratio to that bare start, the number of modules the command imports (``-X importtime``) and whether the
OpenTelemetry SDK is among them. The goal is <= 0.15 s for each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.15


def _script() -> Path:
    script = Path(sys.executable).parent / "faultspan"
    if not script.is_file():
        raise SystemExit(f"{script}: no faultspan console script next to this interpreter (pip install -e .)")
    return script


def _wall(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def _modules(command: list[str]) -> tuple[int, bool]:
    """Modules imported by ``command`` (a Python script and its arguments), and whether the SDK is one."""
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", *command], capture_output=True, text=True, check=True
    )
    names = [line.rpartition("|")[2].strip() for line in traced.stderr.splitlines() if "|" in line]
    names = [name for name in names if name and name != "imported package"]
    return len(names), any(name.startswith("opentelemetry.sdk") for name in names)


def print_rows(runs: int) -> None:
    script = str(_script())
    with tempfile.TemporaryDirectory() as empty:
        commands = {
            "python -c pass (bare start)": [sys.executable, "-c", "pass"],
            "faultspan --version": [sys.executable, script, "--version"],
            "faultspan config": [sys.executable, script, "config"],
            "faultspan list EMPTYDIR": [sys.executable, script, "list", empty],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                times[name].append(_wall(command))
        bare = statistics.median(times["python -c pass (bare start)"])
        print(
            f"{'command':<30} {'median wall':>12} {'x bare':>7} {'modules':>8}  SDK imported  (runs: {runs})"
        )
        for name, command in commands.items():
            median = statistics.median(times[name])
            count, sdk = _modules(command[1:])
            verdict = "" if name.startswith("python") else ("ok" if median <= TARGET_SECONDS else "OVER")
            sdk_text = "yes" if sdk else "no"
            print(
                f"{name:<30} {median:>10.3f} s {median / bare:>6.2f}x {count:>8}  {sdk_text:<12}  {verdict}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    print_rows(parser.parse_args().runs)


if __name__ == "__main__":
    main()
