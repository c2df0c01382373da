"""Running a script as a real subprocess under ``opentelemetry-instrument``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop.py"
# The synthetic secrets planted in examples/shop.py: none may leave the process.
SHOP_SECRETS = (
    "EXAMPLEdemoKey00000000000000",
    "demo-Pa55word!",
    "4111 1111 1111 1111",
    "hunter2-demo",
    "demo0token0abcdef0123456789",
)


def run_instrumented(
    script: Path, *args: str, env: dict[str, str], returncode: int | None = 0, **variables: str
) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python SCRIPT ARGS`` with metrics and logs exporters off (traces only);
    ``variables`` are added to ``env``. Fails the test with the script's stderr when it exits with another
    status than ``returncode`` (None: any status)."""
    environment = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **env, **variables}
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(script), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert returncode is None or result.returncode == returncode, result.stderr
    return result
