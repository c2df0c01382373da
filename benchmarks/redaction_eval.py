"""Leaks and false positives of the redactor, per corpus and per channel (an evaluation, not a timed test).

    python benchmarks/redaction_eval.py [--misses]

Corpora:
- ``sample``: the copy of the shared sample (tests/data): planted secrets and look-alikes;
- ``scanners``: the copy of the shared scanner corpus (benchmarks/data): secrets from gitleaks and
  detect-secrets test data, and those scanners' own false-positive examples (reported apart: many are
  random values under key names that a redactor should mask, so they are not look-alikes);
- ``random``: random tokens without a prefix or a key, 400 of each alphabet (base64, base64url, letters and
  digits) and length (20, 24, 32, 40): the share that survives is what the randomness test misses;
- ``formats``: synthetic secrets of credential formats that vendors and scanners document, one generator per
  format (random characters in the published shape, never a real secret), and hand-made look-alikes: git
  SHAs, trace and span ids, UUIDs, digests, base64 of text, ARNs, pod names, build ids, file paths, URLs
  without credentials, versions, identifiers.

Channels: ``attribute`` (the value under a neutral key), ``message`` (inside an exception message),
``prose`` (``KEY=value`` in a log line, with the key the scanner found it under, or a neutral one),
``json`` (inside a JSON attribute under a neutral key). A secret survives when it appears verbatim in the
output; a look-alike is altered when the output differs from the input.
"""

# ruff: noqa: E501 -- the tables of formats and look-alikes read best one entry a line

from __future__ import annotations

import argparse
import base64
import functools
import json
import random
import re
import string
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from faultspan._capture.redaction import RedactionRules, Redactor

ROOT = Path(__file__).resolve().parents[1]
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
K8S = "bcdfghjklmnpqrstvwxz2456789"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"

Channel = Callable[[Redactor, str, str], str]


def attribute(redactor: Redactor, key: str, value: str) -> str:
    masked: list[str] = []
    result = redactor.scrub_attributes({"note": value}, "", masked)
    return str((result or {"note": value})["note"])


def message(redactor: Redactor, key: str, value: str) -> str:
    return redactor.scrub_text(f"upstream call failed with {value} (retry 2 of 3)")


def prose(redactor: Redactor, key: str, value: str) -> str:
    return redactor.scrub_text(f"loaded {key or 'SETTING'}={value} from the environment")


def json_attribute(redactor: Redactor, key: str, value: str) -> str:
    masked: list[str] = []
    text = json.dumps({"id": 7, "detail": {"note": value}})
    return str(redactor.scrub_value("payload", text, "payload", masked))


CHANNELS: dict[str, Channel] = {
    "attribute": attribute,
    "message": message,
    "prose": prose,
    "json": json_attribute,
}


def rand(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _uuid(rng: random.Random, version: int) -> str:
    """A UUID as libraries write one: random bits with RFC 9562's version and variant (1, 4, 7)."""
    bits = rng.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62) | version << 76 | 0x2 << 62
    return str(uuid.UUID(int=bits))


def _formats(rng: random.Random) -> list[tuple[str, str, str]]:
    """(format, key a config would hold it under, a synthetic value in the documented shape)."""
    r = lambda alphabet, n: rand(rng, alphabet, n)  # noqa: E731 -- a table of one-liners
    jwt_body = base64.urlsafe_b64encode(json.dumps({"sub": r(ALNUM, 8), "iat": 1700000000}).encode())
    return [
        ("github-pat", "GITHUB_TOKEN", "ghp_" + r(ALNUM, 36)),
        ("github-fine-grained", "GH_TOKEN", "github_pat_" + r(ALNUM, 22) + "_" + r(ALNUM, 59)),
        ("gitlab-pat", "GITLAB_TOKEN", "glpat-" + r(B64URL, 20)),
        ("gitlab-runner", "RUNNER_TOKEN", "glrt-" + r(ALNUM, 20)),
        ("gitlab-runner-registration", "REGISTRATION_TOKEN", "GR1348941" + r(B64URL, 20)),
        ("slack-bot", "SLACK_BOT_TOKEN", f"xoxb-{r(string.digits, 12)}-{r(string.digits, 13)}-{r(ALNUM, 24)}"),
        ("slack-webhook", "SLACK_URL", f"https://hooks.slack.com/services/T{r(ALNUM, 8)}/B{r(ALNUM, 8)}/{r(ALNUM, 24)}"),
        ("stripe-secret", "STRIPE_KEY", "sk_live_" + r(ALNUM, 24)),
        ("stripe-restricted", "STRIPE_KEY", "rk_prod_" + r(ALNUM, 40)),
        ("aws-access-key-id", "AWS_ACCESS_KEY_ID", "AKIA" + r(string.ascii_uppercase + string.digits, 16)),
        ("aws-secret-key", "aws", r(B64, 40)),
        ("aws-bedrock-long-lived", "BEDROCK_KEY", "ABSKQmVkcm9ja0FQSUtleS1" + r(B64, 108) + "="),
        ("aws-bedrock-short-lived", "AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t" + r(B64, 80)),
        ("google-api-key", "MAPS_KEY", "AIza" + r(B64URL, 35)),
        ("openai", "OPENAI_API_KEY", "sk-proj-" + r(B64URL, 74) + "T3BlbkFJ" + r(B64URL, 74)),
        ("anthropic", "ANTHROPIC_API_KEY", "sk-ant-api03-" + r(B64URL, 93) + "AA"),
        ("huggingface", "HF_TOKEN", "hf_" + r(string.ascii_letters, 34)),
        ("huggingface-org", "HF_ORG", "api_org_" + r(string.ascii_letters, 34)),
        ("npm", "NPM_TOKEN", "npm_" + r(ALNUM, 36)),
        ("pypi", "PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + r(B64URL, 70)),
        ("sendgrid", "SENDGRID_API_KEY", f"SG.{r(B64URL, 22)}.{r(B64URL, 43)}"),
        ("twilio-api-key", "TWILIO_KEY", "SK" + r(HEX, 32)),
        ("mailgun", "MAILGUN_API_KEY", "key-" + r(HEX, 32)),
        ("mailchimp", "MAILCHIMP_KEY", r(HEX, 32) + "-us" + str(rng.randint(1, 20))),
        ("shopify", "SHOPIFY_TOKEN", "shpat_" + r(HEX, 32)),
        ("digitalocean", "DO_TOKEN", "dop_v1_" + r(HEX, 64)),
        ("notion", "NOTION_TOKEN", "ntn_" + r(string.digits, 11) + r(ALNUM, 35)),
        ("grafana-cloud", "GRAFANA_TOKEN", "glc_" + r(B64, 60) + "=="),
        ("grafana-sa", "GRAFANA_TOKEN", "glsa_" + r(ALNUM, 32) + "_" + r(HEX, 8)),
        ("vault-service", "VAULT_TOKEN", "hvs." + r(B64URL, 90)),
        ("vault-batch", "VAULT_TOKEN", "hvb." + r(B64URL, 138)),
        ("planetscale", "PSCALE_TOKEN", "pscale_tkn_" + r(B64URL, 43)),
        ("postman", "POSTMAN_API_KEY", f"PMAK-{r(HEX, 24)}-{r(HEX, 34)}"),
        ("new-relic", "NEW_RELIC_KEY", "NRAK-" + r(string.ascii_uppercase + string.digits, 27)),
        ("groq", "GROQ_API_KEY", "gsk_" + r(ALNUM, 52)),
        ("xai", "XAI_API_KEY", "xai-" + r(ALNUM, 80)),
        ("age", "AGE_KEY", "AGE-SECRET-KEY-1" + r(BECH32, 58)),
        ("doppler", "DOPPLER_TOKEN", "dp.pt." + r(ALNUM, 43)),
        ("databricks", "DATABRICKS_TOKEN", "dapi" + r(HEX, 32)),
        ("linear", "LINEAR_API_KEY", "lin_api_" + r(ALNUM, 40)),
        ("atlassian", "JIRA_TOKEN", "ATATT3xFfGF0" + r(B64URL, 180) + "=" + r(HEX, 8).upper()),
        ("pulumi", "PULUMI_ACCESS_TOKEN", "pul-" + r(HEX, 40)),
        ("rubygems", "GEM_HOST_API_KEY", "rubygems_" + r(HEX, 48)),
        ("dynatrace", "DT_TOKEN", f"dt0c01.{r(string.ascii_uppercase + string.digits, 24)}.{r(string.ascii_uppercase + string.digits, 64)}"),
        ("flyio", "FLY_API_TOKEN", "fo1_" + r(B64URL, 43)),
        ("flyio-macaroon", "FLY_API_TOKEN", "FlyV1 fm2_" + r(B64, 120) + ",fm2_" + r(B64, 80)),
        ("azure-ad-secret", "AZURE_CLIENT_SECRET", r(ALNUM, 3) + "8Q~" + r(ALNUM + "._~-", 34)),
        ("jwt", "ID_TOKEN", "eyJhbGciOiJIUzI1NiJ9." + jwt_body.decode().rstrip("=") + "." + r(B64URL, 43)),
        ("discord-bot", "DISCORD_TOKEN", f"{r(B64URL, 24)}.{r(B64URL, 6)}.{r(B64URL, 27)}"),
        ("telegram-bot", "TELEGRAM_TOKEN", f"{rng.randint(10**8, 10**10)}:AA{r(B64URL, 33)}"),
        ("square", "SQUARE_TOKEN", "EAAA" + r(B64URL, 60)),
        ("square-oauth", "SQUARE_SECRET", "sq0csp-" + r(B64URL, 43)),
        ("shippo", "SHIPPO_TOKEN", "shippo_live_" + r(HEX, 40)),
        ("sentry-user", "SENTRY_AUTH_TOKEN", "sntryu_" + r(HEX, 64)),
        ("cloudflare", "CF_API_TOKEN", r(B64URL, 40)),
        ("random-base62-32", "CLIENT_SECRET", r(ALNUM, 32)),
        ("random-base64-44", "SIGNING_SECRET", r(B64, 43) + "="),
        ("random-lower-alnum-32", "API_TOKEN", r(LOWER_ALNUM, 32)),
        ("password", "DB_PASSWORD", r(ALNUM, 5) + rng.choice("!#$%") + r(ALNUM, 6) + rng.choice("!#$%") + r(string.digits, 2)),
        ("basic-pair", "CURL_USER", f"deploy:{r(ALNUM, 6)}{rng.choice('!#$%')}{r(ALNUM, 8)}"),
        ("url-credentials", "DATABASE_URL", f"postgres://app:{r(ALNUM, 18)}@db.internal:5432/orders"),
        ("schemeless-basic", "HOST", f"svc:{r(ALNUM, 8)}{r(string.digits, 4)}@cache.internal:6379"),
        ("asana-pat", "ASANA", f"2/{r(string.digits, 16)}/{r(string.digits, 16)}:{r(HEX, 32)}"),
        ("k8s-bootstrap-token", "JOIN", f"{r(LOWER_ALNUM, 6)}.{r(string.digits, 3)}{r(string.ascii_lowercase, 3)}{r(LOWER_ALNUM, 10)}"),
        ("gcr-json-key", "REGISTRY_AUTH", base64.b64encode(("_json_key:" + json.dumps({"type": "service_account", "project_id": f"shop-{r(string.digits, 6)}", "private_key_id": r(HEX, 40)}, indent=2)).encode()).decode()),
    ]  # fmt: skip


def _needle(fmt: str, value: str) -> str:
    """What must not survive: the secret part of the value."""
    if fmt in ("url-credentials", "schemeless-basic", "basic-pair"):
        return (
            value.split(":", 2)[-1].split("@", maxsplit=1)[0]
            if fmt == "url-credentials"
            else value.split(":")[1].split("@", maxsplit=1)[0]
        )
    if fmt == "slack-webhook":
        return value.rsplit("/", 1)[1]
    if fmt == "flyio-macaroon":
        return value.split(" ", 1)[1]
    return value


def _lookalikes(rng: random.Random) -> list[tuple[str, str, str]]:
    r = lambda alphabet, n: rand(rng, alphabet, n)  # noqa: E731
    words = ["the", "order", "was", "shipped", "to", "warehouse", "after", "payment", "cleared", "today"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
    pod = f"{rng.choice(['checkout', 'web', 'api-gateway', 'worker'])}-{r(K8S, 10)}-{r(K8S, 5)}"
    return [
        ("git-sha", "commit", r(HEX, 40)),
        ("git-short-sha", "rev", r(HEX, 7)),
        ("trace-id", "trace_id", r(HEX, 32)),
        ("span-id", "span_id", r(HEX, 16)),
        ("traceparent", "traceparent", f"00-{r(HEX, 32)}-{r(HEX, 16)}-01"),
        ("xray-trace-id", "aws.xray.trace_id", f"1-{r(HEX, 8)}-{r(HEX, 24)}"),
        ("gcp-trace-context", "http.request.header.x-cloud-trace-context", f"{r(HEX, 32)}/{r(string.digits, 19)};o=1"),
        ("git-range", "vcs.range", f"{r(HEX, 40)}..{r(HEX, 40)}"),
        ("multipart-etag", "s3.etag", f"{r(HEX, 32)}-{rng.randint(2, 10_000)}"),
        ("uuid", "request_id", _uuid(rng, 4)),
        ("uuid-upper", "correlation", _uuid(rng, 1).upper()),
        ("uuid-v7", "event.id", _uuid(rng, 7)),
        ("sha256-digest", "digest", "sha256:" + r(HEX, 64)),
        ("md5", "checksum", r(HEX, 32)),
        ("sha-224", "checksum", r(HEX, 56)),
        ("sha-384", "integrity", r(HEX, 96)),
        ("sha-512", "checksum", r(HEX, 128)),
        ("trace-id-unpadded", "trace", rng.choice("123456789abcdef") + r(HEX, 30)),  # leading zero dropped
        ("mongo-objectid", "_id", r(HEX, 24)),
        ("eth-address", "wallet", "0x" + r(HEX, 40)),
        ("hex-of-text", "payload", text.encode().hex()),
        ("image-ref", "image", f"registry.example.com/team/app@sha256:{r(HEX, 64)}"),
        ("base64-of-text", "body", base64.b64encode(text.encode()).decode()),
        ("arn", "role", f"arn:aws:iam::{r(string.digits, 12)}:role/service-role/{rng.choice(['Deploy', 'Reader'])}Role"),
        ("arn-s3", "bucket", f"arn:aws:s3:::logs-{r(string.digits, 6)}/2024/{r(string.digits, 2)}/app.log"),
        ("pod-name", "k8s.pod.name", pod),
        ("replicaset", "k8s.replicaset.name", pod.rsplit("-", 1)[0]),
        ("build-id", "build", f"build-{r(string.digits, 8)}.{rng.randint(1, 99)}"),
        ("ci-run", "ci.run", f"{rng.randint(10**9, 10**10)}-{rng.randint(1, 9)}"),
        ("file-path", "code.filepath", f"/srv/app/.venv/lib/python3.11/site-packages/{rng.choice(['requests', 'urllib3'])}/adapters.py"),
        ("windows-path", "path", f"C:\\Users\\build\\AppData\\Local\\Temp\\tmp{r(LOWER_ALNUM, 8)}\\report.txt"),
        ("url", "url.full", f"https://api.example.com/v2/orders/{rng.randint(1, 10**6)}/items?page={rng.randint(1, 9)}&sort=desc"),
        ("url-uuid", "url.path", f"/v1/customers/{_uuid(rng, 4)}/invoices"),
        ("email", "user.email", f"{rng.choice(['ana', 'li', 'sam'])}.{r(string.ascii_lowercase, 5)}@example.org"),
        ("version", "service.version", f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}-rc.{rng.randint(1, 5)}+build.{r(HEX, 7)}"),
        ("user-agent", "user_agent.original", f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/{rng.randint(100, 130)}.0.{rng.randint(1000, 9999)}.{rng.randint(10, 99)} Safari/537.36"),
        ("identifier", "code.function", rng.choice(["getPagesInConfluenceSpace", "requiredCharacteristicTypesForDisplay", "handle_checkout_request_v2", "XMLHttpRequestEventTarget"])),
        ("timestamp", "ts", f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:17.{r(string.digits, 6)}Z"),
        ("order-id", "order", f"ORD-{rng.randint(2019, 2026)}-{r(string.digits, 6)}"),
        ("stripe-public-id", "event", rng.choice(["evt_", "pi_", "cus_", "ch_"]) + r(ALNUM, 24)),
        ("stripe-publishable", "publishable", "pk_live_" + r(ALNUM, 24)),
        ("placeholder", "example", rng.choice(["ghp_" + "x" * 36, "xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx", "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX", "<your-api-key>", "${API_TOKEN}"])),
        ("prose", "log", text),
        ("sql", "db.statement", f"SELECT id, total FROM orders WHERE customer_id = {rng.randint(1, 10**6)} AND status = 'paid'"),
        ("ip-port", "server", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}:{rng.randint(1024, 65535)}"),
        ("mac", "hw", ":".join(r(HEX, 2) for _ in range(6))),
        ("semver-range", "dependency", f"urllib3>=1.{rng.randint(20, 26)},<3"),
        ("etag", "http.response.header.etag", f'W/"{r(HEX, 8)}-{r(HEX, 27)}"'),
        ("blob-name", "object", f"uploads/{rng.randint(2020, 2026)}/{r(string.digits, 2)}/invoice-{r(string.digits, 6)}.pdf"),
        ("relay-id", "graphql.id", base64.b64encode(f"{rng.choice(['User', 'Order', 'Product'])}:{rng.randint(1, 10**7)}".encode()).decode()),
        ("relay-uuid-id", "graphql.id", base64.b64encode(f"Order:{_uuid(rng, 4)}".encode()).decode()),
        ("ec2-instance", "host.id", "i-0" + r(HEX, 16)),
        ("ulid", "job.id", "01" + rng.choice("HJK") + r("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 23)),
        ("ssh-fingerprint", "log", f"Accepted publickey for deploy from 10.0.0.{rng.randint(1, 254)} port 52144 ssh2: ED25519 SHA256:{r(B64, 43)}"),
        ("ssh-public-key", "authorized_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + r(B64, 43) + " deploy@ci"),
        ("package-version", "dependency", f"{rng.choice(['lodash', 'requests', 'urllib3'])}@{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"),
        ("page-anchor", "url.full", f"https://docs.example.com/guide?page={rng.randint(1, 9)}#section-{rng.randint(1, 9)}"),
        ("dc-host", "host.name", f"{rng.choice(['dfw3', 'sjc2', 'lhr15', 'iad1'])}prd{rng.choice(['web', 'kfk', 'mq'])}{rng.randint(1, 99):02d}"),
        ("config-reference", "code.line", f"password = process.env.{rng.choice(['DB', 'SMTP', 'REDIS'])}_PASSWORD"),
        ("docker-ports", "cmd", f"docker run -u {rng.randint(1000, 2000)} -p {rng.randint(1024, 9999)}:80 web"),
        ("phone", "contact", f"+1 555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"),
        # found by a blind probe of ids and paths written for this evaluation's author
        ("arn-kms-key", "aws.resource.arn", f"arn:aws:kms:us-east-1:{r(string.digits, 12)}:key/{_uuid(rng, 4)}"),
        ("arn-acm-certificate", "aws.resource.arn", f"arn:aws:acm:eu-west-1:{r(string.digits, 12)}:certificate/{_uuid(rng, 4)}"),
        ("arn-secret", "aws.resource.arn", f"arn:aws:secretsmanager:us-west-2:{r(string.digits, 12)}:secret:prod/checkout/db-{r(ALNUM, 6)}"),
        ("arn-ecs-task", "aws.resource.arn", f"arn:aws:ecs:sa-east-1:{r(string.digits, 12)}:task/inventory-cluster/{r(HEX, 32)}"),
        ("nix-store-path", "file.path", f"/nix/store/{r('0123456789abcdfghijklmnpqrsvwxyz', 32)}-curl-8.6.0-bin"),
        ("git-object-path", "file.path", f".git/objects/{r(HEX, 2)}/{r(HEX, 38)}"),
        ("s3-export-key", "aws.s3.key", f"exports/orders/2024-09-25/part-00098-{_uuid(rng, 4)}.c000.snappy.parquet"),
        ("cache-fan-out", "aws.s3.key", f"cache/{r(HEX, 2)}/{r(HEX, 62)}"),
        ("font-url", "url.full", f"https://fonts.gstatic.com/s/roboto/v31/{r(B64URL, 30)}.woff2"),
        ("go-pseudo-version", "go.module.version", f"v0.0.0-2020{rng.randint(10, 12)}{rng.randint(10, 28)}{r(string.digits, 6)}-{r(HEX, 12)}"),
        ("semver-build", "service.version", f"1.{rng.randint(0, 40)}.{rng.randint(0, 9)}+build.{r(HEX, 8)}"),
        ("cf-ray", "http.response.header.cf-ray", f"{r(HEX, 16)}-{rng.choice(['IAD', 'AMS', 'NRT', 'GRU'])}"),
        ("sri-sha384", "integrity", f"sha384-{r(B64, 64)}"),
        ("go-sum", "go.sum", f"h1:{r(B64, 43)}="),
        ("webpack-runtime", "url.path", f"/static/js/runtime~main.{r(HEX, 8)}.js"),
        ("multipart-boundary", "http.request.header.content-type", f"multipart/form-data; boundary=----WebKitFormBoundary{r(ALNUM, 16)}"),
        ("json-grant-type", "http.request.body", json.dumps({"grant_type": "password", "client": "web", "scope": "orders"})),
        ("pgp-key-id", "gpg", f'{{"key_id": "0x{r(HEX, 16).upper()}"}}'),
    ]  # fmt: skip


def _run(
    redactor: Redactor, entries: list[tuple[str, str, str, str]], secret: bool, misses: list[str]
) -> dict[str, tuple[int, int]]:
    """Per channel: (count, survived secrets or altered look-alikes)."""
    counts: dict[str, tuple[int, int]] = {}
    for name, channel in CHANNELS.items():
        total = bad = 0
        for ident, key, value, needle in entries:
            out = channel(redactor, key, value)
            failed = (needle in out) if secret else (out != _wrapped(channel, redactor, key, value))
            total += 1
            if failed:
                bad += 1
                misses.append(f"{'leak' if secret else 'altered'} {name:9} {ident}: {out[:110]!r}")
        counts[name] = (total, bad)
    return counts


def _wrapped(channel: Channel, redactor: Redactor, key: str, value: str) -> str:
    """The output a look-alike should give: the same channel with redaction turned off."""
    return channel(_OFF, key, value)


_OFF = Redactor(RedactionRules(enabled=False))


def _print(corpus: str, kind: str, counts: dict[str, tuple[int, int]]) -> None:
    cells = "  ".join(
        f"{name} {bad:3d}/{total:<4d} {100 * bad / max(total, 1):5.1f}%"
        for name, (total, bad) in counts.items()
    )
    print(f"{corpus:10} {kind:12} {cells}")


# ``KEY=`` / ``"key": `` / ``key := `` right before a secret in a scanner's example, not a URL's user
_KEY_BEFORE = re.compile(r"""([A-Za-z_][\w.-]{0,59})["'\]]?\s*(?::=|=>|=|:)\s*["'`(]*\s*$""")


def key_before(example: str, start: int) -> str:
    """The key an example names right before its secret at ``start`` ("" when none)."""
    line = example[:start].rsplit("\n", 1)[-1]
    found = _KEY_BEFORE.search(line)
    return found[1] if found and not re.search(r"(?://|-u\s+)[^\s:/@]*:$", line) else ""


Case = tuple[str, str, str, str]  # (rule, example text, secret, key before it)


def scanner_channels(redactor: Redactor, cases: list[Case]) -> tuple[list[str], list[str]]:
    """For a scanner's examples: per channel "name survived/total share", and the list of leaks. The four
    channels plant each (rule, secret) once, under its first key; ``whole`` scrubs each example as it is."""
    planted: dict[tuple[str, str], str] = {}
    for rule, _, secret, key in cases:
        planted.setdefault((rule, secret), key)
    cells: list[str] = []
    misses: list[str] = []
    for name, channel in {**CHANNELS, "whole": None}.items():
        runs = (
            [
                (rule, secret, redactor.scrub_text(text), f" in {text[:100]!r}")
                for rule, text, secret, _ in cases
            ]
            if channel is None
            else [
                (rule, secret, channel(redactor, key, secret), "") for (rule, secret), key in planted.items()
            ]
        )
        survived = 0
        for rule, secret, out, context in runs:
            if secret in out:
                survived += 1
                misses.append(f"leak {name:9} {rule}: {secret[:80]!r}{context}")
        cells.append(f"{name} {survived:3}/{len(runs)} {survived / len(runs):6.1%}")
    return cells, misses


# Flags that RE2 and Rust regexes (gitleaks, Nosey Parker) set mid-pattern; Python takes them only at the start
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")
_FLAG = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}
_POSIX_CLASS = re.compile(r"\[:(\w+):\]")
_POSIX = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\s",
    "word": r"\w",
    "xdigit": "0-9A-Fa-f",
}


@functools.cache
def scanner_regex(pattern: str) -> re.Pattern[str] | None:
    """A scanner's RE2 or Rust pattern as Python's ``re`` reads it: flags set mid-pattern apply to all of it,
    ``\\z`` is ``\\Z``, POSIX classes are spelled out; None when it still does not compile."""
    flags = 0
    for found in _INLINE_FLAGS.finditer(pattern):
        for char in found[1]:
            if char not in _FLAG:
                return None
            flags |= _FLAG[char]
    text = _INLINE_FLAGS.sub("", pattern).replace(r"\z", r"\Z")
    try:
        text = _POSIX_CLASS.sub(lambda found: _POSIX[found[1]], text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" of ``[[...``
            return re.compile(text, flags)
    except (KeyError, re.error):
        return None


# what a scanner's loader gives: its examples, the texts of its near misses, lines to print after the table
ScannerLoad = Callable[[Path], tuple[list[Case], list[str], list[str]]]


def scanner_main(doc: str, label: str, repository: str, load: ScannerLoad, near_misses: str) -> None:
    """The command line of a scanner's evaluation: ``CHECKOUT [--misses]``."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("checkout", type=Path, help=f"a clone of {repository}")
    parser.add_argument("--misses", action="store_true", help="list the surviving secrets")
    args = parser.parse_args()
    cases, negatives, notes = load(args.checkout)
    if not cases:
        sys.exit(f"{args.checkout}: no {label} examples with secrets found there")
    redactor = Redactor()
    cells, misses = scanner_channels(redactor, cases)
    print(f"{label} secrets  " + "  ".join(cells))
    altered = sum(redactor.scrub_text(text) != text for text in negatives)
    print(f"{label} negatives altered {altered}/{len(negatives)} ({near_misses})")
    for line in notes + (misses if args.misses else []):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--misses", action="store_true", help="list every leak and altered look-alike")
    args = parser.parse_args()
    redactor = Redactor()
    misses: list[str] = []

    sample = json.loads((ROOT / "tests" / "data" / "secrets-sample.json").read_text())
    secrets = [
        (e["id"], e.get("key", ""), e["value"], needle)
        for e in sample
        if isinstance(e["value"], str)
        for needle in e["needles"][:1]
    ]
    looks = json.loads((ROOT / "tests" / "data" / "lookalikes-sample.json").read_text())
    lookalikes = [
        (e["id"], e.get("key", ""), str(e["value"]), "") for e in looks if isinstance(e["value"], (str, int))
    ]
    _print("sample", "secrets", _run(redactor, secrets, True, misses))
    _print("sample", "look-alikes", _run(redactor, lookalikes, False, misses))

    scanners = json.loads((ROOT / "benchmarks" / "data" / "scanners-public.json").read_text())
    found = [(e["id"], e["key_name"], e["secret"], e["secret"]) for e in scanners["secrets"]]
    _print("scanners", "secrets", _run(redactor, found, True, misses))
    fps = [(e["id"], "", e["lookalike"], "") for e in scanners["scanner_false_positives"]]
    _print("scanners", "scanner-FPs", _run(redactor, fps, False, misses))

    rng = random.Random(2026)
    formats = [
        (f"{name}#{i}", key, value, _needle(name, value))
        for i in range(5)
        for name, key, value in _formats(rng)
    ]
    _print("formats", "secrets", _run(redactor, formats, True, misses))
    made = [(f"{name}#{i}", key, value, "") for i in range(5) for name, key, value in _lookalikes(rng)]
    _print("formats", "look-alikes", _run(redactor, made, False, misses))
    for alphabet, name in ((B64, "base64"), (B64URL, "base64url"), (ALNUM, "alnum")):
        for length in (20, 24, 32, 40):
            bare = [(f"{name}{length}#{i}", "", rand(rng, alphabet, length), "") for i in range(400)]
            _print("random", f"{name} {length}", _run(redactor, [(*e[:3], e[2]) for e in bare], True, misses))
    if args.misses:
        print("\n".join(misses))


if __name__ == "__main__":
    sys.exit(main())
