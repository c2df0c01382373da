"""faultspan_lifecycle: the bounded flush on SIGTERM and at exit, as an instrumentor (reversible, disabled
by name)."""

from __future__ import annotations

import _signal
import functools
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from faultspan._pipeline.lifecycle import LifecycleInstrumentor
from support.instrumented import INSTRUMENT

APP = Path(__file__).parent / "apps" / "lifecycle_app.py"
SPAN = '"name": "before-term"'


@pytest.mark.parametrize("mode", ["instrument", "configure"])
@pytest.mark.parametrize("disabled", [False, True], ids=["enabled", "disabled"])
@pytest.mark.parametrize("handler", ["app", "default"])
def test_sigterm_flushes_and_keeps_the_exit_unless_disabled(
    otel_env: dict[str, str], mode: str, disabled: bool, handler: str
) -> None:
    env = {
        **otel_env,
        "OTEL_TRACES_EXPORTER": "console" if mode == "instrument" else "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # only a flush exports the span before the process is gone
        "OTEL_PYTHON_FAULTSPAN_SPOOL_DIR": "none",
    }
    if disabled:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "faultspan_lifecycle"
    prefix = [str(INSTRUMENT)] if mode == "instrument" else []
    result = subprocess.run(
        [*prefix, sys.executable, str(APP), mode, handler],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == (7 if handler == "app" else -signal.SIGTERM), result.stderr
    assert (SPAN in result.stdout) is not disabled, result.stdout + result.stderr
    if handler == "app":
        assert result.stdout.rstrip().endswith("application handler")  # the flush ran first


def _app_handler(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("not called in this test")


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    before = _signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        LifecycleInstrumentor().uninstrument()
        _signal.signal(signal.SIGTERM, before)


def test_uninstrument_puts_back_signal_functions_handler_and_exit_hook(sigterm_restored: None) -> None:
    original_signal, original_getsignal = vars(signal)["signal"], vars(signal)["getsignal"]
    instrumentor = LifecycleInstrumentor()
    instrumentor.instrument()
    assert vars(signal)["signal"] is not original_signal
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # what the application would see without us
    assert callable(_signal.getsignal(signal.SIGTERM))  # faultspan's handler, in front

    assert signal.signal(signal.SIGTERM, _app_handler) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is _app_handler
    assert _signal.getsignal(signal.SIGTERM) is not _app_handler
    instrumentor.instrument()  # a second call changes nothing

    instrumentor.uninstrument()
    assert vars(signal)["signal"] is original_signal
    assert vars(signal)["getsignal"] is original_getsignal
    assert _signal.getsignal(signal.SIGTERM) is _app_handler  # the application's, with nothing in front


def test_uninstrument_restores_the_handler_from_before(sigterm_restored: None) -> None:
    signal.signal(signal.SIGTERM, _app_handler)
    LifecycleInstrumentor().instrument()
    assert _signal.getsignal(signal.SIGTERM) is not _app_handler
    LifecycleInstrumentor().uninstrument()
    assert _signal.getsignal(signal.SIGTERM) is _app_handler


def test_an_ignored_sigterm_stays_ignored(sigterm_restored: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    LifecycleInstrumentor().instrument()
    assert _signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.signal(signal.SIGTERM, signal.SIG_IGN) == signal.SIG_IGN
    assert _signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    LifecycleInstrumentor().uninstrument()
    assert _signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


EXIT_PROBE = """
import atexit, sys
from faultspan._pipeline import lifecycle
atexit.register(lambda: print("exit flush ran:", lifecycle.exit_deadline() is not None))  # runs last
lifecycle.LifecycleInstrumentor().instrument()
if sys.argv[1] == "uninstrument":
    lifecycle.LifecycleInstrumentor().uninstrument()
"""


@pytest.mark.parametrize(("step", "flushed"), [("keep", True), ("uninstrument", False)])
def test_uninstrument_drops_the_exit_flush(step: str, flushed: bool) -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, step], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == f"exit flush ran: {flushed}\n"


def test_a_decorated_application_handler_reads_back_whole(sigterm_restored: None) -> None:
    @functools.wraps(_app_handler)
    def logged(signum: int, frame: FrameType | None) -> None:
        _app_handler(signum, frame)

    LifecycleInstrumentor().instrument()
    signal.signal(signal.SIGTERM, logged)
    assert signal.getsignal(signal.SIGTERM) is logged  # not the function it wraps
