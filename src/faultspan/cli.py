"""The ``faultspan`` command (also ``python -m faultspan``)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from faultspan._capture import config

# Each area adds its own verbs; their modules import only argparse at load time, so `faultspan config` does
# not pay for protobuf and the OTLP encoder (~140 ms).
_VERB_MODULES = (
    "faultspan.packages.commands",
    "faultspan.replay.commands",
    "faultspan.report.commands",
    "faultspan.delivery.commands",
    "faultspan.delivery.push",
)


def _config(args: argparse.Namespace) -> int:
    report = config.report()
    if args.json:
        print(json.dumps(report))
        return 0
    rows = report["faultspan"]
    width = max(len(row["variable"]) for row in rows)
    for row in rows:
        print(f"{row['variable']:<{width}}  {row['value']!s:<12}  {row['source']:<10}  {row['meaning']}")
        for rejected in row["rejected"]:
            print(f"{'':<{width}}  ^ rejected {rejected['given']!r}: {rejected['reason']}")
    for unknown in report["unknown"]:
        hint = f"; did you mean {unknown['suggestion']}?" if unknown["suggestion"] else ""
        print(f"{unknown['variable']:<{width}}  not a faultspan variable, ignored{hint}")
    if report["opentelemetry"]:
        print()
        for name, value in report["opentelemetry"].items():
            problem = report["opentelemetry_rejected"].get(name)
            print(f"{name:<{width}}  {value}" + (f"  ^ rejected: {problem}" if problem else ""))
    return 0


class _Version(argparse.Action):
    """``--version``; the installed distribution's metadata is read (and importlib.metadata imported) only
    when asked."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from importlib.metadata import version

        print(f"faultspan {version('faultspan')}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="faultspan",
        description="Read, check, compare and re-send the failure packages that faultspan writes.",
        epilog="Run 'faultspan VERB --help' for the options of a verb. Exit status: 0 success, "
        "1 a check failed, 2 usage error.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    show_config = verbs.add_parser(
        "config", help="print the effective configuration and where each value came from"
    )
    show_config.add_argument("--json", action="store_true", help="machine-readable output")
    show_config.set_defaults(run=_config)
    for module in _VERB_MODULES:
        importlib.import_module(module).add_parsers(verbs)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = int(args.run(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): the rest goes to /dev/null, and the exit flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except KeyboardInterrupt:
        print("faultspan: interrupted", file=sys.stderr)
        return 130
    except config.ConfigError as err:  # strict mode: a rejected setting stops the verb, in one line
        print(f"faultspan: {err}", file=sys.stderr)
        return 2
    return status
