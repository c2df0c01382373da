"""Redaction: the shared sample corpus, synthetic secrets of every family, look-alikes and properties.

Every secret here is generated: random characters in the published format of each credential family.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultspan._capture.redaction import REDACTED, RedactionRules, Redactor, TaintScope

CORPUS = Path(__file__).resolve().parent / "data"  # a copy of the shared sample corpus
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
LOWER_DIGITS = string.ascii_lowercase + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits

redactor = Redactor()


def rand(rng: random.Random, alphabet: str, length: int) -> str:
    """Random characters; the stride keeps them varied even when hypothesis's random repeats one choice
    (``ghp_aaaa...`` is a placeholder, rightly kept)."""
    return "".join(alphabet[(rng.randrange(len(alphabet)) + 7 * i) % len(alphabet)] for i in range(length))


def password(rng: random.Random) -> str:
    return (
        rand(rng, ALNUM, 5)
        + rng.choice("!#$%*")
        + rand(rng, ALNUM, 6)
        + rng.choice("!#$%*")
        + rand(rng, string.digits, 2)
    )


def exported(value: object) -> str:
    """What an exporter would write: JSON text of the value, so escaped forms are searched too."""
    return json.dumps(value, ensure_ascii=False) + repr(value)


def assert_no_needle(result: object, needles: list[str], masked: list[str]) -> None:
    text = exported(result)
    for needle in needles:
        assert needle not in text and json.dumps(needle)[1:-1] not in text, needle
        assert all(needle not in path for path in masked), needle


# --------------------------------------------------------------------------------------------------
# Synthetic secrets, one generator per family: (text containing the secret, the secret itself)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + rand(rng, string.digits, length - len(prefix) - 1)
    for check in string.digits:
        digits = body + check
        total = 0
        for index, char in enumerate(reversed(digits)):
            digit = int(char)
            if index % 2:
                digit = digit * 2 - 9 if digit > 4 else digit * 2
            total += digit
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    style = rng.randrange(5)
    if style == 0:  # Amex 4-6-5
        digits = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    digits = luhn_complete(rng.choice(["4", "51", "55", "2221", "6011", "35"]), 16, rng)
    if style == 1:
        return digits
    separator = " " if style in (2, 3) else "-"
    return separator.join(digits[i : i + 4] for i in range(0, 16, 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
    claims = {"sub": f"user-{rng.randrange(10**6)}", "iat": rng.randrange(10**9, 2 * 10**9), "scope": "a:b"}
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def pem(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""])
    body = "\n".join(rand(rng, B64, 64) for _ in range(rng.randrange(3, 8)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


TOKEN_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "aws_access_key": lambda r: (
        r.choice(["AKIA", "ASIA", "ABIA", "ACCA", "A3TX"]) + rand(r, UPPER_DIGITS, 16)
    ),
    "aws_bedrock": lambda r: (
        r.choice(["ABSKQmVkcm9ja0FQSUtleS1", "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t"])
        + rand(r, B64, 108)
    ),
    "github": lambda r: r.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rand(r, ALNUM, 36),
    "github_pat": lambda r: "github_pat_" + rand(r, ALNUM, 22) + "_" + rand(r, ALNUM, 59),
    "gitlab": lambda r: r.choice(["glpat-", "glrt-", "GR1348941"]) + rand(r, B64URL, 20),
    "stripe": lambda r: r.choice(["sk_live_", "sk_test_", "rk_live_", "rk_test_"]) + rand(r, ALNUM, 24),
    "stripe_webhook": lambda r: "whsec_" + rand(r, ALNUM, 32),
    "slack": lambda r: "-".join(
        [
            f"xox{r.choice('abporscd')}",
            rand(r, string.digits, 11),
            rand(r, string.digits, 12),
            rand(r, ALNUM, 24),
        ]
    ),
    "google": lambda r: "AIza" + rand(r, B64URL, 35),
    "openai": lambda r: (
        r.choice(["sk-", "sk-proj-"]) + rand(r, ALNUM, 20) + r.choice(string.digits) + rand(r, ALNUM, 27)
    ),
    "anthropic": lambda r: "sk-ant-api03-" + rand(r, B64URL, 93),
    "npm": lambda r: "npm_" + rand(r, ALNUM, 36),
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + rand(r, B64URL, 60),
    "sendgrid": lambda r: "SG." + rand(r, B64URL, 22) + "." + rand(r, B64URL, 43),
    "twilio": lambda r: r.choice(["AC", "SK"]) + rand(r, HEX, 32),
    "huggingface": lambda r: "hf_" + rand(r, ALNUM, 34),
    "shopify": lambda r: r.choice(["shpat_", "shpca_", "shppa_"]) + rand(r, HEX, 32),
    "digitalocean": lambda r: "dop_v1_" + rand(r, HEX, 64),
    "braintree": lambda r: (
        f"access_token${r.choice(['production', 'sandbox'])}${rand(r, LOWER_DIGITS, 16)}${rand(r, HEX, 32)}"
    ),
    "jwt": jwt,
    "card": card,
}


SCHEMES = ["https", "postgres", "postgresql+psycopg", "mysql", "amqp", "mongodb+srv", "redis"]
QUERY_KEYS = [
    "token",
    "api_key",
    "access_token",
    "sig",
    "signature",
    "X-Amz-Signature",
    "client_secret",
    "key",
]
PAIR_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "authToken",
    "DB-PASS",
]


def in_context(rng: random.Random) -> tuple[str, str]:
    """A secret whose format alone does not give it away, in a context that does: (text, secret)."""
    secret = password(rng)
    user = rand(rng, string.ascii_lowercase, 5)
    key = rng.choice(PAIR_KEYS)
    quote = rng.choice("'\"")
    token = rand(rng, ALNUM, 30) + rng.choice(string.digits)
    account_key = rand(rng, B64, 86) + "=="
    aws_secret = rand(rng, B64, 40)
    hook = rand(rng, ALNUM, 24)
    basic = base64.b64encode(f"ops:{secret}".encode()).decode()
    forms = [
        (f"{rng.choice(SCHEMES)}://{user}:{secret}@db{rng.randrange(9)}.internal:5432/app", secret),
        (f"redis://:{secret}@cache.internal:6379/0", secret),
        (f"https://api.example.com/v1/x?{rng.choice(QUERY_KEYS)}={secret}&page=2", secret),
        (f"{key}={secret}", secret),
        (f"{key} = {quote}{secret}{quote}", secret),
        (f'{{"{key}": "{secret}", "user": "bob"}} rejected', secret),
        (f"{{'{key}': '{secret}', 'host': 'db'}}", secret),
        (f"Config(host='db', {key}={quote}{secret}{quote})", secret),
        (f"{key}: {secret}", secret),
        (f"login failed: password {quote}{secret}{quote} rejected", secret),
        (f"retrying with passphrase {secret} now", secret),
        (
            f"Server=db;Database=app;User Id=sa;{rng.choice(['Password', 'Pwd'])}={secret};Encrypt=true",
            secret,
        ),
        (
            f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={account_key};EndpointSuffix=x",
            account_key,
        ),
        (f"Authorization: Bearer {token}", token),
        (f"Authorization: Basic {basic}", basic),
        (f"Authorization: Token {rand(rng, HEX, 40)}", None),
        (f"X-Api-Key: {token}", token),
        (f"aws_secret_access_key = {aws_secret}", aws_secret),
        (f"https://hooks.slack.com/services/T{rand(rng, ALNUM, 8)}/B{rand(rng, ALNUM, 8)}/{hook}", hook),
    ]
    text, found = rng.choice(forms)
    return text, found or text.rsplit(" ", 1)[1]


def planted(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.35:
        return in_context(rng)
    if rng.random() < 0.1:
        block = pem(rng)
        return block, block.split("\n")[1]
    secret = TOKEN_FAMILIES[rng.choice(sorted(TOKEN_FAMILIES))](rng)
    return secret, secret


# --------------------------------------------------------------------------------------------------
# The shared sample corpus


def load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CORPUS / name).read_text())
    return entries


def channel_forms(entry: dict[str, Any]) -> list[tuple[str, Callable[[list[str]], object]]]:
    """Each way the entry's value reaches the exporter, as (description, scrub function given masked)."""
    key, value, channel = entry.get("key", ""), entry["value"], entry["channel"]
    forms: list[tuple[str, Callable[[list[str]], object]]] = []
    if channel in ("kv", "value", "local"):
        forms.append(("attribute", lambda m: redactor.scrub_attributes({key: value}, "", m) or {key: value}))
        forms.append(("nested", lambda m: redactor.scrub_value("data", {"outer": {key: value}}, "data", m)))
    if channel == "header":
        name = "http.request.header." + key.lower()
        forms.append(("header", lambda m: redactor.scrub_attributes({name: value}, "", m) or {name: value}))
        forms.append(("header line", lambda m: redactor.scrub_value("log", f"{key}: {value}", "log", m)))
    if channel in ("message", "breadcrumb", "value"):
        forms.append(("message", lambda m: redactor.scrub_value("exception.message", value, "event[0].m", m)))
        crumb = {"breadcrumb.message": value}
        forms.append(("breadcrumb", lambda m: redactor.scrub_attributes(crumb, "", m) or crumb))
    if channel == "local":
        frames = json.dumps([{"function": "f", "lineno": 3, "locals": {key: repr(value)}}])
        forms.append(("frames json", lambda m: redactor.scrub_value("faultspan.frames", frames, "frames", m)))
        trace = f'Traceback (most recent call last):\n  File "app.py", line 3, in f\n    {key} = {value!r}\n'
        forms.append(("stacktrace", lambda m: redactor.scrub_text(trace)))
    if channel in ("kv", "local") and isinstance(value, str):
        forms.append(("log pair", lambda m: redactor.scrub_text(f"loaded config {key}={value} from env")))
    return forms


def test_corpus_secrets_never_survive() -> None:
    for entry in load("secrets-sample.json"):
        for form, scrub in channel_forms(entry):
            masked: list[str] = []
            result = scrub(masked)
            try:
                assert_no_needle(result, entry["needles"], masked)
            except AssertionError as err:
                raise AssertionError(f"{entry['id']} ({form}): {result!r}") from err


def test_corpus_lookalikes_survive_unchanged() -> None:
    for entry in load("lookalikes-sample.json"):
        key, value = entry.get("key", "event"), entry["value"]
        masked: list[str] = []
        if isinstance(value, str):
            assert redactor.scrub_text(value) is value, entry["id"]
        assert redactor.scrub_attributes({key: value}, "", masked) is None, entry["id"]
        assert redactor.scrub_value(key, value, key, masked) is value, entry["id"]
        assert masked == [], entry["id"]


def test_corpus_secrets_report_their_paths_not_values() -> None:
    masked: list[str] = []
    entries = [e for e in load("secrets-sample.json") if e["channel"] in ("kv", "value")]
    attributes = {f"k{i}.{e['key']}": e["value"] for i, e in enumerate(entries)}
    result = redactor.scrub_attributes(attributes, "event[2].", masked)
    assert result is not None and list(result) == list(attributes)
    assert sorted(masked) == sorted(f"event[2].{key}" for key in attributes)


# --------------------------------------------------------------------------------------------------
# Key rules

SECRET_KEYS = [
    "password", "PASSWORD", "Password", "dbPassword", "db_password", "DB-PASSWORD", "user.password", "passwd",
    "pwd", "mysql_pwd", "MYSQL_PWD", "passphrase", "new_password", "password_confirmation", "password2",
    "secret", "client_secret", "clientSecret", "SECRET_KEY", "secretKey", "webhook-secret", "api_key",
    "apikey", "API-KEY", "ApiKey", "X-Api-Key", "x_api_key", "access_token", "accessToken", "refresh-token",
    "id_token", "auth_token", "X-Auth-Token", "github_token", "GITHUB_TOKEN", "token", "csrf_token",
    "X-CSRF-Token", "xsrf", "csrfmiddlewaretoken", "authorization", "Authorization", "proxy-authorization",
    "auth", "basic_auth", "credentials", "creds", "cookie", "Cookie", "set-cookie", "Set-Cookie", "session",
    "sessionid", "session_id", "sessionId", "JSESSIONID", "PHPSESSID", "private_key", "privateKey",
    "privatekey", "access_key", "secret_access_key", "AWS_SECRET_ACCESS_KEY", "signing_key", "encryption_key",
    "jwt", "JWT", "ssn", "credit_card", "creditCardNumber", "card_number", "cvv", "CVC", "pin", "otp", "dsn",
    "SENTRY_DSN", "connection_string", "ConnectionString", "http.request.header.authorization",
    "http.request.header.cookie", "http.request.header.x-api-key", "http.response.header.set-cookie",
    "rpc.grpc.request.metadata.authorization", "breadcrumb.data.password", "auth_header", "password_hash",
    "pin_code", "smtp_pass", "DB_PASS", "PGPASSWORD", "pin_number", "security_code", "social_security_number",
    "Ocp-Apim-Subscription-Key", "x-functions-key", "PRIVATE-TOKEN", "X-Amz-Security-Token", "sessionToken",
    "mnemonic", "seed_phrase", "recovery_codes", "backupCode", "mfa_code", "TOTP_SEED",
]  # fmt: skip
NOT_SECRET_KEYS = [
    "token_count", "max_tokens", "tokens", "tokenizer", "token_type", "passage", "author", "authority",
    "auth_method", "auth_type", "secretary", "keyboard", "monkey", "key", "cache_key", "primary_key", "keys",
    "password_policy", "password_length", "password_min_length", "pwd_changed_at", "session_count",
    "cookie_consent", "client_id", "user_id", "session.id", "db.statement", "url.full", "http.request.method",
    "http.request.header.user-agent", "user_agent.original", "gen_ai.usage.input_tokens",
    "messaging.kafka.message.key", "aws.s3.key", "bypass", "compass", "oauth", "possession", "spin",
    "token_expires_at", "secret_name",
    "password_file", "public_key", "access_key_id", "exception.message", "code.function", "input_tokens",
    "session_timeout", "cardinality", "pinned", "otp_enabled", "keyspace", "password_reset_url",
    "random_seed", "status_code", "error_code", "sidebar", "account_sid", "recovery_codes_remaining",
]  # fmt: skip


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_names(key: str) -> None:
    assert redactor.is_secret_key(key)
    masked: list[str] = []
    assert redactor.scrub_attributes({key: "hunter2"}, "", masked) == {key: REDACTED}
    assert masked == [key]
    assert redactor.scrub_text(f"{key}=Abc123!xyz") == f"{key}={REDACTED}"  # the same rules inside text


def test_session_cookie_names_mask_a_session_value() -> None:
    session = "s%3AaB3dE5fG7hJ9kL1mN.Xy9zQw8eR7tY6uI5oP4aS3dF2gH1jK0lZ"
    windows_sid = "S-1-5-21-3623811015-1013"
    values = {"connect.sid": session, "symfony": "k7Rq2ZxW9pL4mN8vB3cT6yH1", "sid": windows_sid}
    scrubbed = redactor.scrub_attributes(values, "", [])
    assert scrubbed == {"connect.sid": REDACTED, "symfony": REDACTED, "sid": windows_sid}


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_lookalike_key_names(key: str) -> None:
    assert not redactor.is_secret_key(key)
    assert redactor.scrub_attributes({key: "plain value"}, "", []) is None
    assert redactor.scrub_text(f"{key}=plainvalue") == f"{key}=plainvalue"


@pytest.mark.parametrize("value", [42, 4.2, [1, 2], b"raw"])
def test_secret_key_masks_any_value_type(value: object) -> None:
    masked: list[str] = []
    assert redactor.scrub_value("api_key", value, "attr.api_key", masked) == REDACTED
    assert masked == ["attr.api_key"]


def test_a_secret_key_keeps_flags_and_the_shape_of_what_it_holds() -> None:
    masked: list[str] = []
    assert redactor.scrub_value("leakedPassword", False, "attr.leakedPassword", masked) is False
    for filler in ("********", "[FILTERED]", "<redacted>"):  # masked before it came here: kept as it reads
        assert redactor.scrub_value("password", filler, "attr.password", masked) == filler
    held = {"user": "bob", "mfa": True, "factors": {"otp": "492817", "expires": None}, "pin": 4821}
    assert redactor.scrub_value("auth", held, "auth", masked) == {
        "user": REDACTED,
        "mfa": True,
        "factors": {"otp": REDACTED, "expires": None},
        "pin": REDACTED,
    }
    assert masked == ["auth.user", "auth.factors.otp", "auth.pin"]
    scope = TaintScope()  # what it holds is masked there only; a secret of its own is masked everywhere
    document = json.dumps({"auth": {"strategy": "jwt-bearer", "password": "Xy9!kdl22q"}})
    note = "strategy jwt-bearer with Xy9!kdl22q"
    scrubbed = redactor.scrub_attributes({"body": document, "note": note}, "", scope)
    assert scrubbed is not None
    assert scrubbed["note"] == "strategy jwt-bearer with [REDACTED]"


@pytest.mark.parametrize(("value", "expected"), [(["a", "b"], [REDACTED, REDACTED]), (("a",), (REDACTED,))])
def test_secret_key_keeps_a_string_array_an_array(value: object, expected: object) -> None:
    """Semantic conventions type headers as string arrays: the masked value keeps the type (issue 14)."""
    masked: list[str] = []
    assert redactor.scrub_value("api_key", value, "attr.api_key", masked) == expected
    assert masked == ["attr.api_key"]


def test_empty_and_already_masked_values_are_left_alone() -> None:
    masked: list[str] = []
    for value in ("", None, REDACTED):
        assert redactor.scrub_value("password", value, "password", masked) is value
    assert masked == []


# --------------------------------------------------------------------------------------------------
# Value rules: synthetic secrets of every family, not the corpus ones


@pytest.mark.parametrize("family", sorted(TOKEN_FAMILIES))
@pytest.mark.parametrize("seed", range(8))
def test_token_families_are_masked(family: str, seed: int) -> None:
    rng = random.Random(f"{family}-{seed}")
    secret = TOKEN_FAMILIES[family](rng)
    for text in (
        secret,
        f"value {secret} here",
        f"note='{secret}'",
        f'{{"blob": "{secret}"}}',
        f"({secret})",
    ):
        masked: list[str] = []
        result = redactor.scrub_value("note", text, "attr.note", masked)
        assert_no_needle(result, [secret], masked)
        assert masked == (["attr.note.blob"] if text.startswith("{") else ["attr.note"])


@pytest.mark.parametrize("seed", range(40))
def test_secrets_found_by_context(seed: int) -> None:
    text, secret = in_context(random.Random(seed))
    result = redactor.scrub_text(text)
    assert secret not in result, (text, result)
    assert REDACTED in result


@pytest.mark.parametrize("seed", range(6))
def test_pem_blocks_masked_whole_in_every_encoding(seed: int) -> None:
    block = pem(random.Random(seed))
    lines = block.split("\n")[1:-1]
    for text in (
        block,
        f"key: {block}\nnext",
        json.dumps({"k": block}),
        repr(block),
        block[: len(block) // 2],
    ):
        result = redactor.scrub_text(text)
        assert all(line not in result for line in lines if line in text), result
        assert "BEGIN" not in result
    assert redactor.scrub_text(block) == REDACTED


def test_only_the_secret_part_is_replaced() -> None:
    cases = {
        "could not connect to postgres://app:s3cr3t!x@db.internal:5432/orders: timeout": (
            "could not connect to postgres://app:[REDACTED]@db.internal:5432/orders: timeout"
        ),
        "sending Authorization: Bearer abcdEFGH1234ijkl5678": "sending Authorization: Bearer [REDACTED]",
        "POST /login user=bob password=hunter2": "POST /login user=bob password=[REDACTED]",
        "GET /x?limit=5&api_key=abc123def456&page=2": "GET /x?limit=5&api_key=[REDACTED]&page=2",
        "Cookie: sessionid=abc123; csrftoken=def456": "Cookie: [REDACTED]",
        "{'host': 'db', 'password': 'pw12'}": "{'host': 'db', 'password': '[REDACTED]'}",
        "Server=db;Password=two words;Encrypt=true": "Server=db;Password=[REDACTED];Encrypt=true",
        "card 4111 1111 1111 1111 declined": "card [REDACTED] declined",
    }
    for text, expected in cases.items():
        assert redactor.scrub_text(text) == expected


LOOKALIKE_TEXTS = [
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "order 3f2a9c1e-8b7d-4e2f-9a1c-5d6e7f8a9b0c not found",
    "ORD-2024-000183",
    "1Z999AA10123456784",
    "4700 1393 8713 7887",
    "4111111111111112",
    "12345678901234567890123",
    "978-3-16-148410-0",
    "ISBN 978-0-306-40615-7",
    "https://api.example.com/v1/items?limit=50&cursor=c29tZQ&page=3",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "['SELECT', 'name', 'FROM', 'users_tbl']",
    "Bearer token missing from request",
    "Token refresh failed",
    "basic validation failed",
    "admin updated password policy to min length 12",
    "password reset email sent to user 42",
    "invalid password: too short",
    "token count exceeded: 48213 > 32000",
    "max_tokens=512 temperature=0.2",
    "auth_method=oauth2 auth_type=bearer",
    "cache_key=users:42:profile",
    "session_count=3 cookie_consent=granted",
    "2024-06-01T12:00:00.123456Z",
    "1717243200123",
    "+1 415 555 2671",
    "10.0.0.12:8080",
    "SELECT * FROM users WHERE id = %s",
    'File "/srv/app/shop/payments.py", line 42, in charge',
    "KeyError: 'token'",
    "the passage of time heals",
    "ssh://git@github.com/org/repo.git",
    "mailto:someone@example.com",
    "user@example.com signed in",
    "gpt-4o tokenizer o200k_base",
    "task-1234567890abcdefghij",
    "AC/DC tour",
    "do_v1_thing",
    "-----BEGIN CERTIFICATE-----",
    "eyJhbGciOiJIUzI1NiJ9 alone is just base64",
    "s3://bucket/key/path.json",
]


@pytest.mark.parametrize("text", LOOKALIKE_TEXTS)
def test_lookalike_texts_unchanged(text: str) -> None:
    assert redactor.scrub_text(text) is text
    masked: list[str] = []
    assert redactor.scrub_value("message", text, "message", masked) is text
    assert masked == []


def test_card_rules_luhn_grouping_and_runs() -> None:
    rng = random.Random(7)
    for _ in range(50):
        number = card(rng)
        assert redactor.scrub_text(f"card {number} declined") == "card [REDACTED] declined", number
        digits = number.replace(" ", "").replace("-", "")
        assert redactor.scrub_text(f"id {digits}00000 ok").endswith("00000 ok")  # over 19 digits: no card
        assert redactor.scrub_text(f"x{digits}") == f"x{digits}"  # glued to a word: not a card
        broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        assert redactor.scrub_text(f"ref {broken}") == f"ref {broken}"  # fails Luhn


def test_a_luhn_valid_number_of_a_length_no_network_issues_is_no_card() -> None:
    """A 19-digit GCE instance id or an 18-digit snowflake passes Luhn's check one time in ten."""
    rng = random.Random(11)
    for prefix, length in (("2", 19), ("4", 18), ("4", 17), ("37", 16), ("53", 19), ("23", 18)):
        number = luhn_complete(prefix, length, rng)
        assert redactor.scrub_text(f"instance {number} stopped") == f"instance {number} stopped", number
    for prefix, length in (("4", 19), ("4", 16), ("37", 15), ("6", 19), ("6", 18), ("35", 19)):
        number = luhn_complete(prefix, length, rng)
        assert redactor.scrub_text(f"card {number} declined") == "card [REDACTED] declined", number


# --------------------------------------------------------------------------------------------------
# Structured values, JSON, identity and paths


def test_json_text_is_scrubbed_recursively_and_stays_valid() -> None:
    inner = json.dumps({"password": "pw-123456", "note": "ok"})
    frames = [
        {"function": "f", "locals": {"cfg": "{'db_password': 'abc123!'}", "api_key": "k-1", "n": "3"}},
        {"function": "g", "locals": {"payload": inner, "user": "bob"}},
    ]
    masked: list[str] = []
    text = json.dumps(frames, indent=2)
    result = redactor.scrub_value("faultspan.frames", text, "event[0].faultspan.frames", masked)
    assert isinstance(result, str)
    decoded = json.loads(result)
    assert decoded[0]["locals"]["cfg"] == "{'db_password': '[REDACTED]'}"
    assert decoded[0]["locals"]["api_key"] == REDACTED
    assert json.loads(decoded[1]["locals"]["payload"]) == {"password": REDACTED, "note": "ok"}
    assert masked == [
        "event[0].faultspan.frames[0].locals.cfg",
        "event[0].faultspan.frames[0].locals.api_key",
        "event[0].faultspan.frames[1].locals.payload.password",
    ]


def test_clean_values_are_returned_as_the_same_objects() -> None:
    values: list[object] = [
        "plain",
        json.dumps({"a": [1, 2, {"b": "c"}]}),
        "  [1, 2]",
        "[not json",
        {"a": {"b": ["c", 1]}},
        ("x", "y"),
        7,
    ]
    for value in values:
        masked: list[str] = []
        assert redactor.scrub_value("field", value, "field", masked) is value
        assert masked == []
    attributes = {"http.request.method": "GET", "url.full": "https://example.com/a?page=2", "n": 3}
    assert redactor.scrub_attributes(attributes, "", []) is None


def test_mappings_and_sequences_are_walked_with_paths() -> None:
    value: dict[str, Any] = {
        "user": {"email": "a@example.com", "password": "pw"},
        "tokens": ["SELECT", "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2],
    }
    masked: list[str] = []
    result = redactor.scrub_value("payload", value, "event[1].payload", masked)
    assert result == {
        "user": {"email": "a@example.com", "password": REDACTED},
        "tokens": ["SELECT", REDACTED],
    }
    assert masked == ["event[1].payload.user.password", "event[1].payload.tokens[1]"]
    assert value["user"]["password"] == "pw"  # the input is never modified
    assert isinstance(redactor.scrub_value("t", ("ghp_" + "b2C3d4E5f6G7h8I9j0K1" * 2,), "t", []), tuple)


def test_attributes_keep_their_order_and_unchanged_objects() -> None:
    clean_list = ["a", "b"]
    attributes = {"a": "1", "password": "x", "b": clean_list, "c": "Bearer abcdef123456789"}
    masked: list[str] = []
    result = redactor.scrub_attributes(attributes, "link[0].", masked)
    assert result == {"a": "1", "password": REDACTED, "b": ["a", "b"], "c": f"Bearer {REDACTED}"}
    assert list(result) == ["a", "password", "b", "c"]
    assert result["b"] is clean_list
    assert masked == ["link[0].password", "link[0].c"]


def test_attributes_known_clean_give_the_walks_answers() -> None:
    """Keys and values seen before are answered by set lookups, without the walk: the same results."""
    fresh = Redactor()
    attributes = {"url.path": "/orders/7", "http.response.status_code": 200, "ok": True, "ratio": 0.5}
    assert fresh.scrub_attributes(attributes, "", []) is None
    assert fresh.scrub_attributes(dict(attributes), "", []) is None
    token = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0" * 2
    with_secret = {**attributes, "url.full": f"https://shop.example.com/?q={token}", "url.query": "page=2"}
    expected = {**with_secret, "url.full": f"https://shop.example.com/?q={REDACTED}"}
    for masked in ([], [], TaintScope()):  # the second time its text is known changed
        assert not fresh.leaves_attributes(with_secret)
        result = fresh.scrub_attributes(with_secret, "", masked)
        assert result == expected
        assert list(result) == list(with_secret)
        assert masked == ["url.full"]
    assert fresh.leaves_attributes(attributes)
    assert not fresh.leaves_attributes({**attributes, "password": "hunter2"})  # a secret key: the walk
    assert fresh.leaves_attributes({**attributes, "password": ""})
    calling = Redactor(RedactionRules(callback=lambda path, text: "X" if text == "/orders/7" else None))
    assert not calling.leaves_attributes(attributes)
    assert calling.leaves_attributes({"url.path": "/orders/8"})
    scope = TaintScope({"0rder-7-secret"})
    scope.append("name")  # where it was masked
    assert fresh.scrub_attributes({"url.path": "/0rder-7-secret"}, "", []) is None
    assert fresh.scrub_attributes({"url.path": "/0rder-7-secret"}, "", scope) == {"url.path": f"/{REDACTED}"}
    assert fresh.scrub_attributes({"tags": ["a", "b"], "url.path": "/orders/7"}, "", []) is None


def test_a_known_shape_answers_for_fresh_values_but_not_for_a_card() -> None:
    fresh = Redactor()
    for number in range(3):  # fresh order numbers in one shape: the shape's rules (none) answer
        assert fresh.scrub_attributes({"url.path": f"/orders/{number}", "ok": True}, "", []) is None
    assert fresh.scrub_attributes({"note": "paid with 4111111111111112"}, "", []) is None
    masked: list[str] = []
    assert fresh.scrub_attributes({"note": "paid with 4111111111111111"}, "", masked) == {
        "note": f"paid with {REDACTED}"
    }
    assert masked == ["note"]


def test_a_key_that_is_itself_a_secret_is_renamed_and_not_put_in_paths() -> None:
    token = "ghp_" + "Zz9" * 12
    masked: list[str] = []
    result = redactor.scrub_value("cache", {token: "user-1"}, "cache", masked)
    assert result == {REDACTED: "user-1"}
    assert masked == [f"cache.{REDACTED}"]
    assert redactor.scrub_attributes({f"breadcrumb.data.{token}": 1}, "", masked) == {
        f"breadcrumb.data.{REDACTED}": 1
    }
    assert all(token not in path for path in masked)


def test_prose_needs_a_credential_shaped_value() -> None:
    masked = {
        "Using token abcd1234efgh5678ijkl now": f"Using token {REDACTED} now",
        "invalid api key 1xxXHU0BScJXj675eVq30XYqaNUDqN9N": f"invalid api key {REDACTED}",
        "Secret Key: Zx81!kq9": f"Secret Key: {REDACTED}",
        "retry with password Hunter22 later": f"retry with password {REDACTED} later",
        "ssn 650-81-1406 invalid": f"ssn {REDACTED} invalid",
        "pin: 4321": f"pin: {REDACTED}",
        "SSN: 650-81-1406": f"SSN: {REDACTED}",
    }
    for text, expected in masked.items():
        assert redactor.scrub_text(text) == expected
    for text in (
        "session 3f2a9c1e-8b7d-4e2f-9a1c-5d6e7f8a9b0c expired",
        "session 12345 not found",
        "token expired",
        "password: missing",
        "password=None",
        "{'password': None, 'token': ''}",
        "token: null",
        "auth: 401",
        "KeyError: 'password'",
        "primary key 12345678 violated",
        "cache key user42abc9 missing",
    ):
        assert redactor.scrub_text(text) is text


def test_dates_and_timestamps_are_not_cards() -> None:
    for text in ("at 20240115123045 ok", "ts=1717243200123", "2024-01-15 10:00:00"):
        assert redactor.scrub_text(text) is text
    assert redactor.scrub_text("mc 2221000000000009") == f"mc {REDACTED}"  # Mastercard's 2-series


def test_cut_context_is_stable() -> None:
    """A mask can hide the quote that ended a value; a second look then finds what is left, once."""
    for text in ("userpassword=b'xoxb-')-Basic", "[Token=Bearer = ", "token=b'db=b'"):
        once = redactor.scrub_text(text)
        assert redactor.scrub_text(once) == once


def test_positions_survive_case_folding_that_changes_length() -> None:
    text = "İstanbul password=Abc123!x then ok"
    assert redactor.scrub_text(text) == f"İstanbul password={REDACTED} then ok"


def test_redacted_marker_never_triggers_anything() -> None:
    for text in (
        REDACTED,
        f"password={REDACTED}",
        f"Bearer {REDACTED}",
        f"https://u:{REDACTED}@h/x",
        f"[{REDACTED}]",
    ):
        assert redactor.scrub_text(text) is text


# --------------------------------------------------------------------------------------------------
# Configuration


def test_disabled_redaction_changes_nothing() -> None:
    off = Redactor(RedactionRules(enabled=False))
    masked: list[str] = []
    assert not off.is_secret_key("password")
    assert off.scrub_text("password=hunter2") == "password=hunter2"
    assert off.scrub_value("password", "x", "password", masked) == "x"
    assert off.scrub_attributes({"password": "x"}, "", masked) is None
    assert masked == []


def test_extra_keys_use_the_same_spelling_rules() -> None:
    custom = Redactor(RedactionRules(extra_keys=("tenant_code", "X-Internal-Signature")))
    for key in ("tenant_code", "tenantCode", "TENANT-CODE", "my.tenant_code", "x_internal_signature"):
        assert custom.is_secret_key(key), key
    assert not custom.is_secret_key("tenant_code_length")
    assert custom.scrub_text("tenant_code=AB12CD34 ok") == f"tenant_code={REDACTED} ok"
    assert not redactor.is_secret_key("tenant_code")


def test_allow_keys_exempt_key_rules_but_not_value_rules() -> None:
    relaxed = Redactor(RedactionRules(allow_keys=("session", "X-CSRF-Token")))
    assert not relaxed.is_secret_key("session")
    assert not relaxed.is_secret_key("x_csrf_token")
    assert relaxed.is_secret_key("session_id")
    masked: list[str] = []
    assert relaxed.scrub_value("session", "abc", "session", masked) == "abc"
    token = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0" * 2
    assert relaxed.scrub_value("session", token, "session", masked) == REDACTED
    assert masked == ["session"]


def test_extra_patterns_with_and_without_a_secret_group() -> None:
    custom = Redactor(RedactionRules(extra_patterns=(r"EMP-\d{6}", r"pin-code (?P<secret>\d{4})")))
    assert custom.scrub_text("employee EMP-123456 left") == f"employee {REDACTED} left"
    assert custom.scrub_text("pin-code 1234 ok") == f"pin-code {REDACTED} ok"
    assert (
        custom.scrub_text(custom.scrub_text("EMP-123456 pin-code 9876")) == f"{REDACTED} pin-code {REDACTED}"
    )


def test_patterns_never_match_inside_the_marker() -> None:
    custom = Redactor(RedactionRules(extra_patterns=("RED", r"\[")))
    assert custom.scrub_text("RED alert") == f"{REDACTED} alert"
    assert custom.scrub_text(f"x {REDACTED} y") == f"x {REDACTED} y"


def test_invalid_configuration_is_reported_not_raised() -> None:
    custom = Redactor(
        RedactionRules(extra_patterns=("(unclosed", "ok-\\d+"), disabled_rules=("nope", "card"))
    )
    assert any("(unclosed" in problem for problem in custom.problems)
    assert any("'nope'" in problem for problem in custom.problems)
    assert custom.scrub_text("ok-12 x") == f"{REDACTED} x"
    assert redactor.problems == ()


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("card", "card 4111 1111 1111 1111"),
        ("jwt,token", f"t={jwt(random.Random(1))}"),
        ("url_credentials", "redis://:pa55word@cache:6379"),
        ("bearer", "Bearer abcdef1234567890"),
        ("query_param", "https://x.example/y?X-Amz-Signature=abc123def"),
        ("key_value", "password=hunter2"),
        ("aws_access_key,token", "AKIAZ7QW3RT5YU2IOP4L"),
        ("github,token", "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2),
        ("pem_private_key,token", pem(random.Random(2))),
        ("token", "ntn_4564761517vWBETTAc421EJdkefwPvw8dfNt2o"),
    ],
)
def test_disabled_rules_are_skipped(rule: str, text: str) -> None:
    """Formats the generic token rule also recognises stay masked until both rules are off."""
    assert redactor.scrub_text(text) != text
    assert Redactor(RedactionRules(disabled_rules=tuple(rule.split(",")))).scrub_text(text) == text


def test_callback_replaces_or_keeps_and_survives_errors() -> None:
    seen: list[tuple[str, str]] = []

    def callback(path: str, text: str) -> str | None:
        seen.append((path, text))
        return text.replace("alice", "[USER]") if "alice" in text else None

    custom = Redactor(RedactionRules(callback=callback))
    masked: list[str] = []
    result = custom.scrub_attributes(
        {"msg": "hello alice", "other": "x", "password": "p"}, "event[0].", masked
    )
    assert result == {"msg": "hello [USER]", "other": "x", "password": REDACTED}
    assert ("event[0].msg", "hello alice") in seen and ("event[0].other", "x") in seen
    assert all(path != "event[0].password" for path, _ in seen)  # masked by key: nothing left to show
    assert masked == ["event[0].msg", "event[0].password"]

    def broken(path: str, text: str) -> str | None:
        raise RuntimeError("boom")

    failing = Redactor(RedactionRules(callback=broken))
    masked = []
    assert failing.scrub_value("m", "password=hunter2 ok", "m", masked) == f"password={REDACTED} ok"
    assert failing.scrub_value("m", "fine", "m", masked) == "fine"
    assert failing.callback_errors == 2
    assert masked == ["m"]


# --------------------------------------------------------------------------------------------------
# Properties

PRINTABLE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
SEPARATORS = st.sampled_from([" ", "\n", "\t", ", ", "; ", " (", ") ", " | ", ": ", "\r\n", " -> "])
# Short runs between separators and no password symbols (``#$%!``): a random 16-character run or a value
# mixing symbols with letters and digits is masked as a token or a password.
SAFE_TEXT = st.lists(
    st.tuples(
        st.text(st.sampled_from("adefhlmnoqruyADEFHLMNOQRUY0178"), max_size=7),
        st.sampled_from(" .,:;?()=-_/\n"),
    ),
    max_size=12,
).map(lambda runs: "".join(run + separator for run, separator in runs))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def isolate(prefix: str, suffix: str) -> tuple[str, str]:
    """Keep random context from gluing onto the secret: a card next to more digits is not a card."""
    return prefix.rstrip(string.digits + ".-+_" + string.ascii_letters), suffix.lstrip(string.digits + ".-")


@FAST
@given(st.randoms(use_true_random=False), PRINTABLE, PRINTABLE, SEPARATORS, SEPARATORS)
def test_planted_secrets_never_survive(
    rng: random.Random, prefix: str, suffix: str, left: str, right: str
) -> None:
    text, secret = planted(rng)
    prefix, suffix = isolate(prefix, suffix)
    result = redactor.scrub_text(prefix + left + text + right + suffix)
    assert secret not in result


@FAST
@given(st.randoms(use_true_random=False), PRINTABLE, SEPARATORS)
def test_scrubbing_is_idempotent(rng: random.Random, noise: str, separator: str) -> None:
    text = separator.join([noise, planted(rng)[0], noise[::-1], planted(rng)[0]])
    once = redactor.scrub_text(text)
    assert redactor.scrub_text(once) == once


@FAST
@given(PRINTABLE)
def test_scrubbing_arbitrary_text_is_idempotent(text: str) -> None:
    once = redactor.scrub_text(text)
    assert redactor.scrub_text(once) == once


@FAST
@given(SAFE_TEXT)
def test_text_without_secrets_is_returned_identical(text: str) -> None:
    assert redactor.scrub_text(text) is text
    masked: list[str] = []
    assert redactor.scrub_value("message", text, "message", masked) is text
    assert masked == []


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))


@FAST
@given(
    st.randoms(use_true_random=False),
    st.recursive(
        JSON_LEAVES,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    ),
    st.sampled_from(["value", "key", "secret_key", "nested_json"]),
)
def test_json_text_stays_valid_and_paths_never_hold_the_secret(
    rng: random.Random, document: Any, where: str
) -> None:
    text, secret = planted(rng)
    if where == "value":
        document = {"data": document, "note": text}
    elif where == "key":  # a key can only be recognised by its own format
        secret = TOKEN_FAMILIES[rng.choice(sorted(TOKEN_FAMILIES))](rng)
        document = {"data": document, secret: "x"}
    elif where == "secret_key":
        document = [document, {"client_secret": secret}]
    else:
        document = {"data": document, "inner": json.dumps({"blob": text})}
    masked: list[str] = []
    result = redactor.scrub_value("payload", json.dumps(document), "event[0].payload", masked)
    assert isinstance(result, str)
    json.loads(result)
    assert secret not in result
    assert masked and all(path.startswith("event[0].payload") for path in masked)
    assert all(secret not in path for path in masked)


@FAST
@given(st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=10), st.integers()), max_size=6))
def test_scrub_attributes_returns_none_or_a_same_length_dict(attributes: dict[str, object]) -> None:
    masked: list[str] = []
    result = redactor.scrub_attributes(attributes, "", masked)
    if result is None:
        assert masked == []
    else:
        assert len(result) <= len(attributes) and masked
