"""Value rules: the patterns that find secrets inside text and replace only the secret part.

Each rule has a name (to switch it off), anchors (literals its matches contain, searched in lowercased text
so that only the rules whose anchors occur run) and a function from text to masked text. The generic rules
(random tokens, prefixed tokens, credential pairs) sit beside a few formats that no shape test can see.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from faultspan._capture.redaction import keys, tokens

REDACTED = "[REDACTED]"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SPECIALS = frozenset("!@#$%^&*+=/~?|:;<>()[]{}")
_PLACEHOLDERS = frozenset(
    {
        "none", "null", "nil", "undefined", "true", "false", "redacted", "<redacted>", "hidden", "masked",
        "default", "empty", "string",  # OpenAPI's example of any string field
    }
)  # fmt: skip


# A reference to where the secret is, not the secret: ``$DB_PASS``, ``${token}``, ``%APP_PASSWORD%``,
# ``{{ .Values.password }}``, ``<%= ENV["KEY"] %>``, ``#{password}``, ``process.env.API_KEY``,
# ``os.environ["TOKEN"]``, ``settings.SECRET_KEY``.
_NAME = r"[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*"  # variable names are one case; random tokens mix them
VARIABLE = re.compile(_NAME)
_BRACKETED = r"\$\{[^{}]+\}|\$\([^()]+\)|`[^`]+`"  # ``${VAR:-default}``, ``$(vault read x)``, `` `cmd` ``
BRACKETED_REFERENCE = re.compile(_BRACKETED)
_REFERENCE = re.compile(
    rf"\$(?:{_NAME})|{_BRACKETED}|"
    r"%[A-Za-z_][\w.]*%"
    r"|\{\{.*\}\}|<%.*%>|#\{.*\}|\{[\w.\[\]]*\}|(?:var|local|data|module)\.[a-z_][\w.-]*"
    r"|(?:process\.env|import\.meta\.env|os\.environ|ENV|env)[.\[].*|os\.getenv\(.*"
    r"|(?:[A-Za-z_$][\w$]*\.)+[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+",
    re.DOTALL,
)


# ``xoxp-XXXXXXXXXX-XXXX``, ``hf_xxxxxxxxxxxx``, ``sha256~XXXX_PUT_YOUR_TOKEN_HERE``, ``<ACCESS KEY>``: a
# filler where the secret goes (a run of 4+ x, * or #), or a description in angle brackets
_FILLER = re.compile(r"[xX]{4}|\*{4}|#{4}|^<[^<>]+>$")


# ``ACCESS_TOKEN``, ``YOUR_API_KEY``: a constant's name standing where its value goes
_NAMED = re.compile(r"[A-Z]+(?:_[A-Z]+)*")
_NAMES_A_SECRET = ("PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "SESSION")
_HEADER_NAME = re.compile(r"(?:[A-Z][a-z]*|[A-Z]+)(?:-(?:[A-Z][a-z]*|[A-Z]+))+")


def _names_a_header(value: str) -> bool:
    """``X-API-Key``, ``X-Auth-Token``: a header's name with a secret word (``MY-PASSWORD`` is a constant)."""
    upper = value.upper()
    return (
        upper != value
        and _HEADER_NAME.fullmatch(value) is not None
        and any(name in upper for name in _NAMES_A_SECRET)
    )


# The parameter markers of SQL drivers: ``%s``, ``%(password)s``, ``?``, ``:password``, ``$1``
_BIND_PARAMETER = re.compile(r"%s|%\([\w.]{1,64}\)s|\?|:[A-Za-z_]\w{0,63}|\$[0-9]{1,3}")


def _placeholder(value: str) -> bool:
    if not value.strip("*xX.-_ ") or value.lower() in _PLACEHOLDERS or _BIND_PARAMETER.fullmatch(value):
        return True
    if value[-1:] == "}" and _TEMPLATE_LAST.search(value):
        return True  # the credential a template fills in: ``Authorization: Bearer ${{ secrets.TOKEN }}``
    if _NAMED.fullmatch(value) and any(name in value for name in _NAMES_A_SECRET):
        return True
    if _names_a_header(value):
        return True  # the header a setting names (``api_key_header=X-API-Key``), not its value
    return _REFERENCE.fullmatch(value) is not None or _FILLER.search(value) is not None


_TEMPLATE_LAST = re.compile(
    r"(?:^|[\s:=])(?:\$\{\{[^{}]{1,128}\}\}|\$\{[^{}]{1,128}\}|\{\{[^{}]{1,128}\}\})\Z"
)


def _digit_group(value: str) -> bool:
    return sum(char.isdigit() for char in value) >= 3 and all(
        char.isdigit() or char in "- " for char in value
    )


# ``io.jsonwebtoken:jjwt-jackson-0.11.2``: a package and its version (Maven coordinates), not a credential
_VERSION = re.compile(r"v?[0-9]+(?:\.[0-9]+){1,3}(?:[-+][0-9A-Za-z.-]{1,40})?")
_PACKAGE_VERSION = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*[-_:]v?[0-9]+(?:\.[0-9]+)+(?:[-.][a-z0-9]+)*")


# An object's default rendering: Java's ``android.os.BinderProxy@2bd79ce``, Android's ``Token{a64f992 ...}``
OBJECT_REPR = re.compile(
    r"(?:[A-Za-z_$][\w$]*\.)*[A-Z][A-Za-z0-9$]*[a-z][A-Za-z0-9$]*"
    r"(?:@(?=[0-9]*[a-f])[0-9a-f]{5,8}(?![\w.])|\{(?=[0-9]*[a-f])[0-9a-f]{7,8}(?![\w.]))"  # an identity hash
)


def _loose_credential(value: str, numeric: bool) -> bool:
    """A value after ``key:`` or in quotes after ``key ``: long, or with a digit or symbol."""
    if _placeholder(value) or _PACKAGE_VERSION.fullmatch(value) or OBJECT_REPR.match(value):
        return False
    if len(value) >= 20:
        return True
    if len(value) >= 8 and any(char.isdigit() or char in _SPECIALS for char in value):
        return True
    if len(value) >= 12 and _PASSPHRASE.fullmatch(value):
        return True  # ``meadow-otter-zebra``: words joined as a passphrase, not ``required``
    return numeric and _digit_group(value)


_PASSPHRASE = re.compile(r"[A-Za-z]{3,}(?:([-_.])[A-Za-z]{3,})(?:\1[A-Za-z]{3,})+")


def _strict_credential(value: str, numeric: bool) -> bool:
    """A bare word after ``key `` in prose: shaped like a password or a random token, not a word, a UUID,
    a version (go.sum's ``go-http-auth v0.4.0``) or a host name (S3's access log: ``AuthHeader
    s3.ap-southeast-1.amazonaws.com``)."""
    if numeric and _digit_group(value):
        return True
    if len(value) < 6 or _UUID.fullmatch(value) or _placeholder(value) or _VERSION.fullmatch(value):
        return False
    if "://" in value:
        return False  # a URL: its credentials are the URL rule's
    if "." in value and tokens.public_material(value):
        return False
    if not _has_digit(value) or not any(char.isalpha() for char in value):
        return False
    if len(value) < 8:
        return True  # short, but letters and digits together, as in "password hunter2"
    mixed_case = value.lower() != value and value.upper() != value
    return len(value) >= 16 or mixed_case or any(char in _SPECIALS for char in value)


def _ssn(candidate: str) -> bool:
    """Issued numbers only: no area 000, 666 or 9xx (the pattern), no group 00, no serial 0000."""
    area, group, serial = candidate.split("-")
    return area not in ("000", "666") and group != "00" and serial != "0000"


def _card(candidate: str) -> bool:
    groups = re.split(r"[ -]", candidate)
    if len(groups) > 1 and (len(groups[0]) != 4 or not all(3 <= len(group) <= 6 for group in groups[1:-1])):
        return False
    digits = "".join(groups)
    return _card_length(digits) and _luhn(digits)


def _card_length(digits: str) -> bool:
    """Whether the number has a length its network issues: Mastercard 16 (its 2-series is 2221-2720; 20xx is
    a date), Visa 13, 16 or 19, American Express 15 (no other network but UATP issues 15); the others 12 to
    19. A 19-digit instance id or an 18-digit snowflake passes Luhn's check one time in ten."""
    length, two = len(digits), digits[:2]
    if digits[0] == "2":
        return length == 16 and "2221" <= digits[:4] <= "2720"
    if digits[0] == "4":
        return length in (13, 16, 19)
    if two in ("34", "37"):
        return length == 15
    if length == 15:  # American Express's and UATP's (``1...``); an IMEI is 15 Luhn-valid digits
        return digits[0] == "1"
    return length == 16 if "51" <= two <= "55" else True


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

    # a search that finds nothing (the usual answer of a triggered rule) costs less than starting the walk
    return lambda text: text if pattern.search(text) is None else _mask_spans(text, spans(text))


def not_placeholder(value: str) -> bool:
    """What a vendor pattern found is a credential: not ``ghp_xxxx``, not ``hf_requiredCharacteristic...``."""
    if tokens.identifier_body(value):
        return False
    return not tokens.placeholder(value) or tokens.sequence_beside_random(value)


def hash_body(value: str) -> bool:
    """A password hash whose salt and digest are not a filler (``$6$xxxxxxxx$xxxx...``)."""
    return not tokens.placeholder(value.rsplit("$", 1)[-1])


def _has_digit(value: str) -> bool:
    return any(char.isdigit() for char in value)


def digit_key(value: str) -> bool:
    """An ``sk-`` key: with a digit, as OpenAI's are, and not a filler (``sk-0000...``)."""
    return _has_digit(value) and not_placeholder(value)


def _token_credential(value: str) -> bool:
    """What follows ``Bearer``: long, or with a digit or a base64 character, and not ``XXXXXXXXXXXX``."""
    if len(value) < 24 and not (len(value) >= 8 and any(char.isdigit() or char in "+/=" for char in value)):
        return False
    return not _placeholder(value)


# ----------------------------------------------------------------------------------------------------
# Value rules: patterns. Each starts with a literal or a small character set so that ``re`` skips quickly
# to candidate positions; the lookbehind right after that first character keeps a token from starting in
# the middle of a longer word.

# Also OpenVPN's ``-----BEGIN OpenVPN Static key V1-----`` (a shared secret). A truncated block is masked to
# the end.
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40}(?:PRIVATE KEY(?: BLOCK)?|OpenVPN Static key V[0-9])-----"
    r"(?:.*?-----END[A-Za-z0-9 ]{0,40}(?:PRIVATE KEY(?: BLOCK)?|Static key V[0-9])-----|.*)",
    re.DOTALL,
)
# crypt(3) and PHC password hashes: ``$6$salt$hash``, ``$2b$12$...``, ``$argon2id$v=19$m=...$salt$hash``; a
# hash of a password can be cracked, so it is masked like the password
PASSWORD_HASH_IDS = (
    "$1$", "$2a$", "$2b$", "$2x$", "$2y$", "$5$", "$6$", "$7$", "$y$", "$gy$", "$argon", "$pbkdf", "$scrypt$",
)  # fmt: skip
_PASSWORD_HASH = re.compile(
    r"\$(?<![\w$]\$)(?:1|2[abxy]|5|6|7|y|gy|argon2(?:id|i|d)|pbkdf2(?:-sha\d+)?|scrypt)\$[./\w$,=+-]{16,}"
)
_JWT = re.compile(r"e(?<![\w-]e)yJ[\w-]{10,}\.[\w-]{10,}(?:\.[\w+/=-]*){1,3}", re.ASCII)
_URL_CREDENTIALS = re.compile(
    r":(?<=[\w+.-]:)//"
    r"(?:[^\s:/?#@'\"<>]*:(?P<secret>[^\s/?'\"<>]+)|(?P<secret_token>(?=[\w.~%-]*[0-9])[\w.~%-]{16,}))"
    r"@(?=[\w\[])",
    re.ASCII,
)
# An access key id, with the secret access key right after it when written as a pair (``AKIA... / <40>``)
_AWS_ACCESS_KEY = re.compile(
    r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"  # ``A3T``: the oldest ids
    r"(?:[ \t]*[,:/|;][ \t]*[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=]))?"
)
# Amazon Bedrock API keys: long-lived ``ABSK`` + base64 of ``BedrockAPIKey-...``, short-lived
# ``bedrock-api-key-`` + base64 of ``bedrock.amazonaws.com/...``
_AWS_BEDROCK = re.compile(
    r"A(?<![A-Za-z0-9+/]A)BSKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{20,}={0,2}"
    r"|b(?<![\w-]b)edrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/]*={0,2}"
)
_AWS_SECRET_KEY = re.compile(
    r"[Aa][Ww][Ss][\w. -]{0,40}?(?i:secret|key)[\w.-]{0,40}['\"]?[ \t]*(?:[:=]|=>)?[ \t]*['\"]?"
    r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    re.ASCII,
)
_GITHUB = re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{20,}|ithub_pat_\w{20,})", re.ASCII)
_GITLAB = re.compile(
    r"g(?<![\w-]g)l(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas|agent)-[\w-]{20,}"
    r"|G(?<![\w-]G)R1348941[\w-]{20,}",  # a runner registration token
    re.ASCII,
)
_STRIPE = re.compile(
    r"s(?<![A-Za-z0-9_]s)k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|r(?<![A-Za-z0-9_]r)k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|w(?<![A-Za-z0-9_]w)hsec_[A-Za-z0-9+/=]{16,}"
)
_SLACK = re.compile(
    r"x(?<![\w-]x)(?:ox[abposrecd]-|oxe\.xox[bp]-|app-[0-9]-)[A-Za-z0-9-]{10,}"  # ``xoxc-``: a browser's
    r"|hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[\w/-]+)"
    r"|(?<![\w/])/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/(?P<secret_path>[A-Za-z0-9]{24})(?![A-Za-z0-9])",
    re.ASCII,
)
_WEBHOOK = re.compile(
    r"(?:discord(?:app)?\.com/api/webhooks|webhook\.office\.com/webhookb2|outlook\.office\.com/webhook)"
    r"/(?P<secret>[\w:/@.-]{16,})"
    # whose key is short or follows words: Zapier's catch hooks, IFTTT's Maker key, Loggly's customer token
    r"|hooks\.zapier\.com/hooks/(?:catch|standard)/[0-9]{3,12}/(?P<secret_zapier>[A-Za-z0-9]{5,40})"
    r"|maker\.ifttt\.com/(?:trigger/[\w.-]{1,64}/(?:json/)?with/key|use)/(?P<secret_ifttt>[\w-]{10,64})"
    r"|loggly\.com/(?:inputs|bulk)/(?P<secret_loggly>[\w-]{16,64})",
    re.ASCII,
)
# A bot's id, a colon and ``AA`` + 33: whole, in ``api.telegram.org/bot<token>/<method>`` as anywhere
_TELEGRAM = re.compile(r"(?<![\w:])(?:bot)?(?P<secret>\d{5,16}:AA[\w-]{30,33})(?![\w-])", re.ASCII)
_GOOGLE = re.compile(
    r"A(?<![\w-]A)Iza[\w-]{30,}|y(?<![\w-]y)a29\.[\w-]{20,}|G(?<![\w-]G)OCSPX-[\w-]{20,}"
    r"|A(?<![\w-]A)AAA[\w-]{7}:APA91b[\w-]{100,}",  # a Firebase Cloud Messaging server key, whole
    re.ASCII,
)
# Django's generated ``SECRET_KEY``: 50 characters of its own alphabet after ``django-insecure-``
_DJANGO = re.compile(r"django-insecure-(?P<secret>[a-z0-9!@#$%^&*(\-_=+)]{40,60})")
_ANTHROPIC = re.compile(r"s(?<![\w-]s)k-ant-[\w-]{20,}", re.ASCII)
_OPENAI = re.compile(r"s(?<![\w-]s)k-(?!ant-)[\w-]{20,}", re.ASCII)
_NPM = re.compile(r"n(?<![A-Za-z0-9_]n)pm_[A-Za-z0-9]{30,}")
_PYPI = re.compile(r"pypi-AgE[\w-]{20,}", re.ASCII)
_SENDGRID = re.compile(r"S(?<![\w-]S)G\.[\w-]{16,}\.[\w-]{16,}", re.ASCII)
_TWILIO = re.compile(r"(?:A(?<![A-Za-z0-9]A)C|S(?<![A-Za-z0-9]S)K)[0-9a-f]{32}(?![0-9a-f])")
_HUGGINGFACE = re.compile(r"h(?<![A-Za-z0-9_]h)f_[A-Za-z0-9]{30,}")
_SHOPIFY = re.compile(r"s(?<![A-Za-z0-9_]s)hp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}")
_DIGITALOCEAN = re.compile(r"d(?<![A-Za-z0-9_]d)o[opr]_v1_[A-Za-z0-9]{32,}")
# Braintree's (PayPal's) access tokens: ``$``-separated, which no token rule reads as one
BRAINTREE = re.compile(r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}")
_AZURE = re.compile(  # one literal first letter per branch keeps the search fast, the rest ignores case
    r"(?:A(?i:ccountkey)|a(?i:ccountkey)"
    r"|S(?i:haredaccess(?:key|signature))|s(?i:haredaccess(?:key|signature)))"
    r"[ \t]*=[ \t]*(?P<secret>[^;\s'\"]+)"
)
_BEARER = re.compile(
    r"(?:b(?<![A-Za-z0-9_]b)(?:earer|asic)|B(?<![A-Za-z0-9_]B)(?:earer|asic|EARER|ASIC)"
    r"|T(?<![A-Za-z0-9_]T)(?:oken|OKEN)|F(?<![A-Za-z0-9_]F)lyV1|S(?<![A-Za-z0-9_]S)SWS)"
    r"[ \t]+(?P<secret>[\w.~+/-]+=*(?:,[\w.~+/-]+=*)*)(?![^\s,;'\")\]}>])",
    re.ASCII,
)
_CONNECTION_STRING = re.compile(
    r"[Pp](?<![A-Za-z0-9_][Pp])(?i:assword|wd|asswd)[ \t]*=[ \t]*"
    # not a directory: sudo's log writes ``PWD=/home/ana ;``
    r"(?:(?P<secret>\{[^}\r\n]{0,256}\})|(?P<secret_plain>[^;\r\n'\"{ \t/][^;\r\n'\"]{0,256}?))[ \t]*;"
)
# Gates are searched in the text itself where no literal can say that a rule may apply (cards, passwords,
# random tokens). Each is a few (character class, what follows) alternatives: entered at a class that ordinary
# text rarely has, so that ``re`` skips most positions, and searchable all at once (``any_gate``).
Gate = tuple[tuple[str, str], ...]
# A card has 13-19 digits, grouped or not: the gate asks for 13 in its form (ordinary ids have fewer);
CARD_GATE: Gate = (("2-6", "[0-9]{3}(?:[ -]?[0-9]){9}"),)
# a password has one of these symbols (``user:<random token>`` is left to the token rule);
PASSWORD_GATE: Gate = ((r"!#$%\^&*@~", ""),)
# a US social security number is three, two and four digits joined by dashes;
SSN_GATE: Gate = (("0-9", "[0-9]{2}-[0-9]{2}-[0-9]{4}"),)
# a random token has a run of 8 letters and digits where digits meet letters or a capital follows a capital
# or a digit (not a number, not a word, not a capitalised word), or 16 digits; a grouped key has four groups
# of capitals and digits; a UUID (which a credential word may precede: ``access-production-<uuid>``) and
# its layout in other letters have digits before their fourth group.
_GROUPS = "[A-Z0-9]{0,7}-[A-Z0-9]{4,8}-[A-Z0-9]{4,8}-[A-Z0-9]{4}"
_SCATTERED = "(?=[A-Za-z0-9_+/-]{15})[A-Za-z_+/-]{0,30}[0-9]"
TOKEN_GATE: Gate = (
    (
        "0-9",
        r"(?<![0-9][0-9])"  # tried once per run of digits, at its first digit
        r"(?:(?<=[A-Za-z0-9]{7}[A-Za-z][0-9])|(?=[A-Za-z0-9]{7})[0-9]*[A-Za-z]|[0-9]*[A-Za-z](?<=[A-Za-z0-9]{8})"
        r"|[0-9]{15}"
        f"|{_GROUPS}|[0-9a-z]{{0,11}}-[0-9a-z]{{4}}-[0-9a-z]{{4}}-)",
    ),
    # ... or base64 cut by its own symbols: a capital, then 15 of its characters, a digit in the next 31
    ("A-Z", f"(?:(?=[A-Za-z0-9]{{7}})[a-z]*[A-Z0-9]|{_GROUPS}|{_SCATTERED})"),
)


# Where the anchors' tails and the gates test a digit they test [0-9], all digits alike, except the card
# gate's first digit, [2-6] (tests/test_redaction_speed.py checks this on the compiled patterns). So unless an
# anchor with a digit occurs, text has the same triggered rules as its digit shape: every digit written 0,
# except where the card gate could start (12 digits follow in its form), 2 for [2-6] and 1 for the others.
DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
CARD_DIGITS = bytes.maketrans(b"0123456789", b"1122222111")
# The card gate read on a shape, where every digit is 0: where it matches, the card gate could start.
CARD_START = re.compile(("0" + CARD_GATE[0][1].replace("[0-9]", "0")).encode())


def gate_pattern(gate: Gate) -> re.Pattern[str]:
    return re.compile("|".join(f"[{first}]{rest}" for first, rest in gate))


def any_gate(gates: Sequence[Gate]) -> re.Pattern[str]:
    """All the gates in one search, which finds a match exactly where one of them does and names it in
    group ``g<index>``: entered at the union of their classes (one class keeps ``re``'s fast skip), then
    each alternative behind a lookbehind for its own class."""
    firsts = "".join(dict.fromkeys(first for gate in gates for first, _ in gate))
    groups = (
        f"(?P<g{index}>" + "|".join(f"(?<=[{first}]){rest}" for first, rest in gate) + ")"
        for index, gate in enumerate(gates)
    )
    return re.compile(f"[{firsts}](?:{'|'.join(groups)})")


# A value runs to the next parameter: a ``#`` in it is more likely part of a password (JDBC URLs) than the
# start of a fragment, and only the values of secret parameters are masked.
_QUERY_PARAM = re.compile(r"[?&;](?P<name>[\w.%\[\]-]{1,64})=(?P<value>[^&;\s'\"<>]+)", re.ASCII)
# A private key written as its bytes: Solana's keypair file (``id.json``), a JSON array of 64 numbers 0-255
_BYTE = r"[ \t]*(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[ \t]*"
# whole, or as a captured local's bounded repr shows it: its first 10 items, then ``... 54 more]``
BYTE_KEY = re.compile(rf"\[(?:(?:{_BYTE},){{63}}{_BYTE}|(?:{_BYTE},){{10}} \.\.\. 54 more)\]")


def key_bytes_text(array: str) -> bool:
    numbers = [int(number) for number in re.findall(r"[0-9]+", array.removesuffix(" ... 54 more]"))]
    if len(numbers) == 10:  # the repr's first items: as random as the whole
        return len(set(numbers)) >= 8 and numbers != sorted(numbers) and max(numbers) >= 64
    return key_bytes(numbers)


def key_bytes(values: Sequence[object]) -> bool:
    """64 numbers 0-255 in no order with most of them different: random bytes, not a filler or a counter."""
    numbers = [value for value in values if type(value) is int and 0 <= value <= 255]
    return (
        len(numbers) == 64
        and len(set(numbers)) >= 40
        and numbers != sorted(numbers)
        and numbers != sorted(numbers, reverse=True)
    )


BYTE_KEY_GATE: Gate = ((",", r"(?:[ \t]*[0-9]{1,3}[ \t]*,){5}"),)  # entered at commas, which ids lack
_SSN = re.compile(r"[0-8](?<![\w.+-][0-8])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![\w-]|\.[0-9])", re.ASCII)
# not glued to a word or after a trace id's hex and ``/`` (Google's ``<trace id>/<decimal span id>``)
_CARD = re.compile(
    r"[2-6](?<![\w.+-][2-6])(?<![0-9][ -][2-6])(?<![0-9a-f]{8}/[2-6])[0-9]{3}(?:[ -]?[0-9]){9,15}"
    r"(?![\w]|[ .-][0-9])",
    re.ASCII,
)

# Free-text ``key<separator>value``: found from a key hint, then this is matched right after the key.
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_IDENT_REST = re.compile(r"[\w.-]+", re.ASCII)
# A type between a key and `` =`` (spaced, as typed assignments are written; ``Cookie: a=1`` is no type):
# ``password: str = ``, ``token: Optional[str] = ``, Go's ``var x string =``; the value follows ``=``
_TYPE = r"[ \t]*[A-Za-z_][\w.]*(?:\[[^\]\r\n=]{0,64}\])?(?:[ \t]*\|[ \t]*[A-Za-z_][\w.]*)*(?=[ \t]+=[^=>])"
# What opens a string literal before its quote: Python's ``b'..'``, ``rb'..'``, ``f'..'``, C#'s ``@".."`` and
# ``$".."``, Objective-C's ``@".."``, C's ``L".."`` and ``u8".."``
_STRING_PREFIX = r"(?:[bruf]{1,2}|@|\$@?|@\$|L|u8|N)"
STRING_PREFIX = re.compile(_STRING_PREFIX)
_KEY_VALUE = re.compile(
    r"""\\?["']?                                         # closing quote of a quoted key
    (?:(?<=["'])\](?=[ \t]*(?:\|\||\?\?)?=[^=]))?        # a subscript assigned: ``os.environ["TOKEN"] =``
    (?:\[[0-9]{0,6}\])?                                  # C's ``char secret[25] =``, ``secret[] =``
    (?:[ \t]*:"""
    + _TYPE
    + r"""|[ \t]+string(?=[ \t]+=[^=>]))?
    (?:[ \t]*(?P<sep>=>|:{1,3}=|\|\|=|\?\?=|[=!]==|[=!?.+]=|[=,]|:(?!"""
    + _TYPE
    + r"""))[ \t]*|[ \t]+)
    (?P<scheme>(?:[Bb]earer|BEARER|[Bb]asic|BASIC|Token|TOKEN|Digest|Negotiate|NTLM|AWS4-HMAC-SHA256|FlyV1)
        [ \t]+)?
    (?:
        (?:"""
    + _STRING_PREFIX
    + r"""(?=["']))?(?P<quote>\\?["']|`(?=[^\s`]+`))(?P<quoted>[^\r\n]{0,4096}?)(?P=quote)
      | (?P<bare>(?!`(?:\s|$))[^\s'"\\,;&)\]}>{\[(<=][^\s'"\\,;&)\]}><]*
          (?:<(?!/)[^\s'"\\,;&)\]}><]*)*)                  # up to a closing tag: ``pw:x</Value>``
    )""",
    re.VERBOSE,
)
_SEPARATOR_NEXT = re.compile(r"[ \t]*[:=]")
# What an assigned value keeps after a ``&``, ``;`` or ``,`` of its own (``DB_PASS=x&!nTWR``): runs that are
# not the next pair (``&user=bob``, ``;Server=db``, ``,retries=3``), up to where the word ends
VALUE_GOES_ON = re.compile(r"(?:[&;,](?![A-Za-z_][\w.\[\]-]{0,63}=)[^\s'\"\\&;,]+)+(?=[\s'\"\\]|\Z)")
# A string literal compared with a key, the literal first: ``if ("..." === password)``
_COMPARED_BEFORE = re.compile(
    r"""(?P<quote>["'])(?P<quoted>[^"'\r\n]{1,256})(?P=quote)[ \t]*[=!]==?[ \t]*\Z"""
)
_BARE_RUN = re.compile(r"[^\s'\"\\,;&]+")
_CALL_START = re.compile(r"[A-Za-z_$][\w.$]*\(")  # ``= load(``, ``= os.environ.get(``


def bracketed_bare(text: str, start: int, bare: str) -> str:
    """A bare value with brackets inside runs on past them to the next space or delimiter, less the closing
    brackets it has more of than opening ones (those close what the key sits in): ``m{h}o)p${e]n(d[x>-#y}``
    is one password, ``{password=a{b}}`` gives ``a{b}``. Pieces glued on with commas belong to it too
    unless they are the next pair (``PASSWORD=ab,*cD~e`` is one value, ``password=ab,user=bob`` is not)."""
    value = bare
    if "{" in bare or "[" in bare or "(" in bare or "<" in bare:
        run = _BARE_RUN.match(text, start)
        value = run[0] if run else bare
        while value[-1] in ")]}" and sum(map(value.count, ")]}")) > sum(map(value.count, "([{")):
            value = value[:-1]
    end = start + len(value)
    while text[end : end + 1] == ",":
        piece = _BARE_RUN.match(text, end + 1)
        if piece is None or "=" in piece[0] or ":" in piece[0]:
            break
        end = piece.end()
    return text[start:end]


_CALL_NEXT = re.compile(r"[ \t]+[A-Za-z_][\w.]*[ \t]*\(")  # ``= new NetworkCredential(``
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
    gate: Gate = ()
    # The gate is not searched in shorter strings unless an anchor of another rule occurred (a context word).
    gate_length: int = 8


def _segments(apply: Callable[[str], str], text: str) -> str:
    """Apply a rule between existing masks only, so ``[REDACTED]`` never triggers or changes anything."""
    if REDACTED not in text:
        return apply(text)
    parts = text.split(REDACTED)
    scrubbed = [apply(part) for part in parts]
    if all(new is old for new, old in zip(scrubbed, parts, strict=True)):
        return text
    return REDACTED.join(scrubbed)


# ----------------------------------------------------------------------------------------------------
# Generic rules: random tokens (with the context words before them), credential pairs, SQL literals

TOKEN = re.compile(r"(?<![A-Za-z0-9+/_.~-])[A-Za-z0-9+/_.~-]{8,}=*")
_SECRET_CONTEXT = re.compile(
    r"key|token|secret|passw|pwd|credential|bearer|signature|(?<![a-z])(?:auth|login|private|pat|sk|"
    r"github|gitlab|slack|stripe|aws|azure|gcp|google|openai|anthropic|twilio|sendgrid|mailgun|heroku|npm|"
    r"pypi|docker|vault|okta|datadog|sentry|jira|atlassian|notion|huggingface|shopify|cloudflare|"
    r"digitalocean|linear|doppler|grafana|discord|telegram|dropbox|firebase)"
    # more services whose name alone, as a setting's, says a key follows (``SONARQUBE=<hex>``)
    r"|(?<![a-z])(?:sonar(?:qube|cloud)?|softlayer|paypal|braintree|mailchimp|sendinblue|brevo|postmark|mailjet|algolia|"
    r"mixpanel|amplitude|newrelic|pagerduty|opsgenie|circleci|bitbucket|artifactory|jfrog|snyk|netlify|"
    r"vercel|fastly|cloudinary|contentful|airtable|asana|zendesk|intercom|hubspot|salesforce|coinbase|"
    r"binance|shippo|easypost|twitch|mapbox|pusher|nexmo|vonage|plivo|messagebird|rollbar|bugsnag|"
    r"logdna|loggly|sumologic|dynatrace|confluent|supabase|planetscale|onelogin)(?![a-z])"
)
_PUBLIC_CONTEXT = re.compile(
    r"(?<![a-z])(?:ids?|sha\d*|hash|digest|commit|revision|rev|checksum|trace|span|uuid|guid|etag|version|"
    r"build|request|order|nonce|md5|image|tag|ref|object|file|path|row|record|invoice|customer|user|ulid|ksuid|"
    r"nanoid|cuid|snowflake|objectid|fingerprint|cursor)(?![a-z])"
)
# ``SHA256:nThbg6kXUpJW...`` (an SSH key fingerprint), ``md5=...``, go.sum's ``h1:``: the token after it is a
# digest; after a MIME ``boundary=`` it is the boundary of a multipart body
_DIGEST_LABEL = re.compile(r"(?i:sha-?(?:1|224|256|384|512)?|md5|blake2[bs]?|crc32|h1|boundary)(?:[:=]|=:)\Z")
_CONTEXT_WINDOW = 40
# A pair's start after a context word, whose key is then the token's own: ``, 'value': ``, ``&id=``
_NEXT_KEY = re.compile(r"""[,;&\n{(][ \t]*["']?[a-z_][\w.-]{0,63}["']?[ \t]*[:=]""")
_NAMESPACED = re.compile(r"[ \t]*[=:][ \t]*['\"]?[a-z][a-z0-9_-]{0,30}:")


def context_before(text: str, start: int) -> int:
    """What the words just before ``start`` say about the token there: secret, public or nothing."""
    raw = text[max(0, start - _CONTEXT_WINDOW) : start]
    window = _lower(raw)
    if not window:
        return tokens.NEUTRAL
    secret = public = -1
    for match in _SECRET_CONTEXT.finditer(window):
        if not _compound_non_secret(window, raw, match.start(), match.end()):
            secret = match.end()
    if secret >= 0 and _NAMESPACED.fullmatch(window, secret):
        secret = -1  # ``key=cart:<uuid>``: the key names the cart's id, its value is judged whole elsewhere
    if secret >= 0 and _NEXT_KEY.search(window, secret):
        secret = -1  # ``{'key': 'note', 'value': <hex>}``: the word was another pair's key
    for match in _PUBLIC_CONTEXT.finditer(window):
        public = match.end()
    if secret < 0 and public < 0:
        return tokens.NEUTRAL
    return tokens.SECRET if secret > public else tokens.PUBLIC


def _compound_non_secret(window: str, raw: str, start: int, end: int) -> bool:
    """Whether the context word is part of a longer name the key rules call not secret (``cache_key``,
    ``pageToken``: the name as written, ``raw``, since case splits words); a vendor's name or ``private``
    standing alone is no such name (``cloudflare: <key>``)."""
    word = window[start:end]
    while start and (window[start - 1].isalnum() or window[start - 1] in "_-"):
        start -= 1
    while end < len(window) and (window[end].isalnum() or window[end] in "_-"):
        end += 1
    if start > 1 and window[start - 1] == " " and window[start - 2].isalnum():  # "cache key" in prose
        start -= 1
        while start and window[start - 1].isalnum():
            start -= 1
    name = window[start:end]
    return (
        name != word
        and name not in _SECRET_WORDS
        and not keys.classify(raw[start:end], frozenset(), frozenset())
    )


_SECRET_WORDS = frozenset({"key", "token", "secret", "password", "pwd", "credential", "bearer", "signature"})


# ``arn:<partition>:<service>:<region>:<account>:``, then the resource: an ARN names a resource (a KMS key, a
# certificate, a secret), it never holds one
_ARN_HEAD = re.compile(r"arn:aws[a-z-]{0,12}:[a-z0-9-]{1,40}:[a-z0-9-]{0,24}:[0-9]{0,12}:")
_ARN_BREAK = re.compile(r"[\s'\"<>`,;]")


def reference_value(kind: str, value: str, at: int = 0) -> bool:
    """Whether the value at ``at`` under a key of this kind names something rather than holds a secret: an
    ARN (``secret arn:aws:secretsmanager:...``), under a session word a counter, or under ``PWD`` a directory
    (the shell's working directory in sudo's log and in environment dumps; ODBC's ``PWD=`` is a password)."""
    if value.startswith("arn:", at):
        return _ARN_HEAD.match(value, at) is not None
    if kind in _SESSION_KINDS and _NUMBERED.match(value, at):
        return True  # a counter, not a web session's random id: ``CBS Session: 30546174_50419890``
    return kind == "pwd" and (
        value.startswith(("/", "~/"), at) or _WINDOWS_DIRECTORY.match(value, at) is not None
    )


_SESSION_KINDS = frozenset({"session", "sessionid", "sessid"})
_NUMBERED = re.compile(r"(?:0x[0-9a-fA-F]{1,16}|[0-9]{1,20}(?:[_.:-][0-9]{1,20}){0,3})(?=$|[\s,;&'\")\]}])")
_WINDOWS_DIRECTORY = re.compile(r"[A-Za-z]:\\")


def in_arn(text: str, at: int) -> bool:
    """Whether position ``at`` of ``text`` is inside an ARN's resource part."""
    head = text.rfind("arn:aws", max(0, at - 200), at)
    if head < 0 or (head and (text[head - 1].isalnum() or text[head - 1] in "_-")):
        return False
    found = _ARN_HEAD.match(text, head)
    return found is not None and found.end() <= at and not _ARN_BREAK.search(text, found.end(), at)


# ``<version>/<account id>[/<app id>]:<secret>``, as Asana's personal access tokens are written
_ID_PATH_BEFORE = re.compile(r"(?<![\w/])[0-9]{1,2}/[0-9]{10,20}(?:/[0-9]{10,20})?:\Z")
# A Kubernetes bootstrap token (``kubeadm token create``): a public id, a dot, its secret
_BOOTSTRAP_TOKEN = re.compile(r"[a-z0-9]{6}\.(?=(?:[a-z]*[0-9]){3})(?=(?:[0-9]*[a-z]){3})[a-z0-9]{16}")


def token_verdict(token: str, text: str, start: int) -> bool:
    if start > 20 and in_arn(text, start):
        return False
    if start > 2 and id_key_before(text, start):
        return False
    if start > 12 and text[start - 1] == "," and _CONTENT_DATA_URI.search(text, max(0, start - 80), start):
        return False  # an inlined image or font: ``data:image/png;base64,...``
    if start > 2 and text.endswith(('W/"', 'W/\\"'), 0, start):
        return False  # a weak ETag: ``W/"0c3c-vf3zDb4KanZUwkE2k6JSMXAYLCu"``
    end = start + len(token)
    if text[end : end + 1] == "@" and (not start or text[start - 1] in _ADDRESS_OPENERS):
        return False  # the local part of an address: ``Message-ID: <CAJ3k...@mail.gmail.com>``
    if len(token) == 23 and token[6] == "." and _BOOTSTRAP_TOKEN.fullmatch(token):
        return not tokens.placeholder(token)  # ``abcdef.0123456789abcdef`` in kubeadm's documentation
    if tokens.canonical_uuid(token):
        return tokens.hex_verdict(token, _context(text, start))
    if not tokens.candidate(token) or _REFERENCE.fullmatch(token) or tokens.public_material(token):
        return False
    if _DIGEST_LABEL.search(text, max(0, start - 9), start):
        return False
    if token[:2] == "0x" and len(token) <= 18 and all(char in tokens.HEX for char in token[2:]):
        return False  # a number or an address (``<function login at 0x7f3a2b1c4d5e>``), whatever the words
    if tokens.hex_like(token):  # digests, trace ids: only the words before them can tell
        if len(token) >= 32 and _ID_PATH_BEFORE.search(text, max(0, start - 48), start):
            return tokens.hex_verdict(token, tokens.SECRET)
        return tokens.hex_verdict(token, _context(text, start))
    if tokens.public_prefix(token):
        return tokens.letter_uuid(token)  # PubNub's ``pub-c-...``: no public id is written so
    if tokens.prefixed_random(token) or tokens.looks_random(token):
        return True
    context = _context(text, start)
    if context == tokens.NEUTRAL and _after_user(text, start):
        context = tokens.PREFIXED
    return context != tokens.NEUTRAL and tokens.looks_random(token, context)


# ``data:image/png;base64,``: a file's content follows (of a text type it is judged: JSON may hold keys)
_CONTENT_DATA_URI = re.compile(r"data:(?:image|font|audio|video)/[\w.+-]{1,64};base64,\Z")
_ADDRESS_OPENERS = frozenset(" \t\n<(\"',;")


def _context(text: str, start: int) -> int:
    """``context_before``, except for a subscript: in ``auth.tasks.send_receipt[<uuid>]`` (Celery's task and
    its id) the words name the task, not the token. A token right after ``:`` at the start of a text that the
    rules see between masks is the second half of a pair whose first half was masked: Twilio's ``curl -u
    AC<sid>:<auth token>``, an access key id and its secret."""
    if start > 1 and text[start - 1] == "[" and text[start - 2] in _IDENT_CHARS:
        return tokens.NEUTRAL
    if start == 1 and text[0] == ":":
        return tokens.SECRET
    return context_before(text, start)


def id_key_before(text: str, start: int) -> bool:
    """Whether the token at ``start`` is the value of ``KEY=``, ``KEY: `` or ``"key": "`` whose key names an
    id or a digest (``REQUEST_ID=...``, ``"doc_id": "..."``): it declares the value one, as an attribute's
    key does (the rules of credential formats still run)."""
    at = start
    if text[at - 1] in "\"'":
        at -= 1
    while at and text[at - 1] == " ":
        at -= 1
    if not at or text[at - 1] not in "=:":
        return False
    at -= 1
    while at and text[at - 1] in " \"'":
        at -= 1
    end = at
    while at and text[at - 1] in _IDENT_CHARS:
        at -= 1
    return end - at >= 2 and keys.names_id(text[at:end])


def _after_user(text: str, start: int) -> bool:
    """Whether the token is the second half of ``user:<token>`` (``curl -u``, a login pair), which says as
    much as a vendor's prefix does: ``svc-deploy:qgsnai0xokrw4j1``, ``ana@example.org:pQ9wTxu4Fg``."""
    if start < 2 or text[start - 1] != ":":
        return False
    at = start - 1
    while at and (text[at - 1].isalnum() or text[at - 1] in "_.-@"):
        at -= 1
    return any(char.isalpha() for char in text[at : start - 1])  # a name, not a time: ``18:37:43.139620629Z``


# ``curl -u user:password`` and ``--user user:password``
_CURL_USER = re.compile(r"-(?<![\w-]-)(?:u|U|-user|-proxy-user)[ =]+['\"]?[^\s:'\"]*:(?P<secret>[^\s'\"]+)")
# ``curl -u sk_live_...:``, ``--user "d2LkV78zLx!t:"``: with no password after the colon, the user is the key
_CURL_KEY = re.compile(r"-(?<![\w-]-)(?:u|-user)[ =]+['\"]?(?P<secret>[^\s:'\"]{8,256}):(?=['\"\s]|$)")
# ``mysql -uroot -pS3cret`` (the password glued to ``-p``; elsewhere ``-p8080`` is a port)
_MYSQL_PASSWORD = re.compile(
    r"m(?<![\w-]m)(?:ysql|ariadb)[\w-]{0,16}[ \t][^\r\n]{0,256}?(?<=\s)-p(?P<secret>[^\s'\"]+)"
)
# ``psexec -u Administrator -p braksha``, ``sqlcmd -U sa -P secret``: a password flag right after a user flag
_USER_THEN_PASSWORD = re.compile(
    r"-(?<![\w-]-)[uU][ \t]*['\"]?[^\s'\"-][^\s'\"]*['\"]?[ \t]+"
    r"-[pP][ \t]*['\"]?(?P<secret>[^\s'\"-][^\s'\"]*)"
)
_PORTS_OR_PATHS = re.compile(r"[0-9:./-]+")  # ``docker run -u 1000 -p 8080:80``
# A flag that names a password whatever the command: keytool's ``-storepass``, gpg's ``--passphrase``,
# openssl's ``-passin pass:...``, PuTTY's ``-pw``, xfreerdp's ``/p:``
_PASSWORD_FLAG = re.compile(
    r"(?:(?<![\w-])-{1,2}(?:(?:src|dest)?(?:store|key)pass|pass(?:word|phrase|in|out)?|pw)(?![\w-])"
    r"(?:[ \t]+|=)"
    r"|(?<![\w/])/p:)(?:pass:)?(?P<q>['\"]?)(?!pass:)(?P<secret>[^\s'\"]{1,256})(?P=q)"
)
# A command's own password flag or place: ``sshpass -p``, ``redis-cli -a``, ``zip -P``, ``7z -p<password>``,
# ``htpasswd -b <file> <user> <password>``, ``net use <share> <password> /user:...``
_COMMAND_PASSWORD = re.compile(
    r"(?<![\w-])(?:sshpass(?:[ \t]+-[a-oq-z]\S*)*[ \t]+-p[ \t]*|redis-cli\b[^\r\n|;&]{0,200}?[ \t]-a[ \t]+"
    r"|(?:un)?zip\b[^\r\n|;&]{0,200}?[ \t]-P[ \t]+|7z[a-z]?\b[^\r\n|;&]{0,200}?[ \t]-p(?=\S)"
    r"|htpasswd[ \t]+-[a-zA-Z]*b[a-zA-Z]*(?:[ \t]+-[a-zA-Z]+)*[ \t]+(?!-)\S+[ \t]+\S+[ \t]+"
    r"|net[ \t]+use[ \t]+(?:[A-Za-z]:[ \t]+)?\\\\\S+[ \t]+(?=[^\s*/])"  # then options, each after a /
    r"|ssh-keygen\b[^\r\n|;&]{0,200}?[ \t]-[NP][ \t]+"  # the new and the old passphrase
    r"|ldap(?:search|modify|add|delete|passwd|whoami|compare|modrdn)\b[^\r\n|;&]{0,200}?[ \t]-w[ \t]+"
    r"|user(?:add|mod)\b[^\r\n|;&]{0,200}?[ \t]-p[ \t]+|openssl[ \t]+enc\b[^\r\n|;&]{0,200}?[ \t]-k[ \t]+"
    r"|snmp[a-z]{2,12}\b[^\r\n|;&]{0,200}?[ \t]-A[ \t]+"  # SNMPv3's authentication passphrase
    r"|net[ \t]+user[ \t]+(?!/)\S+[ \t]+(?=[^\s*/])"
    r"|lftp\b[^\r\n|;&]{0,200}?[ \t]-u[ \t]+['\"]?[^\s,'\"]{1,64},"  # ``lftp -u user,password``
    r"|rabbitmqctl[ \t]+(?:add_user|change_password)[ \t]+\S+[ \t]+"
    r"|mc[ \t]+alias[ \t]+set(?:[ \t]+\S+){3}[ \t]+"  # a name, a URL, a user
    r"|nmcli\b[^\r\n|;&]{0,200}?[ \t](?:password|wifi-sec\.psk)[ \t]+|wpa_passphrase[ \t]+\S+[ \t]+"  # Wi-Fi
    r"|ConvertTo-SecureString[ \t]+(?:-String[ \t]+)?(?=\S+[ \t]+-AsPlainText)"
    r"|echo[ \t]+(?:-[ne][ \t]+)?"  # what is piped into a command that reads its password from stdin
    r"(?=\S+[ \t]*\|[^\r\n|]{0,200}?(?:--password-stdin|sudo[ \t]+-S|passwd[ \t]+--stdin)))"
    r"(?P<q>['\"]?)(?P<secret>[^\s'\"]{1,256})(?P=q)"
)
# SNMPv3's privacy passphrase (a second match of the same command)
_SNMP_PRIVACY = re.compile(
    r"snmp[a-z]{2,12}\b[^\r\n|;&]{0,300}?[ \t]-X[ \t]+(?P<q>['\"]?)(?P<secret>[^\s'\"]{1,256})(?P=q)"
)
# Samba's ``-U user%password`` (smbclient, rpcclient, winexe)
_USER_PERCENT = re.compile(
    r"(?<![\w-])(?:smbclient|rpcclient|smbcacls|smbget|smbmap|winexe)\b"
    r"[^\r\n|;&]{0,200}?"
    r"[ \t](?:-U[ \t]*|--user(?:name)?[= \t])['\"]?[^\s%'\"]{1,64}%(?P<secret>[^\s'\"]{1,256})"
)
# ``echo "user:password" | chpasswd``
_CHPASSWD = re.compile(
    r"echo[ \t]+(?:-[ne][ \t]+)?['\"]?[\w.@-]{1,64}:(?P<secret>[^\s'\"]{1,256})['\"]?"
    r"[ \t]*\|[ \t]*(?:sudo[ \t]+)?chpasswd"
)
# Redis's ``AUTH [user] password`` as a statement of its own (a Redis span's ``db.statement``)
_REDIS_AUTH = re.compile(
    r"^AUTH[ \t]+(?:[^\s'\"]+[ \t]+)?(?![?*]+$)(?P<secret>[^\s'\"]{1,256})$",
    re.MULTILINE,  # not ``AUTH ?``
)
# SQL that sets a password: ``CREATE USER ... IDENTIFIED BY '...'``, ``ALTER ROLE ... PASSWORD '...'``,
# ``CREATE LOGIN ... WITH PASSWORD = '...'``, ``SET PASSWORD FOR ... = '...'``: a word counts
_SQL_PASSWORD = re.compile(
    r"(?i:\b(?:create|alter)[ \t]+(?:user|role|login)\b[^;\r\n]{0,200}?\bpassword"
    r"|\bidentified(?:[ \t]+with[ \t]+\w+)?[ \t]+by"  # also in MySQL's ``GRANT ... IDENTIFIED BY``
    r"|\bset[ \t]+password\b[^;\r\n]{0,200}?=)"
    # the value quoted, also as T-SQL's N'...'
    r"[ \t]*=?[ \t]*(?:(?i:password)[ \t]*\([ \t]*)?N?(?P<q>['\"])(?P<secret>[^'\"\r\n]{1,256})(?P=q)"
)
# ``db.internal:5432:orders:app:s3cret`` (a .pgpass line: host, port, database, user, password)
_PGPASS = re.compile(
    r"^[ \t]*[\w.*-]{1,253}:(?:[0-9]{1,5}|\*):[\w.*-]{1,63}:[A-Za-z_*][\w.@*-]{0,63}:"
    r"(?P<secret>[^\s:]{4,128})[ \t]*$",
    re.MULTILINE,
)
# ``machine api.example.com login bob password s3cret`` (.netrc)
_NETRC = re.compile(r"m(?<![\w-]m)achine[ \t]+\S+[ \t]+login[ \t]+\S+[ \t]+password[ \t]+(?P<secret>\S+)")
# A configuration file's directive, a name and its value alone on a line: Redis's ``requirepass x``,
# keepalived's ``auth_pass x``, a Dockerfile's ``ENV DB_PASSWORD x``, csh's ``setenv TOKEN x``. The name must
# be more than a plain word: a log line ``Token expired`` is no directive.
DIRECTIVE = re.compile(
    r"^[ \t]*(?:(?:ENV|setenv|SetEnv|export)[ \t]+)?(?P<name>[A-Za-z_][\w.-]{1,63})[ \t]+"
    # not a flag (``sshpass -p``), nor the separator before a value masked already (``token = [REDACTED]``)
    r"(?P<q>[\"']?)(?P<secret>(?=[^\s\"']*[A-Za-z0-9])[^\s\"'=:-][^\s\"']{0,255})(?P=q)[ \t]*\r?$",
    re.MULTILINE,
)
PLAIN_SECRET_WORDS = _SECRET_WORDS | frozenset(
    {
        "passwd", "pass", "passphrase", "auth", "credentials", "apikey", "authorization", "session",
        "cookie", "cookies",
    }
)  # fmt: skip
# What a log line says of a secret after its name: ``auth_token refreshed``, ``db_password missing``
_STATE_WORDS = frozenset(
    {
        "refreshed", "expired", "missing", "rotated", "revoked", "invalid", "empty", "none", "null", "unset",
        "required", "ok", "true", "false", "changed", "updated", "created", "deleted", "loaded", "saved",
        "set", "found", "accepted", "rejected", "denied", "failed", "generated", "issued", "verified",
        "validated", "reset", "cleared", "cached", "provided", "configured", "enabled", "disabled", "present",
        "absent", "redacted", "masked", "hidden", "ready", "pending", "valid", "renewed", "received", "sent",
    }
)  # fmt: skip


def directive_value(value: str) -> bool:
    return value.lower() not in _STATE_WORDS


# ``{"name": "DB_PASSWORD", "value": "..."}`` (ECS and Kubernetes environments, also as YAML on two lines),
# CloudFormation's ``{'ParameterKey': 'DBPassword', 'ParameterValue': '...'}``: a setting's name says what its
# value is
SETTING_NAMES = ("name", "Name", "key", "Key", "ParameterKey", "OptionName")
SETTING_VALUES = ("value", "Value", "ParameterValue")
NAMED_VALUE = re.compile(
    rf"(?P<nq>[\"']?)(?:{'|'.join(SETTING_NAMES)})(?P=nq)[ \t]*[:=][ \t]*(?P<q>[\"']?)"
    r"(?P<name>[\w.-]{1,128})(?P=q)[ \t]*,?[ \t]*(?:\r?\n[ \t]*)?"
    rf"(?P<vq>[\"']?)(?:{'|'.join(SETTING_VALUES)})(?P=vq)[ \t]*[:=][ \t]*"
    r"(?:(?P<q2>[\"'])(?P<secret>[^\"'\r\n]{1,1024})(?P=q2)|(?P<secret_bare>[^\s\"',}]{1,1024}))"
)
# ``<add key="SmtpPassword" value="..."/>``, ``<property name="password" value="..."/>``: a setting's name
# says what its value is
XML_SETTING = re.compile(
    r"(?<![\w-])(?i:key|name)[ \t]*=[ \t]*(?P<q>[\"'])(?P<name>[^\"'<>\s]{1,128})(?P=q)[ \t]+"
    r"(?i:value)[ \t]*=[ \t]*(?P<q2>[\"'])(?P<secret>[^\"'<>]{1,1024})(?P=q2)"
)
# ``<password>...</password>``, ``<SessionToken>...</SessionToken>``: an element's name says what it holds,
# also in a ``<Value>`` of its own (Windows' unattend.xml: ``<AdministratorPassword><Value>...</Value>``)
XML_ELEMENT = re.compile(
    r"<(?P<name>[A-Za-z_][\w.:-]{0,63})(?:[ \t][^<>]{0,256})?>\s{0,64}"
    r"(?:<(?P<inner>[Vv]alue)>(?P<nested>[^<>\r\n]{1,1024})</(?P=inner)>"
    r"|(?P<secret>[^<>\s](?:[^<>\r\n]{0,1022}[^<>\s])?)\s{0,64}</(?P=name)>)"  # no spaces at either end
)
# ``<key>Password</key><string>...</string>`` (a property list), ``<entry><key>db.password</key><value>...``
XML_KEYED = re.compile(
    r"<key>(?P<name>[^<>\s]{1,128})</key>\s{0,64}<(?P<tag>string|value|data)>"
    r"\s{0,64}(?P<secret>[^<>\s](?:[^<>\r\n]{0,1022}[^<>\s])?)\s{0,64}</(?P=tag)>"
)
# ``requests.get(url, auth=("admin", "S3cret"))``, ``HTTPBasicAuth("u", "p")``, ``DirectoryEntry("LDAP://h",
# "user", "p")``, ``new NetworkCredential("u", "p")``: the last string, after the user, of a credential call
_STRING_ARG = r"[bru]?(?:\"[^\"\n]{0,256}\"|'[^'\n]{0,256}')"
CREDENTIAL_CALL = re.compile(
    r"(?:(?<![\w.])auth[ \t]*=[ \t]*\(|['\"]auth['\"][ \t]*:[ \t]*\("  # also a mapping's ``'auth': (``
    r"|(?:HTTPBasicAuth|HTTPDigestAuth|BasicAuth|NetworkCredential"
    r"|PSCredential|PasswordAuthentication|UsernamePasswordCredentials|DirectoryEntry"
    r"|(?<=\.)(?:login|simple_bind_s|simple_bind|bind_s))[ \t]*\()"  # smtplib/ftplib/imaplib, python-ldap
    # then the user: a literal or a name
    rf"\s*(?:{_STRING_ARG}\s*,\s*)?(?:{_STRING_ARG}|[A-Za-z_][\w.]{{0,64}})\s*,\s*"
    r"[bru]?(?P<q>[\"'])(?P<secret>[^\"'\n]{1,256})(?P=q)(?=\s*(?:\)|,\s*[^\"'\s]))"
)
# The key argument of a signing call: ``jwt.encode(payload, "secret")``, Ruby's ``JWT.encode payload, 'k'``,
# ``JWT.verify(token, 'shhhhh')``, ``Algorithm.HMAC256("secret")``, ``hmac.new(b"key", msg)``
SIGNING_CALL = re.compile(
    r"(?:(?<![\w])(?:jwt|JWT|jws|JWS|jsonwebtoken|Jwts)\.(?:encode|decode|sign|verify)(?:[ \t]*\(|[ \t]+)"
    r"[^,()\n]{1,200},[ \t]*"
    r"|(?<![\w])Algorithm\.HMAC(?:256|384|512)[ \t]*\([ \t]*"
    r"|(?<![\w.])hmac\.(?:new|HMAC|digest)[ \t]*\([ \t]*(?:key[ \t]*=[ \t]*)?)"
    r"[bru]?(?P<q>[\"'])(?P<secret>[^\"'\n]{1,256})(?P=q)"
)
# ``the default password is 'blooberry'``, ``the password for user 'postgres' is "admin"``, ``Login failed for
# user 'sa' with password 'x'``
PROSE_IS = re.compile(
    r"(?:(?:[Pp]ass(?:word|phrase)|PASSWORD|[Ss]ecret|[Tt]oken)(?![\w-])[^.\n]{0,40}?[ \t]is"
    r"|(?<![\w-])(?:with|using)[ \t]+(?:the[ \t]+)?(?:[Pp]assword|PASSWORD))[ \t]+"
    r"(?P<q>[\"'])(?P<secret>[^\"'\n]{1,64})(?P=q)"
)
# ``login failed for alice with Celtics#175``: what a login was tried with, in an application's message
LOGIN_WITH = re.compile(
    r"(?i:\b(?:log(?:ged)?[ -]?in|sign(?:ed)?[ -]?in|authenticat\w{0,5})\b)[^\n.;:]{0,60}?[ \t]with[ \t]+"
    r"(?P<q>['\"]?)(?P<secret>[^\s'\",;()]{6,128})(?P=q)(?=[\s'\",;)]|$)"
)
# ``scott/tiger@//db:1521/ORCL``: Oracle's user/password before an EZConnect address
_ORACLE = re.compile(r"(?<![\w/$#.-])[\w$#.-]{1,64}/(?P<secret>[^\s/@'\"]{1,128})@//")
# ``jdbc:oracle:thin:scott/tiger@db:1521:ORCL``: a JDBC URL's user/password, whatever the address
_ORACLE_JDBC = re.compile(r"jdbc:oracle:[a-z0-9]{1,8}:[\w$#.-]{1,64}/(?P<secret>[^\s/@'\"]{1,128})@")
# ``user:password@host`` without a scheme (a Host header, stdlib frame locals), also with no user in a quoted
# netloc (``urlparse``'s ``netloc=':pw@cache:6379'``)
_SCHEMELESS = re.compile(
    # not an IAM member: Google Cloud's ``user:ana.lopez@example.com``, ``serviceAccount:ci@p.iam...``
    r"(?!(?:user|group|serviceAccount|domain|principal|deleted):[a-z0-9]+(?:[._-][a-z0-9]+)+@)"
    r"(?:(?<![\w:/@.%+\\-])[A-Za-z0-9_.+-]{1,64}|(?<=['\"])):(?P<secret>[^\s:/@'\"<>]{3,128})@(?=[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?(?:[/\s'\",;)]|$))"
)
_PLACEHOLDER_WORDS = frozenset(
    {"password", "pass", "passwd", "pwd", "token", "secret", "test", "key", "changeme"}
)


def credential_part(value: str) -> bool:
    """The password half of a ``user:password`` pair: not empty, not ``$VAR``/``{{ x }}``, not a word."""
    if percent_escaped(value):
        value = unquote(value)  # ``%21pw``: a URL's escape, not a variable
    if _placeholder(value) or tokens.placeholder(value) or value.lower() in _PLACEHOLDER_WORDS:
        return False
    if value.isalpha() and value.islower():
        return False  # a word: ``mailto:someone@example.com``
    return value[0] not in "$%{<[(`"


_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def percent_escaped(value: str) -> bool:
    """Whether a leading ``%`` is a URL's percent-escape (``%21pw``), not a variable (``%APP_PASSWORD%``)."""
    return _PERCENT_ESCAPE.match(value) is not None and not value.endswith("%")


# ``INSERT INTO users (name, password) VALUES ('bob', 'S3cret!')``
SQL_INSERT = re.compile(
    r"(?i:insert)\s+(?i:into)\s+[\w.\"`\[\]]+\s*\((?P<columns>[^()]{1,2000})\)\s*(?i:values)\s*"
    r"\((?P<values>(?:'(?:[^']|'')*'|[^()'])*)\)"
)
SQL_LITERAL = re.compile(r"\s*(?:'(?P<quoted>(?:[^']|'')*)'|(?P<bare>[^,]*))\s*(?:,|$)")
