"""``import faultspan`` and the CLI's start stay free of the OpenTelemetry SDK until a public name is used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PUBLIC = [
    "BreadcrumbHandler",
    "breadcrumb",
    "capture",
    "capture_exception",
    "configure",
    "context",
    "guard",
]

PROBE = """
import json, sys
import faultspan, faultspan.cli
before = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
listed = [name for name in dir(faultspan) if not name.startswith("_")]
from faultspan import *
star = sorted(name for name in globals() if name in faultspan.__all__)
used = faultspan.capture_exception
try:
    faultspan.no_such_name
except AttributeError as err:
    missing = str(err)
print(json.dumps({
    "before": before,
    "listed": listed,
    "star": star,
    "home": used.__module__,
    "cached": "capture_exception" in vars(faultspan),
    "sdk_after": "opentelemetry.sdk.trace" in sys.modules,
    "missing": missing,
}))
"""


def test_public_names_load_on_first_use() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(result.stdout)
    assert seen["before"] == []  # neither faultspan nor its CLI imported any OpenTelemetry module
    assert set(PUBLIC) <= set(seen["listed"])
    assert seen["star"] == PUBLIC
    assert seen["home"] == "faultspan._pipeline.api"
    assert seen["cached"] is True
    assert seen["sdk_after"] is True
    assert seen["missing"] == "module 'faultspan' has no attribute 'no_such_name'"


@pytest.mark.parametrize("command", [["--version"], ["config"]])
def test_cli_verbs_that_record_nothing_never_import_the_sdk(command: list[str]) -> None:
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['faultspan', *{command!r}]\n"
        "try:\n"
        "    runpy.run_module('faultspan', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    code = done.code\n"
        "print('SDK' if any(n.startswith('opentelemetry') for n in sys.modules) else 'no SDK', code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "no SDK 0"


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "--version"], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"faultspan {version('faultspan')}\n")
