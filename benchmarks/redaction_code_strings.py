"""Look-alikes at scale: the string literals of the installed Python packages, through the redactor.

    python benchmarks/redaction_code_strings.py [--limit N] [--show K]

Source code is full of what redaction must leave alone: identifiers in camelCase and with acronyms
(``TokenVerificationSdJwtMissingIat``), format strings, regular expressions, paths, URLs, docstrings about
passwords and tokens. The string literals (6-300 characters) of every module in this environment's
``site-packages`` (test directories skipped) are scrubbed as exception-message text; the figure is how many
come out altered. A few are real test keys of those packages, so the figure is an upper bound of false
positives; ``--show`` lists a sample of the altered ones to read.
"""

from __future__ import annotations

import argparse
import ast
import random
import sysconfig
from pathlib import Path

from faultspan._capture.redaction import Redactor


def literals(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if {"test", "tests"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        found.extend(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and 6 <= len(node.value) <= 300
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, default=150_000, help="strings drawn (seeded), default 150000")
    parser.add_argument("--show", type=int, default=0, help="list this many altered strings")
    args = parser.parse_args()
    strings = literals(Path(sysconfig.get_paths()["purelib"]))
    random.Random(1).shuffle(strings)
    strings = strings[: args.limit]
    redactor = Redactor()
    altered = [text for text in strings if redactor.scrub_text(text) != text]
    print(f"code strings altered {len(altered)}/{len(strings)} {len(altered) / max(1, len(strings)):.2%}")
    for text in altered[: args.show]:
        print(f"  {text[:100]!r} -> {redactor.scrub_text(text)[:100]!r}")


if __name__ == "__main__":
    main()
