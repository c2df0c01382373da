"""The replay-package verbs: show, verify, list, groups, compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultspan import config
from faultspan.cli import colour

if TYPE_CHECKING:
    from faultspan.packages.format import Package


def _checked(path: Path | str) -> Package | None:
    """The verified package, or None after printing the one-line reason."""
    from faultspan.packages.format import PackageError, read_package

    try:
        return read_package(Path(path))
    except PackageError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    results = [_checked(path) for path in args.packages]
    return 0 if all(results) else 1


def _show(args: argparse.Namespace) -> int:
    package = _checked(args.package)
    if package is None:
        return 1
    from faultspan.packages import view

    document = view.document(package)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(view.render(document, colour=colour())))
    return 0


def _list(args: argparse.Namespace) -> int:
    from faultspan.packages import view
    from faultspan.packages.format import EXTENSION

    directory = Path(args.directory or config.load().package_dir)
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 1
    paths = sorted(directory.glob(f"*{EXTENSION}"))
    packages = [_checked(path) for path in paths]
    rows = [(path.name, package.manifest) for path, package in zip(paths, packages, strict=True) if package]
    for line in view.table(rows, colour=colour()):
        print(line)
    return 0 if all(packages) else 1


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    verify = verbs.add_parser("verify", help="check replay packages: archive safety, manifest, every hash")
    verify.add_argument("packages", nargs="+", metavar="PKG")
    verify.set_defaults(run=_verify)
    show = verbs.add_parser("show", help="a replay package: exception chain, breadcrumbs, span tree")
    show.add_argument("package", metavar="PKG")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=_show)
    listing = verbs.add_parser(
        "list",
        help="a table of the packages in DIR (default: OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR or ./.faultspan/)",
    )
    listing.add_argument("directory", nargs="?", metavar="DIR")
    listing.set_defaults(run=_list)
