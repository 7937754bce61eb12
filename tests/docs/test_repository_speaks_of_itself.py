"""Code and docs point only at files inside the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What a reference to a file outside the repository looks like.
OUTSIDE = ("ARCHITECTURE.md", "../shared/", "../seed/", "/work/")
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".json", ".proto", ".txt", ""}


class TestReferences:
    """No tracked file cites a design file or a path outside the repository."""

    def test_no_outside_references(self) -> None:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
        offenders = []
        for name in tracked:
            path = ROOT / name
            if path.suffix not in SUFFIXES or path.resolve() == Path(__file__).resolve():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
                continue
            offenders += [f"{name}: {needle}" for needle in OUTSIDE if needle in text]
        assert offenders == []
