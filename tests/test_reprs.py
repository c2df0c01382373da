from __future__ import annotations

import sys
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from faultspan._capture.reprs import safe_repr


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class RecursiveRepr:
    def __repr__(self) -> str:
        return repr(self)


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 10_000_000


class NotText:
    def __repr__(self) -> object:  # type: ignore[override]
        return 42


class SideEffects:
    """Any attribute access (even ``__class__``) is recorded: capture must not touch them."""

    touched: ClassVar[list[str]] = []

    def __getattribute__(self, name: str) -> object:
        SideEffects.touched.append(name)
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        return "<SideEffects>"


class ExitingRepr:
    def __repr__(self) -> str:
        raise SystemExit(3)


def test_repr_that_raises_is_named_not_propagated() -> None:
    assert safe_repr(RaisingRepr()) == "<RaisingRepr (repr raised RuntimeError)>"


def test_recursive_repr_is_contained() -> None:
    assert safe_repr(RecursiveRepr()) == "<RecursiveRepr (repr recursed)>"


def test_huge_repr_is_cut_to_the_limit() -> None:
    text = safe_repr(HugeRepr(), limit=100)
    assert len(text) == 100
    assert text.endswith("…")


class Command:
    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<Popen: returncode: 2 args: ['psql', {self.url!r}, '-c', 'select 1']>"


@given(
    st.text(
        st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"), min_size=12, max_size=24
    ),
    st.integers(0, 11),
)
def test_a_cut_drops_the_piece_it_cuts_short(password: str, into: int) -> None:
    """Left unfinished, a URL's password before its "@" would be one that redaction no longer recognises."""
    url = f"postgresql://app:{password}@db.internal:5432/orders"
    for value in (Command(url), url, {"dsn": url}):
        whole = safe_repr(value, limit=10_000)
        limit = whole.index(password) + into + 2  # the bound falls inside the password
        cut = safe_repr(value, limit=limit)
        assert "…" in cut and len(cut) <= limit
        assert f"app:{password[0]}" not in cut
    assert safe_repr("x" * 300, limit=20) == "'" + "x" * 18 + "…"  # one long word: nothing to drop


def test_non_text_repr() -> None:
    assert safe_repr(NotText()) == "<NotText (repr raised TypeError)>"


def test_self_referencing_containers() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    mapping: dict[str, object] = {}
    mapping["self"] = mapping
    assert safe_repr(loop) == "[1, <recursion>]"
    assert safe_repr(mapping) == "{'self': <recursion>}"


def test_depth_and_width_limits() -> None:
    nested = [[[[["deep"]]]]]
    assert safe_repr(nested, max_depth=2) == "[[<list of 1 items>]]"
    assert safe_repr(list(range(100))).endswith("... 90 more]")


def test_only_repr_is_called_on_foreign_objects() -> None:
    SideEffects.touched.clear()
    assert safe_repr([SideEffects(), {"k": SideEffects()}]) == "[<SideEffects>, {'k': <SideEffects>}]"
    assert SideEffects.touched == []


def test_big_int_is_not_rendered() -> None:
    assert safe_repr(10**5000) == "<int of 16610 bits>"


def test_exotic_exits_inside_repr_propagate_like_python() -> None:
    # A __repr__ raising SystemExit is the program asking to exit; capture does not swallow that.
    try:
        safe_repr(ExitingRepr())
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("SystemExit swallowed")


def test_deep_recursion_limit_is_survived() -> None:
    def at_the_limit(depth: int) -> str:
        if depth == 0:
            return safe_repr([[["x"]]])
        return at_the_limit(depth - 1)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        text = at_the_limit(150)
    finally:
        sys.setrecursionlimit(limit)
    assert text in ("[[['x']]]", "<list (too deep)>")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=50,
    )
)
def test_any_plain_data_renders_within_budget(value: object) -> None:
    text = safe_repr(value, limit=120)
    assert isinstance(text, str)
    assert len(text) <= 120
