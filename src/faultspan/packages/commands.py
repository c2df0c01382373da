"""The replay-package verbs: show, verify, list, groups, compare.

Only light modules load with the CLI; the package code (protobuf, the OTLP encoder) loads when a verb runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultspan._capture import config

if TYPE_CHECKING:
    from faultspan.packages.catalog import Entry, Filters
    from faultspan.packages.format import Package


def _emit(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def _emit_json(document: Any) -> None:
    _emit([json.dumps(document, indent=2)])


def checked(path: Path | str) -> Package | None:
    """The verified package, or None after printing the one-line reason."""
    from faultspan.packages.format import PackageError, read_package

    try:
        return read_package(Path(path))
    except PackageError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return None


_HEX = re.compile(r"[0-9a-f]+")


class NotFound(Exception):
    """The argument names no package; ``str()`` is the one-line reason, ``status`` the exit status."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


def locate(argument: str) -> Path:
    """The package an argument means: a path, a file name as ``list`` prints it (in the package directory),
    or the start of a fingerprint (the newest package of that group there); else ``NotFound``."""
    path = Path(argument)
    directory = Path(config.load().package_dir)
    if path.exists() or path.name != argument:
        return path
    if (directory / argument).is_file():
        return directory / argument
    prefix = argument.lower()
    if _HEX.fullmatch(prefix) and directory.is_dir():
        from faultspan.packages.catalog import Entry, scan

        entries = [entry for _, entry in scan(directory) if isinstance(entry, Entry)]
        matching = [entry for entry in entries if entry.manifest["fingerprint"].startswith(prefix)]
        fingerprints = sorted({entry.manifest["fingerprint"] for entry in matching})
        if len(fingerprints) > 1:
            shown = ", ".join(fingerprint[:12] for fingerprint in fingerprints[:5])
            more = ", ..." if len(fingerprints) > 5 else ""
            raise NotFound(f"{argument}: the start of {len(fingerprints)} fingerprints ({shown}{more})", 2)
        if matching:
            return max(matching, key=Entry.order).path
    raise NotFound(f"{argument}: no such file, and no package of that name or fingerprint in {directory}", 1)


def located(argument: str) -> tuple[Path, Package] | int:
    """The located, verified package; else the exit status after printing the one-line reason."""
    try:
        path = locate(argument)
    except NotFound as error:
        print(error, file=sys.stderr)
        return error.status
    package = checked(path)
    return 1 if package is None else (path, package)


def _verify(args: argparse.Namespace) -> int:
    results = [checked(path) for path in args.packages]
    return 0 if all(results) else 1


def _show(args: argparse.Namespace) -> int:
    found = located(args.package)
    if isinstance(found, int):
        return found
    from faultspan.packages import view

    document = view.document(found[1])
    if args.json:
        _emit_json(document)
    else:
        width, shade = view.terminal_width(), view.use_colour()
        _emit(view.render(document, width=width, colour=shade, all_frames=args.all_frames))
    return 0


def _filters(args: argparse.Namespace) -> Filters:
    """The filter options; ValueError naming the option for a time that does not parse."""
    from faultspan.packages.catalog import Filters, parse_time

    now = datetime.now(timezone.utc)
    bounds: dict[str, datetime | None] = {}
    for option in ("since", "until"):
        text = getattr(args, option)
        try:
            bounds[option] = None if text is None else parse_time(text, now)
        except ValueError as error:
            raise ValueError(f"--{option}: {error}") from None
    return Filters(service=args.service, fingerprint=args.fingerprint, **bounds)


def _entries(directory: Path, filters: Filters) -> tuple[list[Entry], bool]:
    """The packages passing the filters, and whether every file verified (the others are reported)."""
    from faultspan.packages.catalog import Entry, scan

    entries, clean = [], True
    for path, result in scan(directory):
        if isinstance(result, Entry):
            if filters.keep(result):
                entries.append(result)
        else:
            print(f"{path}: {result}", file=sys.stderr)
            clean = False
    return entries, clean


def _catalog_verb(args: argparse.Namespace) -> int:
    """``list`` and ``groups``: the bad files on stderr while the good ones print."""
    from faultspan.packages import catalog, view

    try:
        filters = _filters(args)
    except ValueError as error:
        print(f"faultspan {args.verb}: {error}", file=sys.stderr)
        return 2
    directory = Path(args.directory or config.load().package_dir)
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 1
    entries, clean = _entries(directory, filters)
    rows = catalog.listing(entries) if args.verb == "list" else catalog.groups(entries, args.by)
    if args.json:
        _emit_json(rows)
    else:
        table = view.list_table if args.verb == "list" else view.groups_table
        _emit(table(rows, width=view.terminal_width(), colour=view.use_colour()))
    return 0 if clean else 1


def _compare(args: argparse.Namespace) -> int:
    first, second = located(args.a), located(args.b)
    if isinstance(first, int) or isinstance(second, int):
        return max(status for status in (first, second) if isinstance(status, int))
    from faultspan.packages import compare, view

    document = compare.compare(first, second)
    if args.json:
        _emit_json(document)
    else:
        _emit(compare.render(document, width=view.terminal_width(), colour=view.use_colour()))
    return 0 if document["same_failure"] else 1


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    verify = verbs.add_parser("verify", help="check replay packages: archive safety, manifest, every hash")
    verify.add_argument("packages", nargs="+", metavar="PKG")
    verify.set_defaults(run=_verify)

    show = verbs.add_parser(
        "show",
        help="a replay package: exception chain, request, breadcrumbs, span tree, runtime",
        description="Print a package: the exception chain with source lines and locals, the HTTP request, "
        "the breadcrumbs and the span tree. PKG is a path, a file name as 'faultspan list' prints it, or "
        "the start of a fingerprint (the newest package of that group), both looked up in the package "
        "directory.",
    )
    show.add_argument("package", metavar="PKG", help="a path, a name from 'faultspan list', or a fingerprint")
    show.add_argument(
        "--all-frames",
        action="store_true",
        help="every captured frame: library frames and repeated frames too",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=_show)

    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help="the package directory (default: OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR, else ./.faultspan/)",
    )
    selection.add_argument("--service", metavar="S", help="only packages of this service")
    selection.add_argument("--fingerprint", metavar="PREFIX", help="only fingerprints starting with PREFIX")
    for option, edge in (("since", "after"), ("until", "before")):
        selection.add_argument(
            f"--{option}",
            metavar="T",
            help=f"only failures seen at or {edge} T: ISO 8601 (UTC unless an offset is given) "
            "or a time ago such as 30m, 2h, 7d",
        )
    selection.add_argument("--json", action="store_true", help="machine-readable output")
    listing = verbs.add_parser("list", parents=[selection], help="a table of packages, oldest first")
    listing.set_defaults(run=_catalog_verb)
    groups = verbs.add_parser(
        "groups", parents=[selection], help="one row per fingerprint, the most recently seen first"
    )
    groups.add_argument(
        "--by",
        choices=("fingerprint", "path"),
        default="fingerprint",
        help="the key: fingerprint (the root cause, default) or path (also split by the in-app call path)",
    )
    groups.set_defaults(run=_catalog_verb)

    compare = verbs.add_parser(
        "compare",
        help="same failure or not (exit 0 or 1), and what differs: message, frames, locals, runtime",
    )
    compare.add_argument("a", metavar="A", help="a package: a path, a name or a fingerprint, as for show")
    compare.add_argument("b", metavar="B")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(run=_compare)
