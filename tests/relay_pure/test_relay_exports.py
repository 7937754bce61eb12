"""The package's public surface: ``actors.relay`` re-exports and nothing more."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import actors.relay

#: The relay's pure logic, tested without Trio; the other private modules are actors.
PURE_MODULES = ("_frames.py", "_tokens.py", "_shards.py", "_errors.py")


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
        here = Path(actors.relay.__file__).parent
        for name in PURE_MODULES:
            assert "import trio" not in (here / name).read_text(), name
