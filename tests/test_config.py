from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from faultspan._capture import config


def test_defaults_and_sources() -> None:
    settings = config.load({})
    assert settings.capture_locals is True
    assert settings.max_breadcrumbs == 100
    assert set(settings.sources.values()) == {"default"}


def test_environment_then_options() -> None:
    settings = config.load(
        {"OTEL_PYTHON_FAULTSPAN_CAPTURE_LOCALS": "off", "OTEL_PYTHON_FAULTSPAN_REDACT_KEYS": "pin, otp ,"},
        {"max_depth": 2},
    )
    assert settings.capture_locals is False
    assert settings.redact_keys == ("pin", "otp")
    assert settings.max_depth == 2
    assert settings.sources["capture_locals"] == "env OTEL_PYTHON_FAULTSPAN_CAPTURE_LOCALS"
    assert settings.sources["max_depth"] == "configure()"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("OTEL_PYTHON_FAULTSPAN_MAX_FRAMES", "many", "expected a whole number"),
        ("OTEL_PYTHON_FAULTSPAN_MAX_FRAMES", "-3", "expected a number >= 0"),
        ("OTEL_PYTHON_FAULTSPAN_CAPTURE_LOCALS", "perhaps", "expected true or false"),
        ("OTEL_PYTHON_FAULTSPAN_REDACT_CALLBACK", "nowhere", "expected 'module:function'"),
        ("OTEL_PYTHON_FAULTSPAN_REDACT_CALLBACK", "no_such_module_x:f", "cannot load 'no_such_module_x:f'"),
        ("OTEL_PYTHON_FAULTSPAN_FINGERPRINT_CALLBACK", "json:__doc__", "is not callable"),
    ],
)
def test_malformed_value_warns_once_and_keeps_default(
    variable: str, value: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    config._warned.clear()
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        first = config.load({variable: value})
        second = config.load({variable: value})
    assert first == second == config.Settings()
    (record,) = caplog.records
    assert variable in record.getMessage()
    assert reason in record.getMessage()


def test_patterns_with_commas_as_json_array() -> None:
    settings = config.load({"OTEL_PYTHON_FAULTSPAN_REDACT_PATTERNS": '["emp-[0-9]{4,6}", "x,y"]'})
    assert settings.redact_patterns == ("emp-[0-9]{4,6}", "x,y")
    assert config.load({"OTEL_PYTHON_FAULTSPAN_REDACT_PATTERNS": "a+, b+"}).redact_patterns == ("a+", "b+")


def test_strict_mode_raises() -> None:
    with pytest.raises(config.ConfigError, match="OTEL_PYTHON_FAULTSPAN_MAX_DEPTH"):
        config.load({"OTEL_PYTHON_FAULTSPAN_STRICT": "true", "OTEL_PYTHON_FAULTSPAN_MAX_DEPTH": "deep"})


def test_callback_is_resolved() -> None:
    settings = config.load({"OTEL_PYTHON_FAULTSPAN_REDACT_CALLBACK": "os.path:basename"})
    assert settings.redact_callback is not None
    assert settings.redact_callback("a/b") == "b"


def test_cli_config_reports_values_and_sources() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "config", "--json"],
        env={"OTEL_PYTHON_FAULTSPAN_MAX_LOCALS": "7", "OTEL_SERVICE_NAME": "shop", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    row = next(row for row in report["faultspan"] if row["variable"] == "OTEL_PYTHON_FAULTSPAN_MAX_LOCALS")
    assert row["value"] == 7
    assert row["source"] == "env OTEL_PYTHON_FAULTSPAN_MAX_LOCALS"
    assert report["opentelemetry"] == {"OTEL_SERVICE_NAME": "shop"}


@pytest.mark.parametrize("json_output", [True, False])
def test_cli_config_never_prints_the_signing_key(json_output: bool) -> None:
    key = "synthetic-signing-key-0123456789"
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "config", *(["--json"] if json_output else [])],
        env={"OTEL_PYTHON_FAULTSPAN_SIGNING_KEY": key, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert key not in result.stdout
    line = next(line for line in result.stdout.splitlines() if "SIGNING_KEY" in line or "signing" in line)
    assert "[REDACTED]" in (result.stdout if json_output else line)


def test_cli_usage_error_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "frobnicate"], capture_output=True, check=False
    )
    assert result.returncode == 2


def test_readme_documents_every_variable() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [
        config.env_name(option) for option in config.option_names() if config.env_name(option) not in readme
    ]
    assert missing == []


@pytest.mark.parametrize("logs_exporter", ["none", "console"])
def test_warning_reaches_stderr_once_when_only_opentelemetry_handles_logs(
    otel_env: dict[str, str], logs_exporter: str
) -> None:
    """The official logging instrumentation (installed in the test environment) puts an OpenTelemetry handler
    on the root logger, which also switches off ``logging.lastResort``: the warning must still be seen."""
    from support.instrumented import INSTRUMENT

    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, "-c", "print('app ran')"],
        env={
            **otel_env,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": logs_exporter,
            "OTEL_PYTHON_FAULTSPAN_MAX_FRAMES": "lots",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("app ran")
    warning = "OTEL_PYTHON_FAULTSPAN_MAX_FRAMES: expected a whole number; using the default"
    assert result.stderr.count(warning) == 1, result.stderr
