from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

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
        ("OTEL_PYTHON_FAULTSPAN_LOG_LEVEL", "LOUD", "expected a logging level"),
        ("OTEL_PYTHON_FAULTSPAN_HTTP_FAILURE_STATUSES", "418,5xx", "'5xx' is not a status code"),
        ("OTEL_PYTHON_FAULTSPAN_REDACT_PATTERNS", "emp-[0-9]+, emp-(", "invalid regex 'emp-('"),
        ("OTEL_PYTHON_FAULTSPAN_REDACT_DISABLE_RULES", "jwt, nope", "unknown redaction rule 'nope'"),
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
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [
        config.env_name(option) for option in config.option_names() if config.env_name(option) not in readme
    ]
    assert missing == []


def _config_json(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "config", "--json"],
        env={**env, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""  # what was rejected is in the report, not warned about
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _row(report: dict[str, Any], variable: str) -> dict[str, Any]:
    return next(row for row in report["faultspan"] if row["variable"] == variable)


def test_cli_config_shows_a_rejected_value_and_the_default_in_effect() -> None:
    report = _config_json(
        {
            "OTEL_PYTHON_FAULTSPAN_LOG_LEVEL": "LOUD",
            "OTEL_PYTHON_FAULTSPAN_HTTP_FAILURE_STATUSES": "404,5xx",
            "OTEL_PYTHON_FAULTSPAN_MAX_LOCALS": "7",
        }
    )
    level = _row(report, "OTEL_PYTHON_FAULTSPAN_LOG_LEVEL")
    assert (level["value"], level["source"], level["accepted"], level["default"]) == (
        "INFO",
        "default",
        False,
        "INFO",
    )
    (rejected,) = level["rejected"]
    assert rejected["given"] == "LOUD"
    assert "expected a logging level" in rejected["reason"]
    statuses = _row(report, "OTEL_PYTHON_FAULTSPAN_HTTP_FAILURE_STATUSES")
    assert (statuses["value"], statuses["accepted"]) == ("500-599", False)
    assert "'5xx' is not a status code" in statuses["rejected"][0]["reason"]
    locals_row = _row(report, "OTEL_PYTHON_FAULTSPAN_MAX_LOCALS")
    assert (locals_row["value"], locals_row["accepted"], locals_row["rejected"]) == (7, True, [])


def test_cli_config_text_marks_the_rejected_value_under_the_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "config"],
        env={"OTEL_PYTHON_FAULTSPAN_LOG_LEVEL": "LOUD", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("OTEL_PYTHON_FAULTSPAN_LOG_LEVEL "))
    assert lines[index].split()[1:3] == ["INFO", "default"]
    assert "rejected 'LOUD': expected a logging level" in lines[index + 1]


def test_cli_config_names_misspelt_variables_and_rejected_otlp_variables() -> None:
    report = _config_json(
        {
            "OTEL_PYTHON_FAULTSPAN_MAX_FRAME": "3",
            "OTEL_PYTHON_FAULTSPAN_NO_SUCH_THING": "1",
            "FAULTSPAN_PACKAGE_DIR": "/tmp/x",
            "FAULTSPAN_HOME": "/opt/mine",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "soon",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
    )
    assert report["unknown"] == [
        {"variable": "FAULTSPAN_PACKAGE_DIR", "suggestion": "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR"},
        {"variable": "OTEL_PYTHON_FAULTSPAN_MAX_FRAME", "suggestion": "OTEL_PYTHON_FAULTSPAN_MAX_FRAMES"},
        {"variable": "OTEL_PYTHON_FAULTSPAN_NO_SUCH_THING", "suggestion": None},
    ]
    assert report["opentelemetry_rejected"] == {
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "'soon' is not a number of seconds"
    }


def test_cli_config_names_tls_files_the_exporter_could_not_use(tmp_path: Path) -> None:
    authority = tmp_path / "ca.pem"
    authority.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    not_pem = tmp_path / "client.crt"
    not_pem.write_bytes(b"\x30\x82\x01\x0a")  # DER, which the exporters do not read
    missing = tmp_path / "gone.key"
    report = _config_json(
        {
            "OTEL_EXPORTER_OTLP_CERTIFICATE": str(authority),
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": str(not_pem),
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(missing),
        }
    )
    rejected = report["opentelemetry_rejected"]
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" not in rejected
    assert (
        rejected["OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"]
        == f"{not_pem} is not a PEM file (no -----BEGIN line)"
    )
    assert rejected["OTEL_EXPORTER_OTLP_CLIENT_KEY"].startswith(f"cannot read {missing} (")
    alone = _config_json({"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(authority)})["opentelemetry_rejected"]
    assert alone == {"OTEL_EXPORTER_OTLP_CLIENT_KEY": "set without OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"}


@pytest.mark.parametrize(
    ("text", "level"), [("INFO", 20), ("warning", 30), ("15", 15), ("loud", None), ("Level 5", None)]
)
def test_log_level_names_and_numbers(text: str, level: int | None) -> None:
    settings = config.resolve({"OTEL_PYTHON_FAULTSPAN_LOG_LEVEL": text}).settings
    assert settings.log_level == (logging.INFO if level is None else level)
    assert settings.sources["log_level"] == (
        "default" if level is None else "env OTEL_PYTHON_FAULTSPAN_LOG_LEVEL"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("418, 500-599", ((418, 418), (500, 599))),
        (["404", 410], ((404, 404), (410, 410))),
        ("", ()),
        ("5xx", ((500, 599),)),
        ("599-500", ((500, 599),)),
        ("700", ((500, 599),)),
    ],
)
def test_failure_statuses_are_validated_whole(value: object, expected: tuple[tuple[int, int], ...]) -> None:
    options = {"http_failure_statuses": value}
    assert config.resolve({}, options).settings.http_failure_statuses == expected


def test_typed_options_are_checked_like_text() -> None:
    resolution = config.resolve({}, {"log_level": 10, "redact_patterns": ["a(", "b"], "strict": False})
    assert resolution.settings.log_level == 10
    (entry,) = [entry for entry in resolution.entries if entry.option == "redact_patterns"]
    assert entry.value == ()
    assert "invalid regex 'a('" in entry.rejected[0].reason


def test_a_rejected_option_keeps_the_environment_value_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    config._warned.clear()
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        settings = config.load({"OTEL_PYTHON_FAULTSPAN_MAX_DEPTH": "2"}, {"max_depth": "deep"})
    assert settings.max_depth == 2
    assert caplog.records[0].getMessage() == (
        "faultspan: ignoring configure(max_depth=...): expected a whole number; "
        "using env OTEL_PYTHON_FAULTSPAN_MAX_DEPTH"
    )


def test_misspelt_variable_warns_once_with_the_suggestion(caplog: pytest.LogCaptureFixture) -> None:
    config._warned.clear()
    env = {"OTEL_PYTHON_FAULTSPAN_CAPTURELOCALS": "false"}
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        first, second = config.load(env), config.load(env)
    assert first.capture_locals is second.capture_locals is True
    (record,) = caplog.records
    assert record.getMessage() == (
        "faultspan: OTEL_PYTHON_FAULTSPAN_CAPTURELOCALS is not a faultspan variable and is ignored; "
        "did you mean OTEL_PYTHON_FAULTSPAN_CAPTURE_LOCALS?"
    )
    with pytest.raises(config.ConfigError, match="CAPTURELOCALS"):
        config.load({**env, "OTEL_PYTHON_FAULTSPAN_STRICT": "1"})


APP = """
from faultspan._capture import config, runtime
config.load()
print("app ran, log level", runtime.current().settings.log_level)
"""


@pytest.mark.parametrize(
    ("variable", "value", "warning"),
    [
        (
            "OTEL_PYTHON_FAULTSPAN_MAX_FRAMES",
            "lots",
            "MAX_FRAMES: expected a whole number; using the default",
        ),
        ("OTEL_PYTHON_FAULTSPAN_LOG_LEVEL", "LOUD", "LOG_LEVEL: expected a logging level"),
        ("OTEL_PYTHON_FAULTSPAN_HTTP_FAILURE_STATUSES", "5xx", "'5xx' is not a status code"),
        ("OTEL_PYTHON_FAULTSPAN_LOGLEVEL", "DEBUG", "did you mean OTEL_PYTHON_FAULTSPAN_LOG_LEVEL?"),
    ],
)
@pytest.mark.parametrize("logs_exporter", ["none", "console"])
def test_warning_reaches_stderr_once_when_only_opentelemetry_handles_logs(
    otel_env: dict[str, str], logs_exporter: str, variable: str, value: str, warning: str
) -> None:
    """The official logging instrumentation (installed in the test environment) puts an OpenTelemetry handler
    on the root logger, which also switches off ``logging.lastResort``: the warning must still be seen, once,
    however often the settings are read (here by faultspan's instrumentors, then twice by the app)."""
    from support.instrumented import INSTRUMENT

    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, "-c", APP],
        env={
            **otel_env,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": logs_exporter,
            variable: value,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("app ran, log level 20")
    assert result.stderr.count(warning) == 1, result.stderr


def test_otlp_target_reads_each_signals_own_variables_first() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/custom",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2.5",
    }
    traces, logs = config.otlp_target(env), config.otlp_target(env, "logs")
    assert (traces.url, traces.timeout) == ("http://collector:4318/v1/traces", 2.5)
    assert (logs.url, logs.timeout) == ("http://logs:4318/custom", 10.0)
    with pytest.raises(config.ConfigError, match=r"^OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: unsupported"):
        config.otlp_target({"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "zstd"}, "logs")


def test_strict_mode_makes_a_rejected_setting_a_one_line_usage_error_of_a_verb(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultspan", "list"],
        env={"OTEL_PYTHON_FAULTSPAN_STRICT": "true", "OTEL_PYTHON_FAULTSPAN_MAX_DEPTH": "deep", "PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (
        2,
        "faultspan: OTEL_PYTHON_FAULTSPAN_MAX_DEPTH: expected a whole number\n",
    )
