#!/usr/bin/env python3
"""Hold the released JSON contracts to their baselines: every change must be additive.

    python scripts/contract_baselines.py --check     # exit 1 naming each breaking change
    python scripts/contract_baselines.py --write     # record the current files (a release)

The baselines are copies under ``contracts/baseline/json/`` of the files in ``RECORDED``
(the same relative paths as under ``contracts/api/``). ``agent.proto`` has its own
baseline and comparator (``scripts/gen_proto.py --check``); docs/versioning.md has the
rules. What counts as breaking, for a JSON Schema compared with its baseline:

- a property, ``$defs`` entry, ``enum`` value or ``anyOf``/``oneOf`` branch is gone;
- a ``type`` or ``const`` changed, or ``required`` gained or lost a name;
- ``additionalProperties`` was opened and is now closed;
- a bound got tighter (``maxLength``, ``maxItems``, ``maximum`` lower; ``minLength``,
  ``minItems``, ``minimum`` higher) or a ``pattern`` changed.

For the error catalog: a code is gone, or its ``retryable`` changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "contracts" / "api"
BASELINE = ROOT / "contracts" / "baseline" / "json"
CATALOG = "errors/catalog.json"
#: The released contracts: tool schemas v1, relay frames zl.relay.v1, the error catalog.
RECORDED_GLOBS = ("mcp/tools/fs.read/v1/*.json", "relay/v1/*.schema.json", CATALOG)
UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")


def recorded() -> list[str]:
    """The contract files under baseline, as paths relative to ``contracts/api``."""
    return sorted(
        str(path.relative_to(API)) for pattern in RECORDED_GLOBS for path in API.glob(pattern)
    )


def schema_changes(old: Any, new: Any, where: str = "") -> list[str]:
    """Every change from ``old`` to ``new`` that is not additive (see the module's rules)."""
    if not isinstance(old, dict):
        return [] if old == new else [f"{where or '/'}: {old!r} became {new!r}"]
    if not isinstance(new, dict):
        return [f"{where or '/'}: a schema became {new!r}"]
    problems: list[str] = []
    for key in ("type", "const", "pattern", "$ref", "format"):
        if key in old and old.get(key) != new.get(key):
            problems.append(f"{where}/{key}: {old[key]!r} became {new.get(key)!r}")
    if sorted(old.get("required", [])) != sorted(new.get("required", [])):
        problems.append(
            f"{where}/required: {old.get('required', [])} became {new.get('required', [])}"
        )
    if (
        old.get("additionalProperties", True) is not False
        and new.get("additionalProperties") is False
    ):
        problems.append(f"{where}/additionalProperties: open became closed")
    for key in UPPER_BOUNDS:
        if key in old and (key not in new or new[key] < old[key]):
            problems.append(f"{where}/{key}: {old[key]} became {new.get(key)}")
    for key in LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{where}/{key}: {old.get(key)} became {new[key]}")
    if "enum" in old:
        gone = [v for v in old["enum"] if v not in new.get("enum", [])]
        if gone:
            problems.append(f"{where}/enum: {gone} removed")
    for key in ("properties", "$defs", "patternProperties"):
        for name, sub in old.get(key, {}).items():
            if name not in new.get(key, {}):
                problems.append(f"{where}/{key}/{name}: removed")
            else:
                problems += schema_changes(sub, new[key][name], f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(old.get(key), dict):
            problems += schema_changes(old[key], new.get(key), f"{where}/{key}")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        old_list, new_list = old.get(key, []), new.get(key, [])
        if len(new_list) < len(old_list):
            problems.append(f"{where}/{key}: {len(old_list)} branches became {len(new_list)}")
        for index, (a, b) in enumerate(zip(old_list, new_list, strict=False)):
            problems += schema_changes(a, b, f"{where}/{key}/{index}")
    return problems


def catalog_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Codes removed or whose ``retryable`` changed (new codes are fine)."""
    problems = []
    for code, entry in old["errors"].items():
        if code not in new["errors"]:
            problems.append(f"{code}: removed")
        elif new["errors"][code]["retryable"] != entry["retryable"]:
            problems.append(f"{code}: retryable changed to {new['errors'][code]['retryable']}")
    return problems


def breaking_changes(relative: str) -> list[str]:
    """The breaking changes of one recorded file against its baseline."""
    old = json.loads((BASELINE / relative).read_text())
    current = API / relative
    if not current.exists():
        return [f"{relative}: removed"]
    new = json.loads(current.read_text())
    if relative == CATALOG:
        return [f"{relative}: {p}" for p in catalog_changes(old, new)]
    return [f"{relative}{p}" for p in schema_changes(old, new)]


def check() -> list[str]:
    """Every breaking change of every recorded contract, and recorded files gone missing."""
    problems = []
    for baseline in sorted(BASELINE.rglob("*.json")):
        problems += breaking_changes(str(baseline.relative_to(BASELINE)))
    return problems


def write() -> list[str]:
    """Record the current released contracts as the baseline; returns what was written."""
    written = []
    for relative in recorded():
        target = BASELINE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(API / relative, target)
        written.append(relative)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail on a breaking change")
    mode.add_argument("--write", action="store_true", help="record the current contracts")
    args = parser.parse_args(argv)
    if args.write:
        for relative in write():
            print(f"recorded contracts/baseline/json/{relative}")
        return 0
    problems = check()
    for problem in problems:
        print(f"breaking: {problem}", file=sys.stderr)
    if problems:
        print(
            "contract_baselines: changes to released contracts must be additive "
            "(docs/versioning.md)",
            file=sys.stderr,
        )
        return 1
    print(f"contract_baselines: {len(list(BASELINE.rglob('*.json')))} contracts, all additive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
