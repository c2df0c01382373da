#!/usr/bin/env bash
# Headless Chromium and its driver for the report's browser tests (tests/test_report.py): nothing when both
# are on PATH, else Debian's chromium and chromium-driver through apt-get (with sudo when not root). No
# browser build is ever downloaded from anywhere else.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-browser.sh: chromium or chromedriver is not on PATH and there is no apt-get to install them" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "install-browser.sh: installing chromium and chromium-driver needs root, and there is no sudo" >&2
        exit 1
    fi
    sudo=(sudo)
fi
echo "+ apt-get install chromium chromium-driver" >&2
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
