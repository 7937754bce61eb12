"""The host's own copy of each tool's contract: schemas, version, default caps (pure).

The host validates against the contract files in ``contracts/api/mcp/tools`` and not
against what a device announces: a device cannot loosen a schema. Validators are compiled
once per tool version.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import attrs
import jsonschema

from actors.errors import ToolError
from actors.strict_json import StrictJsonError, loads
from contracts import CONTRACTS_ROOT, load_json

TOOLS_DIR = "api/mcp/tools"


@attrs.frozen(kw_only=True)
class Caps:
    """Limits a call runs under."""

    timeout_ms: int
    max_bytes: int


@attrs.frozen(kw_only=True)
class ToolContract:
    name: str
    version: str
    description: str
    args_schema: dict[str, Any]
    result_schema: dict[str, Any]
    default_caps: Caps


@functools.cache
def tool_contracts() -> dict[str, ToolContract]:
    """Every tool the host knows, by name (the newest version of each)."""
    contracts: dict[str, ToolContract] = {}
    for manifest_path in sorted((CONTRACTS_ROOT / TOOLS_DIR).glob("*/v*/manifest.json")):
        folder = manifest_path.parent.relative_to(CONTRACTS_ROOT).as_posix()
        manifest = load_json(f"{folder}/manifest.json")
        caps = manifest["defaultCaps"]
        contracts[manifest["name"]] = ToolContract(
            name=manifest["name"],
            version=manifest["version"],
            description=manifest["description"],
            args_schema=load_json(f"{folder}/{manifest['argsSchema']}"),
            result_schema=load_json(f"{folder}/{manifest['resultSchema']}"),
            default_caps=Caps(timeout_ms=caps["timeoutMs"], max_bytes=caps["maxBytes"]),
        )
    return contracts


@functools.cache
def _validator(name: str, version: str, which: str) -> jsonschema.protocols.Validator:
    contract = tool_contracts()[name]
    assert contract.version == version
    schema = contract.args_schema if which == "args" else contract.result_schema
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(
        schema, format_checker=jsonschema.FormatChecker()
    )
    return validator


def _first_problem(validator: jsonschema.protocols.Validator, instance: object) -> str | None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))  # type: ignore[arg-type]
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


def validate_args(contract: ToolContract, args: object) -> None:
    """Raises ToolError ``tool.invalid_args`` naming the first problem."""
    problem = _first_problem(_validator(contract.name, contract.version, "args"), args)
    if problem is not None:
        raise ToolError("tool.invalid_args", f"{contract.name} arguments: {problem}")


def validate_result(contract: ToolContract, result: object) -> None:
    """Raises ToolError ``tool.invalid_result`` naming the first problem."""
    problem = _first_problem(_validator(contract.name, contract.version, "result"), result)
    if problem is not None:
        raise ToolError("tool.invalid_result", f"{contract.name} result: {problem}")


def parse_arguments(arguments_json: str) -> dict[str, Any]:
    """The model's argument text as a JSON object, or ToolError ``tool.invalid_args``.

    Parsed strictly (``actors.strict_json``): an integer past 2**53, a lone surrogate,
    NaN, a duplicate key or deep nesting is refused here, so nothing further on (the
    receipt's canonical digest, the relay's codec) can fail on the model's arguments.
    """
    try:
        args = loads(arguments_json)
    except StrictJsonError as exc:
        raise ToolError("tool.invalid_args", f"arguments are not strict JSON: {exc}") from None
    if not isinstance(args, dict):
        raise ToolError("tool.invalid_args", "arguments must be a JSON object")
    return args


def cap_arguments(contract: ToolContract, args: dict[str, Any], caps: Caps) -> dict[str, Any]:
    """Arguments with the byte cap applied (``maxBytes`` never above the cap)."""
    if contract.name != "fs.read":
        return args
    capped = dict(args)
    capped["maxBytes"] = min(int(args.get("maxBytes", caps.max_bytes)), caps.max_bytes)
    return capped


def enforce_result_caps(
    contract: ToolContract, result: dict[str, Any], caps: Caps
) -> tuple[dict[str, Any], bool]:
    """The result cut to the byte cap if the tool returned more; and whether it is truncated.

    The host does not trust the device to honour ``maxBytes``: an ``fs.read`` result over
    the cap is cut (a UTF-8 cut never splits a character), its ``sha256`` and counts are
    recomputed and it is marked ``truncated``.
    """
    if contract.name != "fs.read":
        return result, bool(result.get("truncated", False))
    if result["bytesReturned"] <= caps.max_bytes:
        return result, bool(result["truncated"])
    if result["encoding"] == "base64":
        data = base64.b64decode(result["content"])[: caps.max_bytes]
        content = base64.b64encode(data).decode("ascii")
    else:
        data = result["content"].encode("utf-8")[: caps.max_bytes]
        # Back off to a character boundary.
        content = data.decode("utf-8", errors="ignore")
        data = content.encode("utf-8")
    cut = dict(result)
    cut.update(
        content=content,
        bytesReturned=len(data),
        truncated=True,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return cut, True
