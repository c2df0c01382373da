"""Issue 14's check: the OpenTelemetry projects' own suites pass with faultspan active (B1 and B2).

Runs tests/compat/run_official_suites.py once over the eight suites (flask, django, fastapi, requests,
httpx, sqlite3, logging and the SDK's tests/trace, at exactly the installed versions); any test that passes
without faultspan and fails with it is a regression, named in the failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "compat" / "run_official_suites.py"


def test_official_suites_do_not_regress_with_faultspan_active(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 regressions in 8 suites" in done.stdout
