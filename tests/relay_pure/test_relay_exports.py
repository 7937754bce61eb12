"""The package's public surface: ``actors.relay`` re-exports and nothing more."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import actors.relay


class TestExports:
    """``__init__`` only re-exports names defined in the private modules."""

    def test_all_names_resolve(self) -> None:
        for name in actors.relay.__all__:
            value = getattr(actors.relay, name)
            if isinstance(value, types.UnionType):  # the Frame and Claims aliases
                continue
            module = getattr(value, "__module__", None)
            assert module is None or module.startswith(("actors.relay._", "actors.errors")), name

    def test_init_is_only_reexports(self) -> None:
        tree = ast.parse(Path(actors.relay.__file__).read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                assert node.module is not None
                assert node.module.startswith("_")
                assert all(alias.asname == alias.name for alias in node.names)
            else:
                assert isinstance(node, ast.Expr | ast.Assign), ast.dump(node)

    def test_no_trio_in_pure_modules(self) -> None:
        for path in Path(actors.relay.__file__).parent.glob("_*.py"):
            assert "import trio" not in path.read_text(), path
