"""Fingerprints: same bug, same key; different bugs, different keys; parsing never raises."""

from __future__ import annotations

import builtins
import importlib.util
import json
import linecache
import os
import re
import string
import subprocess
import sys
import sysconfig
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultspan._capture import fingerprint as fingerprint_module
from faultspan._capture.fingerprint import (
    ExceptionKey,
    Fingerprints,
    FrameKey,
    custom_fingerprint,
    fingerprint,
    fingerprints,
    is_in_app,
    normalize_message,
    parse_stacktrace,
)

GROUP_TYPES: Any = getattr(builtins, "BaseExceptionGroup", ())
needs_groups = pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup needs Python 3.11")

# The application under test, loaded from files so that hosts (paths) and releases (moved lines) can differ.
SHOP = """\
import os


class PaymentError(Exception):
    pass


def require_env(name):
    return os.environ[name]


def load_settings():
    return [require_env(name) for name in ("DATABASE_URL", "REDIS_URL")]


def charge(order_id, amount):
    raise PaymentError(f"charge for order {order_id} of {amount} failed at 0x{id(order_id):x}")


def checkout(order_id):
    return charge(order_id, 10)


def refund(order_id):
    return charge(order_id, -10)


def walk(depth, order_id):
    if depth == 0:
        raise ValueError(f"order {order_id} not found")
    return walk(depth - 1, order_id)


def pay_with(cause, order_id):
    try:
        raise cause(f"upstream timed out after {order_id}ms")
    except Exception as exc:
        raise PaymentError(f"charge {order_id} failed") from exc


def batch(kinds, order_id):
    errors = []
    for kind in kinds:
        try:
            raise kind(f"item {order_id} failed")
        except Exception as exc:
            errors.append(exc)
    raise ExceptionGroup(f"batch {order_id} failed", errors)
"""
MOVED_SHOP = "# release 2: a header comment\n\n\n" + SHOP.replace(
    "import os\n", "import os\nimport sys\n\n", 1
)


def load_shop(directory: Path, source: str = SHOP) -> ModuleType:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "shop.py"
    path.write_text(source)
    linecache.checkcache(str(path))
    spec = importlib.util.spec_from_file_location("shop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shop(tmp_path: Path) -> ModuleType:
    return load_shop(tmp_path / "host-a" / "app")


def raised(function: Callable[..., object], *args: object) -> BaseException:
    try:
        function(*args)
    except BaseException as exc:
        return exc
    raise AssertionError(f"{function.__name__} did not raise")


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def live_key(exc: BaseException) -> ExceptionKey:
    """What the capture code builds: frames from the live traceback, then cause/context, then members."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        line = linecache.getline(code.co_filename, tb.tb_lineno).strip() or None
        module = tb.tb_frame.f_globals["__name__"]
        frames.append(FrameKey(module, code.co_name, line, is_in_app(code.co_filename)))
        tb = tb.tb_next
    chained = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    children = [live_key(chained)] if chained is not None else []
    if isinstance(exc, GROUP_TYPES):
        children.extend(live_key(member) for member in exc.exceptions)
    return ExceptionKey(type_name(exc), str(exc), tuple(frames), tuple(children))


def stacktrace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def text_key(exc: BaseException) -> ExceptionKey:
    return parse_stacktrace(type_name(exc), str(exc), stacktrace(exc))


def both(exc: BaseException) -> tuple[str, str]:
    """The fingerprint from the live traceback and the one from its text."""
    return fingerprint(live_key(exc)), fingerprint(text_key(exc))


def key(message: str, exc_type: str = "ValueError", *children: ExceptionKey) -> ExceptionKey:
    frames = (
        FrameKey("myapp.views", "checkout", "return charge(order)", True),
        FrameKey("myapp.payments", "charge", "raise PaymentError(message)", True),
    )
    return ExceptionKey(exc_type, message, frames, children)


# --- invariance: messages --------------------------------------------------------------------------------

letters_digits = string.ascii_letters + string.digits


def has_digit(text: str) -> bool:
    return any(char.isdigit() for char in text)


def is_a_value(text: str) -> bool:
    """Not prose (3+ words) and not an HTTP status line: those quoted strings are kept on purpose."""
    return len(text.split()) < 3 and not re.match(r"[1-5]\d\d ", text)


moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
TIMESTAMP_STYLES = [
    "iso",
    "iso-space",
    "str",
    "naive",
    "ctime",
    "%a, %d %b %Y %H:%M:%S GMT",
    "%A %d %B %Y",
    "%b %d, %Y %I:%M %p",
    "%Y-%m-%d",
    "%H:%M:%S",
    "%d/%m/%Y %H:%M",
]


def render_timestamp(moment: datetime, style: str) -> str:
    renderers: dict[str, Callable[[], str]] = {
        "iso": moment.isoformat,
        "iso-space": lambda: moment.isoformat(sep=" "),
        "str": lambda: str(moment),
        "naive": lambda: moment.replace(tzinfo=None).isoformat(),
        "ctime": moment.ctime,
    }
    return renderers.get(style, lambda: moment.strftime(style))()


VARIABLES: dict[str, tuple[str, st.SearchStrategy[str]]] = {
    "number": ("order {} failed after {} retries", st.integers(0, 10**12).map(str)),
    "decimal": ("amount {} exceeds the limit", st.decimals(0, 10**6, places=2).map(str)),
    "hex id": (
        "transaction txn_{} was rejected",
        st.binary(min_size=4, max_size=20).map(bytes.hex).filter(has_digit),
    ),
    "token": ("token {} expired", st.text(letters_digits, min_size=16, max_size=40).filter(has_digit)),
    "uuid": ("customer {} not found", st.uuids().map(str)),
    "uuid upper": ("customer {{{}}} not found", st.uuids().map(lambda value: str(value).upper())),
    "hex address": ("<Connection object at {}> is closed", st.integers(0, 2**64).map(hex)),
    "email": (
        "user {} is not allowed",
        st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}@[a-z0-9]{1,10}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    ),
    "ipv4": ("cannot connect to {}", st.ip_addresses(v=4).map(str)),
    "ipv4 port": (
        "cannot connect to {}",
        st.tuples(st.ip_addresses(v=4), st.integers(1, 65535)).map(lambda pair: f"{pair[0]}:{pair[1]}"),
    ),
    "ipv6": ("cannot connect to {}", st.ip_addresses(v=6).map(str)),
    "ipv6 port": (
        "cannot connect to {}",
        st.tuples(st.ip_addresses(v=6), st.integers(1, 65535)).map(lambda pair: f"[{pair[0]}]:{pair[1]}"),
    ),
    "url": (
        "GET {} failed",
        st.tuples(st.integers(1, 10**9), st.uuids()).map(
            lambda p: f"https://api.example.com/v1/orders/{p[0]}/{p[1]}"
        ),
    ),
    "quoted name": (
        "user {} not found",
        st.tuples(
            st.text(string.ascii_lowercase + string.digits + "-. ", min_size=1, max_size=20).filter(
                is_a_value
            ),
            st.sampled_from(["'", '"']),
        ).map(lambda pair: f"{pair[1]}{pair[0]}{pair[1]}"),
    ),
    "duration": (
        "request timed out after {} waiting for the lock",
        st.tuples(
            st.integers(0, 10**6).map(str) | st.floats(0, 10**6).map(lambda value: f"{value:.3f}"),
            st.sampled_from(["", " "]),
            st.sampled_from(
                ["ns", "µs", "ms", "s", "sec", "seconds", "m", "min", "minutes", "h", "hours", "days"]
            ),
        ).map("".join),
    ),
    "in seconds": (
        "retry {}",
        st.floats(0, 10**4).map(lambda value: f"in {value:.1f} seconds"),
    ),
    **{
        f"timestamp {style}": (
            "token expired at {} for this session",
            moments.map(lambda moment, style=style: render_timestamp(moment, style)),
        )
        for style in TIMESTAMP_STYLES
    },
}


@pytest.mark.parametrize("kind", sorted(VARIABLES))
@settings(deadline=None)  # no timed assertions: the machine is shared, speed is benchmarks/' business
@given(data=st.data())
def test_messages_that_differ_only_in_a_variable_share_a_fingerprint(kind: str, data: st.DataObject) -> None:
    template, values = VARIABLES[kind]
    slots = template.count("{}")
    first = template.format(*(data.draw(values) for _ in range(slots)))
    second = template.format(*(data.draw(values) for _ in range(slots)))
    assert normalize_message("ValueError", first) == normalize_message("ValueError", second)
    assert fingerprint(key(first)) == fingerprint(key(second))


@settings(deadline=None)
@given(
    order=st.integers(0, 10**9),
    customer=st.uuids(),
    ip=st.ip_addresses(),
    moment=st.datetimes(timezones=st.none() | st.just(timezone.utc)),
    contact=st.tuples(VARIABLES["email"][1], VARIABLES["duration"][1]),
)
def test_all_variables_in_one_message(
    order: int, customer: object, ip: object, moment: datetime, contact: tuple[str, str]
) -> None:
    email, duration = contact
    message = (
        f"order {order} of customer {customer} ({email}) from {ip} failed at {moment.isoformat()} "
        f"after {duration}; see <Order object at 0x7f{order:x}> and 'note {order}'"
    )
    expected = (
        "order <n> of customer <uuid> (<email>) from <host> failed at <ts> after <duration>; "
        "see <Order object at <addr>> and '<str>'"
    )
    assert normalize_message("ValueError", message) == expected


@pytest.mark.parametrize(
    ("exc_type", "message", "expected"),
    [
        ("ValueError", "order 8812 failed", "order <n> failed"),
        ("ValueError", "refund of -10.5 failed", "refund of <n> failed"),
        ("ValueError", "txn_9f8e7d6c5b and ch_3MqLiJ2eZvKYlo2C1Xy", "<n> and <n>"),
        ("ValueError", "worker-3 on db-replica-02", "<n> on <n>"),
        ("ValueError", "part PN-0042-C not found for tenant acme7", "part <n> not found for tenant <name>"),
        ("ValueError", "cannot parse tomorrow noon", "cannot parse <input>"),
        ("ValueError", "“abc-123” is not a valid UUID.", "'<str>' is not a valid UUID."),
        (
            "ValueError",
            "user alice is not allowed on web-3.prod.example.com",
            "user <name> is not allowed on <host>",
        ),
        (
            "decimal.InvalidOperation",
            "[<class 'decimal.ConversionSyntax'>]",
            "[<class 'decimal.ConversionSyntax'>]",
        ),
        ("sqlite3.OperationalError", "no such table: orders_archive", "no such table: orders_archive"),
        (
            "FileNotFoundError",
            "[Errno 2] No such file or directory: '/srv/inv 17.pdf'",
            "[Errno 2] No such file or directory: <path>",
        ),
        (
            "UnicodeDecodeError",
            "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
            "'utf-8' codec can't decode <data> in position <n>: <reason>",
        ),
        (
            "json.decoder.JSONDecodeError",
            "Expecting ',' delimiter: line 1 column 8 (char 7)",
            "Expecting ',' delimiter: line <n> column <n> (char <n>)",
        ),
        (
            "IntegrityError",
            "(sqlite3.IntegrityError) NOT NULL constraint failed: orders.customer_id\n"
            "[SQL: INSERT INTO orders (customer_id) VALUES (?)]\n[parameters: (None,)]",
            "(sqlite<n>.IntegrityError) NOT NULL constraint failed: orders.customer_id"
            " [SQL: INSERT INTO orders (customer_id) VALUES (?)] [parameters: <params>]",
        ),
        ("ValueError", "object at 0x7f3a2b1c9d00", "object at <addr>"),
        ("ValueError", "at 2024-01-02T03:04:05.123+00:00", "at <ts>"),
        ("ValueError", "expires Tue, 15 Nov 1994 08:12:31 GMT", "expires <ts> <ts>"),
        (
            "ValueError",
            "took 1.5s, then 200ms, then 3 minutes",
            "took <duration>, then <duration>, then <duration>",
        ),
        ("ValueError", "alice@example.com from 10.0.0.1:5432", "<email> from <host>:<n>"),
        ("ValueError", "peer [2001:db8::1]:443 reset", "peer [<host>]:<n> reset"),
        (
            "ValueError",
            "GET https://user:pw@api.example.com:8443/v1/orders/42?page=3#top failed",
            "GET https://api.example.com:<n>/v<n>/orders/<n>?page=<v> failed",
        ),
        ("ValueError", "user 'alice' not found", "user '<str>' not found"),
        ("ValueError", 'user "bob smith" not found', "user '<str>' not found"),
        (
            "ValueError",
            "invalid literal for int() with base 10: ''",
            "invalid literal for int() with base <n>: ''",
        ),
        ("RuntimeError", "'DATABASE_URL' is not set", "'DATABASE_URL' is not set"),
        ("RuntimeError", "DATABASE_URL is not set", "DATABASE_URL is not set"),
        ("KeyError", "'user_8812'", "'user_<n>'"),
        ("KeyError", "'some key'", "'<str>'"),
        (
            "AttributeError",
            "'NoneType' object has no attribute 'charge'",
            "'NoneType' object has no attribute 'charge'",
        ),
        ("RuntimeError", "'NoneType' object is not subscriptable", "'NoneType' object is not subscriptable"),
        ("ModuleNotFoundError", "No module named 'yaml'", "No module named 'yaml'"),
        (
            "TypeError",
            "f() got an unexpected keyword argument 'amount'",
            "f() got an unexpected keyword argument 'amount'",
        ),
        (
            "ValueError",
            "password=[REDACTED] rejected for 7 users",
            "password=[REDACTED] rejected for <n> users",
        ),
        (
            "OSError",
            "Caused by NewConnectionError('<conn object at 0x7f1>: Failed to establish a new connection: "
            "[Errno 111] Connection refused')",
            "Caused by NewConnectionError('<conn object at <addr>>: Failed to establish a new connection: "
            "[Errno 111] Connection refused')",
        ),
        ("ExceptionGroup", "batch 12 failed (3 sub-exceptions)", "batch <n> failed"),
        ("ValueError", "Jan 5th, 2024 and Tue, 15 Nov 1994", "<ts> and <ts>"),
        ("ValueError", "3:04 PM, 08:12:31 GMT", "<ts>, <ts>"),
        ("ValueError", "::ffff:1.2.3.4 and fe80::1%eth0", "<host> and <host>"),
        ("ValueError", "order 8812, worker-3, user8812, 1,234.5", "order <n>, <n>, <n>, <n>"),
        (
            "httpx.HTTPStatusError",
            "Server error '503 Service Unavailable' for url 'https://x.io/orders/1'",
            "Server error '503 Service Unavailable' for url 'https://x.io/orders/<n>'",
        ),
        (
            "aiohttp.ClientResponseError",
            "503, message='Service Unavailable', url='http://10.0.0.7/o/1'",
            "503, message='<str>', url='http://<host>/o/<n>'",
        ),
        ("RuntimeError", "upstream returned 502", "upstream returned 502"),
        ("RuntimeError", "server said 503", "server said <n>"),
        ("RuntimeError", "got 150 rows", "got <n> rows"),
        ("KeyError", "'alice'", "'alice'"),
        ("ValueError", "missing setting 'database_url'", "missing setting 'database_url'"),
        ("ValueError", "user 'john_doe' not found", "user '<str>' not found"),
        ("ValueError", "Unknown currency code: XYZ", "Unknown currency code: <input>"),
        ("ValueError", "Invalid value: must be positive", "Invalid value: must be positive"),
        ("ValueError", "unable to parse string as an integer", "unable to parse string as an integer"),
        ("ParserError", "Unknown string format: next tues", "Unknown string format: <input>"),
        ("ConnectionError", "Error 111 connecting to cache:6379.", "Error 111 connecting to <host>:<n>."),
        ("ConnectionError", "Error 111 connecting to 10.0.3.4:6379.", "Error 111 connecting to <host>:<n>."),
        (
            "RuntimeError",
            "payment gateway error 429 for order 8812",
            "payment gateway error 429 for order <n>",
        ),
        ("ValueError", "  spaced\n\tout   message ", "spaced out message"),
    ],
)
def test_normalization_table(exc_type: str, message: str, expected: str) -> None:
    assert normalize_message(exc_type, message) == expected


# --- distinctness: messages ------------------------------------------------------------------------------

HTTP_FORMATS = [
    (
        "requests.exceptions.HTTPError",
        "{code} {kind} Error: {reason} for url: https://api.example.com/v1/orders/{order}",
    ),
    ("urllib.error.HTTPError", "HTTP Error {code}: {reason}"),
    (
        "httpx.HTTPStatusError",
        "{kind} error '{code} {reason}' for url 'https://api.example.com/orders/{order}'",
    ),
    (
        "aiohttp.client_exceptions.ClientResponseError",
        "{code}, message='{reason}', url='http://10.0.0.7/o/{order}'",
    ),
    ("starlette.exceptions.HTTPException", "{code}: {reason}"),
    ("werkzeug.exceptions.HTTPException", "{code} {reason}: The server says no."),
    ("RuntimeError", "upstream returned status {code} for order {order}"),
    ("RuntimeError", "unexpected status_code={code} (order {order})"),
    ("RuntimeError", "got {code} from upstream for order {order}"),
    ("RuntimeError", "HTTP {code} while syncing order {order}"),
    ("RuntimeError", "<Response [{code}]> for order {order}"),
    (
        "botocore.exceptions.ClientError",
        "An error occurred ({code}) when calling the GetObject operation: {reason}",
    ),
]
STATUSES = [
    (503, "Server", "Service Unavailable"),
    (404, "Client", "Not Found"),
    (502, "Server", "Bad Gateway"),
]


@pytest.mark.parametrize(("exc_type", "template"), HTTP_FORMATS)
@given(orders=st.lists(st.integers(1, 10**6), min_size=2, max_size=2))
def test_http_status_codes_separate_bugs(exc_type: str, template: str, orders: list[int]) -> None:
    keys = {}
    for code, kind, reason in STATUSES:
        same = {
            fingerprint(key(template.format(code=code, kind=kind, reason=reason, order=order), exc_type))
            for order in orders
        }
        assert len(same) == 1, "the same status with other ids must group together"
        keys[code] = same.pop()
    assert len(set(keys.values())) == len(STATUSES)


@pytest.mark.parametrize(
    "message",
    [
        "order {} failed",
        "processed {} rows",
        "got {} rows from the database",
        "retrying {} jobs",
    ],
)
def test_ordinary_numbers_in_the_http_range_are_normalized(message: str) -> None:
    assert normalize_message("RuntimeError", message.format(404)) == normalize_message(
        "RuntimeError", message.format(17)
    )


def test_missing_environment_variables_are_different_bugs(
    shop: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    database = raised(shop.load_settings)
    monkeypatch.setenv("DATABASE_URL", "postgres://db")
    redis = raised(shop.load_settings)
    assert [str(database), str(redis)] == ["'DATABASE_URL'", "'REDIS_URL'"]
    assert live_key(database).frames == live_key(redis).frames, "same call site: only the message differs"
    for first, second in zip(both(database), both(redis), strict=True):
        assert first != second
    for template in (
        "{} is not set",
        "{!r} is not set",
        "missing setting {!r}",
        "environment variable {} missing",
    ):
        messages = [template.format(name) for name in ("DATABASE_URL", "REDIS_URL")]
        assert fingerprint(key(messages[0], "RuntimeError")) != fingerprint(key(messages[1], "RuntimeError"))


# --- real exceptions: call paths, recursion, chains, groups ---------------------------------------------


def paths(exc: BaseException) -> tuple[str, str]:
    """The path keys, live and from the text."""
    return fingerprints(live_key(exc)).path, fingerprints(text_key(exc)).path


def test_same_bug_is_stable_and_only_the_path_key_tells_call_paths_apart(shop: ModuleType) -> None:
    first = both(raised(shop.checkout, 8812))
    assert first[0] == first[1]
    assert first == both(raised(shop.checkout, 17))
    assert first == both(raised(shop.refund, 8812)), "the same raise from another caller: the same root cause"
    path = paths(raised(shop.checkout, 8812))
    assert path[0] == path[1]
    assert path == paths(raised(shop.checkout, 17))
    other_path = paths(raised(shop.refund, 8812))
    assert path[0] != other_path[0]
    assert path[1] != other_path[1]


def test_other_host_and_moved_lines_keep_the_fingerprint(shop: ModuleType, tmp_path: Path) -> None:
    moved = load_shop(tmp_path / "host-b" / "srv" / "releases" / "2", MOVED_SHOP)
    here, there = raised(shop.checkout, 1), raised(moved.checkout, 2)
    assert (
        traceback.extract_tb(here.__traceback__)[-1].lineno
        != traceback.extract_tb(there.__traceback__)[-1].lineno
    )
    assert stacktrace(here) != stacktrace(there)
    assert both(here) == both(there)
    assert paths(here) == paths(there)
    assert paths(raised(shop.refund, 1)) != paths(raised(moved.checkout, 1))


def test_recursion_depth_does_not_matter(shop: ModuleType) -> None:
    shallow = raised(shop.walk, 2, 8812)
    deep = raised(shop.walk, 40, 17)
    assert "Previous line repeated" in stacktrace(deep)
    assert both(shallow) == both(deep)


def test_mutual_recursion_collapses() -> None:
    ping = FrameKey("app", "ping", "return pong(n - 1)", True)
    pong = FrameKey("app", "pong", "return ping(n - 1)", True)
    fail = FrameKey("app", "pong", "raise ValueError(n)", True)
    short = ExceptionKey("ValueError", "0", (ping, pong, fail))
    long = ExceptionKey("ValueError", "0", (ping, pong, ping, pong, ping, fail))
    assert fingerprint(short) == fingerprint(long)


def test_causes_contribute(shop: ModuleType) -> None:
    timeout = both(raised(shop.pay_with, TimeoutError, 1))
    assert timeout == both(raised(shop.pay_with, TimeoutError, 2))
    refused = both(raised(shop.pay_with, ConnectionError, 1))
    assert timeout[0] != refused[0]
    assert timeout[1] != refused[1]
    outer = key("charge failed", "shop.PaymentError")
    assert fingerprint(outer) != fingerprint(
        key("charge failed", "shop.PaymentError", key("timeout", "TimeoutError"))
    )


def test_context_contributes() -> None:
    def suppressed(error: type[Exception]) -> None:
        try:
            raise error("first")
        except Exception:
            raise RuntimeError("cleanup failed") from None

    def implicit(error: type[Exception]) -> None:
        try:
            raise error("first")
        except Exception:
            raise RuntimeError("cleanup failed")  # noqa: B904 -- the implicit __context__ is the point

    assert both(raised(implicit, KeyError)) != both(raised(implicit, OSError))
    without_context = raised(suppressed, KeyError)
    assert live_key(without_context).children == ()
    assert text_key(without_context).children == ()


@needs_groups
def test_exception_group_members_contribute(shop: ModuleType) -> None:
    value_type = both(raised(shop.batch, [ValueError, TypeError], 1))
    value_key = both(raised(shop.batch, [ValueError, KeyError], 1))
    assert value_type[0] != value_key[0]
    assert value_type[1] != value_key[1]
    two = both(raised(shop.batch, [ValueError, ValueError], 1))
    five = both(raised(shop.batch, [ValueError] * 5, 2))
    assert two == five, "how many identical members failed is not a different bug"
    assert both(raised(shop.batch, [TypeError, ValueError], 3)) == value_type, (
        "completion order does not matter"
    )


def test_chained_keys_are_not_flattened() -> None:
    inner = key("disk full", "OSError")
    middle = key("write failed", "RuntimeError", inner)
    nested = key("charge failed", "PaymentError", middle)
    flat = key("charge failed", "PaymentError", key("write failed", "RuntimeError"), inner)
    assert fingerprint(nested) != fingerprint(flat)


# --- frames ----------------------------------------------------------------------------------------------


def frames(*specs: tuple[str, str, str | None, bool]) -> tuple[FrameKey, ...]:
    return tuple(FrameKey(*spec) for spec in specs)


def test_only_in_app_frames_count_when_there_are_some() -> None:
    app = ("myapp.views", "checkout", "charge(order)", True)
    with_library = frames(app, ("requests.api", "get", "return request('get', url)", False))
    with_other_library = frames(app, ("httpx._api", "get", "return request('GET', url)", False))
    assert fingerprint(ExceptionKey("E", "m", with_library)) == fingerprint(
        ExceptionKey("E", "m", with_other_library)
    )


def test_without_in_app_frames_library_functions_count_but_not_their_lines() -> None:
    patch_1 = frames(("json.decoder", "decode", "obj, end = self.raw_decode(s)", False))
    patch_2 = frames(("json.decoder", "decode", "obj, end = self.raw_decode(s, idx=_w(s, 0).end())", False))
    other = frames(("json.decoder", "raw_decode", "obj, end = self.scan_once(s, idx)", False))
    assert fingerprint(ExceptionKey("E", "m", patch_1)) == fingerprint(ExceptionKey("E", "m", patch_2))
    assert fingerprint(ExceptionKey("E", "m", patch_1)) != fingerprint(ExceptionKey("E", "m", other))


def test_comprehension_frames_and_indentation_are_ignored() -> None:
    plain = frames(
        ("app", "total", "return sum([price(i) for i in items])", True), ("app", "price", "raise X", True)
    )
    with_listcomp = frames(
        ("app", "total", "    return sum([price(i) for i in items])\n", True),
        ("app", "<listcomp>", "return sum([price(i) for i in items])", True),
        ("app", "price", "raise X", True),
    )
    assert fingerprint(ExceptionKey("E", "m", plain)) == fingerprint(ExceptionKey("E", "m", with_listcomp))


def test_context_lines_are_code() -> None:
    one = frames(("app", "f", "limit = 10", True))
    two = frames(("app", "f", "limit = 20", True))
    assert fingerprint(ExceptionKey("E", "m", one)) != fingerprint(ExceptionKey("E", "m", two))


# --- processes -------------------------------------------------------------------------------------------

SUBPROCESS = """
import json, pathlib, test_fingerprint as t
shop = t.load_shop(pathlib.Path({app!r}))
print(json.dumps(t.both(t.raised(shop.checkout, {order}))))
"""


def test_same_fingerprint_in_fresh_processes(shop: ModuleType, tmp_path: Path) -> None:
    """Other hash seeds and other ids: the same key. The text key also equals this process's one."""
    package_root = Path(fingerprint_module.__file__).parents[1]
    path = os.pathsep.join([str(package_root), str(Path(__file__).parent)])
    results = []
    for seed, order in (("1", 8812), ("2", 17)):
        code = SUBPROCESS.format(app=str(tmp_path / "host-a" / "app"), order=order)
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": path}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False, timeout=120
        )
        assert done.returncode == 0, done.stderr
        results.append(tuple(json.loads(done.stdout.splitlines()[-1])))
    assert results[0] == results[1]
    assert results[0][1] == both(raised(shop.checkout, 5))[1]


# --- parse_stacktrace ------------------------------------------------------------------------------------

TRACEBACK_311 = """\
Traceback (most recent call last):
  File "/srv/app/shop/views.py", line 40, in checkout
    return charge(order,
           ^^^^^^^^^^^^^
  File "/srv/app/shop/payments.py", line 12, in charge
    raise PaymentError(f"charge {order} failed")
shop.payments.PaymentError: charge 8812 failed
"""
TRACEBACK_313 = """\
Traceback (most recent call last):
  File "/home/ci/build/shop/views.py", line 52, in checkout
    return charge(order,
           ~~~~~~^^^^^^^
                  amount)
                  ^^^^^^^
  File "/home/ci/build/shop/payments.py", line 17, in charge
    raise PaymentError(f"charge {order} failed")
shop.payments.PaymentError: charge 17 failed
"""


def test_parse_ignores_paths_line_numbers_and_caret_styles() -> None:
    without_carets = "\n".join(line for line in TRACEBACK_311.splitlines() if "^" not in line)
    keys = [
        parse_stacktrace("shop.payments.PaymentError", "charge 1 failed", text)
        for text in (TRACEBACK_311, TRACEBACK_313, without_carets, TRACEBACK_311.replace("/", "\\"))
    ]
    assert keys[0].frames == (
        FrameKey("views", "checkout", "return charge(order,", True),
        FrameKey("payments", "charge", 'raise PaymentError(f"charge {order} failed")', True),
    )
    assert len({fingerprint(parsed) for parsed in keys}) == 1


def test_parse_chains_become_nested_children(shop: ModuleType) -> None:
    parsed = text_key(raised(shop.pay_with, TimeoutError, 3))
    assert parsed.type == "shop.PaymentError"
    assert parsed.message == "charge 3 failed"
    assert [child.type for child in parsed.children] == ["TimeoutError"]
    assert parsed.children[0].message == "upstream timed out after 3ms"
    assert parsed.children[0].frames[-1].function == "pay_with"
    three = (
        "ValueError: a\n\n{}\n\nKeyError: 'b'\n\n{}\n\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\nE: c'
    )
    chain = parse_stacktrace("E", "c", three.format(*sorted(fingerprint_module._CHAIN_SEPARATORS)))
    assert chain.children[0].type == "KeyError"
    assert chain.children[0].children[0].type == "ValueError"


@needs_groups
def test_parse_exception_groups(shop: ModuleType) -> None:
    try:
        try:
            shop.batch([ValueError, TypeError], 4)
        except Exception as exc:
            raise GROUP_TYPES("outer 9", [exc, KeyError("DATABASE_URL")]) from OSError("disk")
    except Exception as exc:
        outer = exc
    parsed = text_key(outer)
    assert parsed.type == type_name(outer)
    assert [child.type for child in parsed.children] == ["OSError", "ExceptionGroup", "KeyError"]
    assert [member.type for member in parsed.children[1].children] == ["ValueError", "TypeError"]
    assert parsed.children[1].children[0].frames[-1] == FrameKey(
        "shop", "batch", 'raise kind(f"item {order_id} failed")', True
    )
    assert fingerprint(parsed) == fingerprint(text_key(outer))


def test_parse_keeps_messages_that_contain_tracebacks() -> None:
    text = (
        'concurrent.futures.process._RemoteTraceback: \n"""\nTraceback (most recent call last):\n'
        '  File "/w/job.py", line 3, in work\n    raise ValueError(1)\nValueError: 1\n"""\n\n'
        "The above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "/w/main.py", line 9, in <module>\n    f.result()\n'
        "ValueError: 1\n"
    )
    parsed = parse_stacktrace("ValueError", "1", text)
    assert parsed.frames == (FrameKey("main", "<module>", "f.result()", True),)
    (remote,) = parsed.children
    assert remote.type == "concurrent.futures.process._RemoteTraceback"
    assert remote.frames == ()
    assert 'File "/w/job.py"' in remote.message


def test_parse_tolerates_truncation_ansi_and_garbage(shop: ModuleType) -> None:
    full = stacktrace(raised(shop.walk, 3, 1))
    marker = f"\n  [... {len(full) - 300} characters truncated ...]\n"
    cut = full[:100] + marker + full[-200:]
    parsed = parse_stacktrace("ValueError", "order 1 not found", cut)
    assert parsed.type == "ValueError"
    assert parsed.frames[-1] == FrameKey(
        "shop", "walk", 'raise ValueError(f"order {order_id} not found")', True
    )
    assert parsed == parse_stacktrace("ValueError", "order 1 not found", cut)
    colored = "\x1b[35mTraceback\x1b[0m (most recent call last):\n" + full.split("\n", 1)[1]
    assert parse_stacktrace("E", "m", colored).frames == parse_stacktrace("E", "m", full).frames
    assert parse_stacktrace("E", "m", "") == ExceptionKey("E", "m", ())
    assert parse_stacktrace("E", "m", '\x00garbage\n  File "\n    +-+--- 1 ---\n  | \n').type == "E"


TRACEBACK_LINES = [
    "Traceback (most recent call last):",
    "  + Exception Group Traceback (most recent call last):",
    '  File "/srv/app/x.py", line 3, in f',
    '  |   File "<frozen importlib._bootstrap>", line 1, in _load',
    "    return g()",
    "    ^^^^^^^^^^",
    "  [Previous line repeated 5 more times]",
    "ValueError: order 12",
    "  | KeyError: 'A'",
    "  +-+---------------- 1 ----------------",
    "    +---------------- ... ----------------",
    "    | and 3 more exceptions",
    "    +------------------------------------",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
    "  [... 99 characters truncated ...]",
    "",
]


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(TRACEBACK_LINES)
        | st.text(max_size=80)
        | st.tuples(st.sampled_from(TRACEBACK_LINES), st.integers(0, 12)).map(
            lambda pair: " " * pair[1] + pair[0]
        ),
        max_size=60,
    ).map("\n".join)
)
def test_parse_never_raises(text: str) -> None:
    parsed = parse_stacktrace("app.Error", "boom", text)
    assert (parsed.type, parsed.message) == ("app.Error", "boom")
    assert len(fingerprint(parsed)) == 32


@given(st.text(max_size=2000))
def test_parse_and_fingerprint_any_text(text: str) -> None:
    assert len(fingerprint(parse_stacktrace("E", text, text))) == 32


def test_deep_nesting_is_bounded() -> None:
    separator = sorted(fingerprint_module._CHAIN_SEPARATORS)[0]
    chain = f"\n\n{separator}\n\n".join(f"E{index}: m" for index in range(5000))
    parsed = parse_stacktrace("E", "m", chain)
    depth = 0
    while parsed.children:
        parsed, depth = parsed.children[0], depth + 1
    assert depth < 20
    deep = ExceptionKey("E", "m", ())
    for _ in range(5000):
        deep = ExceptionKey("E", "m", (), (deep,))
    assert len(fingerprint(deep)) == 32


# --- custom fingerprints ---------------------------------------------------------------------------------

DEFAULT = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("{{ default }}", DEFAULT),
        (["{{default}}"], DEFAULT),
        ("fedcba9876543210fedcba9876543210", "fedcba9876543210fedcba9876543210"),
        ([], DEFAULT),
        ("", DEFAULT),
    ],
)
def test_custom_fingerprint_shortcuts(values: str | list[str], expected: str) -> None:
    assert custom_fingerprint(values, DEFAULT) == expected


def test_custom_fingerprint_hashes_everything_else() -> None:
    payments = custom_fingerprint("payments", DEFAULT)
    assert payments == custom_fingerprint(["payments"], DEFAULT)
    assert payments != "payments"
    assert payments == custom_fingerprint("payments", "f" * 32), "no default inside: independent of it"
    with_default = custom_fingerprint(["payments", "{{ default }}"], DEFAULT)
    assert with_default == custom_fingerprint(["payments", "{{default}}"], DEFAULT)
    assert with_default == custom_fingerprint(["payments", DEFAULT], "f" * 32)
    assert with_default != custom_fingerprint(["payments", "{{ default }}"], "f" * 32)
    assert custom_fingerprint(["a\nb"], DEFAULT) != custom_fingerprint(["a", "b"], DEFAULT)
    assert custom_fingerprint(("payments", 7), DEFAULT) == custom_fingerprint(["payments", "7"], DEFAULT)
    assert custom_fingerprint(7, DEFAULT) == custom_fingerprint("7", DEFAULT)  # type: ignore[arg-type]
    assert (
        custom_fingerprint("FEDCBA9876543210FEDCBA9876543210", DEFAULT) != "FEDCBA9876543210FEDCBA9876543210"
    )
    for value in (payments, with_default):
        assert len(value) == 32
        assert value == value.lower()


# --- in-app ----------------------------------------------------------------------------------------------


def stdlib_file() -> str:
    return str(Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("/srv/app/shop/views.py", True),
        ("app.py", True),
        (__file__, True),
        ("/srv/venv/lib/python3.12/site-packages/requests/api.py", False),
        ("/usr/lib/python3/dist-packages/yaml/__init__.py", False),
        (r"C:\Users\me\venv\Lib\site-packages\flask\app.py", False),
        ("/usr/local/lib/python3.13/json/decoder.py", False),
        ("/opt/pyenv/versions/3.10.14/lib/python3.10/asyncio/tasks.py", False),
        (r"C:\Python311\Lib\asyncio\tasks.py", False),
        ("<frozen importlib._bootstrap>", False),
        ("<string>", False),
        ("", False),
    ],
)
def test_is_in_app(filename: str, expected: bool) -> None:
    assert is_in_app(filename) is expected


def test_this_interpreters_stdlib_is_not_in_app() -> None:
    assert is_in_app(stdlib_file()) is False
    assert is_in_app(traceback.__file__) is False


def test_module_names_from_filenames() -> None:
    text = "".join(
        f'  File "{filename}", line 1, in f\n'
        for filename in ("/a/shop/payments.py", "/a/shop/__init__.py", "C:\\a\\shop\\views.py", "<frozen os>")
    )
    assert [frame.module for frame in parse_stacktrace("E", "m", text + "E: m").frames] == [
        "payments",
        "shop.__init__",
        "views",
        "os",
    ]


def test_fingerprints_are_pinned() -> None:
    """A change here changes every key in the field: bump the version and document a migration first."""
    cause = ExceptionKey(
        "TimeoutError", "timed out after 3s", (FrameKey("socket", "create_connection", None, False),)
    )
    payment = ExceptionKey("myapp.errors.PaymentError", "charge 8812 failed", key("").frames, (cause,))
    assert fingerprint_module._VERSION == "fs2"
    assert fingerprints(payment) == Fingerprints(
        "a8b38d516f1662235530727cf57c9972", "6b14c076da92240cd0c9ba2ad8cb39fc"
    )
    assert custom_fingerprint(["payments", "{{ default }}"], DEFAULT) == "1cfcd08fa8601b5f2dcd1e40517d22cf"
