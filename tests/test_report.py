"""``faultspan view``: the self-contained HTML report, rendered in a real headless Chromium."""

from __future__ import annotations

import inspect
import json
import platform
import re
import subprocess
import sys
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

import faultspan
from conftest import Pipeline
from faultspan._capture import replay_store, runtime
from faultspan.cli import main
from faultspan.packages.exporter import PackageSpanExporter
from faultspan.packages.format import read_package
from faultspan.report.html import DATA_ELEMENT_ID, MAX_CHAIN_DEPTH, embed_json, model
from support.browser import REQUIRE_VARIABLE, chromium, require_chromium, save_screenshot
from support.instrumented import run_instrumented
from support.servers import EXAMPLES, AppServer, http_get

HOSTILE = (
    "</script><script>window.__pwned = 1</script>"
    '"><img src=x onerror="window.__pwned = 2">'
    "<svg onload=\"document.title = 'pwned'\"></svg>"
    "javascript:window.__pwned=3 \u2028 \u2029 &amp; <!--"
)
NORMAL = "cart-42"
REPLAY_TARGET = """import faultspan


@faultspan.capture(replayable=True)
def average(values: list[int]) -> float:
    total = 0
    for value in values:
        total += value
    count = len(values) - len(values)
    return total / count
"""
REPLAY_PRODUCER = """import contextlib

from report_target import average

with contextlib.suppress(ZeroDivisionError):
    average([3, 4])
"""
RENDER_WAIT_SECONDS = 10


def place_order(order_id: int, note: str) -> None:
    """The failing call: its frames, source lines and locals end up in the package."""
    total = order_id * 2
    label = f"order {total} {note}"
    try:
        json.loads(label)
    except ValueError as error:
        raise RuntimeError(f"checkout failed: {note}") from error


def failing_spans(pipeline: Pipeline, text: str) -> list[ReadableSpan]:
    """A real two-span trace through faultspan's processor: a request, breadcrumbs, a chained exception,
    locals."""
    request = {
        "http.request.method": "GET",
        "url.path": f"/checkout/{text}",
        "http.request.header.x-note": text,
    }
    with pipeline.tracer.start_as_current_span(
        f"GET /checkout {text}", kind=SpanKind.SERVER, attributes=request
    ) as root:
        root.set_attribute(f"app.{text}", text)
        faultspan.breadcrumb("http", f"request {text}", url=f"javascript:{text}")
        with pipeline.tracer.start_as_current_span(f"charge {text}"):
            faultspan.breadcrumb("db", f"SELECT {text}", level="warning")
            try:
                place_order(7, text)
            except RuntimeError:
                faultspan.capture_exception()
    return list(pipeline.spans())


def recording(text: str) -> dict[str, Any]:
    """What ``faultspan replay --record-lines`` stores: the executed lines of ``place_order``."""
    source, first = inspect.getsourcelines(place_order)
    body = [
        (first + offset, line.strip()) for offset, line in enumerate(source) if offset > 1 and line.strip()
    ]
    return {
        "lines": [
            {
                "filename": __file__,
                "lineno": lineno,
                "function": "place_order",
                "source": line,
                "locals": {"step": repr(step), "note": repr(text)} if step % 2 else {"step": repr(step)},
                "time": step / 1000,
            }
            for step, (lineno, line) in enumerate(body)
        ],
        "truncated": False,
        "limit": 10_000,
    }


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the real package exporter writes, for this test only."""
    directory = tmp_path / "packages"
    monkeypatch.setenv("OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR", str(directory))
    runtime.load()
    yield directory
    monkeypatch.undo()
    runtime.load()


def write_package(pipeline: Pipeline, directory: Path, text: str, *, recorded: bool) -> Path:
    """The failure through faultspan's processor and its package exporter, with the replay's recording."""
    spans = failing_spans(pipeline, text)
    if recorded:
        (failing,) = [span for span in spans if any(event.name == "exception" for event in span.events)]
        replay_store.remember(
            failing.context.trace_id,
            failing.context.span_id,
            {"replayable": True, "callable": f"{__name__}:place_order", "recording": recording(text)},
        )
    return write_spans(directory, spans)


def write_spans(directory: Path, spans: list[ReadableSpan]) -> Path:
    """The trace through faultspan's package exporter (writing into ``directory``): the new package."""
    before = set(directory.glob("*.fspkg"))
    exporter = PackageSpanExporter()
    exporter.export(spans)
    exporter.shutdown()
    (path,) = set(directory.glob("*.fspkg")) - before
    return path


def view(*args: str | Path) -> int:
    return main(["view", *(str(arg) for arg in args)])


def report_of(package: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert view(package, "--no-open") == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(package.with_suffix(".html"))
    return Path(printed)


# -- the file ------------------------------------------------------------------------------------------------


def test_view_writes_one_self_contained_file(
    pipeline: Pipeline, package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_package(pipeline, package_dir, NORMAL, recorded=False)
    report = report_of(package, capsys)
    page = report.read_text("utf-8")
    assert report.stat().st_mode & 0o777 == 0o600
    assert len(re.findall(r"<script\b", page)) == 2
    assert re.search(r"""<meta http-equiv="Content-Security-Policy" content="default-src 'none'; """, page)
    assert not re.search(r"\b(src|href|action)\s*=|url\(|@import|https?://", page, re.IGNORECASE)
    embedded = re.search(
        rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', page, re.S
    )
    assert embedded is not None
    shown = json.loads(embedded.group(1))
    assert shown == model(read_package(package))
    assert shown["recording"] is None
    assert [link["type"] for link in shown["chain"]] == ["RuntimeError", "json.decoder.JSONDecodeError"]


def test_output_option_writes_where_asked(
    pipeline: Pipeline, package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_package(pipeline, package_dir, NORMAL, recorded=False)
    target = tmp_path / "reports" / "failure.html"
    assert view(package, "-o", target, "--no-open") == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert not package.with_suffix(".html").exists()


def test_bad_input_is_one_line(
    pipeline: Pipeline, package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_package = tmp_path / "junk.fspkg"
    not_a_package.write_bytes(b"not a zip")
    assert view(not_a_package, "--no-open") == 1
    assert (
        capsys.readouterr().err == f"{not_a_package}: not a valid ZIP archive (no end of central directory)\n"
    )
    assert not not_a_package.with_suffix(".html").exists()

    missing = tmp_path / "missing.fspkg"
    assert view(missing, "--no-open") == 1
    assert capsys.readouterr().err.startswith(f"{missing}: cannot read (")

    package = write_package(pipeline, package_dir, NORMAL, recorded=False)
    assert view(package, "-o", package) == 2
    assert capsys.readouterr().err == f"{package}: is the package itself; choose another output with -o\n"

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert view(package, "-o", blocked / "report.html", "--no-open") == 1
    error = capsys.readouterr().err
    assert error.startswith(f"{blocked / 'report.html'}: cannot write (") and error.count("\n") == 1

    with pytest.raises(SystemExit) as usage:
        view()
    assert usage.value.code == 2


def test_malformed_capture_attributes_are_shown_defensively(
    package_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package that passed verify can still hold frames and chains of any JSON shape and depth."""
    chain: dict[str, Any] = {"type": "Deepest", "cause": "not a link"}
    for level in range(100):
        chain = {"type": f"Level{level}", "message": 7, "notes": "not a list", "cause": chain}
    chain["exceptions"] = [None, {"type": "Member"}]
    frames = [1, {"lineno": "7", "function": None, "locals": ["not", "a", "map"], "pre_context": "nope"}]
    event = Event(
        "exception",
        {
            "exception.type": "Level99",
            "exception.message": "m",
            "faultspan.fingerprint": "ab" * 16,
            "faultspan.frames": json.dumps(frames),
            "faultspan.chain": json.dumps(chain),
        },
        2_000,
    )
    span = ReadableSpan(
        name="odd",
        context=SpanContext(0xAB, 0xCD, is_remote=False),
        resource=Resource({"service.name": "odd"}),
        events=[event],
        status=Status(StatusCode.ERROR),
        start_time=1_000,
        end_time=3_000,
    )
    exporter = PackageSpanExporter()
    exporter.export([span])
    exporter.shutdown()
    (package,) = package_dir.glob("*.fspkg")

    shown = model(read_package(package))
    assert [link["depth"] for link in shown["chain"]] == [*range(MAX_CHAIN_DEPTH + 1), 1]
    assert [(link["relation"], link["type"]) for link in shown["chain"][-2:]] == [
        ("caused by", f"Level{99 - MAX_CHAIN_DEPTH}"),
        ("group member 2", "Member"),
    ]
    assert shown["chain"][0] == {
        "relation": "",
        "depth": 0,
        "type": "Level99",
        "message": "7",
        "notes": [],
        "frames": [
            {
                "filename": "",
                "lineno": None,
                "function": "",
                "module": "",
                "in_app": False,
                "context_line": "",
                "pre_context": [],
                "post_context": [],
                "locals": [],
            }
        ],
        "omitted": 0,
        "omitted_at": None,
        "truncated": False,
    }
    assert shown["breadcrumbs"] == [] and shown["recording"] is None
    assert report_of(package, capsys).stat().st_size > 0


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="a desktop always has a display there")
def test_opens_a_browser_only_on_a_display(
    pipeline: Pipeline,
    package_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No real browser can be started from a test, so ``webbrowser.open`` is the one thing replaced."""
    opened: list[str] = []

    def open_url(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", open_url)
    package = write_package(pipeline, package_dir, NORMAL, recorded=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert view(package) == 0
    assert opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    assert view(package, "--no-open") == 0
    assert opened == []
    assert view(package) == 0
    assert opened == [package.with_suffix(".html").resolve().as_uri()]
    capsys.readouterr()


@given(st.lists(st.text(st.sampled_from("<>&/!-'\"\\\u2028\u2029script") | st.characters())))
def test_embedded_json_cannot_leave_its_script_block(value: list[str]) -> None:
    text = embed_json(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == value


# -- in the browser ------------------------------------------------------------------------------------------


def test_missing_chromium_skips_unless_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Whatever this machine has installed: the driver is a file here, the browser is not."""
    driver = tmp_path / "chromedriver"
    driver.write_text("")
    monkeypatch.setattr("support.browser.CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr("support.browser.CHROMEDRIVER", str(driver))
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"\(/nonexistent/chromium missing; bash tests/support/"):
        require_chromium()
    monkeypatch.setattr("support.browser.CHROMEDRIVER", "/nonexistent/chromedriver")
    with pytest.raises(
        pytest.skip.Exception, match=r"\(/nonexistent/chromium, /nonexistent/chromedriver missing"
    ):
        require_chromium()
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match=rf"{REQUIRE_VARIABLE}=1 requires it"):
        require_chromium()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    require_chromium()
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def load(driver: webdriver.Chrome, report: Path) -> None:
    driver.get(report.resolve().as_uri())
    WebDriverWait(driver, RENDER_WAIT_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runtime"))


def texts(driver: webdriver.Chrome, selector: str) -> list[str]:
    return [
        str(element.get_property("textContent"))
        for element in driver.find_elements(By.CSS_SELECTOR, selector)
    ]


def pairs_in(driver: webdriver.Chrome, selector: str) -> list[tuple[str, str]]:
    """The key/value rows of every ``pairs`` grid under ``selector``, in page order."""
    keys = texts(driver, f"{selector} .key")
    values = texts(driver, f"{selector} .value")
    return list(zip(keys, values, strict=True))


def assert_clean_load(driver: webdriver.Chrome) -> None:
    """Nothing was fetched, and the console has no error (a CSP violation would be one)."""
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    console = driver.get_log("browser")  # type: ignore[no-untyped-call]
    assert [entry for entry in console if entry["level"] == "SEVERE"] == []


def keep_screenshot(
    driver: webdriver.Chrome,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    path = save_screenshot(driver, tmp_path_factory.getbasetemp() / "artefacts", name)
    assert path.read_bytes().startswith(b"\x89PNG")
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def position(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "step-position").text)


def current_line(driver: webdriver.Chrome) -> list[str]:
    return texts(driver, "ol.steps li.current")


def test_report_in_chromium(
    browser: webdriver.Chrome,
    pipeline: Pipeline,
    package_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = report_of(write_package(pipeline, package_dir, NORMAL, recorded=True), capsys)
    load(browser, report)

    assert browser.title == f"RuntimeError: checkout failed: {NORMAL} - faultspan"
    assert browser.find_element(By.CSS_SELECTOR, "header h1").text == f"checkout failed: {NORMAL}"
    summary = dict(pairs_in(browser, "header"))
    assert summary["Occurrences"] == "1" and summary["Failing span"] == f"charge {NORMAL}"
    assert len(summary["Fingerprint"]) == 32

    assert texts(browser, "#chain .relation") == ["caused by"]
    assert texts(browser, "#chain h3") == [
        f"RuntimeError: checkout failed: {NORMAL}",
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    ]
    frames = browser.find_elements(By.CSS_SELECTOR, "#chain details.frame")
    assert any("place_order" in frame.text for frame in frames)
    library = [frame for frame in frames if "library" in str(frame.get_attribute("class"))]
    assert library and all("json" in str(frame.get_property("textContent")) for frame in library)
    assert [frame.get_property("open") for frame in frames] == [frame not in library for frame in frames]
    # json.loads and decode fold into one closed block; raw_decode, where it raised, stays in view
    assert (
        texts(browser, "#chain details.library-run > summary"),
        [frame.is_displayed() for frame in library],
    ) == (["2 library frames"], [False, False, True])
    locals_shown = pairs_in(browser, "#chain .locals")
    assert ("order_id", "7") in locals_shown and ("total", "14") in locals_shown
    assert any("raise RuntimeError" in line for line in texts(browser, "#chain pre.code .line.here"))

    crumbs = texts(browser, "#breadcrumbs tr.crumb td.message")
    assert crumbs == [f"request {NORMAL}", f"SELECT {NORMAL}"]
    assert all(when.startswith("-") for when in texts(browser, "#breadcrumbs td.when"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#breadcrumbs .axis .dot")) == 2

    bars = browser.find_elements(By.CSS_SELECTOR, "#waterfall .bar")
    assert texts(browser, "#waterfall .span-name") == [f"GET /checkout {NORMAL}", f"charge {NORMAL}"]
    assert ["failing" in str(bar.get_attribute("class")) for bar in bars] == [False, True]
    assert bars[0].size["width"] >= bars[1].size["width"] > 0
    assert browser.find_elements(By.CSS_SELECTOR, "#waterfall details.failing .tick.exception")

    facts = browser.find_element(By.ID, "runtime").text
    assert f"{platform.python_implementation()} {platform.python_version()}" in facts
    assert "service.name" in facts

    lines = recording(NORMAL)["lines"]
    assert position(browser) == f"1 / {len(lines)}"
    assert browser.find_element(By.ID, "step-prev").get_property("disabled") is True
    browser.find_element(By.ID, "step-next").click()
    assert position(browser) == f"2 / {len(lines)}"
    assert current_line(browser) == [f"{lines[1]['lineno']:>5}  {lines[1]['source']}"]
    assert lines[1]["source"] in browser.find_element(By.ID, "step-source").text
    assert "note" in browser.find_element(By.ID, "step-locals").text
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    assert position(browser) == f"3 / {len(lines)}"
    assert pairs_in(browser, "#step-locals") == [("step", "2")]
    body.send_keys(Keys.ARROW_LEFT)
    browser.find_element(By.ID, "step-prev").click()
    assert position(browser) == f"1 / {len(lines)}"
    browser.find_elements(By.CSS_SELECTOR, "ol.steps li")[-1].click()
    assert position(browser) == f"{len(lines)} / {len(lines)}"
    assert browser.find_element(By.ID, "step-next").get_property("disabled") is True
    assert_clean_load(browser)
    keep_screenshot(browser, tmp_path_factory, capsys, "report.png")


def visible(element: WebElement) -> str:
    assert element.is_displayed()
    return str(element.text)


def test_hostile_package_renders_as_text(
    browser: webdriver.Chrome,
    pipeline: Pipeline,
    package_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = report_of(write_package(pipeline, package_dir, HOSTILE, recorded=True), capsys)
    load(browser, report)
    for element in browser.find_elements(By.CSS_SELECTOR, "#waterfall details"):
        if not element.get_property("open"):
            browser.execute_script("arguments[0].open = true", element)

    assert browser.execute_script("return window.__pwned") is None
    assert browser.title == f"RuntimeError: checkout failed: {HOSTILE} - faultspan"
    assert browser.find_elements(By.CSS_SELECTOR, "img, svg, iframe, a") == []
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2

    # textContent keeps U+2028/9 exactly; Selenium's visible text turns them into line breaks.
    assert texts(browser, "header h1") == [f"checkout failed: {HOSTILE}"]
    assert visible(browser.find_element(By.CSS_SELECTOR, "header h1")).startswith(
        "checkout failed: </script>"
    )
    assert ("note", repr(HOSTILE)) in pairs_in(browser, "#chain .locals")
    assert f"SELECT {HOSTILE}" in texts(browser, "#breadcrumbs td.message")
    assert f"url=javascript:{HOSTILE}" in texts(browser, "#breadcrumbs td.data")
    assert f"charge {HOSTILE}" in texts(browser, "#waterfall .span-name")
    assert (f"app.{HOSTILE}", HOSTILE) in pairs_in(browser, "#waterfall .attributes")
    assert ("URL", f"/checkout/{HOSTILE}") in pairs_in(browser, "#request .request-facts")
    assert pairs_in(browser, "#request .headers") == [("x-note", HOSTILE)]
    browser.find_element(By.ID, "step-next").click()
    assert ("note", repr(HOSTILE)) in pairs_in(browser, "#step-locals")
    assert visible(browser.find_element(By.ID, "step-locals")).startswith("step\n1\nnote\n'</script>")

    assert browser.execute_script("return window.__pwned") is None
    assert_clean_load(browser)
    keep_screenshot(browser, tmp_path_factory, capsys, "hostile-report.png")


def test_replay_recording_steps_in_chromium(
    browser: webdriver.Chrome,
    otel_env: dict[str, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole chain: a replayable failure under opentelemetry-instrument, ``faultspan replay
    --record-lines`` in a subprocess, then ``faultspan view`` of the replay's package."""
    (tmp_path / "report_target.py").write_text(REPLAY_TARGET)
    (tmp_path / "produce.py").write_text(REPLAY_PRODUCER)
    run_instrumented(
        tmp_path / "produce.py",
        env=otel_env,
        OTEL_TRACES_EXPORTER="faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(tmp_path / "captured"),
    )
    (captured,) = (tmp_path / "captured").glob("*.fspkg")
    command = [sys.executable, "-m", "faultspan", "replay", str(captured), "--allow-code-execution"]
    command += ["--record-lines", "--output", str(tmp_path / "replayed"), "--json"]
    replayed = subprocess.run(
        command, cwd=tmp_path, env=otel_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert replayed.returncode == 0, replayed.stderr
    load(browser, report_of(Path(json.loads(replayed.stdout)["package"]), capsys))

    assert texts(browser, "header .kind, header h1") == ["ZeroDivisionError", "division by zero"]
    assert "replayable: report_target:average" in texts(browser, "#runtime .replay")
    source = dict(enumerate(REPLAY_TARGET.splitlines(), 1))
    executed = [6, 7, 8, 7, 8, 7, 9, 10]
    assert texts(browser, "ol.steps li") == [f"{line:>5}  {source[line]}" for line in executed]
    assert position(browser) == "1 / 8"
    assert pairs_in(browser, "#step-locals") == [("values", "[3, 4]")]
    browser.find_elements(By.CSS_SELECTOR, "ol.steps li")[-1].click()
    assert position(browser) == "8 / 8"
    assert texts(browser, "#step-source .line") == ["10    return total / count"]  # number, then the code
    assert pairs_in(browser, "#step-locals") == [("count", "0")]
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    assert position(browser) == "6 / 8"
    assert current_line(browser) == ["    7      for value in values:"]
    assert pairs_in(browser, "#step-locals") == [("total", "7")]
    assert_clean_load(browser)
    keep_screenshot(browser, tmp_path_factory, capsys, "replay-report.png")


# -- the request, the frames' gap, the breadcrumbs around the failure ----------------------------------------

TOKEN = "demo0token0abcdef0123456789"
API_KEY = "EXAMPLEdemoKey00000000000000"


def test_request_section_of_a_real_fastapi_failure_in_chromium(
    browser: webdriver.Chrome,
    otel_env: dict[str, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """examples/fastapi_app.py under opentelemetry-instrument, the faultspan exporter writing its package."""
    directory = tmp_path / "packages"
    env = {
        **otel_env,
        "OTEL_TRACES_EXPORTER": "faultspan",
        "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR": str(directory),
        # faultspan records the request headers it is asked for on failing requests (docs/compatibility.md).
        "OTEL_PYTHON_FAULTSPAN_HTTP_CAPTURE_HEADERS": "authorization,x-request-id",
    }
    with AppServer(EXAMPLES / "fastapi_app.py", env, tmp_path) as server:
        status, _ = http_get(
            server.url(f"/orders/7?marker=m-1&api_key={API_KEY}"),
            {"Authorization": f"Bearer {TOKEN}", "X-Request-Id": "req-1"},
            timeout=30,
        )
        assert status == 500
        deadline = time.monotonic() + 30
        while not list(directory.glob("*.fspkg")):  # the package writer works on its own thread there
            assert time.monotonic() < deadline, f"no package written; server log:\n{server.log_text()}"
            time.sleep(0.02)
    (package,) = directory.glob("*.fspkg")
    load(browser, report_of(package, capsys))

    facts = dict(pairs_in(browser, "#request .request-facts"))
    assert facts["Method"] == "GET"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/orders/7\?marker=m-1&api_key=\[REDACTED\]", facts["URL"])
    assert (facts["Route"], facts["Status"], facts["Client"], facts["User"]) == (
        "/orders/{order_id}",
        "500",
        "127.0.0.1",
        "demo-user",
    )
    headers = dict(pairs_in(browser, "#request .headers"))
    assert headers["x_request_id"] == "req-1"  # semantic-convention key: lowercase, "-" as "_"
    assert "[REDACTED]" in headers["authorization"]
    page = str(browser.find_element(By.ID, "report").get_property("textContent"))
    assert TOKEN not in page and API_KEY not in page
    sections = [element.get_attribute("id") for element in browser.find_elements(By.CSS_SELECTOR, "section")]
    assert sections.index("request") == sections.index("chain") + 1
    assert_clean_load(browser)
    keep_screenshot(browser, tmp_path_factory, capsys, "request-report.png")


OLD_SEMCONV = {
    "http.method": "POST",
    "http.scheme": "https",
    "http.host": "shop.example:8443",
    "http.target": "/orders/7?coupon=SPRING",
    "http.route": "/orders/{id}",
    "http.status_code": 502,
    "net.peer.ip": "10.0.0.9",
    "http.user_agent": "curl/8.5",
    "enduser.id": "u-7",
}
NEW_SEMCONV = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "url.path": "/orders/7",
    "url.query": "marker=m",
    "http.route": "/orders/{order_id}",
    "http.response.status_code": 503,
    "client.address": "::1",
    "user.id": "42",
    "http.request.header.authorization": (f"Bearer {TOKEN}",),
    "http.request.header.accept": ("text/html", "application/json"),
}


@pytest.mark.parametrize(
    ("attributes", "facts", "headers"),
    [
        (
            OLD_SEMCONV,
            [
                ["Method", "POST"],
                ["URL", "https://shop.example:8443/orders/7?coupon=SPRING"],
                ["Route", "/orders/{id}"],
                ["Status", "502"],
                ["Client", "10.0.0.9"],
                ["User", "u-7"],
            ],
            [["user-agent", "curl/8.5"]],
        ),
        (
            NEW_SEMCONV,
            [
                ["Method", "GET"],
                ["URL", "http://127.0.0.1:8000/orders/7?marker=m"],
                ["Route", "/orders/{order_id}"],
                ["Status", "503"],
                ["Client", "::1"],
                ["User", "42"],
            ],
            [["accept", "text/html, application/json"], ["authorization", "[REDACTED]"]],
        ),
        ({"http.method": "GET"}, [["Method", "GET"]], []),
    ],
    ids=["older-names", "stable-names", "method-only"],
)
def test_request_from_either_semantic_convention(  # noqa: PLR0917 -- parameters and fixtures
    attributes: dict[str, Any],
    facts: list[list[str]],
    headers: list[list[str]],
    pipeline: Pipeline,
    package_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracer = pipeline.tracer
    with (
        tracer.start_as_current_span("request", kind=SpanKind.SERVER, attributes=attributes),
        tracer.start_as_current_span("handler"),
    ):
        try:
            place_order(7, NORMAL)
        except RuntimeError:
            faultspan.capture_exception()
    package = write_spans(package_dir, pipeline.spans())
    request = model(read_package(package))["request"]
    assert request == {"facts": facts, "headers": headers, "body": "", "span": "request"}
    shown = main(["show", str(package)])
    out = capsys.readouterr().out
    assert shown == 0 and TOKEN not in out
    section = out[out.index("\nRequest\n") : out.index("\nException\n")]
    assert section.startswith(f"\nRequest\n  {facts[0][1]}")


def test_no_request_section_without_a_server_span(pipeline: Pipeline, package_dir: Path) -> None:
    with pipeline.tracer.start_as_current_span("batch job", attributes={"http.request.method": "GET"}):
        try:
            place_order(7, NORMAL)
        except RuntimeError:
            faultspan.capture_exception()
    assert model(read_package(write_spans(package_dir, pipeline.spans())))["request"] is None


def descend(depth: int) -> int:
    return descend(depth + 1) + 1


def test_gap_and_breadcrumbs_around_the_failure_in_chromium(
    browser: webdriver.Chrome,
    pipeline: Pipeline,
    package_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A RecursionError deeper than OTEL_PYTHON_FAULTSPAN_MAX_FRAMES, a crumb before it and one after."""
    with pipeline.tracer.start_as_current_span("recursion"):
        faultspan.breadcrumb("app", "going down")
        try:
            descend(0)
        except RecursionError:
            faultspan.capture_exception()
        faultspan.breadcrumb("app", "cleaning up", level="warning")
    package = write_spans(package_dir, pipeline.spans())
    (link,) = model(read_package(package))["chain"]
    assert link["omitted"] > 0 and link["omitted_at"] == len(link["frames"]) // 4
    load(browser, report_of(package, capsys))

    children = browser.find_elements(By.CSS_SELECTOR, "#chain details.frame, #chain .omitted")
    kinds = ["omitted" if "omitted" in str(child.get_attribute("class")) else "frame" for child in children]
    assert kinds.count("omitted") == 1
    assert kinds.index("omitted") == link["omitted_at"]  # all frames in page order, the gap where it is
    gap = browser.find_element(By.CSS_SELECTOR, "#chain .omitted")
    assert gap.text == f"{link['omitted']} frames omitted here (OTEL_PYTHON_FAULTSPAN_MAX_FRAMES)"
    assert gap.is_displayed()
    head = sum(frame["function"] == "descend" for frame in link["frames"][: link["omitted_at"]])
    tail = sum(frame["function"] == "descend" for frame in link["frames"][link["omitted_at"] :])
    assert texts(browser, "#chain details.repeated > summary") == [
        f"the frame above repeated {head - 1} more times",
        f"the frame above repeated {tail - 2} more times",
    ]
    shown = [
        frame
        for frame in browser.find_elements(By.CSS_SELECTOR, "#chain details.frame")
        if frame.is_displayed()
    ]
    assert len(shown) == len(link["frames"]) - (head - 1) - (tail - 2)

    rows = browser.find_elements(By.CSS_SELECTOR, "#breadcrumbs table.crumbs tr")
    assert [str(row.get_attribute("class")) for row in rows] == ["crumb before", "failure-row", "crumb after"]
    assert [row.text.split("  ")[0] for row in rows][1] == "failure"
    assert texts(browser, "#breadcrumbs td.message") == ["going down", "cleaning up"]
    when = texts(browser, "#breadcrumbs td.when")
    assert when[0].startswith("-") and when[1].startswith("+")
    before, after = browser.find_elements(By.CSS_SELECTOR, "#breadcrumbs .axis .dot")
    failure = browser.find_element(By.CSS_SELECTOR, "#breadcrumbs .axis .failure")
    assert "after" in str(after.get_attribute("class")) and "before" in str(before.get_attribute("class"))
    centre = [element.location["x"] + element.size["width"] / 2 for element in (before, failure, after)]
    assert centre[0] < centre[1] <= centre[2]
    assert "1 before the failure, 1 after" in browser.find_element(By.CSS_SELECTOR, ".axis-labels").text
    assert_clean_load(browser)
    keep_screenshot(browser, tmp_path_factory, capsys, "gap-and-crumbs-report.png")
