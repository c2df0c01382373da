"""Headless Chromium driven by selenium through the Debian ``chromium`` and ``chromium-driver`` packages.

``tests/support/install-browser.sh`` (part of the README's test command) installs them when missing.
Nothing is downloaded at run time: the driver and browser paths are given, so selenium's manager never runs,
and the browser is started with everything that phones home switched off.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRE_VARIABLE = "FAULTSPAN_REQUIRE_BROWSER"
ARTEFACTS_VARIABLE = "FAULTSPAN_ARTEFACTS"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
)


def require_chromium() -> None:
    """Skips the test when Chromium is not installed, or fails it when ``FAULTSPAN_REQUIRE_BROWSER=1``."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if not missing:
        return
    reason = f"headless Chromium is not installed ({', '.join(missing)} missing; "
    reason += "bash tests/support/install-browser.sh installs chromium and chromium-driver)"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_VARIABLE}=1 requires it")
    pytest.skip(reason)


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless browser with its own profile directory under ``profile``; quit (by its own driver) after."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver: webdriver.Chrome, default_directory: Path, name: str) -> Path:
    """A full-page PNG in ``$FAULTSPAN_ARTEFACTS`` if set, else in ``default_directory``."""
    directory = Path(os.environ.get(ARTEFACTS_VARIABLE) or default_directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    driver.set_window_size(1280, 800)  # measure from a small window: the page is at least as tall as it
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    driver.set_window_size(max(width, 1280), min(height + 120, 5000))
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"{path}: Chromium did not write the screenshot")
    return path
