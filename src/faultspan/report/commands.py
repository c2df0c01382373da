"""The view verb: a package as one self-contained HTML report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPORT_SUFFIX = ".html"


def _has_display() -> bool:
    """A browser can only be shown on a desktop: never over SSH, in CI or in a container without X/Wayland."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _view(args: argparse.Namespace) -> int:
    from faultspan.packages.atomic import write_atomic
    from faultspan.packages.commands import located
    from faultspan.report.html import render

    found = located(args.package)
    if isinstance(found, int):
        return found
    source, package = found
    target = Path(args.output) if args.output else source.with_suffix(REPORT_SUFFIX)
    if target.resolve() == source.resolve():
        print(f"{target}: is the package itself; choose another output with -o", file=sys.stderr)
        return 2
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        written = write_atomic(target.parent, target.name, render(package).encode("utf-8"), replace=True)
    except OSError as error:
        print(f"{target}: cannot write ({error.strerror or error})", file=sys.stderr)
        return 1
    print(written)
    if not args.no_open and _has_display():
        import webbrowser

        if not webbrowser.open(written.resolve().as_uri()):
            print(f"{written}: no browser found, open it yourself", file=sys.stderr)
    return 0


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    view = verbs.add_parser(
        "view",
        help="write a replay package as one self-contained HTML report and open it in a browser",
    )
    view.add_argument("package", metavar="PKG", help="a path, a name from 'faultspan list', or a fingerprint")
    view.add_argument(
        "-o", "--output", metavar="FILE", help="where to write the report (default: PKG with .html)"
    )
    view.add_argument("--no-open", action="store_true", help="only write the report, do not open a browser")
    view.set_defaults(run=_view)
