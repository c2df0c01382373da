"""Leaks of the redactor on a fourth scanner's test data: the pattern tests of TruffleHog's detectors.

    git clone --depth 1 https://github.com/trufflesecurity/trufflehog /tmp/trufflehog
    python benchmarks/redaction_trufflehog.py /tmp/trufflehog [--misses]

Nothing of TruffleHog is copied here: its Go test files (``pkg/detectors/**/*_test.go``) are read from a
checkout at run time. A test case is a composite literal with an ``input`` and a ``want`` field; both are
evaluated from the file's string literals, ``+``, ``fmt.Sprintf`` and the string variables assigned before
them (``validPattern``, ``keyword``, ...). The secrets of a case are the strings of its ``want`` that occur
verbatim in the input; a ``want`` that joins several values (``validKey + validSecret``, ``id:secret``,
a JSON object) gives the parts that occur. What cannot be evaluated is skipped and counted. Each secret is
planted in the channels of ``redaction_eval.py`` and, as ``whole``, the test's input is scrubbed as it is.
Inputs with an empty ``want`` are near misses of one detector's pattern, often credentials all the same,
so they are reported apart, as the share altered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from redaction_eval import Case, key_before, scanner_main

_TOKEN = re.compile(
    r"""(?P<skip>\s+|//[^\n]*|/\*.*?\*/)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)"""
    r"""|(?P<rune>'(?:[^'\\\n]|\\.)+')|(?P<name>[A-Za-z_][\w.]*)|(?P<num>\d[\w.]*)|(?P<op>:=|\S)""",
    re.S,
)
_ESCAPE = re.compile(
    r"""\\(?:([abfnrtv\\'"])|([0-7]{3})|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))"""
)
_SIMPLE = dict(zip("abfnrtv\\'\"", "\a\b\f\n\r\t\v\\'\"", strict=True))
_VERB = re.compile(r"%([%svqd])")
_OPEN, _CLOSE = "({[", ")}]"
# A want joins a secret with its id, user or host: among its parts, a host, URL or e-mail address, and a word
# (no digit, under 16 characters: "service_account", "PRIVATE" of a PEM line) is no secret.
_PLACE = re.compile(
    r"(?:https?://)?(?:[a-z0-9-]+\.)+[a-z]{2,12}(?::\d+)?(?:/[\w./%-]*)?|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I
)
_MIN_PART = 5
Value = str | list[str]
Token = tuple[str, str]


class Unparsed(Exception):
    """An expression outside the small subset of Go evaluated here."""


def tokens(source: str) -> list[Token]:
    found = ((m.lastgroup or "op", m[0]) for m in _TOKEN.finditer(source))
    return [(kind, text) for kind, text in found if kind != "skip"]


def _unquote(kind: str, text: str) -> str:
    if kind == "raw":
        return text[1:-1].replace("\r", "")
    return _ESCAPE.sub(
        lambda m: _SIMPLE[m[1]] if m[1] else chr(int(m[2], 8) if m[2] else int(m[3] or m[4] or m[5], 16)),
        text[1:-1],
    )


def _sprintf(template: str, args: list[str]) -> str:
    pending = iter(args)

    def verb(found: re.Match[str]) -> str:
        if found[1] == "%":
            return "%"
        arg = next(pending, None)
        if arg is None:
            raise Unparsed("Sprintf: too few arguments")
        return json.dumps(arg) if found[1] == "q" else arg

    if "%" in _VERB.sub("", template):
        raise Unparsed("Sprintf: a verb other than %s %v %q %d")
    return _VERB.sub(verb, template)


class Parser:
    def __init__(self, tokens: list[Token], env: dict[str, Value]) -> None:
        self.tokens, self.env, self.pos = tokens, env, 0

    def peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.tokens[at][1] if at < len(self.tokens) else ""

    def take(self, text: str) -> None:
        if self.peek() != text:
            raise Unparsed(f"expected {text!r}, found {self.peek()!r}")
        self.pos += 1

    def terms(self) -> list[Value]:
        """The values of one ``a + b + ...`` expression, each term apart."""
        found = [self.term()]
        while self.peek() == "+":
            self.pos += 1
            found.append(self.term())
        return found

    def string_terms(self) -> list[str]:
        parts = self.terms()
        if not all(isinstance(part, str) for part in parts):
            raise Unparsed("a slice where a string belongs")
        return [str(part) for part in parts]

    def string(self) -> str:
        return "".join(self.string_terms())

    def arguments(self) -> list[str]:
        self.take("(")
        args = [self.string()]
        while self.peek() == ",":
            self.pos += 1
            if self.peek() == ")":
                break
            args.append(self.string())
        self.take(")")
        return args

    def term(self) -> Value:
        kind, text = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        self.pos += 1
        if kind in ("str", "raw"):
            return _unquote(kind, text)
        if kind == "num":
            return text
        if text == "fmt.Sprintf":
            template, *args = self.arguments()
            return _sprintf(template, args)
        if text == "strings.TrimSpace":
            (inner,) = self.arguments()
            return inner.strip()
        if text == "string" or (text == "[" and self.peek() == "]" and self.peek(1) == "byte"):
            self.pos += 2 if text == "[" else 0
            (inner,) = self.arguments()
            return inner
        if text == "[" and self.peek() == "]" and self.peek(1) == "string":
            self.pos += 2
            return ["".join(terms) for terms in self.items()]
        if text == "nil":
            return []
        if kind == "name" and text in self.env:
            return self.env[text]
        raise Unparsed(f"cannot evaluate {text!r}")

    def items(self) -> list[list[str]]:
        """The ``+`` terms of each string of a ``{...}`` slice literal."""
        self.take("{")
        found: list[list[str]] = []
        while self.peek() != "}":
            found.append(self.string_terms())
            if self.peek() == ",":
                self.pos += 1
        self.take("}")
        return found


def _want_parts(parser: Parser) -> list[list[str]]:
    """Each ``want`` string with the parts it joins: its ``+`` terms or the values of a JSON object."""
    if parser.peek() == "[" and parser.peek(2) == "string":
        parser.pos += 3
        return [["".join(t), *(t if len(t) > 1 else _pieces(t[0]))] for t in parser.items()]
    value = parser.term()
    return [[item, *_pieces(item)] for item in ([value] if isinstance(value, str) else value)]


def _pieces(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return [str(item) for item in parsed.values()] if isinstance(parsed, dict) else []


def _cases(source: str) -> Iterator[tuple[str, list[list[str]]] | None]:
    """(input, want parts) per composite literal with both fields; None for one that cannot be evaluated."""
    parser = Parser(tokens(source), {})
    frames: list[dict[str, object]] = [{}]
    while parser.pos < len(parser.tokens):
        text, after = parser.peek(), parser.peek(1)
        if text in _OPEN:
            frames.append({})
        elif text in _CLOSE and len(frames) > 1:
            frame = frames.pop()
            if "input" in frame and "want" in frame:
                text_in, want = frame["input"], frame["want"]
                yield (text_in, want) if isinstance(text_in, str) and isinstance(want, list) else None
        if parser.tokens[parser.pos][0] == "name" and after in ("=", ":=", ":"):
            parser.pos += 2
            start = parser.pos
            try:
                if after == ":" and text in ("input", "want"):
                    frames[-1][text] = parser.string() if text == "input" else _want_parts(parser)
                elif after != ":":
                    parser.env[text] = parser.terms()[0] if parser.peek() == "[" else parser.string()
            except (Unparsed, IndexError, ValueError):
                if after == ":":
                    frames[-1][text] = None
                parser.pos = start
            continue
        parser.pos += 1


def _spans(text: str, joined: str) -> Iterator[str]:
    """The longest pieces of ``joined`` found in ``text``, left to right (a key and an id run together)."""
    for word in joined.split():
        start = 0
        while start <= len(word) - _MIN_PART:
            end = next((e for e in range(len(word), start + _MIN_PART - 1, -1) if word[start:e] in text), 0)
            if end:
                yield word[start:end].strip(":/.,;'\"@")
            start = end or start + 1


def _secret_part(part: str) -> bool:
    wordy = len(part) < 16 and not any(char.isdigit() for char in part)
    return len(part) >= _MIN_PART and not wordy and not _PLACE.fullmatch(part)


def _secrets(text: str, want: list[list[str]]) -> list[str]:
    found: list[str] = []
    for whole, *parts in want:
        if whole in text:
            found.append(whole)
            continue
        for part in parts or [whole]:
            found += filter(_secret_part, [part] if part in text else _spans(text, part))
    return list(dict.fromkeys(found))


def load(root: Path) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]], int]:
    """(detector, input, secret, key name) per secret of each distinct input; (detector, input) with an
    empty ``want``; the number of test cases skipped."""
    base = root / "pkg" / "detectors" if (root / "pkg" / "detectors").is_dir() else root
    secrets: dict[tuple[str, str, str], str] = {}
    negatives: dict[tuple[str, str], None] = {}
    skipped = 0
    for path in sorted(base.glob("**/*_test.go")):
        if path.name.endswith("_integration_test.go"):
            continue
        detector = str(path.parent.relative_to(base))
        for case in _cases(path.read_text(errors="replace")):
            if case is None:
                skipped += 1
                continue
            text, want = case
            found = _secrets(text, want)
            if not want:
                negatives[detector, text] = None
            elif not found:
                skipped += 1
            for secret in found:
                secrets[detector, text, secret] = key_before(text, text.index(secret))
    return [(*k, v) for k, v in secrets.items()], list(negatives), skipped


def _load(root: Path) -> tuple[list[Case], list[str], list[str]]:
    secrets, negatives, skipped = load(root)
    note = f"trufflehog test cases skipped (not evaluated, or no wanted string in the input): {skipped}"
    return secrets, [text for _, text in negatives], [note]


def main() -> None:
    near_misses = "near misses: many are credentials"
    scanner_main(__doc__ or "", "trufflehog", "trufflesecurity/trufflehog", _load, near_misses)


if __name__ == "__main__":
    main()
