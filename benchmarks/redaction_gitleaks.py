"""Leaks of the redactor on gitleaks' own rule tests: the true and false positives its rule generator checks.

    git clone https://github.com/gitleaks/gitleaks /tmp/gitleaks
    python benchmarks/redaction_gitleaks.py /tmp/gitleaks [--misses]

Nothing of gitleaks is copied here: its Go rule files (``cmd/generate/config/rules/*.go``) and the helpers
they call (``cmd/generate/config/utils/*.go``) are read from a checkout at run time. Each rule function
hands ``utils.Validate(r, tps, fps)`` its examples; they are evaluated with the Go subset of
``redaction_trufflehog.py`` plus what the rule files use: ``secrets.NewSecret(regex)`` draws a random string
matching the regex (seeded per file, so runs repeat), the ``utils`` helpers (``AlphaNumeric("20")``, the
sample templates of ``GenerateSampleSecret(s)``, the regex builders) are evaluated from their Go source,
``append``, slices, maps and local variables. The secret of a sample made by ``GenerateSampleSecret(s)`` is
the value handed to it; that of any other example is the rule's secret group, found with the rule's own
regex. What cannot be evaluated is skipped and counted by reason. Each secret is planted in the channels of
``redaction_eval.py`` and, as ``whole``, the example is scrubbed as it is. The ``fps`` are the examples a
rule must not fire on, many of them look-alikes of a credential, so they are reported apart, as the share
altered.
"""

from __future__ import annotations

import base64
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redaction_eval import Case, key_before, scanner_main, scanner_regex
from redaction_trufflehog import Parser, Token, Unparsed, Value, tokens

try:
    from re import _parser as sre  # type: ignore[attr-defined]  # Python 3.11 and later
except ImportError:  # Python 3.10
    import sre_parse as sre

_GO = "Go outside the evaluated subset"
_UNGENERATED = "NewSecret regex not generated"
_NO_RULE = "rule regex not evaluated"
_NO_PYTHON = "rule regex not compiled by Python re"
_NO_MATCH = "rule regex does not match"
_EMPTY = "empty example (a path test)"
_FAILED = (Unparsed, IndexError, KeyError, ValueError)
_PRINTABLE = [chr(code) for code in range(32, 127)]
_CATEGORY: dict[object, Callable[[str], bool]] = {
    sre.CATEGORY_DIGIT: lambda char: "0" <= char <= "9",
    sre.CATEGORY_WORD: lambda char: char.isascii() and (char.isalnum() or char == "_"),
    sre.CATEGORY_SPACE: lambda char: char in " \t\n\r\f\v",
}
_CATEGORY |= {
    sre.CATEGORY_NOT_DIGIT: lambda char: not _CATEGORY[sre.CATEGORY_DIGIT](char),
    sre.CATEGORY_NOT_WORD: lambda char: not _CATEGORY[sre.CATEGORY_WORD](char),
    sre.CATEGORY_NOT_SPACE: lambda char: not _CATEGORY[sre.CATEGORY_SPACE](char),
}
_UNBOUNDED_EXTRA = 8  # ``x+``, ``x{100,}``: up to 8 more than the minimum
_ENCODING = {"StdEncoding": base64.b64encode, "URLEncoding": base64.urlsafe_b64encode}
_TEMPLATE_FIELD = re.compile(r"\{[iIs]\}")


class _Skip(Unparsed):
    """An example left out, for a reason counted apart."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(error: Exception) -> str:
    return error.reason if isinstance(error, _Skip) else _GO


def _class(items: list[tuple[Any, Any]]) -> list[str]:
    """The characters a class ``[...]`` takes among printable ASCII and its own literals."""
    negate = bool(items) and items[0][0] == sre.NEGATE
    items = items[1:] if negate else items

    def member(char: str) -> bool:
        for op, arg in items:
            if op == sre.LITERAL and chr(arg) == char:
                return True
            if op == sre.RANGE and arg[0] <= ord(char) <= arg[1]:
                return True
            if op == sre.CATEGORY and _CATEGORY[arg](char):
                return True
        return False

    own = [chr(arg) for op, arg in items if op == sre.LITERAL]
    pool = [char for char in dict.fromkeys(_PRINTABLE + own) if member(char) != negate]
    if not pool:
        raise _Skip(_UNGENERATED)
    return pool


def _emit(tree: sre.SubPattern, rng: random.Random, out: list[str]) -> None:
    for op, arg in tree:
        if op == sre.LITERAL:
            out.append(chr(arg))
        elif op == sre.NOT_LITERAL:
            out.append(rng.choice([char for char in _PRINTABLE if ord(char) != arg]))
        elif op == sre.ANY:
            out.append(rng.choice(_PRINTABLE))
        elif op == sre.IN:
            out.append(rng.choice(_class(arg)))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, sub = arg
            high = low + _UNBOUNDED_EXTRA if high == sre.MAXREPEAT else high
            for _ in range(rng.randint(low, high)):
                _emit(sub, rng, out)
        elif op == sre.BRANCH:
            _emit(rng.choice(arg[1]), rng, out)
        elif op == sre.SUBPATTERN:
            _emit(arg[-1], rng, out)
        elif op != sre.AT:  # anchors and word boundaries take no text
            raise _Skip(_UNGENERATED)


def _generate(pattern: str, rng: random.Random) -> str:
    """A random string matching an RE2 pattern, as gitleaks' ``secrets.NewSecret`` makes one."""
    compiled = scanner_regex(pattern)
    if compiled is None:
        raise _Skip(_UNGENERATED)
    out: list[str] = []
    _emit(sre.parse(compiled.pattern, compiled.flags), rng, out)
    return "".join(out)


@dataclass
class _Utils:
    """What the rule files call in ``cmd/generate/config/utils``, read from its Go source."""

    helpers: dict[str, tuple[list[Token], int, list[str]]]  # func name -> (tokens, its return at, params)
    consts: dict[str, str]  # the regex fragments the regex builders join
    templates: list[str]  # GenerateSampleSecrets' samples, with {i} {I} {s}


def _utils(directory: Path) -> _Utils:
    found = _Utils({}, {}, [])
    for path in sorted(directory.glob("*.go")):
        toks = tokens(path.read_text())
        texts = [text for _, text in toks]
        for at, (kind, text) in enumerate(toks):
            after = texts[at + 1 : at + 3]
            if text == "func" and after[1:] == ["("]:
                close = texts.index(")", at)
                params = [t for k, t in toks[at + 3 : close] if k == "name" and t != "string"]
                if texts[close + 1 : close + 4] == ["string", "{", "return"]:
                    found.helpers[after[0]] = (toks, close + 4, params)
            elif kind == "name" and after[:1] == ["="]:
                with_value = Parser(toks, {})
                with_value.pos = at + 2
                try:
                    found.consts[text] = with_value.string()
                except _FAILED:
                    continue
            elif text == "samples" and after[:1] == [":="]:
                samples = Parser(toks, {})
                samples.pos = texts.index("{", at) + 1
                while samples.peek() not in ("}", ""):
                    samples.string()
                    samples.take(":")
                    found.templates.append(samples.string())
                    samples.pos += samples.peek() == ","
    return found


@dataclass
class _Rule:
    rule_id: str
    regex: str | None
    secret_group: int


# (rule, true positives, false positives, skipped true positives by reason, skipped false positives)
Validated = tuple[_Rule | None, list[str], list[str], Counter[str], Counter[str]]


class _Go(Parser):
    """The Go of a rule file: the trufflehog subset plus gitleaks' generators, helpers and slices."""

    def __init__(self, toks: list[Token], utils: _Utils, rng: random.Random) -> None:
        super().__init__(toks, {})
        self.utils, self.rng = utils, rng
        self.known: dict[str, str] = {}  # a sample of GenerateSampleSecret(s) -> the secret in it
        self.rules: dict[str, _Rule] = {}
        self.skips: Counter[str] = Counter()  # examples left out while evaluating the current statement
        self.carried: dict[str, Counter[str]] = {}  # those left out of a variable's value

    def term(self) -> Value:
        kind, text = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        name = text.removesuffix("...")  # ``tps...`` reads as one name
        if kind == "name" and name in self.env:
            self.pos += 1
            self.skips.update(self.carried.get(name, Counter()))
            return self.env[name]
        if text == "append" or (text == "[" and self.peek(1) == "]" and self.peek(2) == "string"):
            self.pos += 1 if text == "append" else 3
            self.take("(" if text == "append" else "{")
            head = self.value() if text == "append" else []
            found = [head] if isinstance(head, str) else list(head)
            self.pos += self.peek() == ","
            found += self.elements(")" if text == "append" else "}")
            self.pos += 1
            return found
        if text == "map" and self.peek(1) == "[":
            self.pos = self.tokens.index(("op", "{"), self.pos) + 1
            found = self.elements("}", keyed=True)
            self.pos += 1
            return found
        if text in ("true", "false"):
            self.pos += 1
            return text
        if text.startswith(("utils.", "secrets.", "regexp.", "newPlausibleSecret")) or text.endswith(
            "Encoding.EncodeToString"
        ):
            self.pos += 1
            return self.call(text.split(".", 1)[-1])
        return super().term()

    def call(self, function: str) -> str | list[str]:
        if function == "GenerateSemiGenericRegex":
            self.take("(")
            identifiers = self.value()
            self.take(",")
            secret, insensitive = self.last_two_arguments()
            return self.semi_generic(
                [identifiers] if isinstance(identifiers, str) else identifiers, secret, insensitive
            )
        if self.peek(1) == ")":  # ``Hex8_4_4_4_12()``
            self.pos += 2
            args: list[str] = []
        else:
            args = self.arguments()
        if function == "GenerateSampleSecrets":
            identifier, secret = args
            fields = {"{i}": identifier, "{I}": identifier.upper(), "{s}": secret}
            samples = [_TEMPLATE_FIELD.sub(lambda f: fields[f[0]], t) for t in self.utils.templates] or [
                self.helper("GenerateSampleSecret", args)
            ]
            self.known.update(dict.fromkeys(samples, secret))
            return samples
        if function in ("NewSecret", "newPlausibleSecret"):
            (regex,) = args
            made = _generate(regex, self.rng)
            # newPlausibleSecret draws again until a digit 1-9 is in (gitleaks' stop words left aside)
            while function == "newPlausibleSecret" and not re.search("[1-9]", made):
                made = _generate(regex, self.rng)
            return made
        if function == "MustCompile":
            (regex,) = args
            return regex
        if function == "MergeRegexps":
            return "|".join(args)
        if function == "GenerateUniqueTokenRegex":
            secret, insensitive = args
            consts = self.utils.consts
            head = consts["caseInsensitive"] if insensitive == "true" else ""
            return head + consts["secretPrefixUnique"] + secret + consts["secretSuffix"]
        if function.endswith("Encoding.EncodeToString"):
            encoding = function.split(".")[-2]
            (data,) = args
            encoded = _ENCODING[encoding.removeprefix("Raw")](data.encode()).decode()
            return encoded.rstrip("=") if encoding.startswith("Raw") else encoded
        made = self.helper(function, args)
        if function == "GenerateSampleSecret":
            self.known[made] = args[1]
        return made

    def last_two_arguments(self) -> tuple[str, str]:
        """The two string arguments ending a call: ``secret, bool)``."""
        first = self.string()
        self.take(",")
        second = self.string()
        self.pos += self.peek() == ","
        self.take(")")
        return first, second

    def helper(self, function: str, args: list[str]) -> str:
        toks, start, params = self.utils.helpers[function]
        if len(params) != len(args):
            raise Unparsed(f"{function}: {len(args)} arguments for {len(params)}")
        body = Parser(toks, dict(zip(params, args, strict=True)))
        body.pos = start
        return body.string()

    def semi_generic(self, identifiers: list[str], secret: str, insensitive: str) -> str:
        """``GenerateSemiGenericRegex``: an identifier, an assignment operator, the secret in a boundary."""
        consts = self.utils.consts
        names = consts["identifierPrefix"] + "|".join(identifiers) + consts["identifierSuffix"]
        head = (
            consts["caseInsensitive"] + names
            if insensitive == "true"
            else consts["identifierCaseInsensitivePrefix"] + names + consts["identifierCaseInsensitiveSuffix"]
        )
        return head + consts["operator"] + consts["secretPrefix"] + secret + consts["secretSuffix"]

    def value(self) -> Value:
        """One expression: a string, or a slice (``tps``, ``GenerateSampleSecrets(...)...``)."""
        parts = self.terms()
        while self.peek() == ".":  # the spread ``...`` after a call
            self.pos += 1
        if len(parts) == 1:
            return parts[0]
        if not all(isinstance(part, str) for part in parts):
            raise Unparsed("a slice where a string belongs")
        return "".join(str(part) for part in parts)

    def elements(self, close: str, keyed: bool = False) -> list[str]:
        """The strings of a slice literal or of ``append``'s arguments (a map's values when ``keyed``): an
        element that cannot be evaluated is left out and counted."""
        found: list[str] = []
        while self.peek() not in (close, ""):
            start = self.pos
            try:
                if keyed:
                    self.string()
                    self.take(":")
                item = self.value()
                if self.peek() not in (",", close):
                    raise Unparsed(f"unexpected {self.peek()!r}")
                found += [item] if isinstance(item, str) else item
            except _FAILED as error:
                self.skips[_reason(error)] += 1
                self.pos = start
                self.skip_element(close)
            self.pos += self.peek() == ","
        return found

    def skip_element(self, close: str) -> None:
        depth = 0
        while self.pos < len(self.tokens) and (depth or self.peek() not in (",", close)):
            depth += (self.peek() in ("(", "{", "[")) - (self.peek() in (")", "}", "]"))
            self.pos += 1

    def rule(self) -> _Rule:
        """A ``config.Rule{...}`` literal: its id, regex and secret group."""
        self.pos += 1
        self.take("{")
        fields: dict[str, str] = {}
        while self.peek() not in ("}", ""):
            field = self.peek()
            self.pos += 1
            self.take(":")
            start = self.pos
            try:
                item = self.value()
                if isinstance(item, str) and self.peek() in (",", "}"):
                    fields[field] = item
                else:
                    raise Unparsed(f"field {field}")
            except _FAILED:
                self.pos = start
                self.skip_element("}")
            self.pos += self.peek() == ","
        self.take("}")
        return _Rule(fields.get("RuleID", ""), fields.get("Regex"), int(fields.get("SecretGroup", "0")))

    def assign(self, name: str) -> None:
        start = self.pos
        self.skips = Counter()
        try:
            self.pos += self.peek() == "&"
            if self.peek() == "config.Rule":
                self.rules[name] = self.rule()
                return
            self.env[name] = self.value()
            self.carried[name] = self.skips
        except _FAILED:
            self.pos = start
            self.env.pop(name, None)
            self.rules.pop(name, None)

    def argument(self, close: str) -> tuple[list[str], Counter[str]]:
        """One slice argument of ``Validate`` and what was left out of it."""
        start = self.pos
        self.skips = Counter()
        try:
            found = self.value()
            if self.peek() not in (",", close):
                raise Unparsed(f"unexpected {self.peek()!r}")
        except _FAILED as error:
            self.pos = start
            self.skip_element(close)
            return [], Counter([_reason(error)])
        return ([found] if isinstance(found, str) else found), self.skips

    def validations(self) -> Iterator[Validated]:
        """Each ``utils.Validate(r, tps, fps)`` of the file, with the variables assigned before it."""
        while self.pos < len(self.tokens):
            kind, text = self.tokens[self.pos]
            if text in ("utils.Validate", "utils.ValidateWithPaths") and self.peek(1) == "(":
                self.pos += 2
                rule = self.rules.get(self.peek())
                self.pos += 1
                self.take(",")
                tps, tp_skips = self.argument(",")
                self.take(",")
                fps, fp_skips = self.argument(")")
                yield rule, tps, fps, tp_skips, fp_skips
                continue
            self.pos += 1
            if kind == "name" and self.peek() in ("=", ":=") and self.peek(1) != "=":
                self.pos += 1
                self.assign(text)


def _secret(rule: _Rule, text: str) -> tuple[str, int] | str:
    """The secret group of the rule's regex on an example and where it starts, or why there is none."""
    compiled = scanner_regex(rule.regex) if rule.regex is not None else None
    if compiled is None:
        return _NO_RULE if rule.regex is None else _NO_PYTHON
    match = compiled.search(text)
    groups = match.groups() if match else ()
    group = rule.secret_group or next((i for i, found in enumerate(groups, 1) if found), 0)
    if match is None or group > len(groups) or not match[group]:
        return _NO_MATCH
    secret, start = match[group], match.start(group)
    if len(secret) > 2 and secret[0] == secret[-1] and secret[0] in "\"'`":  # a group that takes the quotes
        return secret[1:-1], start + 1
    return secret, start


def load(root: Path) -> tuple[list[Case], list[tuple[str, str]], Counter[str], Counter[str]]:
    """(rule id, example, secret, key name) per secret of each distinct true positive; (rule id, text) of
    the false positives; the true and the false positives skipped, by reason."""
    generate = root / "cmd" / "generate"
    utils = _utils(generate / "config" / "utils")
    cases: dict[tuple[str, str, str], str] = {}
    negatives: dict[tuple[str, str], None] = {}
    tp_skipped: Counter[str] = Counter()
    fp_skipped: Counter[str] = Counter()
    for path in sorted((generate / "config" / "rules").glob("*.go")):
        parser = _Go(tokens(path.read_text()), utils, random.Random(f"gitleaks {path.name}"))
        for rule, tps, fps, tp_skips, fp_skips in parser.validations():
            tp_skipped += tp_skips
            fp_skipped += fp_skips
            fp_skipped[_EMPTY] += fps.count("")
            rule_id = rule.rule_id if rule else path.stem
            negatives.update(dict.fromkeys((rule_id, text) for text in fps if text))
            for text in tps:
                known = parser.known.get(text)
                if known:
                    found: tuple[str, int] | str = known, text.index(known)
                else:
                    found = _secret(rule, text) if rule and text else _NO_RULE if text else _EMPTY
                if isinstance(found, str):
                    tp_skipped[found] += 1
                    continue
                secret, start = found
                cases[rule_id, text, secret] = key_before(text, start)
    return [(*k, v) for k, v in cases.items()], list(negatives), tp_skipped, fp_skipped


def _counts(skipped: Counter[str]) -> str:
    return f"{skipped.total()} (" + ", ".join(f"{reason} {n}" for reason, n in skipped.most_common()) + ")"


def _load(root: Path) -> tuple[list[Case], list[str], list[str]]:
    cases, negatives, tp_skipped, fp_skipped = load(root)
    note = (
        f"gitleaks examples skipped: true positives {_counts(tp_skipped)}, "
        f"false positives {_counts(fp_skipped)}"
    )
    return cases, [text for _, text in negatives], [note]


def main() -> None:
    near_misses = "gitleaks' own false positives: many are look-alikes"
    scanner_main(__doc__ or "", "gitleaks", "gitleaks/gitleaks", _load, near_misses)


if __name__ == "__main__":
    main()
