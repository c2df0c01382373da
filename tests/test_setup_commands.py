"""The README's test command, as CI runs it: it installs headless Chromium itself and requires the browser
tests to run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tests" / "support" / "install-browser.sh"


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->\n```sh\n(.*?)\n```", readme, re.S)
    assert block is not None
    return block.group(1)


def test_the_test_command_installs_the_browser_and_requires_its_tests() -> None:
    steps = [step.strip() for step in readme_test_command().split("&&")]
    assert "bash tests/support/install-browser.sh" in steps
    assert steps[-1] == "FAULTSPAN_REQUIRE_BROWSER=1 pytest -q"
    assert steps.index("bash tests/support/install-browser.sh") > steps.index("pip install -q -e '.[test]'")


def test_ci_runs_exactly_the_readme_command(tmp_path: Path) -> None:
    """The real .ci/run with a ``bash`` first on PATH that records what it was asked to run."""
    recorder = tmp_path / "bash"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$2" > {tmp_path / "ran"}\n')
    recorder.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        ["/bin/bash", str(ROOT / ".ci" / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == f"+ {readme_test_command()}\n"
    assert (tmp_path / "ran").read_text() == readme_test_command()


def fake(directory: Path, *names: str) -> dict[str, str]:
    directory.mkdir()
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return {**os.environ, "PATH": str(directory)}


def test_install_browser_does_nothing_when_both_are_there(tmp_path: Path) -> None:
    env = fake(tmp_path / "bin", "chromium", "chromedriver", "apt-get")
    done = subprocess.run(["/bin/bash", str(INSTALL)], env=env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_install_browser_without_apt_get_says_so_in_one_line(tmp_path: Path) -> None:
    env = fake(tmp_path / "bin", "chromium")
    done = subprocess.run(["/bin/bash", str(INSTALL)], env=env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "install-browser.sh: chromium or chromedriver is not on PATH and there is no apt-get to install "
        "them\n"
    )
