"""The shortcuts of the first scan give the very results of the plain scan: the gates searched at once, and
the triggered rules remembered by digit shape (a value whose digits changed must never reuse a verdict its
new digits would change)."""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from pathlib import Path
from re import _constants as c  # type: ignore[attr-defined]  # private: tests only
from re import _parser  # type: ignore[attr-defined]

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultspan._capture.redaction import RedactionRules, Redactor, TaintScope, tokens
from faultspan._capture.redaction.redactor import _Applies
from faultspan._capture.redaction.rules import (
    CARD_GATE,
    CARD_START,
    DIGITS_AS_ZERO,
    PASSWORD_GATE,
    TOKEN_GATE,
    any_gate,
    gate_pattern,
)

DATA = Path(__file__).parent / "data"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GATES = [CARD_GATE, PASSWORD_GATE, TOKEN_GATE]
# Pieces that make rules trigger near digits: cards, anchors with digits, context words, prefixes.
PIECES = [
    "4111 1111 1111 1111", "5500-0000-0000-0004", "ya29.", "dop_v1_", "password=", "token: ", "key ", "sk-",
    "ghp_", "AKIA", "https://", "user:", "@db.example.com", "?page=", "&sig=", "Bearer ", "/orders/", " id ",
    "sha256:", "v1.2.3", "2026-12-02", "10.1.2.3", "INSERT INTO t (pwd) VALUES ('", "')", "eyJ", '{"a": ',
]  # fmt: skip
ALNUM = string.ascii_letters + string.digits
ALPHABET = string.ascii_letters + string.digits * 4 + "-_.:/=@!#%&?; '\""


class Unshaped(Redactor):
    """The redactor without the digit-shape memory and the UUID shortcut: every text scanned for its
    triggers."""

    def _triggered(self, text: str) -> _Applies:
        return self._scan_triggers(text, self._gate_match(text))


def with_digits(text: str, rng: random.Random, palette: str) -> str:
    return re.sub("[0-9]", lambda _: rng.choice(palette), text)


# Digits that no card starts with first, then those that cards start with: a shape seen clean first.
PALETTES = ("1", "0", "9", "0178", "23456", string.digits)


def assert_same(values: list[str], rules: RedactionRules | None = None) -> None:
    """Each value after its digit variants, through one warm redactor, reads as through a plain one."""
    shaped, plain = Redactor(rules), Unshaped(rules)
    rng = random.Random(5)
    for value in values:
        for variant in [with_digits(value, rng, palette) for palette in PALETTES] + [value]:
            assert shaped.scrub_text(variant) == plain.scrub_text(variant), variant
            found, expected = TaintScope(), TaintScope()
            got = shaped.scrub_value("note", variant, "attr", found)
            assert got == plain.scrub_value("note", variant, "attr", expected), variant
            assert (found, found.secrets) == (expected, expected.secrets)


def test_a_card_or_a_digit_anchor_in_a_shape_seen_clean_is_still_masked() -> None:
    redactor = Redactor()
    for clean, secret in [
        ("card 1111 1111 1111 1111", "card 4111 1111 1111 1111"),
        ("ya11.Qk3_Zr-Wm8_Tp1-Vn5_Hx2", "ya29.Qk3_Zr-Wm8_Tp1-Vn5_Hx2"),
    ]:
        assert redactor.scrub_text(clean) == clean
        assert redactor.scrub_text(secret) != secret


def corpus() -> list[str]:
    values: list[str] = []
    for name in ("secrets-sample.json", "lookalikes-sample.json"):
        for item in json.loads((DATA / name).read_text()):
            value = str(item["value"])
            values += [value, f"{item.get('key', 'note')}={value}", f"order 123 {value} at 10.0.0.1"]
    rng = random.Random(3)
    for _ in range(400):
        number = str(rng.randint(1, 10 ** rng.randint(1, 19)))
        values += [
            f"/api/v1/orders/{number}/items",
            f"https://shop.example.com/api/v1/orders/{number}?page={rng.randint(1, 50)}",
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"SELECT id FROM orders WHERE customer_id = {number}",
            f"card {number[:4]} {number[4:8]} {number[8:12]} {number[12:]}",
            f"ya{rng.randint(0, 99)}.{''.join(rng.choice(ALNUM) for _ in range(30))}",
            "".join(rng.choice(PIECES) if rng.random() < 0.4 else rng.choice(ALPHABET) for _ in range(12)),
        ]
    return values


def uuids(count: int) -> list[str]:
    """UUIDs alone and in text, in both cases, also of digits only, with hex words and Luhn-valid groups;
    as libraries write them (version 4) and random fills of their layout, by turns."""
    rng = random.Random(7)
    made = [str(uuid.UUID(int=rng.getrandbits(128), version=None if i % 2 else 4)) for i in range(count)]
    made += ["41111111-1111-1111-1111-111111111111", "acca0000-dead-beef-cafe-fee000000bad"]
    made += [made[0].upper(), made[1][:20] + made[1][20:].upper()]
    return made + [
        text
        for value in made[:20]
        for text in (f"/orders/{value}/items", f"session {value} expired", f"token {value}", f"id={value}")
    ]


K8S = "bcdfghjklmnpqrstvwxz2456789"


def ids(count: int) -> list[str]:
    """Hex ids (lowercase, uppercase, digits only, ``0x``, spelling vendor formats), pod names and URLs with
    UUIDs, alone and in text."""
    rng = random.Random(11)
    made = []
    for _ in range(count):
        length = rng.choice([8, 16, 32, 40, 64])
        value = f"{rng.getrandbits(length * 4):0{length}x}"
        pod = f"web-{''.join(rng.choices(K8S, k=rng.choice([8, 9, 10])))}-{''.join(rng.choices(K8S, k=5))}"
        made += [value, value.upper(), "0x" + value, pod, f"pod {pod} restarted"]
        made += [f"https://shop.example.com/api/sessions/{uuid.UUID(int=rng.getrandbits(128))}?page=2"]
        made += [f"trace {value}", f"api_key={value}", f"/commits/{value}/files"]
    # Twilio's and AWS's formats are spelt in hex, in uppercase only; a card is digits alone
    digits = "".join(rng.choices(string.digits, k=32))
    hexes = [f"{rng.getrandbits(128):032x}" for _ in range(2)]
    formats = ["ac" + hexes[0], "AC" + hexes[0], "acca" + hexes[1][:16], "ACCA" + hexes[1][:16].upper()]
    return made + formats + [digits, digits[:16], "4111111111111111", "abcd" * 10]


def test_a_warm_redactor_reads_the_corpus_and_its_digit_variants_as_a_plain_one() -> None:
    assert_same(corpus())


@pytest.mark.parametrize(
    "rules",
    [
        None,
        RedactionRules(extra_keys=("cafe_fee", "bad")),  # key hints that hex can spell
        RedactionRules(extra_patterns=(r"[0-9a-f]{8}-",)),
        RedactionRules(disabled_rules=("token",)),
    ],
)
def test_uuids_and_hex_ids_read_as_through_a_plain_redactor(rules: RedactionRules | None) -> None:
    assert_same(uuids(200) + ids(60), rules)


def test_a_uuid_alone_that_the_token_judge_would_mask_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    value = uuids(1)[0]
    assert Redactor().scrub_text(value) == value
    monkeypatch.setattr(tokens, "hex_verdict", lambda token, context: True)
    assert Redactor().scrub_text(value) == "[REDACTED]"


def test_a_hex_id_alone_that_the_token_judge_would_mask_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    value = ids(1)[0]
    assert Redactor().scrub_text(value) == value
    monkeypatch.setattr(tokens, "hex_verdict", lambda token, context: True)
    assert Redactor().scrub_text(value) == "[REDACTED]"


def in_the_former_order(token: str, context: int) -> bool:
    """``looks_random`` with its first tests in the order they had before the UUID and Kubernetes tests moved
    ahead: placeholder and file suffix, base64 of a credential, Kubernetes name, a UUID inside."""
    if len(token) >= 8 and not tokens._UUID.fullmatch(token):
        if tokens.placeholder(token) or tokens._FILE_SUFFIX.search(token):
            return False
        text = tokens._base64_text(token)
        if text is not None and (tokens._basic_pair(text) or text.startswith("-----BEGIN")):
            return context != tokens.PUBLIC
        if tokens._k8s_name(token):
            return False
        if context != tokens.SECRET and tokens._UUID.search(token.replace("_", "-")):
            return False
    return tokens.looks_random(token, context)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


CERTIFICATE = b"-----BEGIN CERTIFICATE-----\n" + b"MIIBszCCAVmgAwIBAgIUQ3Jvc3NTaWduZWRDZXJ0 " * 15
# Pieces of tokens where the tests meet: UUIDs (also with underscores), base64 of a PEM block (a multiple of
# 3 bytes, so what follows decodes on its own) and of Basic pairs, Kubernetes names, placeholders, suffixes.
TOKEN_PIECES = [
    b64(CERTIFICATE[: len(CERTIFICATE) // 3 * 3]), b64(b"admin:S3cr3tPassw0rd!"), b64(b"deploy:hunter2"),
    "web-7d4b9c8f6d-x2k9p", "x2k9p", "-bcdfg", "-bcdfghjk", "xxxx", "YOUR", ".png", "-", "_", "/", "~", "=",
]  # fmt: skip
CONTEXTS = st.sampled_from([tokens.NEUTRAL, tokens.PUBLIC, tokens.SECRET, tokens.PREFIXED])
uuid_texts = st.builds(str, st.uuids()).flatmap(
    lambda text: st.sampled_from([text, text.upper(), text.replace("-", "_")])
)
token_texts = st.lists(
    st.one_of(st.sampled_from(TOKEN_PIECES), uuid_texts, st.text(ALNUM + "-_", max_size=10)), max_size=5
).map("".join)


@FAST
@given(token_texts, CONTEXTS)
def test_the_judge_decides_uuids_inside_and_kubernetes_names_as_in_the_former_order(
    token: str, context: int
) -> None:
    assert tokens.looks_random(token, context) == in_the_former_order(token, context)


@FAST
@given(token_texts)
def test_in_a_public_context_the_judge_says_no_to_short_tokens_without_looking(token: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokens, "_SHORTEST", {})
        judged = tokens.looks_random(token, tokens.PUBLIC)
    assert tokens.looks_random(token, tokens.PUBLIC) == judged


def test_base64_of_a_pem_block_with_a_uuid_at_its_end_is_still_masked() -> None:
    """Why the UUID test waits for the base64 test: such a token decodes as a PEM block."""
    token = TOKEN_PIECES[0] + str(uuid.UUID(int=1 << 100))
    assert tokens.looks_random(token) and in_the_former_order(token, tokens.NEUTRAL)


@FAST
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(ALPHABET, max_size=12)), max_size=8))
def test_generated_text_and_its_digit_variants_read_the_same(parts: list[str]) -> None:
    assert_same(["".join(parts)])


@FAST
@given(st.text(ALPHABET + "$^*~ABCXYZ", max_size=40))
def test_the_gates_at_once_find_the_first_match_of_any_gate_and_name_it(text: str) -> None:
    found = any_gate(GATES).search(text)
    matching = [f"g{index}" for index, gate in enumerate(GATES) if gate_pattern(gate).search(text)]
    assert (found is None) == (not matching)
    assert found is None or found.lastgroup in matching
    starts = [match.start() for gate in GATES if (match := gate_pattern(gate).search(text))]
    assert found is None or found.start() == min(starts)  # the others may be searched from there on


def digit_sets(pattern: re.Pattern[str]) -> set[frozenset[str]]:
    """The sets of ASCII digits that the compiled pattern's character tests accept (those accepting one)."""
    found: set[frozenset[str]] = set()

    def accepted(op: object, av: object) -> frozenset[str]:
        if op is c.LITERAL:
            return frozenset(d for d in string.digits if ord(d) == av)
        if op is c.NOT_LITERAL:
            return frozenset(d for d in string.digits if ord(d) != av)
        assert op is c.IN, op
        digits: set[str] = set()
        negate = False
        for inner, value in av:  # type: ignore[attr-defined]
            if inner is c.NEGATE:
                negate = True
            elif inner is c.RANGE:
                digits |= {d for d in string.digits if value[0] <= ord(d) <= value[1]}
            elif inner is c.LITERAL:
                digits |= {d for d in string.digits if ord(d) == value}
            else:
                pytest.fail(f"untested character test {inner} in {pattern.pattern!r}")
        return frozenset(set(string.digits) - digits if negate else digits)

    def walk(node: object) -> None:
        if isinstance(node, _parser.SubPattern):
            node = node.data
        if isinstance(node, (list, tuple)):
            if len(node) == 2 and node[0] in (c.LITERAL, c.NOT_LITERAL, c.IN):
                digits = accepted(*node)
                if digits:
                    found.add(digits)
                return
            if len(node) == 2 and node[0] is c.CATEGORY:
                pytest.fail(f"category {node[1]} in {pattern.pattern!r}")
            for child in node:
                walk(child)

    walk(_parser.parse(pattern.pattern, pattern.flags))
    return found


def test_the_trigger_patterns_test_digits_only_as_the_digit_shape_assumes() -> None:
    """All digits alike, the card gate's [2-6], and the digits of the anchors that have one (which the
    redactor looks for before it remembers a shape)."""
    redactor = Redactor()
    assert sorted(set(redactor._digit_anchors)) == [
        *(b"$0" + tail for tail in (b"$", b"a$", b"b$", b"x$", b"y$")),
        b"a0t", b"doo_v0_", b"dop_v0_", b"dor_v0_", b"gr0000000", b"webhookb0", b"ya00.",
    ]  # fmt: skip
    anchors = [redactor._anchor, *redactor._entries.values()]
    tested = set().union(*(digit_sets(pattern) for pattern in anchors if pattern is not None))
    all_digits = frozenset(string.digits)
    assert tested == {all_digits, *(frozenset(d) for d in "123456789")}  # the digits of those literals
    for gate in (PASSWORD_GATE, TOKEN_GATE):
        assert digit_sets(gate_pattern(gate)) <= {all_digits}
    assert digit_sets(gate_pattern(CARD_GATE)) == {all_digits, frozenset("23456")}
    assert digit_sets(any_gate(GATES)) == {all_digits, frozenset("23456")}


@FAST
@given(st.text("0123456789 -x", max_size=40))
def test_a_card_can_start_in_a_shape_exactly_where_the_card_gate_matches_with_a_first_digit_of_2_to_6(
    text: str,
) -> None:
    gate = gate_pattern(CARD_GATE)
    shape = text.encode().translate(DIGITS_AS_ZERO)
    for at, char in enumerate(text):
        opened = text[:at] + "2" + text[at + 1 :] if char.isdigit() else text
        assert (gate.match(opened, at) is not None) == (CARD_START.match(shape, at) is not None), at


@pytest.mark.parametrize(
    ("value", "runs"),
    [
        ("/api/v1/orders/584361683/items", False),  # an id of 9 digits
        ("4111 1111 1111", False),  # 12 digits
        ("order 411111111111 for 5500-0000-0000", False),
        ("4111111111111", True),  # 13 digits, a card's shortest
        ("card 4111 1111 1111 1111", True),
    ],
)
def test_the_card_rule_runs_only_where_13_digits_could_make_a_card(value: str, runs: bool) -> None:
    redactor = Redactor()
    card = next(number for number, rule in enumerate(redactor._builtin_rules(())) if rule.name == "card")
    assert (redactor._applies[card] in redactor._triggered(value)) == runs


def test_a_shape_found_quiet_is_one_whose_values_the_plain_scan_keeps() -> None:
    """``_shape_triggers_nothing`` remembers the digit shapes it found quiet: a value it then keeps without a
    scan (the batch check of spans does so too) is one that a plain redactor keeps, for the corpus and its
    digit variants."""
    redactor = Redactor()
    rng = random.Random(9)
    values = [with_digits(value, rng, palette) for value in corpus()[:600] for palette in PALETTES[:3]]
    for value in values:
        redactor.scrub_text(value)
    kept = [value for value in values + values[::-1] if redactor._shape_triggers_nothing(value)]
    assert len(redactor._quiet) > 10
    plain = Unshaped()
    for value in kept:
        assert plain.scrub_value("note", value, "note", []) is value, value
