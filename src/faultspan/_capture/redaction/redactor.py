"""The Redactor: key rules and value rules applied to attributes, nested values, JSON text and free text.

Everything returns the very object it was given when nothing had to change: callers compare with ``is``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, filterfalse, repeat
from operator import is_not, methodcaller
from typing import Any, TypeVar
from urllib.parse import unquote

from faultspan._capture.redaction import keys as key_rules
from faultspan._capture.redaction import tokens
from faultspan._capture.redaction.json_text import spliced
from faultspan._capture.redaction.rules import (
    _ANTHROPIC,
    _AWS_ACCESS_KEY,
    _AWS_BEDROCK,
    _AWS_SECRET_KEY,
    _AZURE,
    _BEARER,
    _CALL_NEXT,
    _CALL_START,
    _CARD,
    _CHPASSWD,
    _COMMAND_PASSWORD,
    _COMPARED_BEFORE,
    _CONNECTION_STRING,
    _CURL_KEY,
    _CURL_USER,
    _DIGITALOCEAN,
    _DJANGO,
    _GITHUB,
    _GITLAB,
    _GOOGLE,
    _HUGGINGFACE,
    _IDENT_CHARS,
    _JWT,
    _KEY_VALUE,
    _LINE_END,
    _MYSQL_PASSWORD,
    _NETRC,
    _NPM,
    _OPENAI,
    _ORACLE,
    _ORACLE_JDBC,
    _PASSWORD_FLAG,
    _PASSWORD_HASH,
    _PEM,
    _PGPASS,
    _PORTS_OR_PATHS,
    _PYPI,
    _QUERY_PARAM,
    _REDIS_AUTH,
    _SCHEMELESS,
    _SENDGRID,
    _SEPARATOR_NEXT,
    _SHOPIFY,
    _SLACK,
    _SNMP_PRIVACY,
    _SQL_PASSWORD,
    _SSN,
    _STRIPE,
    _TELEGRAM,
    _TWILIO,
    _URL_CREDENTIALS,
    _USER_PERCENT,
    _USER_THEN_PASSWORD,
    _WEBHOOK,
    BRACKETED_REFERENCE,
    BRAINTREE,
    BYTE_KEY,
    BYTE_KEY_GATE,
    CARD_DIGITS,
    CARD_GATE,
    CARD_START,
    CREDENTIAL_CALL,
    DIGITS_AS_ZERO,
    DIRECTIVE,
    LOGIN_WITH,
    NAMED_VALUE,
    OBJECT_REPR,
    PASSWORD_GATE,
    PASSWORD_HASH_IDS,
    PLAIN_SECRET_WORDS,
    PROSE_IS,
    REDACTED,
    SETTING_NAMES,
    SETTING_VALUES,
    SIGNING_CALL,
    SQL_INSERT,
    SQL_LITERAL,
    SSN_GATE,
    STRING_PREFIX,
    TOKEN,
    TOKEN_GATE,
    VALUE_GOES_ON,
    VARIABLE,
    XML_ELEMENT,
    XML_KEYED,
    XML_SETTING,
    _anchor_patterns,
    _anchors,
    _card,
    _ident_length,
    _loose_credential,
    _lower,
    _mask_spans,
    _overlap,
    _pattern_rule,
    _placeholder,
    _Rule,
    _segments,
    _ssn,
    _strict_credential,
    _token_credential,
    any_gate,
    bracketed_bare,
    credential_part,
    digit_key,
    directive_value,
    gate_pattern,
    hash_body,
    id_key_before,
    in_arn,
    key_bytes,
    key_bytes_text,
    not_placeholder,
    percent_escaped,
    reference_value,
    token_verdict,
)


@dataclass(frozen=True)
class RedactionRules:
    enabled: bool = True
    extra_keys: tuple[str, ...] = ()
    allow_keys: tuple[str, ...] = ()
    extra_patterns: tuple[str, ...] = ()
    disabled_rules: tuple[str, ...] = ()
    callback: Callable[[str, str], str | None] | None = None


# How JSON text that json.loads accepts starts: an object or an array, then its first key or value. The reprs
# of dicts and lists in captured locals (``{'id': 9}``, ``[('sku', 2)]``) fail here without a failed parse.
_JSON_START = re.compile(r"\s*(?:\{\s*[\"}]|\[\s*[-\"0-9\[{tfnNI\]])")
_CACHE_LIMIT = 4096
_SCALARS = frozenset({bool, int, float})
_VALUES = methodcaller("values")
_NO_KINDS: frozenset[type] = frozenset()
_CACHED_LENGTH = 256  # longer strings and keys are not remembered: they rarely repeat and would hold memory
_MAX_PASSES = 4
_SHAPE_RULES = frozenset({"ssn", "card", "password_value", "token"})
# The credential pairs whose place says "password", so that a plain word counts as one
_WORD_PAIRS = (
    _USER_THEN_PASSWORD, _NETRC, _PGPASS, CREDENTIAL_CALL, PROSE_IS, _PASSWORD_FLAG, _COMMAND_PASSWORD,
    _SQL_PASSWORD, _REDIS_AUTH, _ORACLE, _ORACLE_JDBC, _USER_PERCENT, _CHPASSWD, _SNMP_PRIVACY, SIGNING_CALL,
)  # fmt: skip
_ONE_WORD = re.compile(r"\S{1,512}")
# What follows a password flag in prose about it: ``use --password to set it``, ``-p is required``
_PROSE_WORDS = frozenset(
    {
        "is", "are", "was", "to", "the", "a", "an", "and", "or", "not", "flag", "flags", "option", "options",
        "argument", "arguments", "parameter", "must", "required", "optional", "can", "should", "will", "if",
        "when", "with", "for", "of", "in", "on",
    }
)  # fmt: skip
_MAX_SHORTCUT_DEPTH = 64
_PLAIN_KEY = ("", None)  # a key's (kind, renamed) when it is no secret key and holds no secret
_Applies = tuple[Callable[[str], str], ...]


class Redactor:
    """Applies one ``RedactionRules``. Thread-safe; keep one per process, its caches are what make it fast."""

    def __init__(self, rules: RedactionRules | None = None) -> None:
        self.rules = rules or RedactionRules()
        self.callback_errors = 0
        problems: list[str] = []
        self._enabled = self.rules.enabled
        self._callback = self.rules.callback
        self._allow = frozenset(key_rules.canonical(key) for key in self.rules.allow_keys)
        self._extra_terms = frozenset(
            filter(None, (key_rules.canonical(key) for key in self.rules.extra_keys))
        )
        hints = sorted(
            set(key_rules.KEY_HINTS) | set(filter(None, map(key_rules.last_word, self.rules.extra_keys)))
        )
        self._key_hint = _anchor_patterns(_anchors(*hints))[0]
        self._kinds: dict[str, str] = {}
        self._keys: dict[str, tuple[str, str | None]] = {}
        self._plain_keys: set[str] = set()  # the keys of ``_keys`` that are no secret key and hold none
        # Clean strings, and scalars met as attribute values (never changed): one ``issuperset`` then
        # answers for a whole span whose keys and values are all known.
        self._clean: set[str | int | float] = set()
        self._changed = 0  # the id of the last value _verdict found changed (a stale one costs a walk)
        self._quiet: set[bytes] = set()  # the digit shapes that _shape_triggers_nothing found quiet

        builtin = self._builtin_rules(hints)
        disabled = {name.strip().lower() for name in self.rules.disabled_rules}
        problems.extend(
            f"unknown redaction rule {name!r}" for name in sorted(disabled - {r.name for r in builtin})
        )
        active = [rule for rule in builtin if rule.name not in disabled]
        self._applies = [rule.apply for rule in active]
        # The rules that judge a value by its shape alone, which say nothing under a key naming an id
        self._shape_rules = frozenset(rule.apply for rule in active if rule.name in _SHAPE_RULES)
        self._id_keys: dict[str, bool] = {}
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
        gated = [(number, rule) for number, rule in enumerate(active) if rule.gate]
        self._gates = [
            (f"g{index}", number, gate_pattern(rule.gate), rule.gate_length)
            for index, (number, rule) in enumerate(gated)
        ]
        self._any_gate = any_gate([rule.gate for _, rule in gated]) if gated else None
        self._token_group = next((group for group, n, _, _ in self._gates if active[n].name == "token"), None)
        self._shapes: dict[bytes, _Applies] = {}
        self._digit_anchors = [
            literal.encode().translate(DIGITS_AS_ZERO)
            for literal, _ in anchors
            if any(char.isdigit() for char in literal)
        ]
        self._digit_anchor = (
            re.compile(b"|".join(map(re.escape, self._digit_anchors))) if self._digit_anchors else None
        )
        self._extra = tuple(_pattern_rule(p) for p in _compile_patterns(self.rules.extra_patterns, problems))
        # Unknown rule names and invalid patterns are ignored, not raised: the caller reports them once.
        self.problems: tuple[str, ...] = tuple(problems)

    def _builtin_rules(self, key_hints: Sequence[str]) -> list[_Rule]:
        """The value rules in the order they run: whole blocks and specific token formats before pairs."""
        anchors = _anchors

        def pattern(
            compiled: re.Pattern[str], accept: Callable[[str], bool] = not_placeholder
        ) -> Callable[[str], str]:
            return _pattern_rule(compiled, accept)

        return [
            _Rule("pem_private_key", anchors("private key", "static key"), pattern(_PEM)),
            _Rule("jwt", anchors("eyj"), pattern(_JWT)),
            _Rule("password_hash", anchors(*PASSWORD_HASH_IDS), pattern(_PASSWORD_HASH, hash_body)),
            _Rule("url_credentials", anchors("@"), pattern(_URL_CREDENTIALS, _not_placeholder)),
            _Rule(
                "aws_access_key",
                anchors("akia", "asia", "abia", "acca", "a3t"),
                pattern(_AWS_ACCESS_KEY),
            ),
            _Rule("aws_secret_key", anchors("aws"), pattern(_AWS_SECRET_KEY)),
            _Rule("aws_bedrock", anchors("absk", "bedrock-api-key-"), pattern(_AWS_BEDROCK)),
            _Rule("github", anchors("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), pattern(_GITHUB)),
            _Rule("gitlab", (("gl", "[a-z]{1,5}-"), ("gr1348941", "")), pattern(_GITLAB)),
            _Rule(
                "stripe", anchors("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"), pattern(_STRIPE)
            ),
            _Rule("slack", anchors("xox", "xapp-", "hooks.slack.com", "/services/t"), pattern(_SLACK)),
            _Rule(
                "google",
                (*anchors("aiza", "ya29.", "gocspx-"), (":apa", "[0-9]{2}b")),  # ``:APA91b``: digits as one
                pattern(_GOOGLE),
            ),
            _Rule(
                "webhook",
                anchors(
                    "discord", "webhookb2", "office.com/webhook", "zapier.com", "ifttt.com", "loggly.com"
                ),
                pattern(_WEBHOOK),
            ),
            _Rule(
                "telegram",
                anchors(":aa"),
                pattern(_TELEGRAM, lambda token: not_placeholder(token.partition(":")[2])),
            ),
            _Rule("anthropic", anchors("sk-ant-"), pattern(_ANTHROPIC)),
            _Rule("django", anchors("django-insecure-"), pattern(_DJANGO)),
            _Rule("openai", anchors("sk-"), pattern(_OPENAI, digit_key)),
            _Rule("npm", anchors("npm_"), pattern(_NPM)),
            _Rule("pypi", anchors("pypi-age"), pattern(_PYPI)),
            _Rule("sendgrid", anchors("sg."), pattern(_SENDGRID)),
            _Rule("twilio", (("ac", "[0-9a-f]{32}"), ("sk", "[0-9a-f]{32}")), pattern(_TWILIO)),
            _Rule("huggingface", anchors("hf_"), pattern(_HUGGINGFACE)),
            _Rule("shopify", anchors("shpat_", "shpca_", "shppa_", "shpss_"), pattern(_SHOPIFY)),
            _Rule("digitalocean", anchors("dop_v1_", "doo_v1_", "dor_v1_"), pattern(_DIGITALOCEAN)),
            _Rule("braintree", anchors("access_token$"), pattern(BRAINTREE)),
            _Rule("azure", anchors("accountkey", "sharedaccess"), pattern(_AZURE, _not_placeholder)),
            _Rule("bearer", anchors("bearer", "basic", "token", "ssws"), pattern(_BEARER, _token_credential)),
            _Rule("connection_string", anchors("pass", "pwd"), pattern(_CONNECTION_STRING, _not_placeholder)),
            _Rule("query_param", anchors(*key_hints, "sig", "appid", "hmac"), self._query_params),
            _Rule("key_value", anchors(*key_hints), self._key_values),
            _Rule(
                "credential_pair",
                (
                    *anchors(
                        "curl",
                        "--user",
                        "@",
                        "mysql",
                        "mariadb",
                        " -p",
                        "machine",
                        "value=",
                        "value'",
                        'value"',
                        "value:",
                        "auth",
                        "credential",
                        "jwt",
                        "jws",
                        "jsonwebtoken",
                        "hmac",
                        "directoryentry",
                        "pass",
                        "secret",
                        "token",
                        "</",
                        "identified",
                        " -pw",
                        "/p:",
                        "redis-cli",
                        "ssh-keygen",
                        "ldap",
                        "net use",
                        "login(",
                        "bind_s(",
                        "simple_bind(",
                        ":*:",
                        "pgpass",
                        "login",
                        "log in",
                        "sign",
                        "authenticat",
                        "useradd",
                        "usermod",
                        "openssl",
                        # SNMP's commands by anchors no key hint overlaps (not on every ``key``, ``pin``)
                        "snmpget",
                        "snmpset",
                        "snmptrap",
                        "snmpwal",
                        "snmpbulkw",
                        "snmpbulkg",
                        "net user",
                        "nmcli",
                        "lftp",
                        "wpa_passphrase",
                        "rabbitmqctl",
                        "mc alias",
                        "convertto-securestring",
                        "sudo -s",
                        "smbclient",
                        "smbmap",
                        "smbget",
                        "smbcacls",
                        "rpcclient",
                        "winexe",
                    ),
                    (":", "[0-9]{1,5}:[a-z_*]"),  # a .pgpass line's port
                ),
                self._credential_pairs,
            ),
            _Rule("argv", anchors("', '", '", "', '","'), self._argv),
            _Rule("sql_insert", anchors("insert"), self._sql_inserts),
            _Rule("sql_parameters", anchors("[parameters:"), self._sql_parameters),
            _Rule(
                "byte_key",
                (),
                pattern(BYTE_KEY, key_bytes_text),
                BYTE_KEY_GATE,
                50,  # a captured local's repr shows 10 of the 64
            ),
            _Rule("ssn", (), pattern(_SSN, _ssn), SSN_GATE, 11),
            _Rule("card", (), pattern(_CARD, _card), CARD_GATE, 13),
            _Rule("password_value", (), _passwords, PASSWORD_GATE, 8),
            # 12 characters for a random token alone, 13 for a prefixed one; 8 after a context word
            _Rule("token", (), _tokens, TOKEN_GATE, 12),
        ]

    # ---- key rules ---------------------------------------------------------------------------------

    def _kind(self, key: str) -> str:
        """The secret term the key ends with, or "" when it is not a secret key."""
        kind = self._kinds.get(key)
        return _cached(self._kinds, key, self._classify(key)) if kind is None else kind

    def _key(self, key: str) -> tuple[str, str | None]:
        """(its kind, its scrubbed text when the key itself holds a secret, e.g. a dict keyed by tokens)."""
        info = self._keys.get(key)
        if info is None:
            safe = self.scrub_text(key)
            info = (self._kind(key), None if safe is key else safe)
            if len(key) <= _CACHED_LENGTH:
                if len(self._keys) >= _CACHE_LIMIT:
                    self._keys.clear()
                    self._plain_keys.clear()
                self._keys[key] = info
                if info == _PLAIN_KEY:
                    self._plain_keys.add(key)
        return info

    def _classify(self, key: str) -> str:
        return key_rules.classify(key, self._allow, self._extra_terms)

    def is_secret_key(self, key: str) -> bool:
        """Whether the key's name alone makes its whole value secret (weak terms do not)."""
        kind = self._kind(key)
        return self._enabled and bool(kind) and kind not in key_rules.WEAK_TERMS

    def _by_key(self, kind: str, value: object, path: str, masked: list[str]) -> object:
        """``value`` under a key of this kind: masked whole by a secret term, by a weak one if it looks like
        a credential, or scrubbed by the value rules."""
        if (kind in key_rules.WEAK_TERMS and not (isinstance(value, str) and _weak_secret(value))) or (
            isinstance(value, str) and reference_value(kind, value)
        ):
            return self._scrub_any(value, path, masked)
        if type(value) is bool or value is None:
            return value  # a flag holds no secret: ``"dkim_pass": false``, ``"leakedPassword": true``
        if type(value) is str and _MASKED_BEFORE.fullmatch(value):
            return value  # ``"password": "[FILTERED]"`` (Rails), ``"********"``: masked before it came here
        if isinstance(value, Mapping):  # its shape and flags stay, what it holds goes
            return self._scrub_mapping(value, path, masked, kind)
        return _mask_whole(value, path, masked)

    # ---- generic structured forms -------------------------------------------------------------------

    def _credential_pairs(self, text: str) -> str:
        def spans() -> Iterable[tuple[int, int]]:
            for pattern in (_CURL_USER, _SCHEMELESS, _MYSQL_PASSWORD):
                for match in pattern.finditer(text):
                    if credential_part(match["secret"]):
                        yield match.span("secret")
            for match in _CURL_KEY.finditer(text):  # a key, not a user name: ``-u deploy-bot:`` stays
                if _weak_secret(match["secret"]):
                    yield match.span("secret")
            for match in LOGIN_WITH.finditer(text):  # not ``with error 500``: shaped like a credential
                secret = match["secret"]
                if _loose_credential(secret, False) and not (secret.isdigit() or _EMAIL.fullmatch(secret)):
                    yield match.span("secret")
            for pattern in _WORD_PAIRS:
                for match in pattern.finditer(text):
                    secret = match["secret"]
                    if not (
                        _placeholder(secret)
                        or _PORTS_OR_PATHS.fullmatch(secret)
                        or secret[0] in "$%{<"
                        or secret.lower() in _PROSE_WORDS
                    ):
                        yield match.span("secret")
            for match in chain(XML_SETTING.finditer(text), XML_KEYED.finditer(text)):
                if _named_secret(self._kind(match["name"]), match["secret"]):
                    yield match.span("secret")
            for match in XML_ELEMENT.finditer(text):
                group = "secret" if match["secret"] is not None else "nested"
                if _named_secret(self._kind(match["name"]), match[group]):
                    yield match.span(group)
            for match in DIRECTIVE.finditer(text):
                name, secret = match["name"], match["secret"]
                if (
                    name.lower() not in PLAIN_SECRET_WORDS
                    and directive_value(secret)
                    and _named_secret(self._kind(name), secret)
                ):
                    yield match.span("secret")
            for match in NAMED_VALUE.finditer(text):
                group = "secret" if match["secret"] is not None else "secret_bare"
                if _named_secret(self._kind(match["name"]), match[group]):
                    yield match.span(group)

        return _mask_spans(text, sorted(set(spans())))

    def _argv(self, text: str) -> str:
        """A command line written as a list of strings (``subprocess``'s ``['sshpass', '-p', 'pw', ...]`` in
        a ``CalledProcessError``, ``Popen`` reprs): the rules read it as the shell line it stands for. A list
        cut short by its repr (``Popen``'s own stops at 80 characters: ``..., '-p', 'ilovehaze...>``) ends in
        a piece of an item, which is all the more a secret when it is a URL's password before its ``@``."""

        def spans() -> Iterable[tuple[int, int]]:
            for match in chain(_ARGV.finditer(text), _ARGV_CUT.finditer(text)):
                items = [
                    (item.start(group), item[group])
                    for item in _ARGV_ITEM.finditer(text, match.start("items"), match.end("items"))
                    for group in ("single" if item["single"] is not None else "double",)
                ]
                cut = match.groupdict().get("cut")
                if cut is not None:
                    items.append((match.start("cut"), cut))
                    unfinished = _UNFINISHED_USERINFO.match(cut)
                    if unfinished is None and len(items) >= 2 and items[-2][1] in ("-u", "--user"):
                        unfinished = _UNFINISHED_USER.match(cut)  # curl's ``-u admin:ilovethund``
                    if unfinished:
                        yield match.start("cut") + unfinished.start("secret"), match.end("cut")
                        continue
                if not any(arg[:1] == "-" for _, arg in items):
                    continue  # a command has flags; ``['password', 'email']`` names fields
                line = " ".join(arg for _, arg in items)
                at = 0
                places = []  # (where the item starts in the line, in the text, its length)
                for start, arg in items:
                    places.append((at, start, len(arg)))
                    at += len(arg) + 1
                for low, high in _masked_spans(line, self.scrub_text(line)):
                    for line_at, text_at, length in places:
                        start, end = max(low, line_at), min(high, line_at + length)
                        if start < end:
                            yield text_at + start - line_at, text_at + end - line_at

        return _mask_spans(text, sorted(set(spans())))

    def _sql_inserts(self, text: str) -> str:
        def spans() -> Iterable[tuple[int, int]]:
            for match in SQL_INSERT.finditer(text):
                columns = [name.strip(' \t\n"`[]') for name in match["columns"].split(",")]
                at = match.start("values")
                for column in columns:
                    literal = SQL_LITERAL.match(text, at, match.end("values"))
                    if literal is None:
                        break
                    at = literal.end()
                    group = "quoted" if literal["quoted"] is not None else "bare"
                    value = literal[group].strip()
                    kind = self._kind(column)
                    if (
                        value
                        and kind
                        and not (group == "bare" and _placeholder(value))
                        and (kind not in key_rules.WEAK_TERMS or _weak_secret(value))
                    ):
                        start = literal.start(group)
                        yield start, start + len(literal[group].rstrip())

        return _mask_spans(text, spans())

    def _sql_parameters(self, text: str) -> str:
        """SQLAlchemy's errors: ``[SQL: INSERT INTO users (name, password) VALUES (?, ?)]``, then
        ``[parameters: ('bob', 'S3cret!')]``: the parameter in the place of a secret column is masked (named
        parameters come as a dict, which the key rules read already)."""

        def spans() -> Iterable[tuple[int, int]]:
            for match in _SQLALCHEMY.finditer(text):
                columns = _marker_columns(match["sql"])
                at, end = match.start("parameters"), match.end("parameters")
                for column in columns:
                    literal = _PY_LITERAL.match(text, at, end)
                    if literal is None or literal.end() == at:
                        break
                    at = literal.end()
                    start, stop = literal.span("value")
                    quote = literal["value"][-1:]
                    if quote in ("'", '"'):  # inside the quotes, after a ``b`` prefix
                        start, stop = text.index(quote, start) + 1, stop - 1
                    if column and _named_secret(self._kind(column), text[start:stop]):
                        yield start, stop

        return _mask_spans(text, spans())

    # ---- value rules -------------------------------------------------------------------------------

    def scrub_text(self, text: str, scope: TaintScope | None = None) -> str:
        """``text`` with the value rules applied and every other occurrence of what they masked masked too
        (``token = 'x' | 'x'``); within a ``scope``, also with the scope's known secrets masked."""
        if scope is None and text in self._clean:
            return text  # a span's name, read on every span
        result = self._scrub_text(text)
        if scope is None:
            return result if result is text else TaintScope().absorb(text, result)
        return scope.absorb(text, result)

    def _scrub_text(self, text: str) -> str:
        if not self._enabled or text in self._clean:
            return text
        return self._scrub_unknown(text, _maybe_json(text))

    def _scrub_unknown(self, text: str, maybe_json: bool) -> str:
        """``_scrub_text`` of a text not known clean; ``maybe_json`` is its ``_maybe_json``."""
        result = self._settled(text, self._triggered(text))
        if result is text and not maybe_json:  # the cache also spares values their JSON walk: see _scrub_str
            self._remember(text)
        return result

    def _settled(self, text: str, rules: _Applies) -> str:
        """``text`` with ``rules`` applied until nothing changes."""
        result = self._scrub_once(text, rules) if rules else text
        if result is text:
            return text
        # A new mask can cut short the context of a neighbouring value (its closing quote is now inside the
        # mask) so that a rule finds something else to mask: repeat until stable to make scrubbing idempotent.
        # Masking only removes text, so the rules triggered by the original are still the only candidates.
        for _ in range(_MAX_PASSES):
            again = self._scrub_once(result, rules)
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

    def _scrub_once(self, text: str, rules: _Applies) -> str:
        result = text
        for apply in rules:
            result = _segments(apply, result)
        return result

    def _triggered(self, text: str) -> _Applies:
        """The rules worth running on ``text``, in order: the built-in ones whose anchors or gates occur in
        it, then the extra patterns.

        Remembered by the digit shape of ASCII text (``rules.DIGITS_AS_ZERO``, ``rules.CARD_DIGITS``) when no
        anchor with a digit occurs in it: every text of that shape has the same triggered rules, so a new
        order number or address in a known shape costs a translation. Only which rules run is remembered;
        they then run on the text itself."""
        if not text.isascii() or len(text) > _CACHED_LENGTH:
            return self._scan_triggers(text, self._gate_match(text))
        raw = text.encode()
        coarse = raw.translate(DIGITS_AS_ZERO)
        triggered = self._shapes.get(coarse)  # only shapes where no card can start are stored coarse
        if triggered is not None:
            return triggered
        if (tokens.canonical_uuid(text) or _lowercase_hex_id(raw)) and not tokens.hex_verdict(
            text, tokens.NEUTRAL
        ):
            return self._extra  # an id alone (no words before it) the token judge keeps: no rule changes it
        found = self._gate_match(text)
        if found is not None and found.lastgroup == self._token_group:
            return self._scan_triggers(text, found)  # a random-looking run (a UUID): its shape rarely repeats
        shape = coarse
        start = CARD_START.search(coarse)
        if start is not None:  # where a card could start, its first digit's class
            marked = bytearray(coarse)
            while start is not None:
                at = start.start()
                marked[at] = CARD_DIGITS[raw[at]]
                start = CARD_START.search(coarse, at + 1)
            shape = bytes(marked)
            triggered = self._shapes.get(shape)
        if triggered is None:
            triggered = self._scan_triggers(text, found)
            if self._digit_anchor is None or self._digit_anchor.search(coarse.lower()) is None:
                if len(self._shapes) >= _CACHE_LIMIT:
                    self._shapes.clear()
                self._shapes[shape] = triggered
        return triggered

    def _gate_match(self, text: str) -> re.Match[str] | None:
        """Where the first gate matches, if one does: one search instead of one per gate."""
        return self._any_gate.search(text) if self._any_gate and len(text) >= _MIN_GATED_LENGTH else None

    def _scan_triggers(self, text: str, found: re.Match[str] | None) -> _Applies:
        """The triggered rules, given ``found``, the text's ``_gate_match``."""
        triggered: set[int] = set()
        if self._anchor is not None:
            low = _lower(text)
            match = self._anchor.search(low)
            while match is not None:
                at = match.start()
                which = self._entries[low[at]].match(low, at)  # the same alternatives: it matches
                if which is not None and which.lastgroup is not None:
                    triggered |= self._anchor_rules[which.lastgroup]
                match = self._anchor.search(low, at + 1)
        length = len(text)
        if found is not None:  # the usual answer is None; no gate matches before where it found one
            at, first = found.start(), found.lastgroup
            for group, number, gate, gate_length in self._gates:
                if (length >= gate_length or triggered) and (group == first or gate.search(text, at)):
                    triggered.add(number)
        return tuple(self._applies[number] for number in sorted(triggered)) + self._extra

    def _query_params(self, text: str) -> str:
        def spans() -> Iterable[tuple[int, int]]:
            for match in _QUERY_PARAM.finditer(text):
                name, value = match["name"], match["value"]
                term = key_rules.canonical(name)
                named = self._kind(name) or term in key_rules.QUERY_TERMS
                # ``appid=com.example.app`` names an app: OpenWeather's key is credential-shaped
                if named and not _placeholder(value) and (term != "appid" or _weak_secret(value)):
                    yield match.span("value")

        return _mask_spans(text, spans())

    def _key_values(self, text: str) -> str:
        return _mask_spans(text, self._key_value_spans(text))

    def _key_value_spans(self, text: str) -> Iterable[tuple[int, int]]:
        done = masked = 0
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
            if start and text[start - 1] == "=" and end < len(text) and text[end] in " \t,;&":
                continue  # a value that reads as a key: ``service=auth-staging attempt=1``
            if start > 20 and text[start - 1] in ":/" and in_arn(text, start):
                continue  # ``arn:aws:secretsmanager:...:secret:prod/db-AbCdEf`` names a secret
            if text.startswith("::", end) and not text.startswith(("::=", ":::="), end):
                continue  # a path in code: Rust's ``shop::auth::get``, C++'s ``auth::Token``
            key = text[start:end].lstrip(".-")
            kind = self._kind(key)
            weak = kind in key_rules.WEAK_TERMS
            if (not kind or weak) and start > 1 and text[start - 1] == " ":  # "api key", "cache key" in prose
                before = start - 1
                while before > 0 and text[before - 1] in _IDENT_CHARS:
                    before -= 1
                compound = self._kind(text[before:start] + key)
                if compound or weak:
                    kind, start = compound, before
            if not kind:
                continue
            match = _KEY_VALUE.match(text, end)
            if match is None and (items := _listed_secrets(text, end, weak)):
                done = masked = items[-1][1]
                yield from items
                continue
            reference = -1 if match is None else _reference_end(text, match)
            if reference >= 0:
                done = reference
                continue
            span = None if match is None else self._value_span(text, match, kind, start)
            if span is not None:
                done = masked = span[1]
                yield span
                continue
            preceding = text[max(masked, start - 8) : start].rstrip(" \t")
            if not preceding.endswith("="):  # no comparison, ``"..." == key``, ends right before the key
                continue
            compared = _COMPARED_BEFORE.search(text, max(masked, start - 260), start)
            value = compared["quoted"] if compared else ""
            if compared and (_weak_secret(value) if weak else not _placeholder(value)):
                masked = compared.end("quoted")
                yield compared.span("quoted")  # ``if ("..." == password)``

    def _value_span(
        self, text: str, match: re.Match[str], kind: str, key_start: int
    ) -> tuple[int, int] | None:
        """The span of the value to mask, after the key that starts at ``key_start``."""
        numeric = kind in key_rules.NUMERIC_TERMS
        separator = match["sep"]
        if separator is None and key_start and text[key_start - 1] in "/\\":
            return None  # a path's last segment, then a word: ``GET /api/token HTTP/1.1``, ``/etc/passwd x``
        quoted = match["quoted"]
        quote = text[key_start - 1] if key_start and text[key_start - 1] in "'\"" else ""
        if reference_value(kind, text, match.start("quoted" if quoted is not None else "bare")):
            return None
        if separator == ",":  # ('X-Api-Key', 'value'): a (name, value) pair in a repr, not a list of names
            opened = _pair_opener(text, key_start - 1) if quote and quoted else ""
            if not opened or not _PAIR_END.match(text, match.end()):
                return None
            if opened == "setter":  # define('DB_PASSWORD', 'master'), getenv("TOKEN", "..."): a word counts
                if kind in key_rules.WEAK_TERMS:
                    return match.span("quoted") if _weak_secret(quoted) else None  # define('NONCE_KEY', ...)
                return None if _placeholder(quoted) else match.span("quoted")
            return match.span("quoted") if " " in quoted or _loose_credential(quoted, numeric) else None
        flag = _FLAG.match(text, key_start) if separator is None else None
        if flag and (not key_start or text[key_start - 1] in " \t'\"(["):
            return _flag_value(text, match, kind, flag["word"])
        if quoted is not None and match["quote"] == "`" and not separator:
            return None  # prose quoting code: "pass `attr_assign=True`"; Go's raw strings follow ``:=``
        if quoted is not None and kind in key_rules.WEAK_TERMS:
            return match.span("quoted") if _weak_secret(quoted) else None
        if quoted is not None:
            # a statement of its own: Gradle's ``password "..."``, Ruby's ``password '...'`` (a call without
            # parentheses) assigns as ``=`` does
            assigned = separator or _statement(text, key_start - len(quote), match.end())
            accepted = not _placeholder(quoted) if assigned else _loose_credential(quoted, numeric)
            return match.span("quoted") if quoted and accepted else None
        start, after = match.span("bare")
        if _no_value(kind, match["bare"]) or (
            text[after : after + 1] in ("'", '"') and STRING_PREFIX.fullmatch(match["bare"])
        ):
            return None  # no value, or the prefix of a string literal masked already (``b"[REDACTED]"``)
        if text[after : after + 1] == "(" and not separator:
            return None  # a call's name after the key: ``ENTER_KEY && !browser.insertsLineBreaks()``
        bare = bracketed_bare(text, start, match["bare"])
        name = bare.rstrip(":")
        followed = _SEPARATOR_NEXT.match(text, start + len(bare)) is not None
        if (name != bare or followed) and ":" not in name and self._kind(name):
            return None  # "password= X-Api-Key: ..." or "token: secret = ...": the next key, not a value
        if kind in key_rules.WEAK_TERMS:
            return (start, start + len(bare)) if _weak_secret(name) else None
        if separator not in (None, ":"):  # an assignment or a comparison: ``=``, ``:=``, ``?=``, ``==``
            expression = bare in ("new", "await") and _CALL_NEXT.match(text, start + len(bare))
            call = _CALL_START.match(bare)
            inside = call.end() if call else 0
            argument = bare[inside:].rstrip(")") if call else ""
            if argument and _random_argument(argument):  # Jasypt's ``ENC(<ciphertext>)``, ``decrypt(...)``
                return start + inside, start + inside + len(argument)
            if _placeholder(bare) or call or expression or _CODE_VALUE.fullmatch(bare):
                return None  # not "= load()", "= new Credential(...)", "= this.mPassword"
            if _QUALIFIED_NAME.fullmatch(bare) and _RUBY_CALL.match(text, start + len(bare)):
                return None  # Ruby's call without parentheses: ``token = JWT.encode payload, key``
            goes_on = VALUE_GOES_ON.match(text, start + len(bare))
            return start, goes_on.end() if goes_on else start + len(bare)
        bare = name
        if separator is None:
            if _NEXT_PAIR.match(bare):
                return None  # "changed their password attempt=3": logfmt's next pair, not a value
            named = _NAMED_NEXT.match(bare) if ":" in bare else None
            if named and self._kind(named[1]):
                return None  # "SECRET KEY:<value>": the key goes on in the next word
            if key_start and text[key_start - 1] in "${" and "$" in text[max(0, key_start - 2) : key_start]:
                return None  # a variable's use, then a word: ``-u "$USER:$PASSWORD" https://...``
            return (start, start + len(bare)) if _strict_credential(bare, numeric) else None
        if kind in key_rules.LINE_TERMS and (
            match["scheme"] or "=" in bare or _loose_credential(bare, numeric)
        ):
            line_end = _LINE_END.search(text, start)
            end = line_end.start() if line_end else len(text)
            field = _NEXT_FIELD.search(text, start, end)
            end = field.start() if field else end  # ``{authorization: <value>, content_type: ...}``
            if quote and quote in text[start:end]:  # "Cookie: a=1; b=2" quoted as a whole ends at its quote
                end = text.index(quote, start)
            value = text[start:end].rstrip()
            return None if _placeholder(value) else (start, start + len(value))  # not "Bearer $API_KEY"
        return (start, start + len(bare)) if _loose_credential(bare, numeric) else None

    # ---- structured values -------------------------------------------------------------------------

    def scrub_value(self, key: str, value: object, path: str, masked: list[str]) -> object:
        if not self._enabled:
            return value
        kind = self._kind(key) if key else ""
        if kind:
            return self._by_key(kind, value, path, masked)
        return self._scrub_any(value, path, masked)

    def scrub_attributes(
        self, attributes: Mapping[str, object], prefix: str, masked: list[str]
    ) -> dict[str, object] | None:
        if not self._enabled:
            return None
        keys, clean, plain_keys = self._keys, self._clean, self._plain_keys
        plain = self._callback is None and not (type(masked) is TaintScope and masked.secrets)
        if plain and self._verdict(attributes):
            return None
        result: dict[str, object] | None = None
        for index, (key, value) in enumerate(attributes.items()):
            kind_of_value = type(value)
            renamed: str | None = None
            if (
                plain
                and key in plain_keys
                and (value in clean if kind_of_value is str else kind_of_value in _SCALARS)
            ):
                name, new = key, value  # the walk below would leave it as it is too
            else:
                kind, renamed = keys.get(key) or self._key(key)
                name = key if renamed is None else renamed
                path = prefix + name
                if kind:
                    new = self._by_key(kind, value, path, masked)
                elif kind_of_value is str:
                    new = self._scrub_str(value, path, masked, self._names_id(key))  # type: ignore[arg-type]
                else:
                    new = self._scrub_any(value, path, masked, self._names_id(key))
                if renamed is not None and new is value:
                    masked.append(path)
            if result is None and (new is not value or renamed is not None):
                result = dict(list(attributes.items())[:index])
            if result is not None:
                result[name] = new
        return result

    def leaves_attributes(self, attributes: Mapping[str, object]) -> bool:
        """True when ``scrub_attributes(attributes, "", [])`` would return None, False when it may not: told
        at the first value that changes, without building the copy (a span's check before its redaction)."""
        if not self._enabled:
            return True
        verdict = self._verdict(attributes) if self._callback is None else None
        return self.scrub_attributes(attributes, "", []) is None if verdict is None else verdict

    def _verdict(self, attributes: Mapping[str, object]) -> bool | None:
        """Whether a plain ``scrub_attributes`` (no callback, no secrets known) leaves ``attributes`` as they
        are, told without walking them when no key is a secret key or holds one: only the values not known
        clean are scrubbed (the usual span: none, or a fresh path or address). False when one changes (or
        may: the last call found it changed), None when it cannot tell; the walk then decides."""
        clean = self._clean
        if not self._plain_keys.issuperset(attributes):
            return None
        try:
            if clean.issuperset(attributes.values()):
                return True
            unknown = list(filterfalse(clean.__contains__, attributes.values()))
        except TypeError:  # an unhashable value (a list)
            return None
        scratch: list[str] = []  # no path is masked when nothing changes
        for value in unknown:
            kind = type(value)
            if kind is str:
                if self._shape_triggers_nothing(value):  # type: ignore[arg-type]
                    self._remember(value)  # type: ignore[arg-type]
                    continue
                if id(value) == self._changed:  # found changed by the last call (a span's second look)
                    return False
                if self._scrub_str(value, "", scratch) is not value:  # type: ignore[arg-type]
                    self._changed = id(value)  # an id, not the text: no secret is kept alive
                    return False
            elif kind in _SCALARS:
                if len(clean) < _CACHE_LIMIT:  # remembered too, but never at the cost of clean strings
                    clean.add(value)  # type: ignore[arg-type]
            else:
                return None
        return True

    def _shape_triggers_nothing(self, text: str) -> bool:
        """Whether ``_triggered`` answers no rule at once for ``text``, by its digit shape (a fresh order
        number or address in a known shape), and ``text`` cannot be JSON: ``_scrub_str`` keeps it then.

        Such shapes are remembered in ``_quiet``: the answer depends on the shape alone (``_maybe_json``
        reads a digit as any digit), and a shape once found quiet stays so (``_triggered``'s premise)."""
        if not text.isascii() or len(text) > _CACHED_LENGTH:
            return False
        shape = text.encode().translate(DIGITS_AS_ZERO)
        if shape in self._quiet:
            return True
        if self._shapes.get(shape) != () or _maybe_json(text):
            return False
        if len(self._quiet) >= _CACHE_LIMIT:
            self._quiet.clear()
        self._quiet.add(shape)
        return True

    def leaves_spans(
        self, names: Sequence[str], attributes: Sequence[Mapping[str, object] | None]
    ) -> list[bool]:
        """For spans given by their names and attributes (None for a span with more to redact: events,
        links, a status text), True where ``scrub_text(name) is name`` and ``leaves_attributes(attributes)``
        are told by set operations over the whole batch: names, keys and values known clean, in a quiet
        shape (``_shape_triggers_nothing``) or scalars. False where they cannot be told so (a span's own
        check then decides). The usual batch costs a few C-level passes, fresh paths and addresses a digit
        shape each; nothing is remembered (a fresh value would push known ones out of the clean cache)."""
        count = len(names)
        if not self._enabled:
            return list(map(is_not, attributes, repeat(None)))
        if self._callback is not None:
            return [False] * count
        clean = self._clean
        present = list(filter(None, attributes))  # empty ones have nothing to tell
        try:
            # the union of dicts reads their stored hashes, without an iterator: half the cost of a lookup
            keys_plain = self._plain_keys.issuperset(set[object]().union(*present))
            odd_names = self._unquiet(set[object](names).difference(clean), _NO_KINDS)
            values = set[object]().union(*map(_VALUES, present))
            odd_values = set() if clean.issuperset(values) else self._unquiet(values - clean, _SCALARS)
        except TypeError:  # an unhashable value (a list)
            return [False] * count
        if keys_plain and not odd_names and not odd_values:
            return list(map(is_not, attributes, repeat(None)))
        plain_keys = self._plain_keys
        return [
            entry is not None
            and name not in odd_names
            and odd_values.isdisjoint(entry.values())
            and (keys_plain or plain_keys.issuperset(entry))
            for name, entry in zip(names, attributes, strict=True)
        ]

    def _unquiet(self, unknown: set[object], kept_kinds: frozenset[type]) -> set[object]:
        """The values of ``unknown`` (none known clean) that are neither of ``kept_kinds`` nor strings in a
        quiet shape: all the quiet ones told at once when they are all ASCII and short enough."""
        strings = [value for value in unknown if type(value) is str]
        if len(strings) < len(unknown):
            odd = {value for value in unknown if type(value) is not str and type(value) not in kept_kinds}
        else:
            odd = set()
        if not strings:
            return odd
        if (
            all(map(str.isascii, strings))
            and max(map(len, strings)) <= _CACHED_LENGTH
            and self._quiet.issuperset(map(bytes.translate, map(str.encode, strings), repeat(DIGITS_AS_ZERO)))
        ):
            return odd
        odd.update(text for text in strings if not self._shape_triggers_nothing(text))
        return odd

    def _setting(self, mapping: Mapping[Any, object]) -> tuple[object, str]:
        """(the key of the value, the kind its name says) of a setting written as a name and a value
        (``{"name": "DB_PASSWORD", "value": ...}``, CloudFormation's ``ParameterKey``/``ParameterValue``)."""
        if len(mapping) <= 8:
            for value_key in SETTING_VALUES:
                if value_key in mapping:
                    for name_key in SETTING_NAMES:
                        name = mapping.get(name_key)
                        if type(name) is str and len(name) <= 128 and (kind := self._kind(name)):
                            return value_key, kind
        return None, ""

    def _scrub_any(self, value: object, path: str, masked: list[str], names_id: bool = False) -> object:
        """``names_id``: the value's key names an id, which its strings (a list's items too) are judged as."""
        kind = type(value)  # exact types first: parsed JSON is only these, and ABC checks are slow
        if kind is str:
            return self._scrub_str(value, path, masked, names_id)  # type: ignore[arg-type]
        if kind is dict:
            return self._scrub_mapping(value, path, masked)  # type: ignore[arg-type]
        if kind is list:
            return self._scrub_sequence(value, path, masked, names_id)  # type: ignore[arg-type]
        if kind in _SCALARS or value is None:
            return value
        if isinstance(value, str):
            return self._scrub_str(value, path, masked, names_id)
        if isinstance(value, Mapping):
            return self._scrub_mapping(value, path, masked)
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray, memoryview)):
            return self._scrub_sequence(value, path, masked, names_id)
        return value

    def _scrub_mapping(
        self, mapping: Mapping[object, object], path: str, masked: list[str], held: str = ""
    ) -> object:
        """``held``: the kind of the secret key that holds the mapping (``{"auth": {"mfa": true}}``), which
        its members keep unless their own names say more."""
        result: dict[object, object] | None = None
        setting, setting_kind = self._setting(mapping)
        jwk = _jwk(mapping)
        for index, (key, value) in enumerate(mapping.items()):
            name: object = key
            if isinstance(key, str):
                kind, renamed = self._key(key)
                if key == setting:
                    kind = setting_kind
                elif jwk and key in _JWK_PRIVATE:
                    kind = "privatekey"
                inherited = bool(held) and not kind
                kind = kind or held
                name = key if renamed is None else renamed
                child = f"{path}.{name}"
                if kind:
                    # what a secret key holds is masked, not searched for elsewhere (a name, ``"jwt"``)
                    target = masked.reader() if inherited and type(masked) is TaintScope else masked
                    new = self._by_key(kind, value, child, target)
                    if target is not masked:
                        masked.extend(target)
                elif type(value) is str:
                    public = jwk and key in _JWK_PUBLIC
                    new = self._scrub_str(value, child, masked, public or self._names_id(key))
                else:
                    new = self._scrub_any(value, child, masked, self._names_id(key))
                if renamed is not None and new is value:
                    masked.append(child)
            else:
                new = self._scrub_any(value, f"{path}.{key}", masked)
            if result is None and (new is not value or name is not key):
                result = dict(list(mapping.items())[:index])
            if result is not None:
                result[name] = new
        return mapping if result is None else result

    def _scrub_sequence(
        self, items: Sequence[object], path: str, masked: list[str], names_id: bool = False
    ) -> object:
        """``names_id``: the items are under a key naming ids (``p_any_trace_ids``), judged as ids."""
        if len(items) == 64 and key_bytes(items):
            return _mask_whole(items, path, masked)
        kind = self._pair_kind(items)  # a (name, value) pair: headers as a list of tuples
        if kind and self._by_key(kind, items[1], f"{path}[1]", masked) is not items[1]:
            return (items[0], REDACTED) if isinstance(items, tuple) else [items[0], REDACTED]
        scrubbed = [
            self._scrub_any(item, f"{path}[{index}]", masked, names_id) for index, item in enumerate(items)
        ]
        if all(new is old for new, old in zip(scrubbed, items, strict=True)):
            return items
        return tuple(scrubbed) if isinstance(items, tuple) else scrubbed

    def _pair_kind(self, items: Sequence[object]) -> str:
        """The key kind of a (name, value) pair such as ``("X-Api-Key", "...")``, or ""."""
        if len(items) != 2 or not isinstance(items[1], str) or not isinstance(items[0], str):
            return ""
        return self._kind(items[0]) if _KEY_NAME.fullmatch(items[0]) else ""

    def _names_id(self, key: str) -> bool:
        """Whether ``key``'s field names an id or a digest (``messaging.message.id``, ``dd.trace_id``,
        ``http.request.header.content-md5``, ``vcs.ref.head.revision``)."""
        names_id = self._id_keys.get(key)
        return _cached(self._id_keys, key, key_rules.names_id(key)) if names_id is None else names_id

    def _scrub_str(self, text: str, path: str, masked: list[str], names_id: bool = False) -> str:
        """``names_id``: the key names an id or a digest, so a one-word value the rules would change is judged
        again by the patterns of credential formats only (an id is random-looking by design); it is not
        remembered as clean, since the same value elsewhere is judged whole."""
        scope = masked if type(masked) is TaintScope else None
        if text == REDACTED or (
            self._callback is None and text in self._clean and not (scope is not None and scope.secrets)
        ):
            return text
        maybe_json = _maybe_json(text)
        if maybe_json:
            encoded = self._scrub_json(text, path, masked)
            if encoded is not None:
                cacheable = self._callback is None and len(text) <= _CACHED_LENGTH
                if encoded is text and cacheable and self._scrub_text(text) is text:
                    self._remember(text)
                if scope is not None and scope.secrets:
                    tainted = scope.absorb(encoded, encoded)
                    if tainted is not encoded:
                        masked.append(path)
                    return tainted
                return encoded
        if text in self._clean:
            result = text
        else:
            result = self._scrub_unknown(text, maybe_json)  # remembered when clean, as under any key
            if result is not text and names_id and not maybe_json and _ONE_WORD.fullmatch(text):
                rules = self._triggered(text)
                result = self._settled(text, tuple(rule for rule in rules if rule not in self._shape_rules))
        if self._callback is not None:
            result = _call_back(self, self._callback, path, result)
        if scope is not None:
            result = scope.absorb(text, result)
        if result is not text:
            masked.append(path)
        elif maybe_json and self._callback is None:
            self._remember(text)  # not JSON after all, so clean as a value too: scrub_text left it out
        return result

    def _scrub_json(self, text: str, path: str, masked: list[str]) -> str | None:
        """Scrubbed JSON text (the same object when clean), or None when ``text`` is not JSON."""
        found: list[str] = masked.child() if type(masked) is TaintScope else []
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
        return spliced(text, data, scrubbed)

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
        if type(data) is list and (self._pair_kind(data) or (len(data) == 64 and key_bytes(data))):
            return False
        if type(data) is dict:
            if self._setting(data)[1] or (_jwk(data) and not _JWK_PRIVATE.isdisjoint(data)):
                return False
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


def _jwk(mapping: Mapping[Any, object]) -> bool:
    """A JSON Web Key (RFC 7517/7518): its members say which of its random-looking values are public."""
    kty = mapping.get("kty")
    return type(kty) is str and kty in _JWK_TYPES


_JWK_TYPES = frozenset({"RSA", "EC", "OKP", "oct"})
_JWK_PUBLIC = frozenset({"n", "e", "x", "y", "crv", "kid", "x5t", "x5t#S256"})  # a modulus, a point, a digest
_JWK_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})  # however short: ``"k": "Gawg..."``


def _lowercase_hex_id(raw: bytes) -> bool:
    """Lowercase hex with a letter (a trace id, a digest), in which no built-in rule but the token rule can
    match: the formats that hex spells are uppercase (``ACCA...``, ``AC<32 hex>``), a card is digits alone,
    and a key hint needs a separator or a space after the key."""
    return not raw.translate(None, _LOWER_HEX) and not raw.isdigit()


_LOWER_HEX = b"0123456789abcdef"


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


_MASKED_BEFORE = re.compile(
    r"[*xX#.\-_ ]{3,}|[\[<(]?(?i:filtered|redacted|hidden|masked|scrubbed|removed|omitted)[\]>)]?"
)


def _mask_whole(value: object, path: str, masked: list[str]) -> object:
    if value is None or (isinstance(value, str) and value in ("", REDACTED)):
        return value
    if isinstance(value, (tuple, list)) and all(type(item) is str for item in value):
        # A string array stays one (semantic conventions type headers so), each item masked.
        if all(item in ("", REDACTED) for item in value):
            return value
        masked.append(path)
        shaped = [item if item in ("", REDACTED) else REDACTED for item in value]
        return tuple(shaped) if isinstance(value, tuple) else shaped
    masked.append(path)
    if type(masked) is TaintScope and isinstance(value, str):
        masked.taint(value)
    return REDACTED


_MIN_TAINT = 6  # shorter secrets are not searched elsewhere: "1234" would mask every line number
_MIN_PIECE = 16  # a masked path's segment this long is searched on its own (a webhook's signature)
_NAMING_WORDS = key_rules.SECRET_TERMS | key_rules.WEAK_TERMS


class TaintScope(list[str]):
    """The masked paths of one capture (a span, its events and links) and the secrets masked in it.

    A value recognised as secret anywhere in the capture (a local, an attribute, a header) is masked wherever
    else it appears in the same capture: the source lines, the stack trace text, the message, breadcrumbs.
    Pass it as ``masked`` to the scrub methods (and as ``scope`` to ``scrub_text``); a string scrubbed before
    a secret was found is caught by scrubbing the redacted copy once more with the same scope.
    """

    def __init__(self, secrets: set[str] | None = None, *, learns: bool = True) -> None:
        super().__init__()
        self.secrets: set[str] = set() if secrets is None else secrets
        self.learns = learns

    def child(self) -> TaintScope:
        """A scope with its own paths and the same secrets (for the leaves of JSON text)."""
        return TaintScope(self.secrets, learns=self.learns)

    def reader(self) -> TaintScope:
        """A scope with its own paths that masks the known secrets but learns none, for text derived from
        other text of the capture (a grouping template with digits as ``<n>`` reads more random than the
        message it comes from: what is masked there only must not spread)."""
        return TaintScope(self.secrets, learns=False)

    def taint(self, secret: str) -> None:
        secret = secret.strip().strip("'\"")
        if secret.lower() in _NAMING_WORDS:
            return  # ``password "password"``: searched elsewhere, the value would mask the keys that name it
        if self.learns and len(secret) >= _MIN_TAINT and REDACTED not in secret:
            self.secrets.add(secret)
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]  # as it reads inside JSON text
            if escaped != secret:
                self.secrets.add(escaped)
            if "/" in secret:  # a masked path's long segments, as a shorter rendering of it shows them
                self.secrets.update(piece for piece in secret.split("/") if len(piece) >= _MIN_PIECE)

    def absorb(self, original: str, scrubbed: str) -> str:
        """Learn the secrets masked between ``original`` and ``scrubbed``; mask the known ones in it."""
        if scrubbed is not original and REDACTED not in original:
            for part in _masked_parts(original, scrubbed):
                self.taint(part)
        result = scrubbed
        for secret in self.secrets:
            if secret in result:
                result = result.replace(secret, REDACTED)
        return result


def _masked_parts(original: str, scrubbed: str) -> list[str]:
    """The substrings of ``original`` that became ``[REDACTED]`` in ``scrubbed``."""
    return [original[start:end] for start, end in _masked_spans(original, scrubbed)]


def _masked_spans(original: str, scrubbed: str) -> list[tuple[int, int]]:
    """Where the parts of ``original`` that became ``[REDACTED]`` in ``scrubbed`` are."""
    pieces = scrubbed.split(REDACTED)
    if len(pieces) < 2 or not original.startswith(pieces[0]) or not original.endswith(pieces[-1]):
        return []
    spans: list[tuple[int, int]] = []
    at = len(pieces[0])
    for piece in pieces[1:-1]:
        end = original.find(piece, at + 1) if piece else -1
        if end < 0:
            return spans
        spans.append((at, end))
        at = end + len(piece)
    spans.append((at, len(original) - len(pieces[-1])))
    return spans


def _call_back(redactor: Redactor, callback: Callable[[str, str], str | None], path: str, text: str) -> str:
    try:
        replacement = callback(path, text)
    except Exception:
        redactor.callback_errors += 1
        return text
    return replacement if isinstance(replacement, str) and replacement != text else text


_MIN_GATED_LENGTH = 8  # the shortest password worth masking
_KEY_NAME = re.compile(r"[A-Za-z][\w.-]{0,63}")
_WORD_RUN = re.compile(r"\S{8,130}")


def _clean_word(word: str) -> str:
    word = word.strip("'\"()[]{}<>,;")
    if word[:2] in ("b'", 'b"'):
        word = word[2:]  # the repr of bytes: ``b'Autumn2023*'``
    return word[:-1] if word.endswith(".") and not word.endswith("..") else word


def _user_password(word: str, at: int) -> tuple[int, int] | None:
    """Where the password of a ``user:password`` word at ``at`` is, when it is shaped like one."""
    user, colon, secret = word.partition(":")
    if not (colon and secret) or ":" in secret or user.lower() in tokens.HASH_NAMES:
        return None
    shaped = tokens.password_like(secret) or (
        TOKEN.fullmatch(secret) is not None and tokens.looks_random(secret)
    )
    if shaped and credential_part(secret) and not all(char in tokens.HEX for char in secret):
        return at + len(user) + 1, at + len(word)
    return None


_PAIRS_INSIDE = re.compile(r"[,&;][\w.-]{1,64}=")  # ``n,o.haKey=!1``: pairs, not one password
_PAIR_KEY = re.compile(r"[\w.\-\[\]'\"]{1,64}")  # ``key=`` before a value, not ``=`` inside a password


Cached = TypeVar("Cached")


def _cached(cache: dict[str, Cached], key: str, value: Cached) -> Cached:
    """``value``, remembered for ``key`` unless the key is too long to be worth it (bounded: a full cache
    starts over)."""
    if len(key) <= _CACHED_LENGTH:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value
    return value


_PAIR_END = re.compile(r"[ \t]*(?:,[ \t]*(?:true|false|TRUE|FALSE)[ \t]*)?[)\]]")  # PHP's define(..., true)


def _pair_opener(text: str, quote_at: int) -> str:
    """What the quote at ``quote_at`` opens the first item of: a call that sets a setting or reads one with a
    default (``define('DB_PASSWORD',``, ``os.environ.setdefault("TOKEN",``, ``os.environ.get("SECRET_KEY",``),
    a tuple or list (``("Authorization", ...``), or nothing (a value in JSON, ``"grant_type": "password",
    "client": ...``; another call, ``check("password", ...``)."""
    at = quote_at - 1
    while at >= 0 and text[at] in " \t":
        at -= 1
    if at < 0 or text[at] not in "([":
        return ""
    name_end = name_start = at
    while name_start and (text[name_start - 1].isalnum() or text[name_start - 1] == "_"):
        name_start -= 1
    if text[at] == "[" or name_start == name_end:
        return "tuple"
    return "setter" if text[name_start:name_end] in _SETTERS else ""


# SQLAlchemy's ``[SQL: ...]`` line and the ``[parameters: (...)]`` line after it (a tuple: positional markers)
_SQLALCHEMY = re.compile(
    r"\[SQL: (?P<sql>[^\n]{1,4000})\]\s{0,8}\[parameters: \((?P<parameters>[^\n]{0,4000})\)\]"
)
_PY_LITERAL = re.compile(
    r"""[ \t]*(?P<value>b?'(?:[^'\\\n]|\\.){0,1024}'|b?"(?:[^"\\\n]|\\.){0,1024}"|[^,'"\n]{0,1024}?)"""
    r"""[ \t]*(?:,|$)"""
)
_MARKER = re.compile(r"\?|%s")
_MARKER_COLUMN = re.compile(r"([\w\"`\[\]]+)[ \t]*=[ \t]*\Z")


def _marker_columns(sql: str) -> list[str]:
    """The column each positional marker of a statement stands for: by position in ``INSERT ... (columns)
    VALUES (?, ...)``, or the column before ``= ?`` (``SET password = ?``); "" when it cannot tell."""
    insert = SQL_INSERT.search(sql)
    inserted = [name.strip(' \t\n"`[]') for name in insert["columns"].split(",")] if insert else []
    columns: list[str] = []
    for marker in _MARKER.finditer(sql):
        if insert and insert.start("values") <= marker.start() < insert.end("values"):
            index = len(_MARKER.findall(sql, insert.start("values"), marker.start()))
            columns.append(inserted[index] if index < len(inserted) else "")
        else:
            before = _MARKER_COLUMN.search(sql, max(0, marker.start() - 80), marker.start())
            columns.append(before[1].strip('"`[]').rpartition(".")[2] if before else "")
    return columns


# ``['sshpass', '-p', 'pw', 'ssh', 'host']``: two or more string literals in brackets, a list or a tuple
_STRING_ITEM = r"""b?(?:'[^'\\\n]{0,512}'|"[^"\\\n]{0,512}")"""
_ARGV = re.compile(
    rf"[\[(][ \t]*(?P<items>(?:{_STRING_ITEM}[ \t]*,[ \t]*){{1,63}}{_STRING_ITEM})[ \t]*,?[ \t]*[\])]"
)
# The same list cut short by a repr's bound: its last item ends in ``...>`` (``Popen``'s) or ``…`` (ours)
_ARGV_CUT = re.compile(
    rf"[\[(][ \t]*(?P<items>(?:{_STRING_ITEM}[ \t]*,[ \t]*){{1,63}})"
    r"""b?['"](?P<cut>[^'"\\\n]{1,512}?)(?:\.\.\.>|…)"""
)
# ``postgresql://app:cP-5%25oG`` cut before its ``@``
_UNFINISHED_USERINFO = re.compile(r"[A-Za-z][\w+.-]{0,20}://[^\s/@:]{1,64}:(?P<secret>[^\s/@]+)\Z")
_UNFINISHED_USER = re.compile(r"[^\s:]{1,64}:(?P<secret>\S+)\Z")
_ARGV_ITEM = re.compile(r"""b?(?:'(?P<single>[^'\\\n]*)'|"(?P<double>[^"\\\n]*)")""")
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_NEXT_PAIR = re.compile(r"[A-Za-z_][\w.-]{0,63}=(?!=|$)")
_DSN_SHAPE = re.compile(r"[:/=@;]")  # a data source name is a URL or a connection string
# The next field of a mapping written out, which a header's value running to the end of the line stops at
_NEXT_FIELD = re.compile(r",[ \t]*['\"]?[A-Za-z_][\w-]{0,63}['\"]?[ \t]*:[ \t]")
_NAMED_NEXT = re.compile(r"([A-Za-z_][\w.-]{0,63}):(?!:)")
# A member of the object at hand, not a literal: ``this.mPassword``, ``self._token``, ``@secret`` in Ruby
_CODE_VALUE = re.compile(r"(?:this|self|cls|that)\.[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_RUBY_CALL = re.compile(r"[ \t]+[a-z_]\w*[ \t]*,")
# A module's or a class's method: ``JWT.encode``, ``Base64::encode``
_QUALIFIED_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*(?:\.|::)[a-z_][a-z0-9_]*[!?]?")
# A command line's flag, and its first word: ``--api-key``, ``-Password``, ``--ask-become-pass``
_FLAG = re.compile(r"-{1,2}(?P<word>[A-Za-z][a-z0-9]*)")
# The first words of flags that are switches about a secret rather than its value
_SWITCH_WORDS = frozenset(
    {
        "ask", "no", "prompt", "with", "use", "require", "show", "print", "skip", "disable", "enable",
        "allow", "generate", "reset", "rotate", "check", "verify", "validate", "read", "stdin", "interactive",
        "random",
    }
)  # fmt: skip
# the value of a setting they set, or the default of one they read (a fallback secret in a settings file)
_SETTERS = frozenset(
    {
        "define", "setenv", "putenv", "setdefault", "setProperty", "setItem", "set", "put", "get", "getenv",
        "fetch", "getProperty", "getOrDefault",
    }
)  # fmt: skip


def _statement(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a line of its own, but for indentation and a closing ``;``."""
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip(" \t") and _STATEMENT_END.match(text, end) is not None


_STATEMENT_END = re.compile(r"[ \t]*;?[ \t]*(?:\r?\n|\Z)")
# A list under a key: ``passwords: ["a", "b"]`` (also over lines, as JSON writes it), YAML's block sequence
_LIST_VALUE = re.compile(
    r"""["']?[ \t]*[:=][ \t]*(?:\[(?P<inline>[^\]\[{}]{1,1024})\]"""
    r"""|\r?\n(?P<block>(?:[ \t]*-[ \t]+[^\r\n]{1,256}(?:\r?\n|\Z)){1,32}))"""
)
_LIST_ITEM = re.compile(r"""(?P<q>["'])(?P<quoted>[^"'\r\n]{1,256})(?P=q)|(?P<bare>[^\s"',\[\]]{1,256})""")
_BLOCK_ITEM = re.compile(
    r"""[ \t]*-[ \t]+(?P<q>["']?)(?P<item>[^"'\s][^\r\n]{0,255}?)(?P=q)[ \t]*(?:\r?\n|\Z)"""
)


def _listed_secrets(text: str, end: int, weak: bool) -> list[tuple[int, int]]:
    """The spans of the items of a list after the secret key that ends at ``end``, each one judged as a
    value of its own; not a list of mappings (``- name: x``) nor of numbers."""
    listed = _LIST_VALUE.match(text, end)
    if listed is None:
        return []
    if listed["inline"] is not None:
        found = (
            (item.start(group), item[group])
            for item in _LIST_ITEM.finditer(listed.string, listed.start("inline"), listed.end("inline"))
            for group in ("quoted" if item["quoted"] is not None else "bare",)
        )
    else:
        found = (
            (item.start("item"), item["item"])
            for item in _BLOCK_ITEM.finditer(listed.string, listed.start("block"), listed.end("block"))
        )
    return [
        (start, start + len(value))
        for start, value in found
        if not (value.isdigit() or ": " in value or value[:1] in "$%{<" or _placeholder(value))
        and (not weak or _weak_secret(value))
    ]


def _flag_value(text: str, match: re.Match[str], kind: str, word: str) -> tuple[int, int] | None:
    """The value of a command line's flag that names a secret (``--api-key <v>``, PowerShell's
    ``-Password <v>``): a word counts, as it does after ``=``; not a switch that says how the secret is got
    (its first ``word``: ``--ask-pass``, ``--no-password``), the next flag, or prose (``--token is set``)."""
    if word.lower() in _SWITCH_WORDS:
        return None
    if match["quoted"] is not None:
        value, start = match["quoted"], match.start("quoted")
    else:
        start = match.start("bare")
        value = bracketed_bare(text, start, match["bare"])
    if (
        not value
        or value[0] in "-$%{<"
        or value.lower() in _PROSE_WORDS
        or _CALL_START.match(value)
        or _NEXT_PAIR.match(value)
        or not _named_secret(kind, value)
    ):
        return None
    return start, start + len(value)


def _named_secret(kind: str, value: str) -> bool:
    """Whether ``value``, named by a key of this kind (an XML setting, a SQL column), is to be masked: any
    value but a placeholder under a secret term, one that reads as a credential under a weak term."""
    return (
        bool(kind) and not _placeholder(value) and (kind not in key_rules.WEAK_TERMS or _weak_secret(value))
    )


def _no_value(kind: str, bare: str) -> bool:
    """An object's rendering (``token=Token{a64f992 ...}``), or a status where a data source name goes
    (sendmail's ``dsn=4.0.0``): no value of the key."""
    return OBJECT_REPR.match(bare) is not None or (kind == "dsn" and not _DSN_SHAPE.search(bare))


def _random_argument(argument: str) -> bool:
    """A call's one argument written as a random literal (not a name, a reference nor a placeholder)."""
    return TOKEN.fullmatch(argument) is not None and tokens.looks_random(argument, tokens.SECRET)


def _weak_secret(value: str) -> bool:
    """A value under a weak key (``HEROKU_KEY``, ``login``) that reads as a credential."""
    value = value.strip().strip("'\"")
    if value[:2] in ("0x", "0X"):
        return False  # a number written in hex: a PGP key id ``0xE452E703CB2FE9F2``
    if "%" in value and percent_escaped(value[value.index("%") :]):
        value = unquote(value)  # a cookie as it is sent: ``connect.sid=s%3A<id>.<signature>``
        prefix, colon, rest = value.partition(":")
        value = rest if colon and len(prefix) <= 2 else value  # express-session's ``s:`` (signed), ``j:``
    if tokens.password_like(value) or tokens.generated_printable(value):
        return True
    if value.isalpha() and len(value) < 20 and tokens.field_name(value):
        return False  # a field's name in a loop over a mapping (``key = 'KmsKeyId'``), not a key
    return TOKEN.fullmatch(value) is not None and tokens.looks_random(value, tokens.SECRET)


def _reference_end(text: str, match: re.Match[str]) -> int:
    """Where a value naming where the value comes from ends (``${KEY:=$2}``, `` `vault read x` ``), or -1."""
    bare = match["bare"]
    reference = BRACKETED_REFERENCE.match(text, match.start("bare")) if bare and bare[0] in "$`" else None
    return reference.end() if reference and _VALUE_END.match(text, reference.end()) else -1


_VALUE_END = re.compile(r"""$|[\s'",;)\]}]""")
# base64's ``=``, ``+`` and ``/`` percent-escaped, and what follows them (a token in a URL's query)
_ESCAPED_BASE64 = re.compile(r"(?:%(?:3[Dd]|2[BbFf])[A-Za-z0-9_.~-]*)+")
# What a masked token ending in ``=`` runs on with: base64 and its kin have ``=`` inside too (``ab=cd``)
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9+/_.~=-]*")


def _tokens(text: str) -> str:
    armored = "-----BEGIN " in text

    def spans() -> Iterable[tuple[int, int]]:
        done = 0
        for match in TOKEN.finditer(text):
            start = match.start()
            if start < done:
                continue
            token = match[0].rstrip(".")
            if start and text[start - 1] == "\\" and (escape := _repr_escape(text, start, token)):
                start, token = start + escape, token[escape:]  # ``\tCOpk6E3v...`` in a repr: not the ``t``
                if len(token) < 8:
                    continue
            if start and _variable_or_escape(text, start, token):
                if text[start - 1] != "%" or text.startswith("%", start + len(token)) or len(token) < 10:
                    continue
                start, token = start + 2, token[2:]  # what follows an escape: ``s%3A<session id>``
            if token.startswith("//") and text[start - 1 : start] == ":":  # a URL: its segments are ids
                yield from _path_segments(token, start, tokens.PUBLIC)
            else:
                end = start + len(token)
                escaped = _ESCAPED_BASE64.match(text, end) if text.startswith("%", end) else None
                if escaped and token_verdict(unquote(token + escaped[0]), text, start):
                    done = escaped.end()  # base64 in a URL: ``AAAA...%3D<rest>`` is one bearer token
                    yield start, done
                    continue
                tail = _TOKEN_TAIL.match(text, end) if token.endswith("=") else None
                if (
                    token_verdict(token, text, start) or (tail and _joined_token(token, tail[0], text, start))
                ) and not (armored and _in_public_block(text, start)):
                    if tail:
                        done = end = tail.end()
                    if token[:1] == "/" and _NAMED_PATH.match(token):
                        yield from _resource_path(text[start:end], start)  # with the tail after ``=``
                    else:
                        yield start, end
                elif "/" in token and _names_capability(token):
                    yield from _path_segments(token, start, None)

    return _mask_spans(text, spans())


def _repr_escape(text: str, start: int, token: str) -> int:
    """The length of the escape a token at ``start`` begins with, after an odd run of backslashes (``\t``,
    ``\n``, ``\x1b``, ``\u00e9`` in a repr or JSON text; ``\\tools`` is a backslash, then a word)."""
    before = start - 1
    while before and text[before - 1] == "\\":
        before -= 1
    if (start - before) % 2 == 0:
        return 0
    escape = _ESCAPE.match(token)
    return escape.end() if escape else 0


_ESCAPE = re.compile(r"[tnrfvab0]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}")


def _in_public_block(text: str, at: int) -> bool:
    """Whether ``at`` is inside a PEM or PGP block of public material (a certificate, a public key, a
    signature): its lines are random base64 by design."""
    begin = text.rfind("-----BEGIN ", 0, at)
    if begin < 0 or text.find("-----END ", begin, at) >= 0:
        return False
    label_end = text.find("-----", begin + 11, at)
    return label_end >= 0 and text[begin + 11 : label_end] in _PUBLIC_BLOCKS


_PUBLIC_BLOCKS = frozenset(
    {
        "CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CRL", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST",
        "PUBLIC KEY", "RSA PUBLIC KEY", "SSH2 PUBLIC KEY", "PGP PUBLIC KEY BLOCK", "PGP SIGNATURE",
    }
)  # fmt: skip


# What a path segment says when the next one is a capability: ``/reset-password/<token>``,
# ``/invite/<token>``, an incoming webhook's ``/hooks/<id>/<token>`` (Rocket.Chat, Mattermost; Feishu's
# ``/bot/v2/hook/<uuid>``)
_CAPABILITY_WORDS = (
    "passw", "token", "secret", "reset", "verif", "confirm", "invit", "activat", "magic", "unsubscribe",
    "share", "signup", "apikey", "api-key", "hook",
)  # fmt: skip
# In a file's path also a store of sessions, whose files are named by the session id (``sessions/<id>.json``,
# PHP's ``sess_<id>``); in a URL, ``/sessions/<uuid>`` names a resource by its id
_FILE_CAPABILITY_WORDS = (*_CAPABILITY_WORDS, "session")
_FILE_NAME = re.compile(r"\.[A-Za-z0-9]{1,5}\Z")
# The directory whose segments are public by protocol (RFC 8555 serves ACME's challenge tokens to anyone)
_PUBLIC_PARENT = "acme-challenge"
# An absolute path with a named directory before its last segment: ``/.well-known/acme-challenge/<token>``
_NAMED_PATH = re.compile(r"/(?:[^/]*/)*?\.?[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*/[^/]")


def _names_capability(segment: str, words: tuple[str, ...] = _FILE_CAPABILITY_WORDS) -> bool:
    low = segment.lower()  # substring tests: an ignore-case alternation costs ten times as much
    return any(map(low.__contains__, words))


def _resource_path(token: str, start: int) -> list[tuple[int, int]]:
    """A resource's path read as random: only its random segments go (``/reset/<token>``, not ``/reset/``),
    none in ``/.well-known/acme-challenge/<token>``, all of it where no segment alone is random."""
    segments = list(_path_segments(token, start, tokens.NEUTRAL))
    if not segments and f"/{_PUBLIC_PARENT}/" not in token:
        return [(start, start + len(token))]
    return segments


def _path_segments(token: str, start: int, context: int | None) -> Iterable[tuple[int, int]]:
    """The spans of a path's segments judged alone: with ``context`` (a URL's: ids, the public bar), or only
    after a segment naming a capability (``context`` None), with secret context there, as the words before a
    token in text would give it."""
    words = _FILE_CAPABILITY_WORDS if context is None else _CAPABILITY_WORDS
    at, after_capability, capable = start, False, context is None or _names_capability(token, words)
    public = False
    for segment in token.split("/"):
        if public:
            pass  # an ACME challenge's token, an object's id after its collection (``/orgs/<id>/events``)
        elif after_capability:
            name = _FILE_NAME.sub("", segment)  # ``sessions/<id>.json``: a file named by the secret
            if tokens.looks_random(name, tokens.SECRET) or tokens.hex_verdict(name, tokens.SECRET):
                yield at, at + len(name)
        elif (
            context is not None
            and tokens.looks_random(segment, context)
            and not tokens.public_prefix(segment)
            and not tokens.public_material(segment)  # ``ipfs://bafy...``
        ):
            yield at, at + len(segment)  # not a public object's id: ``/v1/customers/cus_dRKXe3zQ.../lines``
        after_capability = capable and bool(segment) and _names_capability(segment, words)
        public = segment == _PUBLIC_PARENT or (context is not None and key_rules.names_collection(segment))
        at += len(segment) + 1


def _joined_token(token: str, tail: str, text: str, start: int) -> bool:
    """A token with ``=`` inside (``pscale_tkn_70id6zlb=x1wovbrp``), judged whole when its start ends like a
    random body: after a key's name (``foreignKey=``, ``api_version=``) the value is a token of its own."""
    head = token.rstrip("=")
    return tail.strip("=") != "" and tokens.mixed_segment(head) and token_verdict(token + tail, text, start)


def _variable_or_escape(text: str, start: int, token: str) -> bool:
    """``$VAR``, ``${VAR}``, ``%VAR%`` or the rest of a percent-escape (``%2Fhome``): not a token itself."""
    before = text[start - 1]
    if before in "${":
        return VARIABLE.fullmatch(token) is not None
    if before == "%":
        return text.startswith("%", start + len(token)) or all(char in tokens.HEX for char in token[:2])
    return False


def _escaped_text(word: str) -> bool:
    """Percent-escaped words or a URL (``hello%20world%21``, ``https%3A%2F%2F...``): what a query holds."""
    plain = unquote(word)
    return plain != word and ("://" in plain or any(char.isspace() for char in plain))


def _passwords(text: str) -> str:
    """Words shaped like a password (``M0Xvq!ZjxTW3#57``), or the password of a ``user:password`` word."""

    def spans() -> Iterable[tuple[int, int]]:
        for match in _WORD_RUN.finditer(text):
            run = match[0]
            key, _, value = run.partition("=")
            last = run.rpartition("=")[2]
            # the value after the last ``=`` (``a=1&pw=...``); when too short to be one, as a password may
            # hold ``=`` itself (``1V38Ie$Un2inCg$=w-``), the value after a key or the whole word
            whole = value if _PAIR_KEY.fullmatch(key) else run
            fallback = len(last) < 8 < len(run) and not _PAIRS_INSIDE.search(whole)
            choices = (last, whole) if fallback else (last,)
            for number, choice in enumerate(dict.fromkeys(choices)):
                word = _clean_word(choice)
                if len(word) < 8 or "://" in word or ("%" in word and _escaped_text(word)):
                    continue
                if "@" in word and choice.lstrip("'\"(").startswith("<"):
                    continue  # an address in angle brackets: sendmail's ``msgid=<2005...jA9J1UvC0@host>``
                at = match.start() + run.rindex(word)
                if at > 2 and id_key_before(text, at):
                    break  # ``sort_key=ORDER#01HF...``: a key that names an id says what its value is
                if tokens.password_like(word):
                    yield at, at + len(word)
                    break
                if number == 0 and (span := _user_password(word, at)):
                    yield span
                    break

    return _mask_spans(text, spans())
