"""Fixtures for the TLS tests: development certificates in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisors.tls import DevCerts, generate_dev_certs


@pytest.fixture
def certs(tmp_path: Path) -> DevCerts:
    """A fresh CA, server and client certificate for localhost, 127.0.0.1 and ::1."""
    return generate_dev_certs(tmp_path / "certs")


@pytest.fixture
def other_certs(tmp_path: Path) -> DevCerts:
    """A second, unrelated CA with its own certificates (a stranger's PKI)."""
    return generate_dev_certs(tmp_path / "other")
