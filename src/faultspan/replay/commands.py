"""The replay verb: ``faultspan replay PKG --allow-code-execution``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faultspan._capture import config

_CONSENT = "--allow-code-execution"
_DEFAULT_MAX_LINES = 5000  # faultspan.replay.lines.DEFAULT_LIMIT, without importing it at start-up


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _replay(args: argparse.Namespace) -> int:
    if not args.allow_code_execution:
        print(
            f"{args.package}: not replayed: replay imports and runs the code the package names; "
            f"pass {_CONSENT} if you trust it",
            file=sys.stderr,
        )
        return 2
    from faultspan.replay import runner

    settings = config.load()
    output = Path(args.output or settings.package_dir)
    try:
        package = runner.check(Path(args.package), settings)
        outcome = runner.run(package, output=output, record_lines=args.record_lines, max_lines=args.max_lines)
    except runner.Refused as error:
        print(f"{args.package}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(outcome.as_json(), indent=2))
    else:
        original = outcome.original
        print(f"original:  {original['type']}: {original['message']} [{original['fingerprint'][:12]}]")
        if outcome.replay is not None:
            replayed = outcome.replay
            print(f"replayed:  {replayed['type']}: {replayed['message']} [{replayed['fingerprint'][:12]}]")
        print(outcome.verdict)
        if outcome.package is not None:
            print(f"package:   {outcome.package}")
        if outcome.recording is not None:
            recorded = outcome.recording
            cut = f" (truncated at {recorded['limit']})" if recorded["truncated"] else ""
            print(f"recorded:  {len(recorded['lines'])} lines{cut}")
    return 0 if outcome.verdict == runner.REPRODUCED else 1


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    replay = verbs.add_parser(
        "replay",
        help="call a replayable package's function again with its recorded arguments (runs code: needs "
        f"{_CONSENT}); exit 0 only when the failure reproduces",
    )
    replay.add_argument("package", metavar="PKG")
    replay.add_argument(
        _CONSENT, action="store_true", help="consent to importing and running the code the package names"
    )
    replay.add_argument(
        "--output",
        metavar="DIR",
        help="where the replay's own package goes (default: the package directory setting)",
    )
    replay.add_argument(
        "--record-lines", action="store_true", help="record every in-app line executed, with changed locals"
    )
    replay.add_argument(
        "--max-lines",
        type=_positive,
        default=_DEFAULT_MAX_LINES,
        metavar="N",
        help=f"lines kept by --record-lines (default {_DEFAULT_MAX_LINES})",
    )
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(run=_replay)
