"""Grouping keys for exceptions: the same bug gets the same fingerprint, different bugs get different ones.

Pure and dependency-free. docs/fingerprints.md is the specification: what goes into the canonical text, the
normalization table and the versioning policy. Any change to the canonical text of ``fingerprint`` changes
every key in the field, so it must come with a new ``_VERSION`` and a documented migration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = [
    "ExceptionKey",
    "FrameKey",
    "custom_fingerprint",
    "fingerprint",
    "is_in_app",
    "normalize_message",
    "parse_stacktrace",
]

_VERSION = "fs1"
_CUSTOM_VERSION = "fs1-custom"


@dataclass(frozen=True, slots=True)
class FrameKey:
    module: str
    function: str
    context_line: str | None
    in_app: bool


@dataclass(frozen=True, slots=True)
class ExceptionKey:
    type: str
    message: str
    frames: tuple[FrameKey, ...]
    children: tuple[ExceptionKey, ...] = ()


# --- message normalization -------------------------------------------------------------------------------

_MAX_MESSAGE = 1024
_MAX_CONTEXT_LINE = 512

# Types whose messages quote code entities (keys, attributes, names, modules, parameters, types).
_CODE_ENTITY_TYPES = frozenset(
    {
        "KeyError",
        "AttributeError",
        "NameError",
        "UnboundLocalError",
        "ImportError",
        "ModuleNotFoundError",
        "TypeError",
    }
)
_CODE_MESSAGE = re.compile(r"'\w+' object (?:has no attribute|is not)")

_GROUP_COUNT = re.compile(r" \(\d+ sub-exceptions?\)$")
_QUOTED = re.compile(r"""(?:'(?<!\w')([^'\n]*)'|"(?<!\w")([^"\n]*)")(?!\w)""")
_CONSTANT = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{2,}")
_IDENTIFIER = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_PROSE_WORDS = 3

_URL = re.compile(r"://[^\s'\"<>]+")
_URL_TRAILER = ".,;:!?)]}"
_QUERY_VALUE = re.compile(r"=[^&;]*")
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_UUID = re.compile(
    r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])"
)
_HEX_ADDRESS = re.compile(r"\b0[xX][0-9A-Fa-f]+\b")
_H16 = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![\w:.])(?:(?:{_H16}:){{7}}{_H16}|(?:{_H16}(?::{_H16}){{0,6}})?::(?:{_H16}(?::{_H16}){{0,6}})?)"
    r"(?:\.\d{1,3}){0,3}(?:%\w+)?(?![\w:])"
)
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_MONTH_NAME = re.compile(r"Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b\.?"
)
_WEEKDAY = r"(?:Mon|Tue(?:s)?|Wed(?:nes)?|Thu(?:rs?)?|Fri|Sat(?:ur)?|Sun)(?:day)?\b\.?,?\s{1,3}"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r",?(?:\s{1,3}\d{4}\b)?"
_NAMED_DATE = re.compile(
    rf"\b(?:{_WEEKDAY})?(?:{_DAY}\s{{1,3}}{_MONTH}{_YEAR}|{_MONTH}\s{{1,3}}{_DAY}\b{_YEAR})"
)
# Long hex runs and long alphanumeric tokens, with a digit; "_" and "-" separate tokens (txn_9f8e7d6c5b).
_ID = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)(?:[0-9A-Fa-f]{8,}|[A-Za-z0-9]{16,})(?![A-Za-z0-9])")
_LETTER_DIGIT = re.compile(r"\d(?:(?<=[A-Za-z]\d)|[A-Za-z])")
# Everything else that starts with a digit, in one pass. Patterns here start with a plain character class so
# that the regex engine skips ahead fast; the character before it is checked by a lookbehind placed after it.
_ZONE = r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)(?![\w:]))?"
_CLOCK = r"\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_DIGIT_TOKEN = re.compile(
    r"\d(?:(?P<ip>(?<![\d.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.]))"
    rf"|(?P<ts>(?<!\w\d)(?:\d{{3}}-\d{{2}}-\d{{2}}(?:[T ]\d{{1,2}}:{_CLOCK})?"
    rf"|\d?:{_CLOCK}(?:\s?[AaPp]\.?[Mm]\b\.?)?){_ZONE})"
    r"|(?P<duration>(?<![\w.]\d)\d*(?:\.\d+)?\s?"
    r"(?:[nuµμm]s|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|days?|weeks?)(?!\w))"
    r"|(?P<number>\d*(?:[.,]\d+)*))"
)
_PLACEHOLDERS = {"ip": "<ip>", "ts": "<ts>", "duration": "<duration>"}
_DIGIT = re.compile(r"\d")
_DIGITS = re.compile(r"\d+")

# Reason phrases by status, lower case, including older names so the table does not depend on the runtime.
_HTTP_REASONS: dict[str, tuple[str, ...]] = {
    "100": ("continue",),
    "101": ("switching protocols",),
    "102": ("processing",),
    "103": ("early hints",),
    "200": ("ok",),
    "201": ("created",),
    "202": ("accepted",),
    "203": ("non-authoritative information",),
    "204": ("no content",),
    "205": ("reset content",),
    "206": ("partial content",),
    "207": ("multi-status",),
    "208": ("already reported",),
    "226": ("im used",),
    "300": ("multiple choices",),
    "301": ("moved permanently",),
    "302": ("found",),
    "303": ("see other",),
    "304": ("not modified",),
    "305": ("use proxy",),
    "307": ("temporary redirect",),
    "308": ("permanent redirect",),
    "400": ("bad request",),
    "401": ("unauthorized",),
    "402": ("payment required",),
    "403": ("forbidden",),
    "404": ("not found",),
    "405": ("method not allowed",),
    "406": ("not acceptable",),
    "407": ("proxy authentication required",),
    "408": ("request timeout",),
    "409": ("conflict",),
    "410": ("gone",),
    "411": ("length required",),
    "412": ("precondition failed",),
    "413": ("content too large", "payload too large", "request entity too large"),
    "414": ("uri too long", "request-uri too long"),
    "415": ("unsupported media type",),
    "416": ("range not satisfiable", "requested range not satisfiable"),
    "417": ("expectation failed",),
    "418": ("i'm a teapot", "im a teapot"),
    "421": ("misdirected request",),
    "422": ("unprocessable content", "unprocessable entity"),
    "423": ("locked",),
    "424": ("failed dependency",),
    "425": ("too early",),
    "426": ("upgrade required",),
    "428": ("precondition required",),
    "429": ("too many requests",),
    "431": ("request header fields too large",),
    "451": ("unavailable for legal reasons",),
    "500": ("internal server error",),
    "501": ("not implemented",),
    "502": ("bad gateway",),
    "503": ("service unavailable",),
    "504": ("gateway timeout",),
    "505": ("http version not supported",),
    "506": ("variant also negotiates",),
    "507": ("insufficient storage",),
    "508": ("loop detected",),
    "510": ("not extended",),
    "511": ("network authentication required",),
}
_HTTP_CONTEXT = 32
_HTTP_BEFORE = re.compile(
    r"(?:\bhttps?(?:/\d(?:\.\d)?)?(?: error)?|(?<![a-z])status(?:[ _-]?code)?|\bresponse(?:[ _-]?code)?"
    r"|\berror occurred \()[\s:=#(\[]*$",
    re.IGNORECASE,
)
_HTTP_BEFORE_VERB = re.compile(r"\b(?:got|returned|received|responded with)\s+$", re.IGNORECASE)
_HTTP_AFTER_VERB = re.compile(r"\s+(?:from|response|status|error)\b|\s*(?:[.,;:)]|$)", re.IGNORECASE)
_HTTP_AFTER = re.compile(
    r"[\s:,'\"-]*(?:(?:server|client) error\b|error responses?\b|message="
    r"|(?-i:(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\b))",
    re.IGNORECASE,
)
_HTTP_SEPARATORS = " :,'\"-"


def normalize_message(exc_type: str, message: str) -> str:
    """The message with its variable parts replaced by placeholders; see docs/fingerprints.md."""
    text = message[:_MAX_MESSAGE]
    if "sub-exception" in text:
        text = _GROUP_COUNT.sub("", text)
    code = exc_type.rpartition(".")[2] in _CODE_ENTITY_TYPES or (
        "object" in text and _CODE_MESSAGE.search(text) is not None
    )
    if "'" in text or '"' in text:
        text = _normalize_quotes(text, code)
    if "://" in text:
        text = _URL.sub(_url, text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    if "0x" in text or "0X" in text:
        text = _HEX_ADDRESS.sub("<addr>", text)
    if "::" in text or text.count(":") >= 7:
        text = _IPV6.sub("<ip>", text)
    if _DIGIT.search(text) is not None:
        if _MONTH_NAME.search(text) is not None:
            text = _NAMED_DATE.sub("<ts>", text)
        if _LETTER_DIGIT.search(text) is not None:
            text = _ID.sub("<n>", text)
        text = _DIGIT_TOKEN.sub(_digit_token, text)
    return " ".join(text.split())


def _normalize_quotes(text: str, code: bool) -> str:
    def quoted(match: re.Match[str]) -> str:
        content = match[1] if match[1] is not None else match[2]
        if (
            not content
            or "://" in content
            or (content[3:4] == " " and content[4:].lower().startswith(_HTTP_REASONS.get(content[:3], ())))
            or _CONSTANT.fullmatch(content)
            or (code and _IDENTIFIER.fullmatch(content))
        ):
            return f"'{content}'"
        if len(content.split()) >= _PROSE_WORDS:
            return f"'{_normalize_quotes(content, code)}'"
        return "'<str>'"

    return _QUOTED.sub(quoted, text)


def _url(match: re.Match[str]) -> str:
    """``://`` and what follows: the scheme before it is a constant and stays as written."""
    url = match[0]
    kept = url.rstrip(_URL_TRAILER)
    trailer = url[len(kept) :]
    rest = kept[3:]
    cut = min((index for index in map(rest.find, "/?#") if index >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host, _, port = host.partition("]")
        host = "<ip>"
        port = port.removeprefix(":")
    else:
        host, _, port = host.partition(":")
        host = "<ip>" if _IPV4.fullmatch(host) else _DIGITS.sub("<n>", _ID.sub("<n>", host.lower()))
    path, _, query = path.partition("#")[0].partition("?")
    path = _DIGITS.sub("<n>", _ID.sub("<n>", _UUID.sub("<uuid>", path)))
    query = _QUERY_VALUE.sub("=<v>", query)
    return f"://{host}{':<n>' if port else ''}{path}{'?' + query if query else ''}{trailer}"


def _digit_token(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind != "number":
        return _PLACEHOLDERS[kind or ""]
    digits = match[0]
    in_range = len(digits) == 3 and "100" <= digits <= "599" and digits.isdigit()
    return digits if in_range and _is_http_status(match.string, match.start(), match.end()) else "<n>"


def _is_http_status(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _HTTP_CONTEXT) : start]
    after = text[end : end + _HTTP_CONTEXT]
    if _HTTP_BEFORE.search(before) or _HTTP_AFTER.match(after):
        return True
    if _HTTP_BEFORE_VERB.search(before) and _HTTP_AFTER_VERB.match(after):
        return True
    reasons = _HTTP_REASONS.get(text[start:end], ())
    return after.lstrip(_HTTP_SEPARATORS).lower().startswith(reasons)


# --- fingerprint -----------------------------------------------------------------------------------------

# Inlined into their function since Python 3.12 (PEP 709): dropping them keeps keys equal across versions.
_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})


def fingerprint(key: ExceptionKey) -> str:
    """32 lowercase hex characters of sha256 over the canonical text of ``key`` (docs/fingerprints.md).

    Each node is hashed with the sorted, distinct digests of its children, so a group of five identical
    failures, or the same failures in another completion order, groups with a group of two.
    """
    digests: list[str] = []
    stack = [(key, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in node.children)
            continue
        split = len(digests) - len(node.children)
        children = sorted(set(digests[split:]))
        del digests[split:]
        lines = [
            _VERSION,
            f"E\t{node.type}\t{normalize_message(node.type, node.message)}",
            *_frame_lines(node.frames),
            *(f"C\t{child}" for child in children),
        ]
        digests.append(_digest("\n".join(lines)))
    return digests[0]


def _frame_lines(frames: tuple[FrameKey, ...]) -> dict[str, None]:
    """Frame signatures in order, each kept once: recursion of any depth or period collapses to one pass."""
    if any(frame.in_app for frame in frames):
        return dict.fromkeys(
            f"F\t{frame.module}\t{frame.function}\t{(frame.context_line or '').strip()[:_MAX_CONTEXT_LINE]}"
            for frame in frames
            if frame.in_app and frame.function not in _COMPREHENSIONS
        )
    return dict.fromkeys(
        f"F\t{frame.module}\t{frame.function}" for frame in frames if frame.function not in _COMPREHENSIONS
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_HEX32 = re.compile(r"[0-9a-f]{32}")
_DEFAULT_VARIABLE = re.compile(r"\{\{\s*default\s*\}\}")


def custom_fingerprint(values: str | Sequence[str], default: str) -> str:
    """A user override, Sentry style: ``"{{ default }}"`` in any item stands for the default fingerprint.

    One item that is (or expands to) 32 lowercase hex is used as is; an empty override keeps the default.
    Callbacks return anything: a value that is not a list or tuple is one item, and items go through ``str``.
    """
    if not values:
        return default
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    expanded = [_DEFAULT_VARIABLE.sub(lambda _: default, str(item)) for item in items]
    if len(expanded) == 1 and _HEX32.fullmatch(expanded[0]):
        return expanded[0]
    return _digest(f"{_CUSTOM_VERSION}\n{json.dumps(expanded, ensure_ascii=False)}")


# --- in-app frames ---------------------------------------------------------------------------------------

# Third-party installs anywhere, and stdlib layouts of other interpreters and hosts (parsed tracebacks).
_LIBRARY_PATH = re.compile(
    r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\](?:python|pypy)\d+\.\d+t?[/\\]|[/\\]python\d+[/\\]lib[/\\]"
    r"|[/\\]lib-python[/\\]",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _stdlib_prefixes() -> tuple[str, ...]:
    prefixes: set[str] = set()
    for name in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            prefixes.update(os.path.join(os.path.normcase(p), "") for p in (path, os.path.realpath(path)))
    return tuple(sorted(prefixes))


@lru_cache(maxsize=4096)
def is_in_app(filename: str) -> bool:
    """False for installed packages, the standard library and pseudo files such as ``<frozen ...>``.

    Every ``<...>`` name counts as library code: ``<string>`` is mostly generated code (dataclasses,
    namedtuple) and none of them has a source line to compare.
    """
    if not filename or filename.startswith("<") or _LIBRARY_PATH.search(filename):
        return False
    return not os.path.normcase(filename).startswith(_stdlib_prefixes())


# --- parsing traceback text ------------------------------------------------------------------------------

_MAX_CHAIN = 10
_MAX_GROUP_DEPTH = 10
_MAX_GROUP_WIDTH = 16

_CHAIN_SEPARATORS = frozenset(
    {
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
    }
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TRUNCATION = re.compile(r"\[\.\.\.[^\]\n]{0,64}?truncated[^\]\n]{0,64}\]", re.IGNORECASE)
_GROUP_SEPARATOR = re.compile(r"( *)(\+-)?\+-{3,}(?: (\S+) -+)?\s*$")
_MARGIN = re.compile(r"((?:  )+)[|+](?: |$)")
_EXCEPTION_LINE = re.compile(r"([^\W\d][\w.]*)(?:: (.*)|:)?$")
_CARETS = re.compile(r"[\s^~]+")

_TEXT, _MEMBER, _END = 0, 1, 2
_Item = tuple[int, int, str]


@dataclass(slots=True)
class _Block:
    lines: list[str]
    members: list[ExceptionKey]


def parse_stacktrace(exc_type: str, message: str, stacktrace: str) -> ExceptionKey:
    """The key of the last exception in Python traceback text; earlier chained blocks become its children.

    ``exc_type`` and ``message`` replace what the text says about the outer exception. Never raises on
    malformed or truncated text: lines that do not parse are skipped.
    """
    outer = _parse_level(_tokenize(stacktrace), 0, _MAX_GROUP_DEPTH)
    if outer is None:
        return ExceptionKey(exc_type, message, ())
    return replace(outer, type=exc_type, message=message)


def _tokenize(text: str) -> list[_Item]:
    """Each line as (kind, level, text), ExceptionGroup margins removed.

    Level 0 holds the top chain (depth 0, and depth 1 inside a top-level group's box); a group's members are
    one level deeper than the group. A truncation marker drops its line and both neighbours (cut mid-line).
    """
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    lines = text.splitlines()
    cut = {
        index + offset
        for index, line in enumerate(lines)
        if "truncated" in line and _TRUNCATION.search(line)
        for offset in (-1, 0, 1)
    }
    items: list[_Item] = []
    for index, line in enumerate(lines):
        if index in cut:
            continue
        separator = _GROUP_SEPARATOR.match(line)
        if separator is not None:
            depth = (len(separator[1]) + (2 if separator[2] else 0)) // 2
            title = separator[3]
            items.append((_MEMBER if title and title != "..." else _END, depth - 1, ""))
            continue
        margin = _MARGIN.match(line)
        if margin is not None:
            items.append((_TEXT, max(len(margin[1]) // 2 - 1, 0), line[margin.end() :]))
        else:
            items.append((_TEXT, 0, line))
    return items


def _parse_level(items: list[_Item], level: int, budget: int) -> ExceptionKey | None:
    blocks = [_Block([], [])]
    index, count = 0, len(items)
    while index < count:
        kind, item_level, text = items[index]
        index += 1
        if kind == _TEXT:
            if item_level == level:
                if text.strip() in _CHAIN_SEPARATORS:
                    blocks.append(_Block([], []))
                else:
                    blocks[-1].lines.append(text)
            continue
        if item_level != level + 1:
            continue
        end = index
        while end < count and items[end][1] > level and (items[end][0] == _TEXT or items[end][1] > level + 1):
            end += 1
        members = blocks[-1].members
        if kind == _MEMBER and budget > 0 and len(members) < _MAX_GROUP_WIDTH:
            member = _parse_level(items[index:end], level + 1, budget - 1)
            if member is not None:
                members.append(member)
        index = end
    key = None
    for block in blocks[-_MAX_CHAIN:]:
        parsed = _parse_block(block.lines)
        if parsed is None and not block.members:
            continue
        exc_type, message, frames = parsed or ("", "", ())
        key = ExceptionKey(exc_type, message, frames, ((key,) if key else ()) + tuple(block.members))
    return key


def _parse_block(lines: list[str]) -> tuple[str, str, tuple[FrameKey, ...]] | None:
    frames: list[FrameKey] = []
    pending: tuple[str, str] | None = None
    source: str | None = None
    exception: tuple[str, str] | None = None
    for index, line in enumerate(lines):
        location = _frame_location(line)
        if location is not None:
            if pending is not None:
                frames.append(_parsed_frame(*pending, source))
            pending, source = location, None
        elif line[:1].isspace():
            if pending and source is None and line.startswith("    ") and not _CARETS.fullmatch(line):
                source = line.strip()
        elif (match := _EXCEPTION_LINE.match(line.rstrip())) is not None:
            rest = "\n".join([match[2] or "", *lines[index + 1 :]])
            exception = (match[1], rest.strip())
            break
    if pending is not None:
        frames.append(_parsed_frame(*pending, source))
    if exception is None and not frames:
        return None
    exc_type, message = exception or ("", "")
    return exc_type, message, tuple(frames)


def _frame_location(line: str) -> tuple[str, str] | None:
    """(filename, function) of a ``  File "...", line N, in function`` line; string methods stay linear."""
    stripped = line.lstrip(" ")
    if not stripped.startswith('File "'):
        return None
    head, found, function = stripped.rpartition(", in ")
    filename, found_line, _ = head[6:].rpartition('", line ')
    if not found or not found_line:
        return None
    return filename, function.strip()


def _parsed_frame(filename: str, function: str, source: str | None) -> FrameKey:
    return FrameKey(_module_from_filename(filename), function, source, is_in_app(filename))


def _module_from_filename(filename: str) -> str:
    """``service`` for .../payments/service.py, ``payments.__init__`` for .../payments/__init__.py."""
    if filename.startswith("<"):
        return filename[8:-1] if filename.startswith("<frozen ") and filename.endswith(">") else filename
    parts = filename.replace("\\", "/").rsplit("/", 2)
    stem = parts[-1].split(".", 1)[0]
    if stem.startswith("__") and stem.endswith("__") and len(parts) > 1:
        return f"{parts[-2]}.{stem}"
    return stem
