"""zl_actors stands alone: it imports only the standard library, trio, attrs and cattrs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import zl_actors

# trio's own result type (``outcome``) is part of trio's low-level API that the runtime uses
# to park and wake tasks.
ALLOWED_THIRD_PARTY = {"trio", "attrs", "cattrs", "outcome"}


class TestRuntimeImports:
    """No domain, process, contract or other third-party import in the runtime."""

    def test_imports(self) -> None:
        package = Path(zl_actors.__file__).parent
        found: set[str] = set()
        for module in package.glob("*.py"):
            tree = ast.parse(module.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
        third_party = {
            name for name in found if name not in sys.stdlib_module_names and name != "__future__"
        }
        assert third_party <= ALLOWED_THIRD_PARTY, third_party - ALLOWED_THIRD_PARTY
        assert "trio" in third_party
