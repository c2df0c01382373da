"""Leaks of the redactor on a third scanner's test data: the examples in Nosey Parker's rule files.

    git clone --depth 1 https://github.com/praetorian-inc/noseyparker /tmp/noseyparker
    python benchmarks/redaction_noseyparker.py /tmp/noseyparker [--misses]

Nothing of Nosey Parker is copied here: its rules are read from a checkout at run time. Each rule's
``examples`` are secrets in context; the secret is the rule's last non-empty capture group (the password
after a user name), found with the rule's own pattern. Each is planted in the channels of
``redaction_eval.py`` (an attribute under a neutral key, an exception message, ``KEY=value`` prose with the
key the example names, a JSON attribute) and, as ``whole``, the example text itself is scrubbed. Only the
rules of Nosey Parker's default ruleset count (the others find public ids, bucket names and hashes). Its
``negative_examples`` mean "this rule must not fire", not "this is no secret", so they are reported apart.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from redaction_eval import Case, key_before, scanner_main, scanner_regex

# Rules whose last group is not the secret: (user, password, host) URLs
_SECRET_GROUP = {"np.mongodb.1": 2, "np.postgres.1": 2}


def load(root: Path) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    """(rule id, example, secret, key name) for the default ruleset's examples; (rule id, text) negatives."""
    rules_dir = next(root.glob("**/data/default/builtin/rules"), None) or root
    default: set[str] = set()
    for path in rules_dir.parent.glob("**/rulesets/*.yml"):
        for ruleset in yaml.safe_load(path.read_text()).get("rulesets", []):
            if ruleset["id"] == "default":
                default |= set(ruleset.get("include_rule_ids", []))
    secrets: list[tuple[str, str, str, str]] = []
    negatives: list[tuple[str, str]] = []
    for path in sorted(rules_dir.glob("*.yml")):
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            pattern = scanner_regex(rule["pattern"])
            if pattern is None or (default and rule["id"] not in default):
                continue
            for example in rule.get("examples") or []:
                match = pattern.search(example)
                if match is None:
                    continue
                group = _SECRET_GROUP.get(rule["id"]) or max(
                    (i for i, g in enumerate(match.groups(), 1) if g), default=0
                )
                secret = match[group]
                secrets.append((rule["id"], example, secret, key_before(example, match.start(group))))
            negatives.extend((rule["id"], text) for text in rule.get("negative_examples") or [])
    return secrets, negatives


def _load(root: Path) -> tuple[list[Case], list[str], list[str]]:
    secrets, negatives = load(root)
    return secrets, [text for _, text in negatives], []


def main() -> None:
    near_misses = "rule-specific: many are credentials"
    scanner_main(__doc__ or "", "noseyparker", "praetorian-inc/noseyparker", _load, near_misses)


if __name__ == "__main__":
    main()
