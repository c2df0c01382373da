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
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

__all__ = [
    "ExceptionKey",
    "Fingerprints",
    "FrameKey",
    "custom_fingerprint",
    "exception_template",
    "fingerprint",
    "fingerprints",
    "grouping_info",
    "is_in_app",
    "normalize_message",
    "parse_stacktrace",
    "text_fingerprints",
]

_VERSION = "fs2"
_PATH_VERSION = "fs2-path"
# Custom keys do not depend on the default algorithm, so they keep their version (docs/fingerprints.md).
_CUSTOM_VERSION = "fs1-custom"
# faultspan's own frames never count: they are not where the application failed.
OWN_MODULES = ("faultspan", "faultspan_instrumentation")


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
    # The message template when the live exception gave it from its attributes (``exception_template``).
    template: str | None = None


@dataclass(frozen=True, slots=True)
class Fingerprints:
    root: str  # type, template, crash site, children: faultspan.fingerprint
    path: str  # type, template, every in-app frame, children: faultspan.fingerprint.path


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
# Straight quotes must not follow a letter or digit (can't, users'); typographic quotes and backticks pair up.
_OPENING = "\u201c\u00ab\u2018`"  # typographic double, guillemet, typographic single, backtick
_CLOSING = "\u201d\u00bb\u2019`"
_QUOTED = re.compile(
    r"""(?:'(?<!\w')([^'\n]*)'|"(?<!\w")([^"\n]*)")(?!\w)"""
    rf"|[{_OPENING}]([^{_OPENING}{_CLOSING}\n]*)[{_CLOSING}]"
)
_QUOTE_HINT = re.compile(f"['\"{_OPENING}]")
_CONSTANT = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{2,}")
_IDENTIFIER = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_DOTTED = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)+")
_PROSE_WORDS = 3
_TYPE_REPRS = ("<class ", "<enum ")
# Last labels that make a dotted word a host name (data), not a dotted code name.
_HOST_SUFFIXES = frozenset(
    {
        "com",
        "net",
        "org",
        "io",
        "dev",
        "app",
        "ai",
        "cloud",
        "internal",
        "lan",
        "svc",
        "cluster",
        "corp",
        "example",
        "localdomain",
        "localhost",
        "de",
        "uk",
        "eu",
        "fr",
        "nl",
        "us",
        "ca",
        "au",
        "jp",
        "in",
        "br",
    }
)
_HOST = re.compile(
    r"(?<![\w.@/:-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,12})(?![\w.-]|\()"
)
_HOST_HINT = re.compile(rf"\.(?:{'|'.join(sorted(_HOST_SUFFIXES))})(?![\w.-])", re.IGNORECASE)
# A name before a port is a host: db:5432, redis-1:6379.
_HOST_PORT = re.compile(r"(?<![\w.@/:<>-])[A-Za-z][\w-]*(?:\.[\w-]+)*(?=:\d{2,5}(?!\d|\.\d|:))")
# Cheap tests that skip the slower patterns below for most messages.
_ECHO_WORDS = (
    "parse",
    "decode",
    "interpret",
    "unconverted",
    "not found:",
    "not contain a date",
    "unknown",
    "invalid",
    "unsupported",
    "unexpected",
    "unrecogni",
    "malformed",
    "illegal",
)
_NAME_WORDS: tuple[str, ...] = ("user", "customer", "account", "tenant", "host", "login", "owner", "member")
_NAME_WORDS += ("recipient", "sender", "named", "called")
_MIXED_HINT = re.compile(r"\d(?:(?<=[A-Za-z_-]\d)|[A-Za-z_-])")
# Input echoed without quotes: what follows a parse verb, or the value part of the usual "...: value" phrases.
# After a parse verb (or strptime's remainder) the rest is input, words and all; after "unknown ...:" and the
# like, one token is (several words there are an explanation: "invalid value: must be positive").
_ECHO = re.compile(
    r"(?i)\b(?:(?:(?:cannot|can't|could not|couldn't|unable to|failed to|fails to) (?:parse|decode|interpret)"
    r"|unconverted data remains:|string does not contain a date:|unknown string format:)"
    r" +(?=[^\s'<])(?![^\s]*://)(?!(?:string|value|input|data|date|number|integer|json|body|as|the|an?)\b)"
    r"([^\n,;()'\"]+?)"
    r"|(?:not found|(?:unknown|invalid|unsupported|unexpected|unrecogni[sz]ed|malformed|illegal)"
    r" [\w ]{0,30}?):"
    r" +(?=[^\s'<])(?![^\s]*://)([^\s,;()'\"]+?))(?=[.,;(]?\s*$|[,;(\n])"
)
_NAME_NOUNS = r"user|username|customer|account|tenant|host|hostname|login|owner|member|recipient|sender"
_NAME_FOLLOWERS = (
    r"not|is|has|was|does|doesn't|did|cannot|can't|already|must|could|lacks|exceeded|unreachable|unknown"
    r"|unavailable|locked|disabled|suspended|expired|denied|failed|refused|deleted|blocked|inactive|missing"
)
_NOT_NAMES = (
    "(?:not|is|has|was|the|an?|for|with|id|name|account|record|profile|session|token|balance|header|password"
    "|email|role|group|limit|quota|settings|permissions|key|data|input|type|agent)"
)
_NAME = re.compile(
    rf"(?i)\b({_NAME_NOUNS}) (?!{_NOT_NAMES}\b)"
    rf"([^\s'\"<>,;:()]+)(?= (?:{_NAME_FOLLOWERS})\b|[.,;:!]?\s*$)|\b(named|called) ([^\s'\"<>,;:()]+)"
)
# Words after which a quoted identifier names code (a column, a constraint), not data.
_CODE_NOUNS = re.compile(
    r"(?i)\b(?:column|constraint|relation|table|index|field|key|attribute|parameter|argument|module|function"
    r"|method|setting|option|header|variable|property|schema|database|queue|topic|bucket|model) $"
)
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*\]")
# Letters and digits mixed in one token are data (PN-0042-C, tenant7, ch_3MqLiJ2eZvKYlo2C1Xy); a number with
# a unit suffix is left to the duration and number rules; a part of a dotted name (sqlite3.Error) and an API
# version (v2) are code.
_UNITS = r"[nuµμm]s|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|weeks?|st|nd|rd|th|[kKMGT]i?B|x"
_MIXED = re.compile(
    rf"(?<![\w.-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)(?!\d+(?:\.\d+)?(?:{_UNITS})(?![\w-])|v\d+(?![\w-])"
    r"|\d{4}-\d\d-\d\d[T ])"
    r"[\w-]+(?![\w-]|\.[^\W\d])"
)
_CODE_IDENTIFIER = re.compile(r"[^\W\d][^\W-]*")
_ERRNO_BEFORE = re.compile(r"\[(?:Errno|WinError) -?$")
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
# An address is an address: an IP and a host name configured for the same thing group together.
_PLACEHOLDERS = {"ip": "<host>", "ts": "<ts>", "duration": "<duration>"}
_DIGIT = re.compile(r"\d")
_NEGATIVE = re.compile(r"(?<![\w>-])-<n>")
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
    r"|\berror occurred \(|\b(?:error|upstream|gateway)(?: code)?|\bcode)[\s:=#(\[]*$",
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


def normalize_message(exc_type: str, message: str, status: int | None = None) -> str:
    """The message with its variable parts replaced by placeholders; see docs/fingerprints.md.

    ``status`` is an HTTP status the exception carries as an attribute: that number is kept wherever it
    appears, as a status in an HTTP context would be.
    """
    text = message[:_MAX_MESSAGE]
    if "sub-exception" in text:
        text = _GROUP_COUNT.sub("", text)
    structured = _structured_text(exc_type.rpartition(".")[2], text)
    if structured is not None:
        return structured
    code = exc_type.rpartition(".")[2] in _CODE_ENTITY_TYPES or (
        "object" in text and _CODE_MESSAGE.search(text) is not None
    )
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub("[parameters: <params>]", text)
    if _QUOTE_HINT.search(text) is not None:
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
        text = _IPV6.sub("<host>", text)
    lower = text.lower()
    if any(word in lower for word in _ECHO_WORDS):
        text = _ECHO.sub(_echo, text)
    if any(word in lower for word in _NAME_WORDS):
        text = _NAME.sub(_name, text)
    if "." in text and _HOST_HINT.search(text) is not None:
        text = _HOST.sub(_host, text)
    if ":" in text:
        text = _HOST_PORT.sub("<host>", text)
    if _DIGIT.search(text) is not None:
        if _MONTH_NAME.search(text) is not None:
            text = _NAMED_DATE.sub("<ts>", text)
        if _MIXED_HINT.search(text) is not None:
            text = _MIXED.sub(_mixed_code if code else "<n>", text)
        text = _DIGIT_TOKEN.sub(lambda match: _digit_token(match, status), text)
        if "-<n>" in text:
            text = _NEGATIVE.sub("<n>", text)
    return " ".join(text.split())


def _echo(match: re.Match[str]) -> str:
    group = 1 if match[1] is not None else 2
    return match[0][: match.start(group) - match.start(0)] + "<input>"


def _name(match: re.Match[str]) -> str:
    return f"{match[1] or match[3]} <name>"


def _host(match: re.Match[str]) -> str:
    return "<host>" if match[1].lower() in _HOST_SUFFIXES else match[0]


def _mixed_code(match: re.Match[str]) -> str:
    """In code-entity messages an identifier with digits is a name (``f2``, ``v2_client``): digits only."""
    token = match[0]
    return _DIGITS.sub("<n>", token) if _CODE_IDENTIFIER.fullmatch(token) else "<n>"


def _normalize_quotes(text: str, code: bool) -> str:
    def quoted(match: re.Match[str]) -> str:
        content = next(group for group in match.groups() if group is not None)
        if (
            not content
            or "://" in content
            or (content[3:4] == " " and content[4:].lower().startswith(_HTTP_REASONS.get(content[:3], ())))
        ):
            return f"'{content}'"
        start = match.start()
        if (
            _CONSTANT.fullmatch(content)
            or (
                (code or _CODE_NOUNS.search(text, max(0, start - 16), start))
                and _IDENTIFIER.fullmatch(content)
            )
            or (text.endswith(_TYPE_REPRS, 0, start) and _DOTTED.fullmatch(content))
        ):
            return f"'{_DIGITS.sub('<n>', content)}'"
        wrapped = start >= 2 and text[start - 1] == "(" and text[start - 2].isalnum()
        prose = wrapped or ": " in content or content.endswith((".", "!")) or text.endswith("[", 0, start)
        if prose and len(content.split()) >= _PROSE_WORDS:
            return f"'{_normalize_quotes(content, code)}'"
        return "'<str>'"

    return _QUOTED.sub(quoted, text)


# Messages whose shape Python fixes: the live exception's attributes and the text give the same template.
# OSError.__str__: "[Errno N] strerror", then ": 'file'" (a repr) and " -> 'file2'" when it has them.
_FILE_REPR = r"""(?:b?'[^'\n]*'|b?"[^"\n]*"|\w+Path\(.*\))"""
_OS_ERROR = re.compile(rf"\[(Errno|WinError) (-?\d+)\] (.*?)(: {_FILE_REPR}( -> {_FILE_REPR})?)?$", re.DOTALL)
_CODEC = re.compile(
    r"'([^'\n]{1,40})' codec can't (en|de)code (?:bytes?|characters?) .*? in position \d+(?:-\d+)?: ",
    re.DOTALL,
)
_JSON_POSITION = re.compile(r"(.*?): line \d+ column \d+ \(char \d+\)$", re.DOTALL)


def _structured_text(name: str, text: str) -> str | None:
    """The fixed shapes by their text: OSError's ``[Errno N] strerror: 'file'`` (any type: subclasses
    abound), the codecs' errors, and ``JSONDecodeError``'s positions."""
    if text.startswith("["):
        match = _OS_ERROR.match(text)
        if match is not None:
            return _os_template(match[1], match[2], match[3], match[4] is not None, match[5] is not None)
    elif " codec can't " in text:
        match = _CODEC.match(text)
        if match is not None:
            return _codec_template(match[1], f"{match[2]}code")
    elif name == "JSONDecodeError" and text.endswith(")"):
        match = _JSON_POSITION.match(text)
        if match is not None:
            return _json_template(match[1])
    return None


def _os_template(kind: str, errno: object, strerror: str, filename: bool, filename2: bool) -> str:
    """errno and strerror say what went wrong (kept, a strerror worded with data is normalized); the file
    names are data."""
    text = f"[{kind} {errno}] {normalize_message('OSError', strerror)}"
    if filename:
        text += ": <path>" + (" -> <path>" if filename2 else "")
    return text


def _codec_template(encoding: object, operation: str) -> str:
    """The reason (invalid start byte, unexpected end of data) depends on the bytes: data, like them."""
    return f"'{encoding}' codec can't {operation} <data> in position <n>: <reason>"


def _json_template(message: str) -> str:
    return f"{' '.join(message.split())}: line <n> column <n> (char <n>)"


def exception_template(exc: BaseException, message: str) -> str | None:
    """The template from the live exception's attributes, where Python gives them, else None.

    Only when the message has the shape Python gives it (a subclass may word its own): then the same
    exception fingerprinted later from its text gets the same template, as ``_structured_text`` reads the
    shape back. The attributes are exact where the text is ambiguous (a strerror with ``: `` in it).
    """
    if isinstance(exc, OSError) and isinstance(exc.strerror, str) and message == _os_rendering(exc):
        kind, code = (
            ("WinError", getattr(exc, "winerror", None)) if message[1:4] == "Win" else ("Errno", exc.errno)
        )
        files = exc.filename is not None, exc.filename2 is not None
        return _os_template(kind, code, exc.strerror, *files)
    if isinstance(exc, (UnicodeDecodeError, UnicodeEncodeError)) and message.startswith(f"'{exc.encoding}' "):
        operation = "decode" if isinstance(exc, UnicodeDecodeError) else "encode"
        return _codec_template(exc.encoding, operation) if _CODEC.match(message) else None
    raw = getattr(exc, "msg", None)
    if type(exc).__name__ == "JSONDecodeError" and isinstance(raw, str):
        rendering = f"{raw}: line {getattr(exc, 'lineno', '')} column {getattr(exc, 'colno', '')} (char "
        return _json_template(raw) if message == f"{rendering}{getattr(exc, 'pos', '')})" else None
    status = http_status(exc)
    if status is not None:
        return normalize_message(_type_name(exc), message, status)
    return None


def _os_rendering(exc: OSError) -> str:
    """What ``OSError.__str__`` gives from the attributes; a subclass with its own wording differs."""
    code = getattr(exc, "winerror", None)
    head = f"[WinError {code}]" if code is not None else f"[Errno {exc.errno}]"
    text = f"{head} {exc.strerror}"
    if exc.filename is not None:
        text += f": {exc.filename!r}"
        if exc.filename2 is not None:
            text += f" -> {exc.filename2!r}"
    return text


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


_STATUS_ATTRIBUTES = ("status_code", "status")


def http_status(exc: BaseException) -> int | None:
    """An HTTP status the exception carries: ``status_code``/``status``, or its ``response``'s."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for name in _STATUS_ATTRIBUTES:
            try:
                value = getattr(holder, name, None)
            except Exception:
                continue
            if type(value) is int and 100 <= value <= 599:
                return value
    return None


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
        host = "<host>"
        port = port.removeprefix(":")
    else:
        host, _, port = host.partition(":")
        host = "<host>" if _IPV4.fullmatch(host) else _DIGITS.sub("<n>", _ID.sub("<n>", host.lower()))
    path, _, query = path.partition("#")[0].partition("?")
    path = _DIGITS.sub("<n>", _MIXED.sub("<n>", _UUID.sub("<uuid>", path)))
    query = _QUERY_VALUE.sub("=<v>", query)
    return f"://{host}{':<n>' if port else ''}{path}{'?' + query if query else ''}{trailer}"


def _digit_token(match: re.Match[str], status: int | None) -> str:
    kind = match.lastgroup
    if kind != "number":
        return _PLACEHOLDERS[kind or ""]
    digits = match[0]
    text, start = match.string, match.start()
    if _ERRNO_BEFORE.search(text, max(0, start - 12), start):
        return digits
    in_range = len(digits) == 3 and "100" <= digits <= "599" and digits.isdigit()
    if not in_range:
        return "<n>"
    if status is not None and digits == str(status):
        return digits
    return digits if _is_http_status(text, start, match.end()) else "<n>"


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
    """``faultspan.fingerprint``: the root-cause key of ``key`` (docs/fingerprints.md)."""
    return fingerprints(key).root


def fingerprints(key: ExceptionKey) -> Fingerprints:
    """Both keys, 32 lowercase hex each, sha256 over their canonical texts (docs/fingerprints.md).

    Each node is hashed with the sorted, distinct keys of its children (a Merkle tree), so a group of five
    identical failures, or the same failures in another completion order, groups with a group of two.
    """
    digests: list[tuple[str, str]] = []
    stack = [(key, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in node.children)
            continue
        split = len(digests) - len(node.children)
        children = digests[split:]
        del digests[split:]
        head = f"E\t{node.type}\t{template_of(node)}"
        root = [_VERSION, head, *_site_lines(node.frames)]
        path = [_PATH_VERSION, head, *_frame_lines(node.frames)]
        root.extend(f"C\t{child}" for child in sorted({child for child, _ in children}))
        path.extend(f"C\t{child}" for child in sorted({child for _, child in children}))
        digests.append((_digest("\n".join(root)), _digest("\n".join(path))))
    return Fingerprints(*digests[0])


def template_of(key: ExceptionKey) -> str:
    return key.template if key.template is not None else normalize_message(key.type, key.message)


def _counted(frames: tuple[FrameKey, ...]) -> list[FrameKey]:
    return [frame for frame in frames if frame.function not in _COMPREHENSIONS]


def crash_site(frames: tuple[FrameKey, ...]) -> FrameKey | None:
    """The innermost in-app frame: the raise, or the application's call into the library that raised.

    Without in-app frames, the innermost frame (its module and function count, not its line).
    """
    counted = _counted(frames)
    for frame in reversed(counted):
        if frame.in_app:
            return frame
    return counted[-1] if counted else None


def _frame_line(frame: FrameKey) -> str:
    if frame.in_app:
        return (
            f"F\t{frame.module}\t{frame.function}\t{(frame.context_line or '').strip()[:_MAX_CONTEXT_LINE]}"
        )
    return f"F\t{frame.module}\t{frame.function}"


def _site_lines(frames: tuple[FrameKey, ...]) -> list[str]:
    site = crash_site(frames)
    return [] if site is None else [f"S{_frame_line(site)[1:]}"]


def _frame_lines(frames: tuple[FrameKey, ...]) -> dict[str, None]:
    """Frame signatures in order, each kept once: recursion of any depth or period collapses to one pass."""
    counted = _counted(frames)
    if any(frame.in_app for frame in counted):
        counted = [frame for frame in counted if frame.in_app]
    return dict.fromkeys(_frame_line(frame) for frame in counted)


_MAX_INFO_FRAMES = 12
_MAX_INFO_CHILDREN = 8
_MAX_INFO_DEPTH = 4


def grouping_info(key: ExceptionKey, depth: int = 0) -> dict[str, Any]:
    """What formed the keys, as ``faultspan show`` prints it: bounded (frames, children, depth), and made of
    the template and source lines only, never the raw message."""
    site = crash_site(key.frames)
    path = [frame for frame in _counted(key.frames) if frame.in_app] or _counted(key.frames)
    info: dict[str, Any] = {"type": key.type, "template": template_of(key)}
    if site is not None:
        info["crash_site"] = _frame_info(site)
    if path:
        info["path"] = [_frame_info(frame) for frame in path[-_MAX_INFO_FRAMES:]]
    if key.children and depth < _MAX_INFO_DEPTH:
        info["children"] = [grouping_info(child, depth + 1) for child in key.children[:_MAX_INFO_CHILDREN]]
    if depth == 0:
        info = {"version": _VERSION, **info}
    return info


def _frame_info(frame: FrameKey) -> list[str]:
    fields = [frame.module, frame.function]
    if frame.in_app and frame.context_line:
        fields.append(frame.context_line.strip()[:_MAX_CONTEXT_LINE])
    return fields


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


ModuleResolver = Callable[[str], "str | None"]


def parse_stacktrace(
    exc_type: str, message: str, stacktrace: str, modules: ModuleResolver | None = None
) -> ExceptionKey:
    """The key of the last exception in Python traceback text; earlier chained blocks become its children.

    ``exc_type`` and ``message`` replace what the text says about the outer exception. ``modules`` maps a
    file name to the module that was loaded from it (``loaded_module``, in the process that raised), so frame
    modules and the dropping of faultspan's own frames match the live path; other files get a module name
    from the file name. Never raises on malformed or truncated text: lines that do not parse are skipped.
    """
    outer = _parse_level(_tokenize(stacktrace), 0, _MAX_GROUP_DEPTH, modules)
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


def _parse_level(
    items: list[_Item], level: int, budget: int, modules: ModuleResolver | None
) -> ExceptionKey | None:
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
            member = _parse_level(items[index:end], level + 1, budget - 1, modules)
            if member is not None:
                members.append(member)
        index = end
    key = None
    for block in blocks[-_MAX_CHAIN:]:
        parsed = _parse_block(block.lines, modules)
        if parsed is None and not block.members:
            continue
        exc_type, message, frames = parsed or ("", "", ())
        key = ExceptionKey(exc_type, message, frames, ((key,) if key else ()) + tuple(block.members))
    return key


def _parse_block(
    lines: list[str], modules: ModuleResolver | None
) -> tuple[str, str, tuple[FrameKey, ...]] | None:
    frames: list[FrameKey] = []
    pending: tuple[str, str] | None = None
    source: str | None = None
    exception: tuple[str, str] | None = None
    for index, line in enumerate(lines):
        location = _frame_location(line)
        if location is not None:
            if pending is not None:
                _add_frame(frames, *pending, source, modules)
            pending, source = location, None
        elif line[:1].isspace():
            if pending and source is None and line.startswith("    ") and not _CARETS.fullmatch(line):
                source = line.strip()
        elif (match := _EXCEPTION_LINE.match(line.rstrip())) is not None:
            rest = "\n".join([match[2] or "", *lines[index + 1 :]])
            exception = (match[1], rest.strip())
            break
    if pending is not None:
        _add_frame(frames, *pending, source, modules)
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


def _add_frame(
    frames: list[FrameKey], filename: str, function: str, source: str | None, modules: ModuleResolver | None
) -> None:
    module = (modules(filename) if modules is not None else None) or _module_from_filename(filename)
    if module.split(".", 1)[0] not in OWN_MODULES:
        frames.append(FrameKey(module, function, source, is_in_app(filename)))


class _LoadedModules:
    """File name -> module name over ``sys.modules``, rebuilt only when a lookup misses and modules were
    imported since the last build; bounded by the number of loaded modules."""

    def __init__(self) -> None:
        self._by_file: dict[str, str] = {}
        self._built_for = -1

    def __call__(self, filename: str) -> str | None:
        name = self._by_file.get(filename)
        if name is None and len(sys.modules) != self._built_for:
            self._build()
            name = self._by_file.get(filename)
        return name

    def _build(self) -> None:
        modules = list(sys.modules.items())
        by_file: dict[str, str] = {}
        for key, module in modules:
            # The dict, not getattr: a module-level __getattr__ must not run on the worker thread.
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            path = namespace.get("__file__")
            if type(path) is not str:
                # A script's __main__ loses __file__ when it returns, before the exit flush fingerprints
                # the last events; its loader keeps the path.
                path = getattr(namespace.get("__loader__"), "path", None)
            name = namespace.get("__name__", key)
            if type(path) is not str or type(name) is not str:
                continue
            for candidate in {path, os.path.realpath(path)}:
                # A script is ``__main__`` in its frames even when it is also imported under its own name.
                if candidate not in by_file or name == "__main__":
                    by_file[candidate] = name
        self._by_file = by_file
        self._built_for = len(modules)


loaded_module: ModuleResolver = _LoadedModules()


def text_fingerprints(exc_type: str, message: str, stacktrace: str) -> tuple[Fingerprints, dict[str, Any]]:
    """The keys and grouping info of an event recorded without faultspan, in the process that raised it."""
    key = parse_stacktrace(exc_type, message, stacktrace, loaded_module)
    return fingerprints(key), grouping_info(key)


def _module_from_filename(filename: str) -> str:
    """``service`` for .../payments/service.py, ``payments.__init__`` for .../payments/__init__.py."""
    if filename.startswith("<"):
        return filename[8:-1] if filename.startswith("<frozen ") and filename.endswith(">") else filename
    parts = filename.replace("\\", "/").rsplit("/", 2)
    stem = parts[-1].split(".", 1)[0]
    if stem.startswith("__") and stem.endswith("__") and len(parts) > 1:
        return f"{parts[-2]}.{stem}"
    return stem
