from __future__ import annotations

import builtins
import json
import sys
import traceback
from typing import Any

import pytest

from faultspan._capture import exceptions
from faultspan._capture.config import Settings
from faultspan._capture.redaction import Redactor

SETTINGS = Settings()


def raised(function: Any, *args: Any) -> BaseException:
    try:
        function(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def inner(order_id: int) -> None:
    basket = ["sku-1", "sku-2"]
    total = 42.5
    raise ValueError(f"order {order_id} failed with {len(basket)} items at {total}")


def outer() -> None:
    customer = {"name": "Jane", "tier": "gold"}
    inner(8812)
    del customer


def frames_of(attributes: dict[str, str]) -> list[dict[str, Any]]:
    return json.loads(attributes[exceptions.FRAMES])  # type: ignore[no-any-return]


def test_event_has_the_semantic_convention_attributes() -> None:
    exc = raised(outer)
    attributes = exceptions.capture(exc, SETTINGS).attributes
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "order 8812 failed with 2 items at 42.5"
    assert attributes["exception.escaped"] == "False"
    stacktrace = attributes["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):\n")
    assert stacktrace.endswith("ValueError: order 8812 failed with 2 items at 42.5\n")
    assert "in outer\n    inner(8812)\n" in stacktrace


def test_stacktrace_matches_python_apart_from_caret_lines() -> None:
    exc = raised(outer)
    ours = exceptions.capture(exc, SETTINGS).attributes["exception.stacktrace"]
    python = "".join(traceback.format_exception(exc))
    assert ours == "".join(
        line for line in python.splitlines(keepends=True) if set(line.strip()) - set("^~ ")
    )


def test_frames_oldest_first_with_source_and_locals() -> None:
    frames = frames_of(exceptions.capture(raised(outer), SETTINGS).attributes)
    assert [frame["function"] for frame in frames] == ["raised", "outer", "inner"]
    innermost = frames[-1]
    assert innermost["module"] == __name__
    assert innermost["filename"] == __file__
    assert innermost["in_app"] is True
    assert innermost["context_line"].startswith('    raise ValueError(f"order {order_id} failed')
    assert innermost["lineno"] == inner.__code__.co_firstlineno + 3
    assert innermost["locals"] == {"order_id": "8812", "basket": "['sku-1', 'sku-2']", "total": "42.5"}
    assert frames[1]["locals"] == {"customer": "{'name': 'Jane', 'tier': 'gold'}"}
    assert len(innermost["pre_context"]) == 2
    assert innermost["pre_context"][-1].strip() == "total = 42.5"


def test_locals_off() -> None:
    frames = frames_of(exceptions.capture(raised(outer), Settings(capture_locals=False)).attributes)
    assert all("locals" not in frame for frame in frames)


def test_locals_are_bounded_per_frame_and_in_total() -> None:
    def crowded() -> None:
        a, b, c, d, e, f = "a" * 50, "b" * 50, "c" * 50, "d" * 50, "e" * 50, "f" * 50
        raise RuntimeError(a + b + c + d + e + f)

    frames = frames_of(exceptions.capture(raised(crowded), Settings(max_locals=3)).attributes)
    assert list(frames[-1]["locals"]) == ["a", "b", "c"]
    frames = frames_of(exceptions.capture(raised(crowded), Settings(max_locals_bytes=130)).attributes)
    assert list(frames[-1]["locals"]) == ["a", "b"]
    assert "locals" not in frames[0]  # the budget went to the innermost frame first


def test_cause_context_and_notes() -> None:
    def chained() -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            error = RuntimeError("lookup failed")
            if sys.version_info >= (3, 11):
                error.add_note("while loading the basket")
            raise error from exc

    exc = raised(chained)
    captured = exceptions.capture(exc, SETTINGS).attributes
    chain = json.loads(captured[exceptions.CHAIN])
    assert chain["type"] == "RuntimeError"
    assert chain["cause"]["type"] == "KeyError"
    assert chain["cause"]["message"] == "'missing'"
    assert chain["cause"]["frames"][-1]["function"] == "chained"
    assert "context" not in chain  # suppressed by `from`
    stacktrace = captured["exception.stacktrace"]
    assert "The above exception was the direct cause of the following exception" in stacktrace
    assert stacktrace.index("KeyError") < stacktrace.index("RuntimeError: lookup failed")
    if sys.version_info >= (3, 11):
        assert chain["notes"] == ["while loading the basket"]
        assert stacktrace.endswith("RuntimeError: lookup failed\nwhile loading the basket\n")


def test_implicit_context_is_kept() -> None:
    def during() -> None:
        try:
            raise OSError("disk")
        except OSError:
            raise ValueError("cleanup failed")  # noqa: B904 -- the implicit context is the point

    chain = json.loads(exceptions.capture(raised(during), SETTINGS).attributes[exceptions.CHAIN])
    assert chain["context"]["type"] == "OSError"


def test_cycles_and_depth_limits() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    chain = json.loads(exceptions.capture(first, SETTINGS).attributes[exceptions.CHAIN])
    assert chain["cause"]["cycle"] is True

    deep: BaseException = ValueError("0")
    for index in range(1, 30):
        link = ValueError(str(index))
        link.__cause__ = deep
        deep = link
    chain = json.loads(exceptions.capture(deep, Settings(max_chain_depth=3)).attributes[exceptions.CHAIN])
    depth = 0
    node = chain
    while "cause" in node:
        node, depth = node["cause"], depth + 1
    assert depth == 3
    assert node["truncated"] is True


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_exception_groups_with_width_limit() -> None:
    group_type: Any = getattr(builtins, "ExceptionGroup")  # noqa: B009 -- absent before 3.11

    def fail_many() -> None:
        raise group_type("several", [ValueError(str(index)) for index in range(20)])

    captured = exceptions.capture(raised(fail_many), Settings(max_group_width=4)).attributes
    chain = json.loads(captured[exceptions.CHAIN])
    assert [member["message"] for member in chain["exceptions"]] == ["0", "1", "2", "3"]
    assert chain["truncated"] is True
    assert "ExceptionGroup: several (20 sub-exceptions)" in captured["exception.stacktrace"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_nested_groups_are_bounded_in_total() -> None:
    group_type: Any = getattr(builtins, "ExceptionGroup")  # noqa: B009 -- absent before 3.11

    def tree(depth: int) -> BaseException:
        if depth == 0:
            return ValueError("leaf")
        return group_type(f"level {depth}", [tree(depth - 1) for _ in range(10)])

    chain = json.loads(exceptions.capture(tree(5), SETTINGS).attributes[exceptions.CHAIN])

    def count(node: dict[str, Any]) -> int:
        return 1 + sum(count(member) for member in node.get("exceptions", []))

    assert count(chain) <= 64
    assert chain["truncated"] is True


def test_fingerprint_is_the_root_cause_and_the_path_key_distinguishes_call_paths() -> None:
    def path_a() -> None:
        inner(1)

    def path_b() -> None:
        inner(2)

    first = exceptions.capture(raised(path_a), SETTINGS)
    again = exceptions.capture(raised(path_a), SETTINGS)
    other = exceptions.capture(raised(path_b), SETTINGS)
    assert first.fingerprint == again.fingerprint == other.fingerprint
    assert first.path == again.path != other.path
    assert first.attributes[exceptions.FINGERPRINT_PATH] == first.path
    assert len(first.fingerprint) == 32 and int(first.fingerprint, 16) >= 0


def test_fingerprint_override_and_callback() -> None:
    exc = raised(outer)
    default = exceptions.capture(exc, SETTINGS).fingerprint
    assert exceptions.capture(exc, SETTINGS, fingerprint="payments").fingerprint not in (default, "payments")
    seen: list[str] = []

    def callback(error: BaseException, key: str) -> list[str]:
        seen.append(key)
        return ["{{ default }}", type(error).__name__]

    settings = Settings(fingerprint_callback=callback)
    assert exceptions.capture(exc, settings).fingerprint != default
    assert seen == [default]

    def broken(error: BaseException, key: str) -> str:
        raise RuntimeError("bad callback")

    assert exceptions.capture(exc, Settings(fingerprint_callback=broken)).fingerprint == default


def test_secrets_in_messages_do_not_split_groups() -> None:
    def leak(token: str) -> None:
        raise PermissionError(f"rejected token ghp_{token}")

    redactor = Redactor()
    # random-looking tokens: "ghp_AAAA..." is a placeholder, which redaction rightly keeps
    first = exceptions.capture(
        raised(leak, "Q1w2E3r4T5y6U7i8O9p0Z1x2C3v4B5n6M7k8"), SETTINGS, redactor
    ).fingerprint
    second = exceptions.capture(
        raised(leak, "L0k9J8h7G6f5D4s3A2q1W2e3R4t5Y6u7I8o9"), SETTINGS, redactor
    ).fingerprint
    assert first == second


def test_length_limit_keeps_head_and_tail_and_valid_json() -> None:
    def recurse(depth: int) -> None:
        padding = "p" * 40
        if depth == 0:
            raise LookupError("the final line survives")
        recurse(depth - 1)
        del padding

    exc = raised(recurse, 60)
    attributes = exceptions.capture(exc, SETTINGS, max_length=300).attributes
    for key, value in attributes.items():
        assert len(value) <= 300, key
    stacktrace = attributes["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert stacktrace.endswith("LookupError: the final line survives\n")
    assert "characters truncated" in stacktrace
    frames = json.loads(attributes[exceptions.FRAMES])
    assert frames and frames[-1]["function"] == "recurse"
    json.loads(attributes[exceptions.CHAIN])


def test_count_limit_drops_enrichment_before_semantic_attributes() -> None:
    keys = list(exceptions.capture(raised(outer), SETTINGS, operation="checkout").attributes)
    assert keys[-3:] == ["exception.stacktrace", "exception.message", "exception.type"]
    assert keys.index(exceptions.FRAMES) < keys.index(exceptions.FINGERPRINT)


def test_max_frames_keeps_head_and_tail() -> None:
    def recurse(depth: int) -> None:
        if depth == 0:
            raise RecursionError("bottom")
        recurse(depth - 1)

    captured = exceptions.capture(raised(recurse, 200), Settings(max_frames=20)).attributes
    frames = json.loads(captured[exceptions.FRAMES])
    assert len(frames) == 20
    assert frames[0]["function"] == "raised"
    assert json.loads(captured[exceptions.CHAIN])["frames_omitted"] == 182  # raised + 201 recurse frames
    assert "[Previous line repeated" in captured["exception.stacktrace"]


def test_hostile_exception_and_locals() -> None:
    class BadStr(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    class Hostile:
        accessed = 0

        def __getattr__(self, name: str) -> object:
            Hostile.accessed += 1
            raise AttributeError(name)

        def __repr__(self) -> str:
            raise ValueError("hostile")

    def fail() -> None:
        thing = Hostile()  # noqa: F841 -- inspected as a local
        loop: list[object] = []
        loop.append(loop)
        raise BadStr()

    captured = exceptions.capture(raised(fail), SETTINGS)
    assert captured.attributes["exception.message"] == "<str() of BadStr raised RuntimeError>"
    local_values = frames_of(captured.attributes)[-1]["locals"]
    assert local_values["thing"] == "<Hostile (repr raised ValueError)>"
    assert local_values["loop"] == "[<recursion>]"
    assert Hostile.accessed == 0


def test_own_frames_are_hidden() -> None:
    import faultspan

    @faultspan.capture
    def decorated() -> None:
        raise KeyError("x")

    frames = frames_of(exceptions.capture(raised(decorated), SETTINGS).attributes)
    assert [frame["function"] for frame in frames] == ["raised", "decorated"]
