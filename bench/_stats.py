"""Small statistics helpers shared by the benchmarks."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], pct: float) -> float:
    """The pct-th percentile (nearest rank on sorted samples); 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else 0.0


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object as the last line of output."""
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout ends with the JSON line."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
