"""Planted secrets and look-alikes through the whole pipeline: app -> SDK -> faultspan -> rotel -> receiver.

Runs the project's synthetic corpus and a copy of the shared sample corpus (tests/data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.collector import OtlpSink, RotelCollector
from support.instrumented import run_instrumented

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "data"

SYNTHETIC_SECRETS: list[dict[str, Any]] = [
    {"id": "kv-password", "channel": "kv", "key": "userPassword", "value": "Zq8!vLm2#pX9"},
    {
        "id": "kv-token",
        "channel": "kv",
        "key": "session-token",
        "value": "sTk_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    },
    {"id": "header", "channel": "header", "key": "Proxy-Authorization", "value": "Basic dXNlcjpzM2NyM3Q="},
    {"id": "aws", "channel": "value", "key": "note", "value": "rotate AKIAQ3EXAMPLE7WZ4ABC soon"},
    {"id": "card", "channel": "value", "key": "display", "value": "5555-5555-5555-4444"},
    {"id": "msg-url", "channel": "message", "value": "connect mysql://svc:Pw-77-secret@db:3306/x failed"},
    {"id": "local-dict", "channel": "local", "key": "settings", "value": {"smtp_password": "Mail!Pw-2024x"}},
    {
        "id": "crumb",
        "channel": "breadcrumb",
        "value": "retry with X-Api-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    },
    {"id": "taint", "channel": "local-echo", "key": "pw", "value": "correct-horse-battery"},
    {
        "id": "sql",
        "channel": "breadcrumb",
        "value": "INSERT INTO users (name, password) VALUES ('bob', 'Tr0ub4dor&3x')",
    },
    {"id": "basic", "channel": "message", "value": "redis: svc:Qw7rTy9uIo2p@cache.internal:6379 refused"},
    {"id": "aws-key", "channel": "kv", "key": "aws", "value": "k7Rq2ZxW9pL4mN8vB3cT6yH1jF5dS0aG2eU4iO7w"},
    {
        "id": "prefixed",
        "channel": "value",
        "key": "note",
        "value": "ntn_4564761517vWBETTAc421EJdkefwPvw8dfNt",
    },
    {"id": "grouped", "channel": "message", "value": "restore with A3-K7W2QX-8M4TZP-R9V3N-2HD6K-5CJ8W-Q4T7B"},
    {"id": "mixed-hex", "channel": "value", "key": "note", "value": "6d2FabeB6ADd229Bc199FabA28fD3efb57dF0b"},
]
SYNTHETIC_NEEDLES = {
    "kv-password": ["Zq8!vLm2#pX9"],
    "kv-token": ["sTk_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"],
    "header": ["dXNlcjpzM2NyM3Q="],
    "aws": ["AKIAQ3EXAMPLE7WZ4ABC"],
    "card": ["5555-5555-5555-4444"],
    "msg-url": ["Pw-77-secret"],
    "local-dict": ["Mail!Pw-2024x"],
    "crumb": ["9f8e7d6c5b4a39281706f5e4d3c2b1a0"],
    "taint": ["correct-horse-battery"],
    "sql": ["Tr0ub4dor&3x"],
    "basic": ["Qw7rTy9uIo2p"],
    "aws-key": ["k7Rq2ZxW9pL4mN8vB3cT6yH1jF5dS0aG2eU4iO7w"],
    "prefixed": ["ntn_4564761517vWBETTAc421EJdkefwPvw8dfNt"],
    "grouped": ["A3-K7W2QX-8M4TZP-R9V3N-2HD6K-5CJ8W-Q4T7B", "8M4TZP"],
    "mixed-hex": ["6d2FabeB6ADd229Bc199FabA28fD3efb57dF0b"],
}
SYNTHETIC_LOOKALIKES: list[dict[str, Any]] = [
    {"id": "max_tokens", "channel": "kv", "key": "max_tokens", "value": 4096},
    {"id": "author", "channel": "local", "key": "author", "value": "Octavia E. Butler"},
    {"id": "trace", "channel": "value", "key": "parent", "value": "0af7651916cd43dd8448eb211c80319c"},
    {"id": "prose", "channel": "breadcrumb", "value": "user changed password policy to 14 characters"},
    {"id": "pod", "channel": "value", "key": "k8s.pod.name", "value": "checkout-7d4b9c8f6d-x2k9p"},
    {"id": "public-id", "channel": "value", "key": "event", "value": "evt_1NG8Du2eZvKYlo2CUI7mDs8V"},
    {"id": "identifier", "channel": "message", "value": "no attribute hf_requiredCharacteristicTypes"},
    {"id": "slug", "channel": "value", "key": "page", "value": "Release-Notes-1bc826ecc0994dd8915be97fc348"},
]


def corpora() -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    secrets = [{**entry, "needles": SYNTHETIC_NEEDLES[entry["id"]]} for entry in SYNTHETIC_SECRETS]
    lookalikes = [{**entry, "needles": [str(entry["value"])]} for entry in SYNTHETIC_LOOKALIKES]
    sample = (
        "shared-sample",
        json.loads((SAMPLE / "secrets-sample.json").read_text()),
        json.loads((SAMPLE / "lookalikes-sample.json").read_text()),
    )
    return [("synthetic", secrets, lookalikes), sample]


@pytest.mark.parametrize(("name", "secrets", "lookalikes"), corpora(), ids=[c[0] for c in corpora()])
def test_no_planted_secret_leaves_the_process(  # noqa: PLR0917 -- parameters and fixtures
    name: str,
    secrets: list[dict[str, Any]],
    lookalikes: list[dict[str, Any]],
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.json"
    planted = [
        {key: value for key, value in entry.items() if key != "needles"} for entry in secrets + lookalikes
    ]
    corpus.write_text(json.dumps(planted))
    result = run_instrumented(
        HERE / "apps" / "planted.py",
        str(corpus),
        env={**otel_env, **collector.exporter_env("grpc")},
        OTEL_SERVICE_NAME="planted",
        OTEL_TRACES_EXPORTER="otlp,console",
    )
    otlp_sink.wait_for(lambda spans: any(span.name == "corpus" for span in spans))
    received = otlp_sink.raw_bytes().decode("utf-8", "replace")
    console = result.stdout
    console_text = json.dumps([json.loads(part) for part in _objects(console)], ensure_ascii=False)
    leaks = [
        (entry["id"], needle)
        for entry in secrets
        for needle in entry["needles"]
        if needle in received or needle in console_text or needle in console
    ]
    assert leaks == []
    lost = [
        (entry["id"], needle)
        for entry in lookalikes
        for needle in entry["needles"]
        if needle not in received and needle not in console_text
    ]
    assert lost == []


def _objects(console: str) -> list[str]:
    """The console exporter prints one indented JSON object per span."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(console):
        start = console.find("{", index)
        if start < 0:
            break
        _, end = decoder.raw_decode(console, start)
        objects.append(console[start:end])
        index = end
    return objects
