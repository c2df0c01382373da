"""Secret masking for attribute values, nested AnyValue data, JSON text and free text.

Pure: no OpenTelemetry imports. Two kinds of rules, both described in docs/redaction.md:

* key rules decide from a key's *name* (``dbPassword``, ``X-Api-Key``) that its whole value is secret;
* value rules find secrets *inside* text (``Bearer ...``, ``postgres://app:pw@db``, ``password=...``, cards)
  and replace only the secret part with ``[REDACTED]``.

Everything returns the very object it was given when nothing had to change: callers compare with ``is``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class RedactionRules:
    enabled: bool = True
    extra_keys: tuple[str, ...] = ()
    allow_keys: tuple[str, ...] = ()
    extra_patterns: tuple[str, ...] = ()
    disabled_rules: tuple[str, ...] = ()
    callback: Callable[[str, str], str | None] | None = None


# ----------------------------------------------------------------------------------------------------
# Key rules

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Secret names, as the concatenation of their words. A key is secret when the words of its field name *end*
# with one of these (``db_password``, ``XApiKey``), possibly followed by words that still hold the same value
# (``password_confirmation``, ``auth_header``, ``password2``). Any other trailing word turns the name into
# metadata about the secret (``password_policy``, ``token_count``, ``session_timeout``).
_SECRET_TERMS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "pass", "passphrase", "passcode",
        "secret", "secrets", "token", "jwt", "auth", "authorization", "credential", "credentials", "creds",
        "apikey", "apikeys", "privatekey", "secretkey", "accesskey", "signingkey", "encryptionkey",
        "masterkey", "sessionkey", "licensekey", "accountkey", "sharedkey", "appkey", "authkey", "adminkey",
        "rootkey", "deploykey", "hmackey", "writekey", "subscriptionkey", "functionkey", "functionskey",
        "cookie", "cookies", "session", "sessionid", "sessid", "csrf", "xsrf",
        "ssn", "socialsecurity", "creditcard", "cardnumber", "ccnumber", "cvv", "cvc", "securitycode", "pin",
        "otp", "totp",
        "dsn", "connectionstring", "connstring", "connstr",
    }
)  # fmt: skip
# Terms distinctive enough to be found at the end of a glued lowercase word (``dbpassword``, ``jsessionid``).
# Short or common endings (pass, auth, session, pin) are not: bypass, oauth, possession, spin.
_SUFFIX_TERMS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "passphrase", "passcode", "secret", "secrets", "token",
        "jwt", "authorization", "credential", "credentials", "creds", "apikey", "apikeys", "privatekey",
        "secretkey", "accesskey", "signingkey", "encryptionkey", "masterkey", "sessionkey", "sessionid",
        "sessid", "cookie", "cookies", "creditcard", "cardnumber", "connectionstring", "dsn",
    }
)  # fmt: skip
_SAME_VALUE_WORDS = frozenset(
    {
        "value", "values", "val", "str", "string", "text", "raw", "plain", "plaintext", "clear", "cleartext",
        "confirm", "confirmation", "again", "repeat", "new", "old", "current", "prev", "previous", "orig",
        "original", "encoded", "enc", "encrypted", "b64", "base64", "hex", "bytes", "hash", "hashed",
        "digest", "code", "header", "headers", "input", "env", "var", "data", "json", "pem", "number", "num",
        "no", "nr",
    }
)  # fmt: skip
# Secrets that are short digit strings: ``pin 1234`` is worth masking, ``session 1234`` is not.
_NUMERIC_TERMS = frozenset(
    {"pin", "otp", "totp", "cvv", "cvc", "ssn", "cardnumber", "creditcard", "ccnumber", "passcode"}
)
# Header-like keys whose unquoted value runs to the end of the line (``Cookie: a=1; b=2``).
_LINE_TERMS = frozenset({"cookie", "cookies", "authorization"})
# Query parameters that carry a credential although the name alone would not make a secret key.
_QUERY_TERMS = frozenset({"sig", "signature", "key", "xamzsignature", "xamzcredential", "xgoogsignature"})
# Substrings that every secret key name contains, used to find candidate keys in free text quickly.
_KEY_HINTS = (
    "pass", "pwd", "secret", "token", "jwt", "auth", "cred", "key", "cookie", "sess", "csrf", "xsrf", "ssn",
    "card", "cvv", "cvc", "pin", "otp", "dsn", "conn", "security", "number",
)  # fmt: skip


def _words(key: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(key)]


def _canonical(key: str) -> str:
    return "".join(_words(key))


def _last_word(key: str) -> str:
    """The last alphabetic word of a key, which the key contains however it is spelled."""
    words = [word for word in _words(key) if word.isalpha()]
    return words[-1] if words else ""


def _field(key: str) -> str:
    """The segment of a dotted key that names the field: ``http.request.header.x-api-key`` -> x-api-key."""
    for segment in reversed(key.split(".")):
        if any(char.isalpha() for char in segment):
            return segment
    return key


def _match_tail(words: list[str], terms: frozenset[str], suffixes: frozenset[str]) -> str:
    end = len(words)
    while end:
        joined = "".join(words[:end])
        for term in suffixes:
            if joined.endswith(term):
                return term
        tail = ""
        for word in reversed(words[:end]):
            tail = word + tail
            if tail in terms:
                return tail
        last = words[end - 1]
        if not (last.isdigit() or last in _SAME_VALUE_WORDS):
            return ""
        end -= 1
    return ""


# ----------------------------------------------------------------------------------------------------
# Value rules: helpers

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SPECIALS = frozenset("!@#$%^&*+=/~?|:;<>()[]{}")
_PLACEHOLDERS = frozenset(
    {"none", "null", "nil", "undefined", "true", "false", "redacted", "<redacted>", "hidden", "masked"}
)


def _placeholder(value: str) -> bool:
    return not value.strip("*xX.-_ ") or value.lower() in _PLACEHOLDERS


def _digit_group(value: str) -> bool:
    return sum(char.isdigit() for char in value) >= 3 and all(
        char.isdigit() or char in "- " for char in value
    )


def _loose_credential(value: str, numeric: bool) -> bool:
    """A value after ``key:`` or in quotes after ``key ``: long, or with a digit or symbol."""
    if _placeholder(value):
        return False
    if len(value) >= 20:
        return True
    if len(value) >= 8 and any(char.isdigit() or char in _SPECIALS for char in value):
        return True
    return numeric and _digit_group(value)


def _strict_credential(value: str, numeric: bool) -> bool:
    """A bare word after ``key `` in prose: shaped like a password or a random token, not a word or UUID."""
    if numeric and _digit_group(value):
        return True
    if len(value) < 6 or _placeholder(value) or _UUID.fullmatch(value):
        return False
    if not _has_digit(value) or not any(char.isalpha() for char in value):
        return False
    if len(value) < 8:
        return True  # short, but letters and digits together, as in "password hunter2"
    mixed_case = value.lower() != value and value.upper() != value
    return len(value) >= 16 or mixed_case or any(char in _SPECIALS for char in value)


def _card(candidate: str) -> bool:
    groups = re.split(r"[ -]", candidate)
    if len(groups) > 1 and (len(groups[0]) != 4 or not all(3 <= len(group) <= 6 for group in groups[1:-1])):
        return False
    digits = "".join(groups)
    if digits[0] == "2" and not "2221" <= digits[:4] <= "2720":  # Mastercard's 2-series; 20xx is a date
        return False
    return _luhn(digits)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _mask_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each (start, end) span, in increasing non-overlapping order, replaced by REDACTED."""
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(REDACTED)
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _pattern_rule(
    pattern: re.Pattern[str], accept: Callable[[str], bool] | None = None
) -> Callable[[str], str]:
    """Mask each match of ``pattern``: its first matched group named ``secret*``, or the whole match."""
    groups = [name for name in pattern.groupindex if name.startswith("secret")]

    def spans(text: str) -> Iterable[tuple[int, int]]:
        for match in pattern.finditer(text):
            start, end = next((match.span(g) for g in groups if match.start(g) >= 0), match.span())
            if end > start and (accept is None or accept(text[start:end])):
                yield start, end

    return lambda text: _mask_spans(text, spans(text))


def _has_digit(value: str) -> bool:
    return any(char.isdigit() for char in value)


def _token_credential(value: str) -> bool:
    return (len(value) >= 8 and any(char.isdigit() or char in "+/=" for char in value)) or len(value) >= 24


# ----------------------------------------------------------------------------------------------------
# Value rules: patterns. Each starts with a literal or a small character set so that ``re`` skips quickly
# to candidate positions; the lookbehind right after that first character keeps a token from starting in
# the middle of a longer word.

_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|.*)",  # a truncated block is masked to the end
    re.DOTALL,
)
_JWT = re.compile(r"e(?<![\w-]e)yJ[\w-]{10,}\.[\w-]{10,}(?:\.[\w+/=-]*){1,3}", re.ASCII)
_URL_CREDENTIALS = re.compile(
    r":(?<=[\w+.-]:)//"
    r"(?:[^\s:/?#@'\"<>]*:(?P<secret>[^\s/?'\"<>]+)|(?P<secret_token>(?=[\w.~%-]*[0-9])[\w.~%-]{16,}))"
    r"@(?=[\w\[])",
    re.ASCII,
)
_AWS_ACCESS_KEY = re.compile(r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET_KEY = re.compile(
    r"[Aa][Ww][Ss][\w. -]{0,40}?(?i:secret|key)[\w.-]{0,40}['\"]?[ \t]*(?:[:=]|=>)?[ \t]*['\"]?"
    r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    re.ASCII,
)
_GITHUB = re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{20,}|ithub_pat_\w{20,})", re.ASCII)
_GITLAB = re.compile(r"g(?<![\w-]g)l(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas|agent)-[\w-]{20,}", re.ASCII)
_STRIPE = re.compile(
    r"s(?<![A-Za-z0-9_]s)k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|r(?<![A-Za-z0-9_]r)k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|w(?<![A-Za-z0-9_]w)hsec_[A-Za-z0-9+/=]{16,}"
)
_SLACK = re.compile(
    r"x(?<![\w-]x)(?:ox[abposre]-|oxe\.xox[bp]-|app-[0-9]-)[A-Za-z0-9-]{10,}"
    r"|hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[\w/-]+)",
    re.ASCII,
)
_WEBHOOK = re.compile(
    r"(?:discord(?:app)?\.com/api/webhooks|webhook\.office\.com/webhookb2|api\.telegram\.org/bot)"
    r"/(?P<secret>[\w:/@.-]{16,})",
    re.ASCII,
)
_GOOGLE = re.compile(
    r"A(?<![\w-]A)Iza[\w-]{30,}|y(?<![\w-]y)a29\.[\w-]{20,}|G(?<![\w-]G)OCSPX-[\w-]{20,}", re.ASCII
)
_ANTHROPIC = re.compile(r"s(?<![\w-]s)k-ant-[\w-]{20,}", re.ASCII)
_OPENAI = re.compile(r"s(?<![\w-]s)k-(?!ant-)[\w-]{20,}", re.ASCII)
_NPM = re.compile(r"n(?<![A-Za-z0-9_]n)pm_[A-Za-z0-9]{30,}")
_PYPI = re.compile(r"pypi-AgE[\w-]{20,}", re.ASCII)
_SENDGRID = re.compile(r"S(?<![\w-]S)G\.[\w-]{16,}\.[\w-]{16,}", re.ASCII)
_TWILIO = re.compile(r"(?:A(?<![A-Za-z0-9]A)C|S(?<![A-Za-z0-9]S)K)[0-9a-f]{32}(?![0-9a-f])")
_HUGGINGFACE = re.compile(r"h(?<![A-Za-z0-9_]h)f_[A-Za-z0-9]{30,}")
_SHOPIFY = re.compile(r"s(?<![A-Za-z0-9_]s)hp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}")
_DIGITALOCEAN = re.compile(r"d(?<![A-Za-z0-9_]d)o[opr]_v1_[A-Za-z0-9]{32,}")
_AZURE = re.compile(  # one literal first letter per branch keeps the search fast, the rest ignores case
    r"(?:A(?i:ccountkey)|a(?i:ccountkey)"
    r"|S(?i:haredaccess(?:key|signature))|s(?i:haredaccess(?:key|signature)))"
    r"[ \t]*=[ \t]*(?P<secret>[^;\s'\"]+)"
)
_BEARER = re.compile(
    r"(?:b(?<![A-Za-z0-9_]b)(?:earer|asic)|B(?<![A-Za-z0-9_]B)(?:earer|asic|EARER|ASIC)"
    r"|T(?<![A-Za-z0-9_]T)(?:oken|OKEN))"
    r"[ \t]+(?P<secret>[\w.~+/-]+=*)(?![^\s,;'\")\]}>])",
    re.ASCII,
)
_CONNECTION_STRING = re.compile(
    r"[Pp](?<![A-Za-z0-9_][Pp])(?i:assword|wd|asswd)[ \t]*=[ \t]*"
    r"(?:(?P<secret>\{[^}\r\n]{0,256}\})|(?P<secret_plain>[^;\r\n'\"{ \t][^;\r\n'\"]{0,256}?))[ \t]*;"
)
_CARD_GATE = re.compile(r"[2-6][0-9]{3}[ -]?[0-9]{4}")
_MIN_GATED_LENGTH = 13  # the shortest card number
_QUERY_PARAM = re.compile(r"[?&;](?P<name>[\w.%\[\]-]{1,64})=(?P<value>[^&#\s'\"<>]+)", re.ASCII)
_CARD = re.compile(
    r"[2-6](?<![\w.+-][2-6])(?<![0-9][ -][2-6])[0-9]{3}(?:[ -]?[0-9]){9,15}(?![\w]|[ .-][0-9])", re.ASCII
)

# Free-text ``key<separator>value``: found from a key hint, then this is matched right after the key.
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_IDENT_REST = re.compile(r"[\w.-]+", re.ASCII)
_KEY_VALUE = re.compile(
    r"""\\?["']?                                         # closing quote of a quoted key
    (?:[ \t]*(?P<sep>=>|[:=])[ \t]*|[ \t]+)
    (?P<scheme>(?:[Bb]earer|BEARER|[Bb]asic|BASIC|Token|TOKEN|Digest|Negotiate|NTLM|AWS4-HMAC-SHA256)[ \t]+)?
    (?:
        (?:[bru]{1,2}(?=["']))?(?P<quote>\\?["'])(?P<quoted>[^\r\n]{0,4096}?)(?P=quote)
      | (?P<bare>[^\s'"\\,;&)\]}>{\[(<][^\s'"\\,;&)\]}>]*)
    )""",
    re.VERBOSE,
)
_SEPARATOR_NEXT = re.compile(r"[ \t]*[:=]")
_LINE_END = re.compile(r"[\r\n\\]")  # a newline, or the backslash of an escaped one
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """Lowercase with the same length, so that positions found in it are positions in ``text``."""
    low = text.lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


def _ident_length(text: str, start: int) -> int:
    match = _IDENT_REST.match(text, start)
    return len(match[0]) if match else 0


# Anchors are what a rule's matches must contain, searched in lowercased text: a literal and an optional
# regex tail. All anchors are compiled into one alternation that is entered at each anchor's least frequent
# character (``k`` in ``token``, checking ``tok`` behind it): ``re`` then stops at few positions of ordinary
# text, which is what makes clean values cheap.
_Anchor = tuple[str, str]
_FREQUENT = "/._-: 0123456789=etaoindsrhlcumfpgwybvkxjqz"  # most frequent first in attribute values


def _anchors(*literals: str) -> tuple[_Anchor, ...]:
    return tuple((literal, "") for literal in literals)


@functools.cache
def _entry(literal: str) -> int:
    return max(range(len(literal)), key=lambda i: _FREQUENT.find(literal[i]) % (len(_FREQUENT) + 1))


def _anchor_patterns(anchors: Sequence[_Anchor]) -> tuple[re.Pattern[str], dict[str, re.Pattern[str]]]:
    """Any of the anchors, as one alternation grouped by entry character (plain groups keep ``re`` fast), and
    for each entry character the same alternatives where group ``a<i>`` tells that ``anchors[i]`` matched."""
    plain: dict[str, list[str]] = {}
    named: dict[str, list[str]] = {}
    for index, (literal, tail) in enumerate(anchors):
        entry = _entry(literal)
        behind = f"(?<={re.escape(literal[: entry + 1])})" if entry else ""
        rest = behind + re.escape(literal[entry + 1 :]) + tail
        plain.setdefault(literal[entry], []).append(rest)
        named.setdefault(literal[entry], []).append(f"(?P<a{index}>{rest})")
    pattern = re.compile(
        "|".join(re.escape(c) + "(?:" + "|".join(rests) + ")" for c, rests in sorted(plain.items()))
    )
    return pattern, {
        c: re.compile(re.escape(c) + "(?:" + "|".join(rests) + ")") for c, rests in named.items()
    }


def _overlap(first: str, second: str) -> bool:
    """Whether both literals can match entered at the same position: same entry character, and they agree
    wherever they overlap once aligned on it."""
    offset = _entry(first) - _entry(second)
    return first[_entry(first)] == second[_entry(second)] and all(
        first[offset + i] == char for i, char in enumerate(second) if 0 <= offset + i < len(first)
    )


@dataclass(frozen=True)
class _Rule:
    name: str
    anchors: tuple[_Anchor, ...]
    apply: Callable[[str], str]
    # Searched in the text itself: a card number starts with any of five digits, too common for an anchor.
    gate: re.Pattern[str] | None = None


def _segments(apply: Callable[[str], str], text: str) -> str:
    """Apply a rule between existing masks only, so ``[REDACTED]`` never triggers or changes anything."""
    if REDACTED not in text:
        return apply(text)
    parts = text.split(REDACTED)
    scrubbed = [apply(part) for part in parts]
    if all(new is old for new, old in zip(scrubbed, parts, strict=True)):
        return text
    return REDACTED.join(scrubbed)


# How JSON text that json.loads accepts starts: an object or an array, then its first key or value. The reprs
# of dicts and lists in captured locals (``{'id': 9}``, ``[('sku', 2)]``) fail here without a failed parse.
_JSON_START = re.compile(r"\s*(?:\{\s*[\"}]|\[\s*[-\"0-9\[{tfnNI\]])")
_CACHE_LIMIT = 4096
_SCALARS = frozenset({bool, int, float})
_CACHED_LENGTH = 256  # longer strings and keys are not remembered: they rarely repeat and would hold memory
_MAX_KEY_WORDS = 12
_MAX_PASSES = 4
_MAX_SHORTCUT_DEPTH = 64


class Redactor:
    """Applies one ``RedactionRules``. Thread-safe; keep one per process, its caches are what make it fast."""

    def __init__(self, rules: RedactionRules | None = None) -> None:
        self.rules = rules or RedactionRules()
        self.callback_errors = 0
        problems: list[str] = []
        self._enabled = self.rules.enabled
        self._callback = self.rules.callback
        self._allow = frozenset(_canonical(key) for key in self.rules.allow_keys)
        self._extra_terms = frozenset(filter(None, (_canonical(key) for key in self.rules.extra_keys)))
        hints = sorted(set(_KEY_HINTS) | set(filter(None, map(_last_word, self.rules.extra_keys))))
        self._key_hint = _anchor_patterns(_anchors(*hints))[0]
        self._kinds: dict[str, str] = {}
        self._keys: dict[str, tuple[str, str | None]] = {}
        self._clean: set[str] = set()

        builtin = self._builtin_rules(hints)
        disabled = {name.strip().lower() for name in self.rules.disabled_rules}
        problems.extend(
            f"unknown redaction rule {name!r}" for name in sorted(disabled - {r.name for r in builtin})
        )
        active = [rule for rule in builtin if rule.name not in disabled]
        self._applies = [rule.apply for rule in active]
        anchors = sorted({anchor for rule in active for anchor in rule.anchors})
        self._anchor: re.Pattern[str] | None = None
        self._entries: dict[str, re.Pattern[str]] = {}
        if anchors:
            self._anchor, self._entries = _anchor_patterns(anchors)
        # The alternation reports one anchor where it stops; the others that could be entered at the same
        # character (``key`` inside ``private key``, ``sk-`` and ``sk-ant-``) get their rules run too.
        self._anchor_rules = {
            f"a{index}": frozenset(
                number
                for number, rule in enumerate(active)
                for other, _ in rule.anchors
                if _overlap(literal, other)
            )
            for index, (literal, _) in enumerate(anchors)
        }
        self._gates = [(number, rule.gate) for number, rule in enumerate(active) if rule.gate is not None]
        self._extra = [_pattern_rule(p) for p in _compile_patterns(self.rules.extra_patterns, problems)]
        # Unknown rule names and invalid patterns are ignored, not raised: the caller reports them once.
        self.problems: tuple[str, ...] = tuple(problems)

    def _builtin_rules(self, key_hints: Sequence[str]) -> list[_Rule]:
        """The value rules in the order they run: whole blocks and specific token formats before pairs."""
        pattern, anchors = _pattern_rule, _anchors
        return [
            _Rule("pem_private_key", anchors("private key"), pattern(_PEM)),
            _Rule("jwt", anchors("eyj"), pattern(_JWT)),
            _Rule("url_credentials", anchors("@"), pattern(_URL_CREDENTIALS, _not_placeholder)),
            _Rule(
                "aws_access_key",
                anchors("akia", "asia", "abia", "acca"),
                pattern(_AWS_ACCESS_KEY),
            ),
            _Rule("aws_secret_key", anchors("aws"), pattern(_AWS_SECRET_KEY)),
            _Rule("github", anchors("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), pattern(_GITHUB)),
            _Rule("gitlab", (("gl", "[a-z]{1,5}-"),), pattern(_GITLAB)),
            _Rule(
                "stripe", anchors("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"), pattern(_STRIPE)
            ),
            _Rule("slack", anchors("xox", "xapp-", "hooks.slack.com"), pattern(_SLACK)),
            _Rule("google", anchors("aiza", "ya29.", "gocspx-"), pattern(_GOOGLE)),
            _Rule("webhook", anchors("discord", "webhookb2", "telegram.org/bot"), pattern(_WEBHOOK)),
            _Rule("anthropic", anchors("sk-ant-"), pattern(_ANTHROPIC)),
            _Rule("openai", anchors("sk-"), pattern(_OPENAI, _has_digit)),
            _Rule("npm", anchors("npm_"), pattern(_NPM)),
            _Rule("pypi", anchors("pypi-age"), pattern(_PYPI)),
            _Rule("sendgrid", anchors("sg."), pattern(_SENDGRID)),
            _Rule("twilio", (("ac", "[0-9a-f]{32}"), ("sk", "[0-9a-f]{32}")), pattern(_TWILIO)),
            _Rule("huggingface", anchors("hf_"), pattern(_HUGGINGFACE)),
            _Rule("shopify", anchors("shpat_", "shpca_", "shppa_", "shpss_"), pattern(_SHOPIFY)),
            _Rule("digitalocean", anchors("dop_v1_", "doo_v1_", "dor_v1_"), pattern(_DIGITALOCEAN)),
            _Rule("azure", anchors("accountkey", "sharedaccess"), pattern(_AZURE, _not_placeholder)),
            _Rule("bearer", anchors("bearer", "basic", "token"), pattern(_BEARER, _token_credential)),
            _Rule("connection_string", anchors("pass", "pwd"), pattern(_CONNECTION_STRING, _not_placeholder)),
            _Rule("query_param", anchors(*key_hints, "sig"), self._query_params),
            _Rule("key_value", anchors(*key_hints), self._key_values),
            _Rule("card", (), pattern(_CARD, _card), _CARD_GATE),
        ]

    # ---- key rules ---------------------------------------------------------------------------------

    def _kind(self, key: str) -> str:
        """The secret term the key ends with, or "" when it is not a secret key."""
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._classify(key)
            if len(key) <= _CACHED_LENGTH:
                if len(self._kinds) >= _CACHE_LIMIT:
                    self._kinds.clear()
                self._kinds[key] = kind
        return kind

    def _key(self, key: str) -> tuple[str, str | None]:
        """(its kind, its scrubbed text when the key itself holds a secret, e.g. a dict keyed by tokens)."""
        info = self._keys.get(key)
        if info is None:
            safe = self.scrub_text(key)
            info = (self._kind(key), None if safe is key else safe)
            if len(key) <= _CACHED_LENGTH:
                if len(self._keys) >= _CACHE_LIMIT:
                    self._keys.clear()
                self._keys[key] = info
        return info

    def _classify(self, key: str) -> str:
        field = _field(key)
        words = _words(field)
        if not words or _canonical(key) in self._allow or "".join(words) in self._allow:
            return ""
        # Only the last words can name the field: this bounds the work on an absurdly long identifier.
        kind = _match_tail(words[-_MAX_KEY_WORDS:], _SECRET_TERMS, _SUFFIX_TERMS)
        if not kind and self._extra_terms:
            kind = _match_tail(_words(key)[-_MAX_KEY_WORDS:], self._extra_terms, frozenset())
        return kind

    def is_secret_key(self, key: str) -> bool:
        return self._enabled and bool(self._kind(key))

    # ---- value rules -------------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        if not self._enabled or text in self._clean:
            return text
        triggered = self._triggered(text)
        result = self._scrub_once(text, triggered)
        if result is text:
            if not _maybe_json(text):  # the cache also spares values their JSON walk: see _scrub_str
                self._remember(text)
            return text
        # A new mask can cut short the context of a neighbouring value (its closing quote is now inside the
        # mask) so that a rule finds something else to mask: repeat until stable to make scrubbing idempotent.
        # Masking only removes text, so the rules triggered by the original are still the only candidates.
        for _ in range(_MAX_PASSES):
            again = self._scrub_once(result, triggered)
            if again is result:
                break
            result = again
        return result

    def _remember(self, text: str) -> None:
        """Cache ``text`` as clean: callers have found it so both read as text and walked as a value."""
        if len(text) <= _CACHED_LENGTH:
            if len(self._clean) >= _CACHE_LIMIT:
                self._clean.clear()
            self._clean.add(text)

    def _scrub_once(self, text: str, triggered: set[int]) -> str:
        result = text
        for number in sorted(triggered):
            result = _segments(self._applies[number], result)
        for apply in self._extra:
            result = _segments(apply, result)
        return result

    def _triggered(self, text: str) -> set[int]:
        """The numbers of the rules whose anchors occur in ``text``: the only ones worth running."""
        triggered: set[int] = set()
        if len(text) >= _MIN_GATED_LENGTH:
            for number, gate in self._gates:
                if gate.search(text):
                    triggered.add(number)
        if self._anchor is not None:
            low = _lower(text)
            match = self._anchor.search(low)
            while match is not None:
                at = match.start()
                which = self._entries[low[at]].match(low, at)  # the same alternatives: it matches
                if which is not None and which.lastgroup is not None:
                    triggered |= self._anchor_rules[which.lastgroup]
                match = self._anchor.search(low, at + 1)
        return triggered

    def _query_params(self, text: str) -> str:
        def spans() -> Iterable[tuple[int, int]]:
            for match in _QUERY_PARAM.finditer(text):
                name, value = match["name"], match["value"]
                if (self._kind(name) or _canonical(name) in _QUERY_TERMS) and not _placeholder(value):
                    yield match.span("value")

        return _mask_spans(text, spans())

    def _key_values(self, text: str) -> str:
        return _mask_spans(text, self._key_value_spans(text))

    def _key_value_spans(self, text: str) -> Iterable[tuple[int, int]]:
        done = 0
        for hint in self._key_hint.finditer(_lower(text)):
            if hint.start() < done:
                continue
            start = hint.start()
            while start > done and text[start - 1] in _IDENT_CHARS:
                start -= 1
            end = hint.end() + _ident_length(text, hint.end())
            while end > hint.end() and text[end - 1] in ".-":
                end -= 1
            done = end
            key = text[start:end].lstrip(".-")
            kind = self._kind(key)
            if not kind and start > 1 and text[start - 1] == " ":  # "api key", "secret key" in prose
                before = start - 1
                while before > 0 and text[before - 1] in _IDENT_CHARS:
                    before -= 1
                kind = self._kind(text[before:start] + key)
                start = before
            if not kind:
                continue
            match = _KEY_VALUE.match(text, end)
            if match is None:
                continue
            quote = text[start - 1] if start and text[start - 1] in "'\"" else ""
            span = self._value_span(text, match, kind, quote)
            if span is not None:
                done = span[1]
                yield span

    def _value_span(self, text: str, match: re.Match[str], kind: str, quote: str) -> tuple[int, int] | None:
        """The span of the value to mask; ``quote`` is the one that opened the key, if any."""
        numeric = kind in _NUMERIC_TERMS
        separator = match["sep"]
        quoted = match["quoted"]
        if quoted is not None:
            accepted = not _placeholder(quoted) if separator else _loose_credential(quoted, numeric)
            return match.span("quoted") if quoted and accepted else None
        bare, start = match["bare"], match.start("bare")
        name = bare.rstrip(":")
        followed = _SEPARATOR_NEXT.match(text, match.end("bare")) is not None
        if (name != bare or followed) and ":" not in name and self._kind(name):
            return None  # "password= X-Api-Key: ..." or "token: secret = ...": the next key, not a value
        if separator in ("=", "=>"):
            return None if _placeholder(bare) else match.span("bare")
        bare = name
        if separator is None:
            return (start, start + len(bare)) if _strict_credential(bare, numeric) else None
        if kind in _LINE_TERMS and (match["scheme"] or "=" in bare or _loose_credential(bare, numeric)):
            line_end = _LINE_END.search(text, start)
            end = line_end.start() if line_end else len(text)
            if quote and quote in text[start:end]:  # "Cookie: a=1; b=2" quoted as a whole ends at its quote
                end = text.index(quote, start)
            return start, start + len(text[start:end].rstrip())
        return (start, start + len(bare)) if _loose_credential(bare, numeric) else None

    # ---- structured values -------------------------------------------------------------------------

    def scrub_value(self, key: str, value: object, path: str, masked: list[str]) -> object:
        if not self._enabled:
            return value
        if key and self._kind(key):
            return _mask_whole(value, path, masked)
        return self._scrub_any(value, path, masked)

    def scrub_attributes(
        self, attributes: Mapping[str, object], prefix: str, masked: list[str]
    ) -> dict[str, object] | None:
        if not self._enabled:
            return None
        keys, clean, plain = self._keys, self._clean, self._callback is None
        result: dict[str, object] | None = None
        for index, (key, value) in enumerate(attributes.items()):
            kind, renamed = keys.get(key) or self._key(key)
            name = key if renamed is None else renamed
            kind_of_value = type(value)
            if (
                plain
                and not kind
                and renamed is None
                and ((kind_of_value is str and value in clean) or kind_of_value in _SCALARS)
            ):
                new: object = value  # the fast path of almost every attribute
            else:
                path = prefix + name
                new = _mask_whole(value, path, masked) if kind else self._scrub_any(value, path, masked)
                if renamed is not None and new is value:
                    masked.append(path)
            if result is None and (new is not value or renamed is not None):
                result = dict(list(attributes.items())[:index])
            if result is not None:
                result[name] = new
        return result

    def _scrub_any(self, value: object, path: str, masked: list[str]) -> object:
        kind = type(value)  # exact types first: parsed JSON is only these, and ABC checks are slow
        if kind is str:
            return self._scrub_str(value, path, masked)  # type: ignore[arg-type]
        if kind is dict:
            return self._scrub_mapping(value, path, masked)  # type: ignore[arg-type]
        if kind is list:
            return self._scrub_sequence(value, path, masked)  # type: ignore[arg-type]
        if kind in _SCALARS or value is None:
            return value
        if isinstance(value, str):
            return self._scrub_str(value, path, masked)
        if isinstance(value, Mapping):
            return self._scrub_mapping(value, path, masked)
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray, memoryview)):
            return self._scrub_sequence(value, path, masked)
        return value

    def _scrub_mapping(self, mapping: Mapping[object, object], path: str, masked: list[str]) -> object:
        result: dict[object, object] | None = None
        for index, (key, value) in enumerate(mapping.items()):
            name: object = key
            if isinstance(key, str):
                kind, renamed = self._key(key)
                name = key if renamed is None else renamed
                child = f"{path}.{name}"
                new = _mask_whole(value, child, masked) if kind else self._scrub_any(value, child, masked)
                if renamed is not None and new is value:
                    masked.append(child)
            else:
                new = self._scrub_any(value, f"{path}.{key}", masked)
            if result is None and (new is not value or name is not key):
                result = dict(list(mapping.items())[:index])
            if result is not None:
                result[name] = new
        return mapping if result is None else result

    def _scrub_sequence(self, items: Sequence[object], path: str, masked: list[str]) -> object:
        scrubbed = [self._scrub_any(item, f"{path}[{index}]", masked) for index, item in enumerate(items)]
        if all(new is old for new, old in zip(scrubbed, items, strict=True)):
            return items
        return tuple(scrubbed) if isinstance(items, tuple) else scrubbed

    def _scrub_str(self, text: str, path: str, masked: list[str]) -> str:
        if text == REDACTED or (self._callback is None and text in self._clean):
            return text
        maybe_json = _maybe_json(text)
        if maybe_json:
            encoded = self._scrub_json(text, path, masked)
            if encoded is not None:
                cacheable = self._callback is None and len(text) <= _CACHED_LENGTH
                if encoded is text and cacheable and self.scrub_text(text) is text:
                    self._remember(text)
                return encoded
        result = self.scrub_text(text)
        if self._callback is not None:
            result = _call_back(self, self._callback, path, result)
        if result is not text:
            masked.append(path)
        elif maybe_json and self._callback is None:
            self._remember(text)  # not JSON after all, so clean as a value too: scrub_text left it out
        return result

    def _scrub_json(self, text: str, path: str, masked: list[str]) -> str | None:
        """Scrubbed JSON text (the same object when clean), or None when ``text`` is not JSON."""
        found: list[str] = []
        try:
            data = json.loads(text)
            if self._callback is None and self._unchanged(data):
                return text
            scrubbed = self._scrub_any(data, path, found)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to walk: value rules on the text
            return None
        if scrubbed is data:
            return text
        masked.extend(found)
        return json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":"))

    def _unchanged(self, data: dict[str, object] | list[object], depth: int = 0) -> bool:
        """Whether ``_scrub_any`` would return parsed JSON unchanged, for a redactor without a callback.

        The walk that builds a path for every node costs most of a span with an exception: this one reads
        the same keys and strings without paths, a set lookup for each string already known clean. False
        also for a secret key whose value is empty (which the walk keeps), and for a document deep enough
        that the walk may run out of stack (it then falls back to the text): the caller then walks.
        """
        if depth > _MAX_SHORTCUT_DEPTH:
            return False
        items: Iterable[object] = data
        if type(data) is dict:
            keys = self._keys
            for key in data:
                kind, renamed = keys.get(key) or self._key(key)
                if kind or renamed is not None:
                    return False
            items = data.values()
        clean = self._clean
        for item in items:
            if type(item) is str:
                if item not in clean and self._scrub_str(item, "", []) is not item:
                    return False
            elif isinstance(item, (dict, list)) and not self._unchanged(item, depth + 1):
                return False
        return True


def _maybe_json(text: str) -> bool:
    return _JSON_START.match(text) is not None


def _compile_patterns(sources: Iterable[str], problems: list[str]) -> list[re.Pattern[str]]:
    compiled = []
    for source in sources:
        try:
            compiled.append(re.compile(source))
        except re.error as err:  # noqa: PERF203 -- once per pattern at start-up
            problems.append(f"invalid redaction pattern {source!r}: {err}")
    return compiled


def _not_placeholder(value: str) -> bool:
    return not _placeholder(value)


def _mask_whole(value: object, path: str, masked: list[str]) -> object:
    if value is None or (isinstance(value, str) and value in ("", REDACTED)):
        return value
    masked.append(path)
    return REDACTED


def _call_back(redactor: Redactor, callback: Callable[[str, str], str | None], path: str, text: str) -> str:
    try:
        replacement = callback(path, text)
    except Exception:
        redactor.callback_errors += 1
        return text
    return replacement if isinstance(replacement, str) and replacement != text else text
