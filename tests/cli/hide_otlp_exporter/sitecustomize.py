"""Loaded at start-up by a process started with this folder on ``PYTHONPATH``: the OTLP
exporter package cannot be imported, as if it were not installed."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

HIDDEN = "opentelemetry.exporter.otlp.proto.http"


class _Hide:
    """A meta path finder that refuses the hidden package and everything under it."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == HIDDEN or name.startswith(HIDDEN + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Hide())
