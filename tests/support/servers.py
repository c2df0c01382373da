"""Example web apps as real server subprocesses under ``opentelemetry-instrument`` on free loopback ports."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from support.collector import LOOPBACK, free_port
from support.instrumented import INSTRUMENT

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class ServerStartError(RuntimeError):
    pass


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``url``; the status and body, error statuses included (never raises for an HTTP status)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


class AppServer:
    """``opentelemetry-instrument python SCRIPT PORT`` in ``cwd``; ready once ``ready_path`` answers 200.

    Output goes to ``cwd/server.log``. A port taken between picking and binding makes the server exit at
    once: a new port is picked, up to ``port_attempts`` times.
    """

    def __init__(
        self,
        script: Path,
        env: dict[str, str],
        cwd: Path,
        *,
        ready_path: str = "/health",
        start_timeout: float = 30.0,
        port_attempts: int = 3,
    ) -> None:
        self.script = script
        self.env = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **env}
        self.cwd = cwd
        self.ready_path = ready_path
        self.start_timeout = start_timeout
        self.port_attempts = port_attempts
        self.log_path = cwd / "server.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> AppServer:
        for _ in range(self.port_attempts):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [str(INSTRUMENT), sys.executable, str(self.script), str(self.port)],
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(time.monotonic() + self.start_timeout):
                return self
        raise ServerStartError(f"{self.script.name} did not start; log {self.log_path}:\n{self.log_text()}")

    def _wait_ready(self, deadline: float) -> bool:
        proc = self._proc
        assert proc is not None
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                if http_get(self.url(self.ready_path), timeout=1.0)[0] == 200:
                    return True
            if time.monotonic() >= deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.script.name} not ready within {self.start_timeout:.0f}s; log:\n{self.log_text()}"
                )
            # Pace the next attempt by waiting on the process itself: returns at once if it exits.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's own pid, then SIGKILL it if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # Popen checks the pid is still its child
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
