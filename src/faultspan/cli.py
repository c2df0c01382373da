"""The ``faultspan`` command (also ``python -m faultspan``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from faultspan import config

if TYPE_CHECKING:
    from faultspan.packages.format import Package

# The package verbs import protobuf and the OTLP encoder (~140 ms): only when one of them runs.


def _config(args: argparse.Namespace) -> int:
    settings = config.load()
    rows = []
    for option in config.option_names():
        value = getattr(settings, option)
        if callable(value):
            value = f"{value.__module__}:{value.__qualname__}"
        elif isinstance(value, tuple):
            value = ",".join(value)
        rows.append(
            {
                "variable": config.env_name(option),
                "value": value,
                "source": settings.sources[option],
                "meaning": config.describe(option),
            }
        )
    standard = [
        name
        for name in sorted(os.environ)
        if name.startswith("OTEL_") and not name.startswith(config.PREFIX) and "HEADERS" not in name
    ]
    if args.json:
        print(json.dumps({"faultspan": rows, "opentelemetry": {name: os.environ[name] for name in standard}}))
        return 0
    width = max(len(row["variable"]) for row in rows)
    for row in rows:
        print(f"{row['variable']:<{width}}  {row['value']!s:<12}  {row['source']:<10}  {row['meaning']}")
    if standard:
        print()
        for name in standard:
            print(f"{name:<{width}}  {os.environ[name]}")
    return 0


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


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
        print("\n".join(view.render(document, colour=_colour())))
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
    for line in view.table(rows, colour=_colour()):
        print(line)
    return 0 if all(packages) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faultspan", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    show_config = verbs.add_parser(
        "config", help="print the effective configuration and where each value came from"
    )
    show_config.add_argument("--json", action="store_true", help="machine-readable output")
    show_config.set_defaults(run=_config)
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
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("faultspan: interrupted", file=sys.stderr)
        return 130
