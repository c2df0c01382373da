"""Leaks of the redactor on a fourth scanner's test data: the examples in Kingfisher's rule files.

    git clone --depth 1 https://github.com/mongodb/kingfisher /tmp/kingfisher
    python benchmarks/redaction_kingfisher.py /tmp/kingfisher [--misses]

Kingfisher (MongoDB) keeps its rules in Nosey Parker's format, so ``redaction_noseyparker.py`` reads them: the
secret is each example's last non-empty capture group, planted in the same channels. All of its rules count.
Many of its examples are test values (``abcdef1234567890...``, the UUID ``123e4567-e89b-12d3-a456-...``)
that the redactor keeps where no key or word says "secret": the ``whole`` channel, the examples as written,
is the figure that compares with the other scanners'.
"""

from __future__ import annotations

from pathlib import Path

from redaction_eval import Case, scanner_main
from redaction_noseyparker import load


def _load(root: Path) -> tuple[list[Case], list[str], list[str]]:
    rules = root / "data" / "rules"
    secrets, negatives = load(rules if rules.is_dir() else root)
    return secrets, [text for _, text in negatives], []


def main() -> None:
    scanner_main(
        __doc__ or "", "kingfisher", "mongodb/kingfisher", _load, "rule-specific: many are credentials"
    )


if __name__ == "__main__":
    main()
