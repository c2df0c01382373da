"""Synthetic TLS material for loopback receivers, made by the ``openssl`` command at test time: a CA, a
server certificate for 127.0.0.1 and a client certificate, both signed by that CA."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Material:
    ca: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path


def _openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, extensions: str) -> None:
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    key, request, certificate = (directory / f"{name}.{kind}" for kind in ("key", "csr", "pem"))
    config = directory / f"{name}.ext"
    config.write_text(extensions)
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", subject, "-out", request
    )
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", config, "-out", certificate,
    )  # fmt: skip


def material(directory: Path) -> Material:
    """A fresh CA, server and client certificate under ``directory``; the test is skipped without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=faultspan test CA",
    )  # fmt: skip
    _signed(
        directory,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    _signed(directory, "client", "/CN=faultspan test client", "extendedKeyUsage=clientAuth\n")
    return Material(
        ca,
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )
