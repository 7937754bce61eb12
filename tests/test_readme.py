"""The README stays true: its example is the file it names, and that file runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class TestReadmeExample:
    """The actor example in the README."""

    def test_snippet_is_taken_from_the_example_file(self) -> None:
        readme = (ROOT / "README.md").read_text()
        example = (ROOT / "examples" / "supervised_counter.py").read_text()
        block = re.search(r"```python\n(.*?)```", readme, re.S)
        assert block is not None
        example_lines = {line.rstrip() for line in example.splitlines()}
        for line in block.group(1).splitlines():
            if line.strip():
                assert line.rstrip() in example_lines, f"README line not in the example: {line!r}"
        code_lines = [line for line in block.group(1).splitlines() if line.strip()]
        assert len(code_lines) <= 40

    def test_example_runs(self) -> None:
        completed = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "supervised_counter.py")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = completed.stdout.splitlines()
        assert lines[0] == "total: 7"
        assert lines[1] == "after restart: 0"
        assert "c1 [actor:Counter] running" in completed.stdout
        assert "restarts 1" in completed.stdout
        assert "last failure OverflowError: too big" in completed.stdout
