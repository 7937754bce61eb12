"""The released JSON contracts change only additively (scripts/contract_baselines.py)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "contract_baselines.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contract_baselines", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


baselines = load()
ARGS = json.loads((ROOT / "contracts/api/mcp/tools/fs.read/v1/args.schema.json").read_text())
CATALOG = json.loads((ROOT / "contracts/api/errors/catalog.json").read_text())


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(ARGS)
    edit(new)
    problems: list[str] = baselines.schema_changes(ARGS, new)
    return problems


class TestBaselines:
    """The tree passes; every recorded release contract has a baseline copy."""

    def test_check_passes_on_the_tree(self) -> None:
        out = subprocess.run(
            [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr

    def test_released_contracts_are_recorded(self) -> None:
        recorded = {
            str(p.relative_to(baselines.BASELINE)) for p in baselines.BASELINE.rglob("*.json")
        }
        assert "mcp/tools/fs.read/v1/args.schema.json" in recorded
        assert "relay/v1/tool.call.schema.json" in recorded
        assert "errors/catalog.json" in recorded


class TestComparator:
    """Additions pass; each kind of breaking change is named."""

    def test_additions_pass(self) -> None:
        def add(schema: dict[str, Any]) -> None:
            schema["properties"]["newOptional"] = {"type": "string"}

        assert changed(add) == []

    def test_removed_property(self) -> None:
        assert changed(lambda s: s["properties"].pop("path")) == ["/properties/path: removed"]

    def test_retyped_property(self) -> None:
        def retype(schema: dict[str, Any]) -> None:
            schema["properties"]["path"]["type"] = "integer"

        assert changed(retype) == ["/properties/path/type: 'string' became 'integer'"]

    def test_new_required_field(self) -> None:
        def require(schema: dict[str, Any]) -> None:
            schema["required"] = [*schema["required"], "encoding"]

        assert [p.split(":")[0] for p in changed(require)] == ["/required"]

    def test_tightened_bound(self) -> None:
        def tighten(schema: dict[str, Any]) -> None:
            schema["properties"]["path"]["maxLength"] = 1

        problems = changed(tighten)
        assert len(problems) == 1
        assert problems[0].startswith("/properties/path/maxLength")

    def test_removed_enum_value_and_closed_object(self) -> None:
        old = {"type": "object", "properties": {"e": {"enum": ["a", "b"]}}}
        new = {
            "type": "object",
            "properties": {"e": {"enum": ["a"]}},
            "additionalProperties": False,
        }
        assert baselines.schema_changes(old, new) == [
            "/additionalProperties: open became closed",
            "/properties/e/enum: ['b'] removed",
        ]

    def test_catalog_codes_stay_with_their_retryable(self) -> None:
        new = copy.deepcopy(CATALOG)
        del new["errors"]["tool.timeout"]
        new["errors"]["overloaded"]["retryable"] = False
        new["errors"]["brand.new"] = {"retryable": True, "summary": "added"}
        assert baselines.catalog_changes(CATALOG, new) == [
            "overloaded: retryable changed to False",
            "tool.timeout: removed",
        ]
