from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import attrs

CONTRACTS_ROOT = Path(__file__).resolve().parent


@attrs.frozen(kw_only=True)
class ErrorSpec:
    """One entry of the error catalog (``api/errors/catalog.json``)."""

    code: str
    retryable: bool
    summary: str


@functools.cache
def load_json(relative_path: str) -> Any:
    """Parse a JSON contract file, relative to the contracts root (cached: files are read-only)."""
    return json.loads((CONTRACTS_ROOT / relative_path).read_text(encoding="utf-8"))


@functools.cache
def error_catalog() -> dict[str, ErrorSpec]:
    """Every error code the system may put on the wire, by code."""
    raw = load_json("api/errors/catalog.json")["errors"]
    return {
        code: ErrorSpec(code=code, retryable=entry["retryable"], summary=entry["summary"])
        for code, entry in raw.items()
    }
