"""The chaos runner in its quick form: one scenario of each kind of fault, all passing.

``python -m bench.chaos`` (``just chaos``) runs every scenario; this runs ``--quick`` as a
real command, as an operator would, and reads its JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class TestChaosQuick:
    """An MCP crash, an actor crash, a full disk and a network reset: each fails well."""

    def test_quick_scenarios_pass(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "bench.chaos", "--quick"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        failed = [r for r in summary["results"] if not r["passed"]]
        assert failed == [], result.stdout
        assert summary["scenarios"] == summary["passed"] >= 4
        assert result.returncode == 0
        assert all(r["hung"] == 0 for r in summary["results"])
