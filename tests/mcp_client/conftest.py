"""Fixtures for the MCP client tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import LegacyServer


@pytest.fixture
def legacy(tmp_path: Path) -> LegacyServer:
    return LegacyServer(tmp_path / "server-log.jsonl")


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the root\n")
    (root / "four_k.bin").write_bytes(b"x" * 4096)
    return root
