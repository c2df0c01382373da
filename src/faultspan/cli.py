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
    settings = config.load()
    rows = []
    for option in config.option_names():
        value = getattr(settings, option)
        if config.is_secret(option) and value:
            value = "[REDACTED]"
        elif callable(value):
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
    return status
