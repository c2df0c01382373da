"""JSON text in values (``faultspan.frames``, ``faultspan.chain``): the pathless walk that proves a document
clean must agree with the full walk, and the clean cache must never let a value skip a walk it needs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultspan._capture.redaction import REDACTED, RedactionRules, Redactor

SECRETS = [
    "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8",
    "AKIA" + "Q7RT2XW9ZK4M8N3P",
    "password=hunter2!x",
    "Authorization: Bearer dGhpcy1pcy1hLXRva2VuLTEyMzQ1Njc4",
    "postgres://app:s3cr3t-pw@db:5432/orders",
    "4111 1111 1111 1111",
    "{'db_password': 'abc123!'}",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    json.dumps({"api_key": "k-1", "note": "ok"}),
]
HARMLESS = [
    "retry with backoff",
    "jane@example.com",
    "{'id': 9}",
    "[1, 2]",
    "password_policy",
    "",
    REDACTED,
    "oct",
]
KEYS = [
    "password",
    "pa_ss",
    "apiKey",
    "db.password",
    "client_secret",
    "token_count",
    "session",
    "note",
    "x",
    "kty",
    "k",
]

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from(SECRETS + HARMLESS),
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(KEYS), children, max_size=4)
        | children.map(json.dumps)  # JSON text inside a string, walked for its own keys
    ),
    max_leaves=12,
)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Caches shared across examples on purpose: what one document taught must not change the next one's result.
shortcut = Redactor()
# A callback, even one that keeps everything, turns the shortcut and the clean cache off for values.
walked = Redactor(RedactionRules(callback=lambda path, text: None))


def frames(local_name: str, local_value: str) -> str:
    return json.dumps(
        [
            {"function": "login", "lineno": 12, "locals": {"user": "'bob'", "attempt": "3"}},
            {"function": "check", "lineno": 40, "locals": {local_name: local_value}},
        ]
    )


@FAST
@given(
    st.one_of(st.lists(DOCUMENTS, max_size=4), st.dictionaries(st.sampled_from(KEYS), DOCUMENTS)),
    st.booleans(),
)
def test_shortcut_and_full_walk_agree_on_documents_with_planted_secrets(
    document: Any, seen_as_text_first: bool
) -> None:
    text = json.dumps(document, ensure_ascii=False)
    if seen_as_text_first:  # e.g. the same string as a status description, scrubbed by scrub_text
        shortcut.scrub_text(text)
    expected: list[str] = []
    reference = walked.scrub_value("faultspan.frames", text, "event[0].faultspan.frames", expected)
    for _ in range(2):  # cold, then with every string of the document in the cache
        masked: list[str] = []
        attributes = shortcut.scrub_attributes({"faultspan.frames": text}, "event[0].", masked)
        result = text if attributes is None else attributes["faultspan.frames"]
        assert result == reference
        assert (result is text) == (reference is text)
        assert masked == expected


@FAST
@given(
    st.one_of(LEAVES, st.floats(), DOCUMENTS),
    st.sampled_from([None, 0, 2, "\t"]),
    st.sampled_from(["", " ", "\n\t "]),
    st.booleans(),
)
def test_json_in_any_layout_is_walked_whatever_its_first_value(
    first: Any, indent: int | str | None, leading: str, in_a_list: bool
) -> None:
    document: Any = [first, {"token": 12345}] if in_a_list else {"first": first, "token": 12345}
    text = leading + json.dumps(document, indent=indent)
    result = shortcut.scrub_value("v", text, "v", [])
    assert isinstance(result, str)
    walked_document = json.loads(result)
    assert (walked_document[-1] if in_a_list else walked_document)["token"] == REDACTED


@FAST
@given(
    st.one_of(st.lists(DOCUMENTS, max_size=4), st.dictionaries(st.sampled_from(KEYS), DOCUMENTS)),
    st.sampled_from([None, 2, "\t"]),
    st.sampled_from([None, (",", ":"), (", ", ": ")]),
)
def test_masking_keeps_the_layout_of_the_json_text(
    document: Any, indent: int | str | None, separators: tuple[str, str] | None
) -> None:
    text = json.dumps(document, indent=indent, separators=separators, ensure_ascii=False)
    result = shortcut.scrub_value("payload", text, "payload", [])
    assert isinstance(result, str)
    layout = json.dumps(json.loads(result), indent=indent, separators=separators, ensure_ascii=False)
    assert result == layout  # only values changed: the same document written the same way


def test_only_the_masked_value_of_json_text_changes() -> None:
    text = '{\n  "price": 1.50, "city": "Caf\\u00e9",\n  "login": {"user": "bob", "password": "pw-9x!Kq2"}\n}'
    result = Redactor().scrub_value("payload", text, "payload", [])
    assert result == text.replace('"pw-9x!Kq2"', '"[REDACTED]"')
    duplicated = '{"password": "pw-9x!Kq2", "password": "pw-9x!Kq3"}'  # two keys, one value: written anew
    assert Redactor().scrub_value("payload", duplicated, "payload", []) == '{"password":"[REDACTED]"}'


def test_a_secret_key_name_is_masked_although_every_value_is_known_clean() -> None:
    redactor = Redactor()
    clean = frames("attempt", "'bob'")
    assert redactor.scrub_value("faultspan.frames", clean, "f", []) is clean  # every value is now cached
    for name in ("password", "pa_ss", "apiKey", "db.password"):
        masked: list[str] = []
        result = redactor.scrub_value("faultspan.frames", frames(name, "'bob'"), "f", masked)
        assert isinstance(result, str)
        assert json.loads(result)[1]["locals"][name] == REDACTED, name
        assert masked == [f"f[1].locals.{name}"]


def test_json_inside_a_string_is_walked_for_its_own_keys() -> None:
    redactor = Redactor()
    clean = frames("payload", json.dumps({"user": "bob", "note": "k-1"}))
    assert redactor.scrub_value("faultspan.frames", clean, "f", []) is clean
    masked: list[str] = []
    result = redactor.scrub_value(
        "faultspan.frames", frames("payload", json.dumps({"user": "bob", "api_key": "k-1"})), "f", masked
    )
    assert isinstance(result, str)
    assert json.loads(json.loads(result)[1]["locals"]["payload"]) == {"user": "bob", "api_key": REDACTED}
    assert masked == ["f[1].locals.payload.api_key"]


def test_json_first_scrubbed_as_text_is_still_walked_as_a_value() -> None:
    redactor = Redactor()
    message = '{"token": 12345}'
    assert redactor.scrub_text(message) is message  # as text, a short number after "token:" is no secret
    masked: list[str] = []
    result = redactor.scrub_attributes({"exception.message": message}, "event[0].", masked)
    assert result == {"exception.message": '{"token": "[REDACTED]"}'}
    assert masked == ["event[0].exception.message.token"]


def test_json_clean_when_walked_is_still_scrubbed_when_read_as_text() -> None:
    redactor = Redactor()
    value = json.dumps({"a": "token 'x", "b": "y'"})  # one quoted value across two strings of the document
    for _ in range(2):
        assert redactor.scrub_value("v", value, "v", []) is value  # each string alone is clean
        assert redactor.scrub_text(value) == '{"a": "token \'[REDACTED]\'"}'


def test_text_that_only_looks_like_json_is_scrubbed_as_text_every_time() -> None:
    redactor = Redactor()
    for _ in range(2):
        masked: list[str] = []
        assert redactor.scrub_value("v", "{'db_password': 'abc123!'}", "v", masked) == (
            "{'db_password': '[REDACTED]'}"
        )
        assert masked == ["v"]
        clean = "{'id': 9, 'email': 'jane@example.com'}"
        assert redactor.scrub_value("v", clean, "v", []) is clean
