"""Look-alikes in real logs: the share of Loghub's log lines that the redactor alters.

    git clone --depth 1 https://github.com/logpai/loghub /tmp/loghub
    python benchmarks/redaction_loghub.py /tmp/loghub [--misses]

Loghub (logpai) keeps a 2,000-line sample of each of 16 systems' logs (HDFS, Hadoop, Spark, Zookeeper, BGL,
HPC, Thunderbird, Windows, Linux, Android, HealthApp, Apache, Proxifier, OpenSSH, OpenStack, Mac): block and
request ids, hex instance ids, hosts, paths, package names, user names, no credentials. The first 250
distinct lines of each are scrubbed as text (as an exception message or a breadcrumb would be); a line is
altered when the output differs. Nothing of Loghub is copied here: the samples are read from a checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faultspan._capture.redaction import Redactor

LINES_PER_SYSTEM = 250


def _lines(sample: Path) -> list[str]:
    seen: dict[str, None] = {}
    with sample.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.rstrip("\r\n")
            if text:
                seen.setdefault(text)
            if len(seen) == LINES_PER_SYSTEM:
                break
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("checkout", type=Path, help="a clone of logpai/loghub")
    parser.add_argument("--misses", action="store_true", help="list every altered line")
    args = parser.parse_args()
    samples = sorted(args.checkout.glob("*/*_2k.log"))
    if not samples:
        sys.exit(f"{args.checkout}: no */*_2k.log samples found there")
    redactor = Redactor()
    misses: list[str] = []
    altered_all = total_all = 0
    for sample in samples:
        lines = _lines(sample)
        altered = 0
        for text in lines:
            out = redactor.scrub_text(text)
            if out != text:
                altered += 1
                misses.append(f"altered {sample.parent.name}: {text[:150]!r}\n     -> {out[:150]!r}")
        altered_all += altered
        total_all += len(lines)
        share = 100 * altered / len(lines)
        print(f"{sample.parent.name:12} altered {altered:3d}/{len(lines)}  {share:5.1f}%")
    print(f"{'all':12} altered {altered_all:3d}/{total_all}  {100 * altered_all / total_all:5.2f}%")
    if args.misses:
        print("\n".join(misses))


if __name__ == "__main__":
    main()
